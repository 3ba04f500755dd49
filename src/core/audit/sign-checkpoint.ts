import { SignJWT } from 'jose';
import type { KeyRing } from '../mint/key-ring.ts';
import { CHECKPOINT_TYPE, type ChainHead, type Checkpoint } from './checkpoint.ts';

export type CheckpointSigner = (head: ChainHead) => Promise<Checkpoint>;

/** Signs checkpoints with the broker's current signing key, as the broker's issuer. */
export function checkpointSigner(issuer: string, keys: () => KeyRing, now: () => number): CheckpointSigner {
  return async (head) => {
    const iat = Math.floor(now() / 1000);
    const { signing } = keys();
    const jws = await new SignJWT({ seq: head.seq, hash: head.hash })
      .setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ: CHECKPOINT_TYPE })
      .setIssuer(issuer)
      .setIssuedAt(iat)
      .sign(signing.key);
    return { seq: head.seq, hash: head.hash, time: new Date(iat * 1000).toISOString(), jws };
  };
}
