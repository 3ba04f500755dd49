import type { JWK } from 'jose';
import { SecretBoxError, type SecretBox } from '../core/secrets/secret-box.ts';
import { ConfigError } from '../core/settings/read-settings.ts';
import { generateSigningKey } from '../core/mint/generate-signing-key.ts';
import { KEY_ATTESTATION_PURPOSE, keyAttestationText } from '../core/mint/key-attestation.ts';
import { planKeyRing, planWithdrawal, type KeyRingPlan } from '../core/mint/key-life-cycle.ts';
import {
  SIGNING_ALGORITHMS,
  type KeyStore,
  type KeyTransition,
  type KeyWithdrawal,
  type SigningAlgorithm,
  type SigningKeyInfo,
  type StoredSigningKey,
  type UnvouchedKey,
} from '../core/mint/key-store.ts';
import type { SqlDatabase } from './sql-database.ts';

export type KeyRow = {
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
  // Optional: a database read before migration 8 added the column (audit verify reads without migrating) has none.
  attestation?: string | null;
  // Optional: as `attestation`, before migration 24.
  withdrawn_at?: number | null;
};

/** The SecretBox purpose private signing keys are sealed for; the context is the key's kid. */
export const SIGNING_KEY_PURPOSE = 'signing-key';

function infoOf(row: KeyRow): SigningKeyInfo {
  const times = {
    activatesAt: row.activates_at,
    activatedAt: row.activated_at,
    retiredAt: row.retired_at,
    removedAt: row.removed_at,
    withdrawnAt: row.withdrawn_at ?? null,
  };
  return {
    kid: row.kid,
    alg: row.alg as SigningKeyInfo['alg'],
    state: row.state as SigningKeyInfo['state'],
    createdAt: row.created_at,
    ...Object.fromEntries(Object.entries(times).filter(([, time]) => time !== null)),
    publicJwk: JSON.parse(row.public_jwk),
  };
}

type Sealed = { readonly privateJwk: string; readonly attestation: string };
type Candidate = { readonly key: StoredSigningKey; readonly sealed: Sealed };

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
 * A key the master key does not vouch for: one it would publish (next, current, retired) without a
 * sealed private part or whose public part is not that private key's, or any key whose
 * attestation the master key did not make. Whoever could write the database could have put it
 * there, and published it would verify tokens and audit checkpoints they sign.
 */
export class UnvouchedKeyError extends ConfigError {
  override readonly name: string = 'UnvouchedKeyError';
  override readonly code: string = 'signing_key_unvouched';
  readonly kid: string;
  readonly why: string;
  constructor(kid: string, why: string) {
    super(
      `signing key ${kid} ${why}, so the master key does not vouch for it and keyway will not publish it: ` +
        'whoever could write the database could have planted it; delete its row (and rotate if the database may have been written)',
    );
    this.kid = kid;
    this.why = why;
  }
}

/** Why a removed key without an attestation is not vouched for. */
const UNATTESTED = 'was removed without an attestation (before keyway attested keys, or planted)';

/** The members of an EC or RSA public key (RFC 7518 §6.2.1, §6.3.1): a published JWK and its private key must share them. */
const PUBLIC_MEMBERS = { EC: ['kty', 'crv', 'x', 'y'], RSA: ['kty', 'n', 'e'] } as const;

function checkVouched(row: KeyRow, info: SigningKeyInfo, privateJwk: JWK): void {
  const published = info.publicJwk;
  const members = published.kty === 'RSA' ? PUBLIC_MEMBERS.RSA : PUBLIC_MEMBERS.EC;
  const same = members.every((member) => typeof published[member] === 'string' && published[member] === privateJwk[member]);
  if (!same || (published.kid !== undefined && published.kid !== row.kid)) {
    throw new UnvouchedKeyError(row.kid, "has a public part that is not its sealed private key's");
  }
}

const attestationText = (row: KeyRow): string => keyAttestationText({ kid: row.kid, alg: row.alg, publicJwk: JSON.parse(row.public_jwk) as JWK });

