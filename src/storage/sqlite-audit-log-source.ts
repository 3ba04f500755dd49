import { createLocalJWKSet, type JSONWebKeySet, type JWK } from 'jose';
import { allRecords } from '../core/audit/all-records.ts';
import type { Checkpoint } from '../core/audit/checkpoint.ts';
import type { AuditLogSource } from '../core/audit/verify-chain.ts';
import type { SigningKeyInfo, UnvouchedKey } from '../core/mint/key-store.ts';
import type { SecretBox } from '../core/secrets/secret-box.ts';
import type { SqlDatabase } from './sql-database.ts';
import { SqliteAuditStore } from './sqlite-audit-store.ts';
import { SqliteKeyStore } from './sqlite-key-store.ts';
import { usageMismatch } from './sqlite-audit-usage.ts';

/**
 * Which keys verify the checkpoints. An audit trusts no key on the database's word: the keys the
 * master key attests (`box`) and those the auditor pinned (`pinned`, a JWKS saved earlier), a
 * pinned key winning over a stored one of the same kid. `'stored'`: the keys stored beside the
 * checkpoints, for a copy's check of its own consistency only (whoever wrote one could write the other).
 */
export type CheckpointKeys = { readonly box?: SecretBox; readonly pinned?: JSONWebKeySet } | 'stored';

/**
 * Everything `verifyAuditLog` needs from a keyway database: its records, its checkpoints, and the keys trusted to have
 * signed them. `macs`: the records with the MACs stored beside them, and where the store says MACs start (the database
 * is of this schema: an older one, such as a backup before its migration, has none).
 */
export async function sqliteAuditLogSource(db: SqlDatabase, trust: CheckpointKeys, options: { readonly macs?: boolean } = {}): Promise<AuditLogSource> {
  const macs = options.macs === true;
  const store = new SqliteAuditStore(db, { readMacs: macs });
  const checkpoints: Checkpoint[] = [];
  for (let page = await store.checkpoints(0, 500); page.length > 0; page = await store.checkpoints(page.at(-1)?.seq ?? 0, 500)) checkpoints.push(...page);
  const records = allRecords(store, { order: 'asc', limit: 500 });
  const derivedMismatch = async () => usageMismatch(db);
  const carried = macs ? { macsStart: store.macsStart() } : {};
  // Every key the broker ever held verifies its checkpoints, retired and removed ones included; public parts only.
  if (trust === 'stored')
    return {
      records,
      checkpoints,
      derivedMismatch,
      ...carried,
      keys: createLocalJWKSet({ keys: (await new SqliteKeyStore(db).describeKeys()).map((key) => key.publicJwk) }),
    };
  return {
    records,
    checkpoints,
    derivedMismatch,
    ...carried,
    ...(await trustedKeys(
      trust,
      (await new SqliteKeyStore(db).describeKeys()).map((key) => key.kid),
      (box) => new SqliteKeyStore(db, box).vouchedKeys(),
    )),
  };
}

/**
 * The keys `trust` counts among a store's (`kids`, which `vouch` checks with the master key): those
 * the master key vouches for and the pinned ones; every other key is unvouched, naming why.
 */
export async function trustedKeys(
  trust: { readonly box?: SecretBox; readonly pinned?: JSONWebKeySet },
  kids: readonly string[],
  vouch: (box: SecretBox) => Promise<{ vouched: SigningKeyInfo[]; unvouched: UnvouchedKey[] }>,
): Promise<Pick<AuditLogSource, 'keys' | 'unvouched'>> {
  const { vouched, unvouched } =
    trust.box === undefined
      ? { vouched: [], unvouched: kids.map((kid): UnvouchedKey => ({ kid, why: 'is not pinned, and no master key was given' })) }
      : await vouch(trust.box);
  const pinnedKids = new Set(trust.pinned?.keys.map((key) => key.kid));
  return {
    keys: createLocalJWKSet(
      withPinned(
        trust.pinned,
        vouched.map((key) => key.publicJwk),
      ),
    ),
    unvouched: unvouched.filter((key) => !pinnedKids.has(key.kid)),
  };
}

/** The keys `pinned` names first, then those of `others` it does not: a pinned key is the auditor's word, whatever the store says. */
export function withPinned(pinned: JSONWebKeySet | undefined, others: readonly JWK[]): JSONWebKeySet {
  const kids = new Set(pinned?.keys.map((key) => key.kid));
  return { keys: [...(pinned?.keys ?? []), ...others.filter((key) => !kids.has(key.kid))] };
}
