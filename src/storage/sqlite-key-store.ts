import type { JWK } from 'jose';
import type { SecretBox } from '../core/secrets/secret-box.ts';
import { ConfigError } from '../core/settings/read-settings.ts';
import { generateSigningKey } from '../core/mint/generate-signing-key.ts';
import { planKeyRing, type KeyRingPlan } from '../core/mint/key-life-cycle.ts';
import type { KeyStore, KeyTransition, SigningKeyInfo, StoredSigningKey } from '../core/mint/key-store.ts';
import type { SqlDatabase } from './sql-database.ts';

type KeyRow = {
  kid: string;
  alg: string;
  state: string;
  created_at: number;
  activates_at: number | null;
  activated_at: number | null;
  retired_at: number | null;
  removed_at: number | null;
  public_jwk: string;
  private_jwk: string | null;
};

/** The SecretBox purpose private signing keys are sealed for; the context is the key's kid. */
export const SIGNING_KEY_PURPOSE = 'signing-key';

function infoOf(row: KeyRow): SigningKeyInfo {
  const times = { activatesAt: row.activates_at, activatedAt: row.activated_at, retiredAt: row.retired_at, removedAt: row.removed_at };
  return {
    kid: row.kid,
    alg: 'ES256',
    state: row.state as SigningKeyInfo['state'],
    createdAt: row.created_at,
    ...Object.fromEntries(Object.entries(times).filter(([, time]) => time !== null)),
    publicJwk: JSON.parse(row.public_jwk),
  };
}

/** Written before sealing existed (schema 1): a JWK in the clear. */
const isPlaintext = (sealed: string): boolean => sealed.startsWith('{');

/**
 * A private key stored in the clear is never used: whoever could write the database could have
 * planted it, and only the master key vouches for a key. One an earlier keyway stored so is
 * sealed once, on purpose: `keyway keys seal` on Node, the state object's upgrade on Workers.
 */
export class PlaintextKeyError extends ConfigError {
  override readonly name: string = 'PlaintextKeyError';
  override readonly code: string = 'signing_key_plaintext';
  constructor(kids: readonly string[]) {
    super(
      `signing key ${kids.join(', ')} is stored in the clear (as keyway stored keys before it sealed them), and keyway uses no key ` +
        'the master key does not vouch for: whoever could write the database could have planted it',
    );
  }
}

/**
 * A key the broker would publish (next, current, retired) that the master key does not vouch for:
 * no sealed private part, or a public part that is not the sealed private key's. Whoever could
 * write the database could have put it there, and published it would verify tokens they sign.
 */
export class UnvouchedKeyError extends ConfigError {
  override readonly name: string = 'UnvouchedKeyError';
  override readonly code: string = 'signing_key_unvouched';
  constructor(kid: string, why: string) {
    super(
      `signing key ${kid} ${why}, so the master key does not vouch for it and keyway will not publish it: ` +
        'whoever could write the database could have planted it; delete its row (and rotate if the database may have been written)',
    );
  }
}

/** The members of an EC public key (RFC 7518 §6.2.1): a published JWK and its private key must share them. */
const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y'] as const;

function checkVouched(row: KeyRow, info: SigningKeyInfo, privateJwk: JWK | undefined): void {
  if (privateJwk === undefined) {
    if (row.state !== 'removed') throw new UnvouchedKeyError(row.kid, `is ${row.state} but has no sealed private part`);
    return;
  }
  const published = info.publicJwk;
  const same = PUBLIC_MEMBERS.every((member) => typeof published[member] === 'string' && published[member] === privateJwk[member]);
  if (!same || (published.kid !== undefined && published.kid !== row.kid)) {
    throw new UnvouchedKeyError(row.kid, "has a public part that is not its sealed private key's");
  }
}

/**
 * Signing keys in the broker's SQLite database (the Node file or the state Durable Object).
 * Private parts are sealed with the SecretBox under the master key; the public parts (and
 * `describeKeys`) need no master key.
 */
export class SqliteKeyStore implements KeyStore {
  readonly #db: SqlDatabase;
  readonly #box: SecretBox | undefined;

  constructor(db: SqlDatabase, box?: SecretBox) {
    this.#db = db;
    this.#box = box;
  }

  async describeKeys(): Promise<SigningKeyInfo[]> {
    return this.#rows().map(infoOf);
  }

  /**
   * Opens every private part, sealing again any sealed under a previous master key; refuses any in
   * the clear, and any key it would publish whose public part the sealed private part does not vouch for.
   */
  async listKeys(): Promise<StoredSigningKey[]> {
    const box = this.#requireBox();
    const rows = this.#rows();
    const plaintext = rows.filter((row) => row.private_jwk !== null && isPlaintext(row.private_jwk));
    if (plaintext.length > 0) throw new PlaintextKeyError(plaintext.map((row) => row.kid));
    const keys: StoredSigningKey[] = [];
    for (const row of rows) {
      const info = infoOf(row);
      if (row.private_jwk === null) {
        checkVouched(row, info, undefined);
        keys.push(info);
        continue;
      }
      const text = await box.open(row.private_jwk, SIGNING_KEY_PURPOSE, row.kid);
      const privateJwk = JSON.parse(text) as JWK;
      checkVouched(row, info, privateJwk);
      if (box.isStale(row.private_jwk)) this.#reseal(row.kid, row.private_jwk, await box.seal(text, SIGNING_KEY_PURPOSE, row.kid));
      keys.push({ ...info, privateJwk });
    }
    return keys;
  }