/** Opens the row's sealed private part and holds its public part to it. */
async function openRow(row: KeyRow, sealed: string, box: SecretBox): Promise<{ text: string; privateJwk: JWK }> {
  const text = await box.open(sealed, SIGNING_KEY_PURPOSE, row.kid);
  const privateJwk = JSON.parse(text) as JWK;
  checkVouched(row, infoOf(row), privateJwk);
  return { text, privateJwk };
}

/**
 * Opens the private part of every key row with `box`, in row order: refuses any in the clear, any
 * key not removed that has none, and any key whose public part the sealed private part does not
 * vouch for. The texts are returned too, for resealing.
 */
export async function openSigningKeys(rows: readonly KeyRow[], box: SecretBox): Promise<{ key: StoredSigningKey; text?: string }[]> {
  const plaintext = rows.filter((row) => row.private_jwk !== null && isPlaintext(row.private_jwk));
  if (plaintext.length > 0) throw new PlaintextKeyError(plaintext.map((row) => row.kid));
  const keys: { key: StoredSigningKey; text?: string }[] = [];
  for (const row of rows) {
    if (row.private_jwk === null) {
      if (row.state !== 'removed') throw new UnvouchedKeyError(row.kid, `is ${row.state} but has no sealed private part`);
      keys.push({ key: infoOf(row) });
      continue;
    }
    const { text, privateJwk } = await openRow(row, row.private_jwk, box);
    keys.push({ key: { ...infoOf(row), privateJwk }, text });
  }
  return keys;
}

/** Whether the row's attestation is the current master key's, a previous one's, or missing; one the master key did not make is refused. */
async function attestationOf(row: KeyRow, box: SecretBox): Promise<'current' | 'stale' | 'missing'> {
  if (row.attestation === null || row.attestation === undefined) return 'missing';
  const check = await box.checkAttestation(row.attestation, attestationText(row), KEY_ATTESTATION_PURPOSE);
  if (!check.ok) throw new UnvouchedKeyError(row.kid, `is not vouched for: ${check.why}`);
  return check.stale ? 'stale' : 'current';
}

/**
 * Every key row's public part, split by whether the master key vouches for it (its attestation,
 * or for a key made before attestations, its sealed private part): the keys trusted to have
 * signed checkpoints, by `keyway audit verify` and by a restore. Writes nothing.
 */
