import { describe, expect, it } from 'vitest';
import { staticBearer } from '../../src/http/middleware/static-bearer.ts';

const SECRET = 'm'.repeat(40);

const sha256 = async (text: string) => new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));

/** A wrong secret whose SHA-256 has the secret's byte at `index` and another at `other`: a compare of part of the digests takes it. */
async function agreeingAt(index: number, other: number): Promise<string> {
  const expected = await sha256(SECRET);
  for (let attempt = 0; ; attempt += 1) {
    const candidate = `${'w'.repeat(39)}${attempt}`;
    const digest = await sha256(candidate);
    if (digest[index] === expected[index] && digest[other] !== expected[other]) return candidate;
  }
}

describe('staticBearer', () => {
  const check = staticBearer(SECRET);

  it('is undefined without a secret, and takes the secret under the scheme Bearer in any case (RFC 9110 §11.1)', async () => {
    expect(staticBearer(undefined)).toBeUndefined();
    for (const authorization of [`Bearer ${SECRET}`, `bearer ${SECRET}`, `BEARER ${SECRET}`]) {
      expect(await check?.(authorization), authorization).toBe(true);
    }
  });

  it('takes nothing but the one credential: not the secret after other text, nor followed by more', async () => {
    for (const authorization of [undefined, '', SECRET, `Basic ${SECRET}`, `Basic x Bearer ${SECRET}`, `XBearer ${SECRET}`, `Bearer ${SECRET} extra`]) {
      expect(await check?.(authorization), String(authorization)).toBe(false);
    }
  });

  it('compares every byte of the digests: a wrong secret that agrees with the right one in its first or its last byte is refused', async () => {
    expect(await check?.(`Bearer ${await agreeingAt(0, 31)}`)).toBe(false);
    expect(await check?.(`Bearer ${await agreeingAt(31, 0)}`)).toBe(false);
  });
});
