import type { KeyStore, StoredSigningKey } from '../tokens/key-store.ts';
import type { SqlDatabase } from './sql-database.ts';

type KeyRow = {
  kid: string;
  alg: string;
  state: string;
  created_at: number;
  public_jwk: string;
  private_jwk: string;
};

function fromRow(row: KeyRow): StoredSigningKey {
  return {
    kid: row.kid,
    alg: 'ES256',
    state: row.state as StoredSigningKey['state'],
    createdAt: row.created_at,
    publicJwk: JSON.parse(row.public_jwk),
    privateJwk: JSON.parse(row.private_jwk),
  };
}

export class SqliteKeyStore implements KeyStore {
  readonly #db: SqlDatabase;

  constructor(db: SqlDatabase) {
    this.#db = db;
  }

  async listKeys(): Promise<StoredSigningKey[]> {
    return this.#list();
  }

  async initializeKeys(candidate: StoredSigningKey): Promise<StoredSigningKey[]> {
    return this.#db.transaction(() => {
      const current = this.#db.all<{ kid: string }>("SELECT kid FROM signing_keys WHERE state = 'current'");
      if (current.length === 0) {
        this.#db.run(
          'INSERT INTO signing_keys (kid, alg, state, created_at, public_jwk, private_jwk) VALUES (?, ?, ?, ?, ?, ?)',
          [candidate.kid, candidate.alg, 'current', candidate.createdAt, JSON.stringify(candidate.publicJwk), JSON.stringify(candidate.privateJwk)],
        );
      }
      return this.#list();
    });
  }

  #list(): StoredSigningKey[] {
    return this.#db.all<KeyRow>('SELECT * FROM signing_keys ORDER BY created_at').map(fromRow);
  }
}
