import { generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { KEY_RING_SERVED_MS } from '../../src/core/mint/key-life-cycle.ts';
import { withdrawnKeyUse, type KeyWithdrawal } from '../../src/core/audit/withdrawn-keys.ts';

describe('withdrawnKeyUse and a statement dated before the withdrawal whose record it signs', () => {
  it('accepts one dated within the allowance before it, as a Workers Cron round dates what it signs at its scheduled time; refuses one dated earlier', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const withdrawal: KeyWithdrawal = { kid: 'leaked', seq: 40, time: '2026-12-07T12:00:30.250Z' };
    const at = Date.parse(withdrawal.time);
    const signed = async (time: number) => ({
      seq: withdrawal.seq,
      jws: await new SignJWT({ seq: withdrawal.seq })
        .setProtectedHeader({ alg: 'ES256', kid: 'leaked', typ: 'keyway-checkpoint+jwt' })
        .setIssuedAt(Math.floor(time / 1000))
        .sign(privateKey),
    });
    // The round was scheduled 20 s before the withdrawal landed, and read the head it joined.
    expect(withdrawnKeyUse([await signed(at - 20_000)], [withdrawal], true)).toBeUndefined();
    expect(withdrawnKeyUse([await signed(at - 1000 - KEY_RING_SERVED_MS)], [withdrawal], true)).toMatchObject({
      kid: 'leaked',
      why: expect.stringMatching(/it is backdated, more than 75 s before it$/),
    });
  });
});
