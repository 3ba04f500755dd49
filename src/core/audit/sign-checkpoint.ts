import { createLocalJWKSet, SignJWT, type JWTPayload } from 'jose';
import type { KeyRing, KeyWithdrawn } from '../mint/key-ring.ts';
import { CHECKPOINT_TYPE, type ChainHead, type Checkpoint, type CheckpointRole } from './checkpoint.ts';
import { verifyCheckpoint, type VerifiedCheckpoint } from './verify-checkpoint.ts';

/**
 * Signs `head` as `role`; `macsAfter`, where given, is signed with it as `macs_after`: the seq after which every record
 * carries the broker's MAC (record-mac.ts), so that whoever can write the store cannot move it up past records it strips.
 * `withdrawn`: for an anchor, the withdrawals the log itself names (the records it prunes, the anchor before it), which it
 * names beside the key store's.
 */
export type CheckpointSigner = (head: ChainHead, role?: CheckpointRole, macsAfter?: number, withdrawn?: readonly KeyWithdrawn[]) => Promise<Checkpoint>;

/** A statement about the log signed with the broker's current signing key, as the broker's issuer: its JWS and `iat`. */
export type AuditStatementSigner = (payload: JWTPayload, typ: string) => Promise<{ readonly jws: string; readonly iat: number }>;

/**
 * The ring a statement is signed with, asked for right before each signature: a runtime that reloads its ring may reload
 * one too old to sign with (a round that waited may be past the bound on signing with a key withdrawn meanwhile).
 */
export type SigningRing = () => KeyRing | Promise<KeyRing>;

export function auditStatementSigner(issuer: string, keys: SigningRing, now: () => number): AuditStatementSigner {
  // The ring first: a reload it waits for is not counted against the statement's date.
  return async (payload, typ) => signStatement(issuer, await keys(), now, payload, typ);
}

async function signStatement(issuer: string, ring: KeyRing, now: () => number, payload: JWTPayload, typ: string): Promise<{ jws: string; iat: number }> {
  const { signing } = ring;
  const iat = Math.floor(now() / 1000);
  const jws = await new SignJWT(payload).setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ }).setIssuer(issuer).setIssuedAt(iat).sign(signing.key);
  return { jws, iat };
}

/** Signs checkpoints with the broker's current signing key, as the broker's issuer; of `chain`, in a log of several. */
export function checkpointSigner(issuer: string, keys: SigningRing, now: () => number, chain?: string): CheckpointSigner {
  return async (head, role = 'head', macsAfter, named = []) => {
    const ring = await keys();
    // An anchor stands for the records pruned before it, a withdrawal's among them: it names every key withdrawn so far, so
    // that audit verify still holds the checkpoints signed after it to the withdrawal once its record is gone. The key store's
    // list alone would not do: whoever can write it can take a withdrawal out before the anchor is signed.
    const withdrawn = role === 'anchor' ? earliestWithdrawals([...ring.withdrawals, ...named]) : [];
    const claims = {
      seq: head.seq,
      hash: head.hash,
      role,
      ...(chain === undefined ? {} : { chain }),
      ...(macsAfter === undefined ? {} : { macs_after: macsAfter }),
      ...(withdrawn.length === 0
        ? {}
        : { withdrawn_keys: withdrawn.map(({ kid, withdrawnAt }) => ({ kid, withdrawn_at: new Date(withdrawnAt).toISOString() })) }),
    };
    const { jws, iat } = await signStatement(issuer, ring, now, claims, CHECKPOINT_TYPE);
    return { seq: head.seq, hash: head.hash, time: new Date(iat * 1000).toISOString(), jws };
  };
}

/** One withdrawal per key, the earliest time it is named with. */
function earliestWithdrawals(withdrawals: readonly KeyWithdrawn[]): KeyWithdrawn[] {
  const earliest = new Map<string, KeyWithdrawn>();
  for (const withdrawal of withdrawals) {
    const known = earliest.get(withdrawal.kid);
    if (known === undefined || withdrawal.withdrawnAt < known.withdrawnAt) earliest.set(withdrawal.kid, withdrawal);
  }
  return [...earliest.values()];
}

/** A stored checkpoint as the broker's own signature vouches for it, or a CheckpointError: what upkeep holds the log to. */
export type CheckpointVerifier = (checkpoint: Checkpoint) => Promise<VerifiedCheckpoint>;

/**
 * Verifies checkpoints with every key the broker has held (KeyRing.checkpointKeys), whatever issuer they name (as `audit
 * verify` does): a broker whose KEYWAY_ISSUER changed holds its log to the checkpoints it signed under the old one too. One
 * signed for another chain than `chain` is no checkpoint of this one.
 */
export function checkpointVerifier(keys: () => KeyRing, chain?: string): CheckpointVerifier {
  return (checkpoint) => verifyCheckpoint(checkpoint.jws, createLocalJWKSet(keys().checkpointKeys), chain);
}
