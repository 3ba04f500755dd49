import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { CHECKPOINT_TYPE } from '../../src/core/audit/checkpoint.ts';
import { CheckpointError, verifyCheckpoint } from '../../src/core/audit/verify-checkpoint.ts';
import { describe, expect, it } from 'vitest';
import { KEY_RING_SERVED_MS } from '../../src/core/mint/key-life-cycle.ts';
import { keyWithdrawal, withdrawnKeyUse, type KeyWithdrawal } from '../../src/core/audit/withdrawn-keys.ts';
import type { AuditEvent, AuditRecord } from '../../src/core/audit/audit-event.ts';

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

describe('withdrawnKeyUse and the allowance after a withdrawal', () => {
  const withdrawal: KeyWithdrawal = { kid: 'leaked', seq: 40, time: '2026-12-07T12:00:30.250Z' };
  const at = Date.parse(withdrawal.time);
  const signedAt = async (time: number, seq = withdrawal.seq) => {
    const { privateKey } = await generateKeyPair('ES256');
    return {
      seq,
      jws: await new SignJWT({ seq })
        .setProtectedHeader({ alg: 'ES256', kid: 'leaked', typ: 'keyway-checkpoint+jwt' })
        .setIssuedAt(Math.floor(time / 1000))
        .sign(privateKey),
    };
  };

  it('refuses a statement dated the first whole second past it, in any chain; accepts one dated within it', async () => {
    expect(withdrawnKeyUse([await signedAt(at + KEY_RING_SERVED_MS)], [withdrawal], false)).toBeUndefined();
    expect(withdrawnKeyUse([await signedAt(at + KEY_RING_SERVED_MS + 1000)], [withdrawal], false)).toMatchObject({
      kid: 'leaked',
      why: expect.stringMatching(/past the 75 s a broker may still sign with it$/),
    });
  });

  it('holds no statement to being after a withdrawal known from an anchor alone, whose record is not known', async () => {
    const pruned: KeyWithdrawal = { ...withdrawal, pruned: true };
    expect(withdrawnKeyUse([await signedAt(at - 1000 - KEY_RING_SERVED_MS)], [pruned], true)).toBeUndefined();
  });
});

/** A `signing_key_withdrawn` record at seq 40, written at 12:00:30.250. */
const record = (event: Partial<AuditEvent>): AuditRecord => ({
  event: {
    id: '01KC0000000000000000000000',
    time: '2026-12-07T12:00:30.250Z',
    decision: 'granted',
    reason: 'signing_key_withdrawn',
    request: { id: 'r' },
    ...event,
  },
  chain: { seq: 40, prev_hash: '0'.repeat(64), hash: '1'.repeat(64) },
});

describe('keyWithdrawal', () => {
  it('reads the key and the time of its withdrawal from the hashed signing_key member, whatever the detail says; an older record without it from its detail', () => {
    const signing_key = { kid: 'leaked', alg: 'ES256', withdrawn_at: '2026-12-07T12:00:30.100Z' };
    expect(keyWithdrawal(record({ signing_key, detail: 'the key was pulled' }))).toEqual({ kid: 'leaked', seq: 40, time: '2026-12-07T12:00:30.100Z' });
    // A key removed by upkeep, not withdrawn: no withdrawal, though its detail reads as one.
    expect(keyWithdrawal(record({ signing_key: { kid: 'old', alg: 'ES256' }, detail: 'withdrew signing key old (ES256) for …' }))).toBeUndefined();
    expect(keyWithdrawal(record({ signing_key, reason: 'signing_key_rotation_requested' }))).toBeUndefined();
    // A time that is none counts from the record's own time: read as it is, it would never compare, and stand for the key's in
    // place of a readable one; left out, the withdrawal would be lost.
    const unreadable = record({ signing_key: { ...signing_key, withdrawn_at: 'not a time' } });
    expect(keyWithdrawal(unreadable)).toEqual({ kid: signing_key.kid, seq: unreadable.chain.seq, time: unreadable.event.time });
    // A record written before keyway named the key in signing_key: read from its detail.
    expect(keyWithdrawal(record({ detail: 'withdrew signing key leaked (ES256) for operator x; transitions: withdraw leaked' }))).toEqual({
      kid: 'leaked',
      seq: 40,
      time: '2026-12-07T12:00:30.250Z',
    });
    expect(
      keyWithdrawal(record({ detail: 'signing key leaked (ES256) was withdrawn already at 2026-12-07T11:59:00.000Z: nothing changed; asked by x' })),
    ).toEqual({ kid: 'leaked', seq: 40, time: '2026-12-07T11:59:00.000Z' });
    expect(keyWithdrawal(record({ detail: 'signing key old (ES256) was removed already at 2026-12-07T11:59:00.000Z: nothing changed' }))).toBeUndefined();
  });
});

describe('keyWithdrawal and a withdrawal time later than its record', () => {
  it("holds it to the record's own time: the store's time of an earlier withdrawal, which a record asked again names, is whoever writes the store's to edit", () => {
    const later = '2100-01-01T00:00:00.000Z';
    expect(keyWithdrawal(record({ signing_key: { kid: 'leaked', alg: 'ES256', withdrawn_at: later } }))?.time).toBe('2026-12-07T12:00:30.250Z');
    expect(keyWithdrawal(record({ detail: `signing key leaked (ES256) was withdrawn already at ${later}: nothing changed; asked by x` }))?.time).toBe(
      '2026-12-07T12:00:30.250Z',
    );
    // And one that is no time at all, there too.
    expect(keyWithdrawal(record({ detail: 'signing key leaked (ES256) was withdrawn already at soon: nothing changed; asked by x' }))?.time).toBe(
      '2026-12-07T12:00:30.250Z',
    );
  });
});

describe("an anchor's withdrawn_keys", () => {
  it('are read from the signed payload, and a checkpoint whose list is not one of {kid, withdrawn_at} is invalid', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const keys = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256' }] });
    const signed = (withdrawn: unknown) =>
      new SignJWT({ seq: 3, hash: 'a'.repeat(64), role: 'anchor', withdrawn_keys: withdrawn })
        .setProtectedHeader({ alg: 'ES256', kid: 'k', typ: CHECKPOINT_TYPE })
        .setIssuer('https://keyway.test')
        .setIssuedAt()
        .sign(privateKey);
    await expect(verifyCheckpoint(await signed([{ kid: 'leaked', withdrawn_at: '2026-12-07T12:00:30.100Z' }]), keys)).resolves.toMatchObject({
      role: 'anchor',
      withdrawals: [{ kid: 'leaked', time: '2026-12-07T12:00:30.100Z' }],
    });
    for (const malformed of ['leaked', [{ kid: 'leaked' }], [{ kid: 'leaked', withdrawn_at: 'yesterday' }], [null]])
      await expect(verifyCheckpoint(await signed(malformed), keys)).rejects.toThrow(CheckpointError);
  });
});
