import { UnsecuredJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { CiTokenError, type CiTokenSource } from '../../src/cli/pipeline/ci-token-sources.ts';
import { refreshingCiToken } from '../../src/cli/pipeline/refreshing-ci-token.ts';

/** A CI whose tokens live `lifetime` seconds from the fake clock; it counts its reads. */
function countingSource(clock: { now: number }, lifetime: number | undefined) {
  const reads: string[] = [];
  const source: CiTokenSource = {
    name: 'test',
    async read(audience) {
      reads.push(audience);
      const jwt = new UnsecuredJWT({ n: reads.length }).setIssuedAt(Math.floor(clock.now / 1000));
      return (lifetime === undefined ? jwt : jwt.setExpirationTime(Math.floor(clock.now / 1000) + lifetime)).encode();
    },
  };
  return { source, reads };
}

describe('the CI token behind `keyway proxy`', () => {
  it('is reused until a minute before it expires, then read again (GitHub: about five minutes each)', async () => {
    const clock = { now: Date.UTC(2026, 11, 3, 17) };
    const { source, reads } = countingSource(clock, 300);
    const seen: string[] = [];
    const token = refreshingCiToken(source, 'https://keyway.example', {
      refreshBeforeSeconds: 60,
      now: () => clock.now,
      onRead: ({ sha256, expiresAt }) => seen.push(`${sha256.length} ${expiresAt?.toISOString()}`),
    });
    const first = await token();
    clock.now += 239_000;
    expect(await token()).toBe(first);
    clock.now += 2000;
    const second = await token();
    expect(second).not.toBe(first);
    expect(reads).toEqual(['https://keyway.example', 'https://keyway.example']);
    expect(seen).toEqual(['64 2026-12-03T17:05:00.000Z', '64 2026-12-03T17:09:01.000Z']);
  });

  it('shares one read among concurrent requests', async () => {
    const clock = { now: Date.now() };
    const { source, reads } = countingSource(clock, 300);
    const token = refreshingCiToken(source, 'aud', { refreshBeforeSeconds: 60, now: () => clock.now });
    const tokens = await Promise.all([token(), token(), token()]);
    expect(new Set(tokens).size).toBe(1);
    expect(reads).toHaveLength(1);
  });

  it('reads a token without `exp` again for every request, and does not keep a failed read', async () => {
    const clock = { now: Date.now() };
    const { source, reads } = countingSource(clock, undefined);
    const token = refreshingCiToken(source, 'aud', { refreshBeforeSeconds: 60, now: () => clock.now });
    await token();
    await token();
    expect(reads).toHaveLength(2);

    let fail = true;
    const flaky: CiTokenSource = {
      name: 'flaky',
      read: async (audience) => {
        if (fail) throw new CiTokenError('token service down');
        return source.read(audience);
      },
    };
    const again = refreshingCiToken(flaky, 'aud', { refreshBeforeSeconds: 60, now: () => clock.now });
    await expect(again()).rejects.toThrow('token service down');
    fail = false;
    await expect(again()).resolves.toMatch(/^ey/);
  });
});