export async function vouchKeys(rows: readonly KeyRow[], box: SecretBox): Promise<{ vouched: SigningKeyInfo[]; unvouched: UnvouchedKey[] }> {
  const vouched: SigningKeyInfo[] = [];
  const unvouched: UnvouchedKey[] = [];
  for (const row of rows) {
    try {
      if ((await attestationOf(row, box)) === 'missing') {
        if (row.private_jwk === null)
          throw new UnvouchedKeyError(
            row.kid,
            row.state === 'removed' ? UNATTESTED : `is ${row.state} but has neither a sealed private part nor an attestation`,
          );
        if (isPlaintext(row.private_jwk)) throw new UnvouchedKeyError(row.kid, 'has no attestation and a private part stored in the clear');
        await openRow(row, row.private_jwk, box);
      }
      vouched.push(infoOf(row));
    } catch (error) {
      if (error instanceof UnvouchedKeyError) unvouched.push({ kid: error.kid, why: error.why });
      else if (error instanceof SecretBoxError)
        unvouched.push({ kid: row.kid, why: `has no attestation and a private part that does not open: ${error.message}` });
      else throw error;
    }
  }
  return { vouched, unvouched };
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
   * Throws a SecretBoxError unless this store's current master key is the broker's: the one every ring's current key is
   * sealed under (a broker seals its keys again under its current master key each time it loads them) and opens. A master
   * key that only opens them through a previous one, or not at all, would seal keys the broker cannot open and MAC audit
   * records it cannot check. Writes nothing.
   */
  async requireCurrentMasterKey(): Promise<void> {
    const box = this.#requireBox();
    const current = this.#rows().filter((row) => row.state === 'current');
    await openSigningKeys(current, box);
    const stale = current.find((row) => row.private_jwk !== null && box.isStale(row.private_jwk));
    if (stale !== undefined)
      throw new SecretBoxError('unknown_key', `signing key ${stale.kid} is sealed under another master key than the one given as current (${box.kid})`);
  }

  /**
   * Opens every private part, sealing again any sealed under a previous master key, and returns
   * the keys the master key vouches for. Refuses any private part in the clear, any key it would
   * publish whose public part the sealed private part does not vouch for, and any attestation the
   * master key did not make; attests a key that has none while its private part vouches for it
   * (keys made before attestations) or whose attestation is a previous master key's. A removed
   * key without an attestation is left out: nothing vouches for it, so it is never published.
   */
  async listKeys(): Promise<StoredSigningKey[]> {
    const box = this.#requireBox();
    const rows = this.#rows();
    const opened = await openSigningKeys(rows, box);
    const keys: StoredSigningKey[] = [];
    for (const [index, row] of rows.entries()) {
      const { key, text } = opened[index] ?? { key: infoOf(row) };
      if (row.private_jwk !== null && text !== undefined && box.isStale(row.private_jwk))
        this.#reseal(row.kid, row.private_jwk, await box.seal(text, SIGNING_KEY_PURPOSE, row.kid));
      const attested = await attestationOf(row, box);
      if (attested === 'missing' && row.private_jwk === null) continue;
      if (attested !== 'current') {
        // Exactly the public part just vouched for; another process attesting it at once writes the same value.
        const attestation = await box.attest(attestationText(row), KEY_ATTESTATION_PURPOSE);
        this.#db.run('UPDATE signing_keys SET attestation = ? WHERE kid = ? AND public_jwk = ?', [attestation, row.kid, row.public_jwk]);
      }
      keys.push(key);
    }
    return keys;
  }

  /**
   * Every key's public part, split by whether the master key vouches for it (its attestation, or
   * for a key made before attestations, its sealed private part): what `keyway audit verify`
   * trusts to have signed checkpoints. Writes nothing.
   */
  async vouchedKeys(): Promise<{ vouched: SigningKeyInfo[]; unvouched: UnvouchedKey[] }> {
    return vouchKeys(this.#rows(), this.#requireBox());
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
      const current = this.#db.all<{ kid: string }>("SELECT kid FROM signing_keys WHERE state = 'current' AND alg = ?", [candidate.alg]);
      if (current.length === 0) this.#insert(candidate, sealed, 'current', { activated_at: candidate.createdAt });
    });
    return this.listKeys();
  }

  /** One round for each algorithm's keys: each has its own next, current and retired keys, on the same schedule. */
  async advanceKeys(plan: KeyRingPlan): Promise<KeyTransition[]> {
    const applied: KeyTransition[] = [];
    for (const alg of SIGNING_ALGORITHMS) applied.push(...(await this.#advance(alg, plan)));
    return applied;
  }

  async withdrawKey(kid: string, now: number): Promise<KeyWithdrawal> {
    const target = this.#rows().find((row) => row.kid === kid);
    if (target === undefined) return { status: 'unknown' };
    const alg = target.alg as SigningAlgorithm;
    // A current key's replacement may be a fresh key, made outside the transaction (crypto is async): without one (the
    // master key is not the broker's) nothing is withdrawn. Made for a next key too, which upkeep may activate meanwhile,
    // and whether or not the ring has a next key now: another withdrawal may take that one meanwhile.
    const candidate = target.state === 'current' || target.state === 'next' ? await this.#candidate(now, alg) : undefined;
    return this.#db.transaction((): KeyWithdrawal => {
      const ring = this.#rows().filter((row) => row.alg === alg);
      const transitions = planWithdrawal(ring.map(infoOf), kid, now, candidate?.key.kid ?? '');
      if (transitions === undefined) return { status: 'unknown' };
      for (const transition of transitions) this.#apply(transition, now, candidate);
      const key = infoOf(this.#rows().find((row) => row.kid === kid) ?? target);
      return transitions.length === 0 ? { status: 'already_removed', key } : { status: 'withdrawn', key, transitions };
    });
  }

  #apply(transition: KeyTransition, now: number, candidate: Candidate | undefined): void {
    switch (transition.kind) {
      case 'publish':
        if (candidate === undefined) return;
        this.#insert(candidate.key, candidate.sealed, 'next', { activates_at: transition.activatesAt });
        return;
      case 'reschedule':
        this.#db.run("UPDATE signing_keys SET activates_at = ? WHERE kid = ? AND state = 'next'", [transition.activatesAt, transition.kid]);
        return;
      case 'retire':
        this.#db.run("UPDATE signing_keys SET state = 'retired', retired_at = ? WHERE kid = ? AND state = 'current'", [now, transition.kid]);
        return;
      case 'activate':
        this.#db.run("UPDATE signing_keys SET state = 'current', activated_at = ? WHERE kid = ? AND state = 'next'", [now, transition.kid]);
        return;
      case 'remove':
        // The private part is destroyed; the public part and its attestation stay for the checkpoints it signed.
        this.#db.run("UPDATE signing_keys SET state = 'removed', removed_at = ?, private_jwk = NULL WHERE kid = ? AND state = 'retired'", [
          now,
          transition.kid,
        ]);
        return;
      case 'withdraw':
        // As a removal, from any state but removed, and marked as withdrawn.
        this.#db.run("UPDATE signing_keys SET state = 'removed', removed_at = ?, withdrawn_at = ?, private_jwk = NULL WHERE kid = ? AND state != 'removed'", [
          now,
          now,
          transition.kid,
        ]);
        return;
    }
  }

  async #advance(alg: SigningAlgorithm, plan: KeyRingPlan): Promise<KeyTransition[]> {
    const ofAlg = (keys: readonly SigningKeyInfo[]) => keys.filter((key) => key.alg === alg);
    // The fresh key is made outside the transaction (crypto is async); used only if the plan inside still wants it.
    const wanted = planKeyRing(ofAlg(await this.describeKeys()), plan, 'candidate').some((transition) => transition.kind === 'publish');
    const candidate = wanted ? await this.#candidate(plan.now, alg) : undefined;
    return this.#db.transaction(() => {
      const transitions = planKeyRing(ofAlg(this.#rows().map(infoOf)), plan, candidate?.key.kid ?? '');
      const applied: KeyTransition[] = [];
      for (const transition of transitions) {
        if (transition.kind === 'publish' && candidate === undefined) continue;
        this.#apply(transition, plan.now, candidate);
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

  /**
   * A fresh key, sealed, that a plan may publish. Sealed under this store's master key, which must open the ring's current
   * key: one that does not is not the broker's (`keyway keys rotate` with a stale master.key), and a key sealed under it
   * would stop every ring reload.
   */
  async #candidate(now: number, alg: SigningAlgorithm): Promise<Candidate> {
    await openSigningKeys(
      this.#rows().filter((row) => row.alg === alg && row.state === 'current'),
      this.#requireBox(),
    );
    const key = await generateSigningKey(now, alg);
    return { key, sealed: await this.#seal(key) };
  }

  /** The new key's private part sealed, and its public part attested, under the master key. */
  async #seal(key: StoredSigningKey): Promise<Sealed> {
    if (key.privateJwk === undefined) throw new Error(`signing key ${key.kid} has no private part to store`);
    const box = this.#requireBox();
    return {
      privateJwk: await box.seal(JSON.stringify(key.privateJwk), SIGNING_KEY_PURPOSE, key.kid),
      attestation: await box.attest(keyAttestationText(key), KEY_ATTESTATION_PURPOSE),
    };
  }

  #insert(key: StoredSigningKey, sealed: Sealed, state: 'next' | 'current', times: { activates_at?: number; activated_at?: number }): void {
    this.#db.run(
      'INSERT INTO signing_keys (kid, alg, state, created_at, activates_at, activated_at, public_jwk, private_jwk, attestation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [
        key.kid,
        key.alg,
        state,
        key.createdAt,
        times.activates_at ?? null,
        times.activated_at ?? null,
        JSON.stringify(key.publicJwk),
        sealed.privateJwk,
        sealed.attestation,
      ],
    );
  }
}
