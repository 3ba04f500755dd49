import { createLocalJWKSet, SignJWT, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHECKPOINT_TYPE } from '../../src/core/audit/checkpoint.ts';
import { ROOT_CHECKPOINT_TYPE, verifyRootCheckpoint } from '../../src/core/audit/root-checkpoint.ts';
import { newestValidCheckpoint, verifyCheckpoint } from '../../src/core/audit/verify-checkpoint.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';

const ISSUER = 'https://keyway.test';
const HASH = 'a'.repeat(64);

/**
 * What makes a checkpoint (and a root checkpoint) valid, as docs/audit/hash-chain.md specifies it for independent
 * verifiers: each statement below is signed with the broker's own key, so only the rule it breaks refuses it.
 */
describe('a checkpoint as its signature vouches for it', () => {
  let ring: KeyRing;
  let keys: ReturnType<typeof createLocalJWKSet>;
  const signed = async (payload: JWTPayload, options: { typ?: string; alg?: 'ES256' | 'RS256'; iss?: string | null; iat?: boolean } = {}) => {
    const { typ = CHECKPOINT_TYPE, alg = 'ES256', iss = ISSUER, iat = true } = options;
    const { kid, key } = ring.signingFor(alg);
    const jwt = new SignJWT(payload).setProtectedHeader({ alg, kid, typ });
    if (iss !== null) jwt.setIssuer(iss);
    if (iat) jwt.setIssuedAt();
    return jwt.sign(key);
  };

  beforeAll(async () => {
    ring = await KeyRing.from([await generateSigningKey(Date.now()), await generateSigningKey(Date.now(), 'RS256')]);
    keys = createLocalJWKSet(ring.checkpointKeys);
  });

  it('verifies one the broker signed, and returns the seq, hash, role and chain it signs', async () => {
    const jws = await signed({ seq: 7, hash: HASH, role: 'anchor', chain: '3' });
    expect(await verifyCheckpoint(jws, keys, '3')).toMatchObject({ seq: 7, hash: HASH, role: 'anchor', chain: '3', jws });
    expect(await verifyCheckpoint(await signed({ seq: 0, hash: HASH }), keys, '3')).toMatchObject({ seq: 0, role: undefined, chain: undefined });
    expect(await verifyCheckpoint(await signed({ seq: 7, hash: HASH, macs_after: 0 }), keys)).toMatchObject({ seq: 7, macsAfter: 0 });
  });

  it('refuses one that breaks any rule of the specification, signed by the broker all the same', async () => {
    const cases: [string, Promise<string>, string?][] = [
      ['an access token’s type', signed({ seq: 7, hash: HASH }, { typ: 'at+jwt' })],
      ['a root checkpoint', signed({ seq: 7, hash: HASH }, { typ: ROOT_CHECKPOINT_TYPE })],
      ["the broker's RS256 key", signed({ seq: 7, hash: HASH }, { alg: 'RS256' })],
      ['no iss', signed({ seq: 7, hash: HASH }, { iss: null })],
      ['no iat', signed({ seq: 7, hash: HASH }, { iat: false })],
      ['a negative seq', signed({ seq: -1, hash: HASH })],
      ['a seq that is no integer', signed({ seq: 1.5, hash: HASH })],
      ['a hash too long', signed({ seq: 7, hash: `${HASH}0` })],
      ['a hash with text before it', signed({ seq: 7, hash: `x${HASH}` })],
      ['an uppercase hash', signed({ seq: 7, hash: HASH.toUpperCase() })],
      ['a role neither head nor anchor', signed({ seq: 7, hash: HASH, role: 'root' })],
      ['a chain that is not a name', signed({ seq: 7, hash: HASH, chain: 3 })],
      ['another chain’s', signed({ seq: 7, hash: HASH, chain: '4' })],
      ['a negative macs_after', signed({ seq: 7, hash: HASH, macs_after: -1 })],
      ['a macs_after that is no integer', signed({ seq: 7, hash: HASH, macs_after: 1.5 })],
      ['a macs_after that is not a number', signed({ seq: 7, hash: HASH, macs_after: '5' })],
    ];
    for (const [what, jws] of cases) {
      await expect(verifyCheckpoint(await jws, keys, '3'), what).rejects.toMatchObject({ name: 'CheckpointError', code: 'checkpoint_invalid' });
    }
    // A verifier that knows no chain (upkeep on Node, `audit verify` of a Node log) holds to the rest.
    for (const [what, jws] of [
      ['no iss', signed({ seq: 7, hash: HASH }, { iss: null })],
      ['a chain that is not a name', signed({ seq: 7, hash: HASH, chain: 3 })],
    ] as const) {
      await expect(verifyCheckpoint(await jws, keys), what).rejects.toMatchObject({ name: 'CheckpointError', code: 'checkpoint_invalid' });
    }
  });

  it("takes the newest checkpoint that verifies, by seq whatever the list's order: restore reads where MACs start from it", async () => {
    const at = async (seq: number, payload: JWTPayload = {}) => ({
      seq,
      hash: HASH,
      time: new Date().toISOString(),
      jws: await signed({ seq, hash: HASH, ...payload }),
    });
    // The oldest signs no macs_after (signed before MACs); were it taken, the store's own start would be trusted instead.
    const oldest = await at(3);
    const newer = await at(9, { macs_after: 5 });
    // A newer one whose signature is another checkpoint's: it does not verify, so it is passed over.
    const claimed = await at(12, { macs_after: 11 });
    const forged = { ...claimed, jws: `${claimed.jws.split('.').slice(0, 2).join('.')}.${newer.jws.split('.')[2]}` };
    for (const list of [
      [oldest, newer, forged],
      [forged, newer, oldest],
    ]) {
      expect(await newestValidCheckpoint(list, keys)).toMatchObject({ seq: 9, macsAfter: 5 });
    }
    expect(await newestValidCheckpoint([forged], keys)).toBeUndefined();
  });

  it('accepts one the broker signed under an earlier KEYWAY_ISSUER: its keys say whose it is, not the name it signed as', async () => {
    const jws = await signed({ seq: 7, hash: HASH, chain: '3' }, { iss: 'https://keyway.before.example' });
    expect(await verifyCheckpoint(jws, keys, '3')).toMatchObject({ seq: 7, hash: HASH });
    expect(await verifyCheckpoint(jws, keys)).toMatchObject({ seq: 7, hash: HASH });
  });
});

