import { describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing, NoSigningKeyError } from '../../src/core/mint/key-ring.ts';

describe('KeyRing.from: which stored key signs', () => {
  it('refuses a ring with no current ES256 key that can sign, as it loads rather than when keyway first signs', async () => {
    const now = Date.now();
    const rsa = await generateSigningKey(now, 'RS256');
    // An RS256 key alone: it signs for the clouds that take only RS256, never keyway's own tokens.
    await expect(KeyRing.from([rsa])).rejects.toThrow(NoSigningKeyError);
    // A current ES256 key listed without its private part (a store read without the master key) signs nothing.
    const { privateJwk: _, ...publicOnly } = await generateSigningKey(now);
    await expect(KeyRing.from([publicOnly, rsa])).rejects.toThrow(NoSigningKeyError);
  });
});
