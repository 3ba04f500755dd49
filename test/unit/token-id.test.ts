import { decodeJwt } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { mintAccessToken } from '../../src/core/mint/mint-access-token.ts';
import { mintCloudToken } from '../../src/core/mint/mint-cloud-token.ts';
import { tokenId } from '../../src/core/mint/token-id.ts';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const millisecondsOf = (jti: string) => Number.parseInt(jti.replace('-', '').slice(0, 12), 16);

describe('tokenId', () => {
  it('is a version 7 UUID whose first 48 bits are the given time in milliseconds', () => {
    const id = tokenId(1_800_000_123_456);
    expect(id).toMatch(UUID_V7);
    expect(millisecondsOf(id)).toBe(1_800_000_123_456);
  });

  it('sorts in time order across milliseconds, and within one differs in random bits only', () => {
    const start = 1_800_000_000_000;
    const ids = Array.from({ length: 600 }, (_, index) => tokenId(start + Math.floor(index / 100)));
    expect(new Set(ids).size).toBe(ids.length);
    for (let index = 100; index < ids.length; index += 100) expect((ids[index - 1] as string) < (ids[index] as string)).toBe(true);
    // No counter: the ids of one millisecond are not in the order they were made.
    const oneMillisecond = ids.slice(0, 100);
    expect([...oneMillisecond].sort()).not.toEqual(oneMillisecond);
  });
});

describe('the jti of minted tokens', () => {
  let ring: KeyRing;
  // Not a whole second: the jti keeps the milliseconds the token's iat drops.
  const now = 1_800_000_000_123;

  beforeAll(async () => {
    ring = await KeyRing.from([await generateSigningKey(now)]);
  });

  it('is a tokenId of the mint time in an access token', async () => {
    const minted = await mintAccessToken({
      issuer: 'https://keyway.test',
      key: ring.signing,
      grant: { policy: { id: 'deploy' }, audiences: ['https://deploy.test'], scopes: [], ttlSeconds: 300, subject: 'acme/api', claims: {} },
      source: { iss: 'https://ci.test', sub: 'repo:acme/api' },
      now,
    });
    expect(minted.jti).toMatch(UUID_V7);
    expect(millisecondsOf(minted.jti)).toBe(now);
    expect(decodeJwt(minted.token).jti).toBe(minted.jti);
  });

  it('is a tokenId of the mint time in a cloud token', async () => {
    const minted = await mintCloudToken({
      issuer: 'https://keyway.test',
      key: ring.signing,
      subject: 'acme/api',
      ttlSeconds: 300,
      claims: {},
      cloud: { audience: 'sts.amazonaws.com', sessionTags: {}, transitiveTagKeys: [] },
      now,
    });
    expect(minted.jti).toMatch(UUID_V7);
    expect(millisecondsOf(minted.jti)).toBe(now);
    expect(decodeJwt(minted.token).jti).toBe(minted.jti);
  });
});