  /**
   * The one-time upgrade for keys an earlier keyway stored in the clear: seals each under the
   * master key, in place. Idempotent; returns the kids it sealed.
   */
  async sealPlaintextKeys(): Promise<string[]> {
    const box = this.#requireBox();
    const sealed: string[] = [];
    for (const row of this.#rows()) {
      if (row.private_jwk === null || !isPlaintext(row.private_jwk)) continue;
      if (this.#reseal(row.kid, row.private_jwk, await box.seal(row.private_jwk, SIGNING_KEY_PURPOSE, row.kid))) sealed.push(row.kid);
    }
    return sealed;
  }

  /** Compare-and-set: of two processes sealing one row at once, one wins and the row holds one sealed value either way. */
  #reseal(kid: string, was: string, sealed: string): boolean {
    return this.#db.run('UPDATE signing_keys SET private_jwk = ? WHERE kid = ? AND private_jwk = ?', [sealed, kid, was]).changes > 0;
  }

  async initializeKeys(candidate: StoredSigningKey): Promise<StoredSigningKey[]> {
    const sealed = await this.#seal(candidate);
    this.#db.transaction(() => {
      const current = this.#db.all<{ kid: string }>("SELECT kid FROM signing_keys WHERE state = 'current'");
      if (current.length === 0) this.#insert(candidate, sealed, 'current', { activated_at: candidate.createdAt });
    });
    return this.listKeys();
  }

  async advanceKeys(plan: KeyRingPlan): Promise<KeyTransition[]> {
    // The fresh key is made outside the transaction (crypto is async); used only if the plan inside still wants it.
    const wanted = planKeyRing(await this.describeKeys(), plan, 'candidate').some((transition) => transition.kind === 'publish');
    const candidate = wanted ? await generateSigningKey(plan.now) : undefined;
    const sealed = candidate === undefined ? undefined : await this.#seal(candidate);
    return this.#db.transaction(() => {
      const transitions = planKeyRing(this.#rows().map(infoOf), plan, candidate?.kid ?? '');
      const applied: KeyTransition[] = [];
      for (const transition of transitions) {
        switch (transition.kind) {
          case 'publish':
            if (candidate === undefined || sealed === undefined) continue;
            this.#insert(candidate, sealed, 'next', { activates_at: transition.activatesAt });
            break;
          case 'reschedule':
            this.#db.run("UPDATE signing_keys SET activates_at = ? WHERE kid = ? AND state = 'next'", [transition.activatesAt, transition.kid]);
            break;
          case 'retire':
            this.#db.run("UPDATE signing_keys SET state = 'retired', retired_at = ? WHERE kid = ? AND state = 'current'", [plan.now, transition.kid]);
            break;
          case 'activate':
            this.#db.run("UPDATE signing_keys SET state = 'current', activated_at = ? WHERE kid = ? AND state = 'next'", [plan.now, transition.kid]);
            break;
          case 'remove':
            // The private part is destroyed; the public part stays for the checkpoints it signed.
            this.#db.run("UPDATE signing_keys SET state = 'removed', removed_at = ?, private_jwk = NULL WHERE kid = ? AND state = 'retired'", [
              plan.now,
              transition.kid,
            ]);
            break;
        }
        applied.push(transition);
      }
      return applied;
    });
  }

  #rows(): KeyRow[] {
    return this.#db.all<KeyRow>('SELECT * FROM signing_keys ORDER BY created_at, kid');
  }

  #requireBox(): SecretBox {
    if (this.#box === undefined) throw new Error('the key store was opened without a master key: private signing keys stay sealed');
    return this.#box;
  }

  async #seal(key: StoredSigningKey): Promise<string> {
    if (key.privateJwk === undefined) throw new Error(`signing key ${key.kid} has no private part to store`);
    return this.#requireBox().seal(JSON.stringify(key.privateJwk), SIGNING_KEY_PURPOSE, key.kid);
  }

  #insert(key: StoredSigningKey, sealed: string, state: 'next' | 'current', times: { activates_at?: number; activated_at?: number }): void {
    this.#db.run(
      'INSERT INTO signing_keys (kid, alg, state, created_at, activates_at, activated_at, public_jwk, private_jwk) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      [key.kid, key.alg, state, key.createdAt, times.activates_at ?? null, times.activated_at ?? null, JSON.stringify(key.publicJwk), sealed],
    );
  }
}