describe('a root checkpoint as its signature vouches for it', () => {
  let ring: KeyRing;
  let keys: ReturnType<typeof createLocalJWKSet>;
  const signed = async (payload: JWTPayload, options: { typ?: string; iss?: string | null } = {}) => {
    const { kid, key } = ring.signing;
    const jwt = new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid, typ: options.typ ?? ROOT_CHECKPOINT_TYPE }).setIssuedAt();
    if (options.iss !== null) jwt.setIssuer(options.iss ?? ISSUER);
    return jwt.sign(key);
  };

  beforeAll(async () => {
    ring = await KeyRing.from([await generateSigningKey(Date.now())]);
    keys = createLocalJWKSet(ring.checkpointKeys);
  });

  it('verifies one the broker signed, and returns the heads it signs', async () => {
    const heads = { legacy: { seq: 4, hash: HASH }, '0': { seq: 0, hash: HASH }, '15': { seq: 9, hash: HASH } };
    expect(await verifyRootCheckpoint(await signed({ heads }), keys)).toMatchObject({ heads });
    // Signed under an earlier KEYWAY_ISSUER, the same.
    expect(await verifyRootCheckpoint(await signed({ heads }, { iss: 'https://keyway.before.example' }), keys)).toMatchObject({ heads });
    // Where MACs start in the chains whose upkeep signs one, beside the heads; one signed before, without it, reads as before.
    const macsAfter = { '0': 0, '15': 3 };
    expect(await verifyRootCheckpoint(await signed({ heads, macs_after: macsAfter }), keys)).toMatchObject({ heads, macs_after: macsAfter });
    expect(await verifyRootCheckpoint(await signed({ heads }), keys)).not.toHaveProperty('macs_after');
  });

  it('refuses one that breaks any rule of the specification, signed by the broker all the same', async () => {
    const cases: [string, Promise<string>][] = [
      ['a chain checkpoint', signed({ heads: { '0': { seq: 1, hash: HASH } } }, { typ: CHECKPOINT_TYPE })],
      ['a negative seq', signed({ heads: { '0': { seq: -1, hash: HASH } } })],
      ['a hash too long', signed({ heads: { '0': { seq: 1, hash: `${HASH}0` } } })],
      ['a chain named neither legacy nor a shard', signed({ heads: { '0x': { seq: 1, hash: HASH } } })],
      ['no heads', signed({})],
      ['a macs_after that is no seq', signed({ heads: { '0': { seq: 1, hash: HASH } }, macs_after: { '0': -1 } })],
      ['a macs_after of a chain the heads do not name', signed({ heads: { '0': { seq: 1, hash: HASH } }, macs_after: { '1': 0 } })],
      ['a macs_after that is not by chain', signed({ heads: { '0': { seq: 1, hash: HASH } }, macs_after: 0 })],
    ];
    for (const [what, jws] of cases) {
      await expect(verifyRootCheckpoint(await jws, keys), what).rejects.toMatchObject({ name: 'CheckpointError', code: 'checkpoint_invalid' });
    }
    const unissued = signed({ heads: { '0': { seq: 1, hash: HASH } } }, { iss: null });
    await expect(verifyRootCheckpoint(await unissued, keys), 'no iss').rejects.toMatchObject({ name: 'CheckpointError', code: 'checkpoint_invalid' });
  });
});
