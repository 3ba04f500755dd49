import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { describe, expect, it } from 'vitest';
import type { AuditEvent, AuditRecord } from '../../src/core/audit/audit-event.ts';
import { chainHash, GENESIS_HASH } from '../../src/core/audit/chain-hash.ts';
import { CHECKPOINT_TYPE } from '../../src/core/audit/checkpoint.ts';
import { verifyAuditLog } from '../../src/core/audit/verify-chain.ts';

describe('audit verify and the withdrawals named by every anchor it is given, not only the one the kept records start after', () => {
  const withdrawnAt = Date.parse('2026-12-07T12:00:00.000Z');
  const day = withdrawnAt / 1000 + 86_400;

  /**
   * A chain of six records whose withdrawal of the key `leaked` was pruned: the broker's anchor at seq 2, a day after the
   * withdrawal, names it, and the operator keeps a copy of it. The thief deletes the records up to seq 4 and leaves an anchor
   * of their own, signed with the leaked key an hour later, that names no withdrawal. `last`: the sixth record's event.
   */
  async function pruned(last?: (event: AuditEvent) => AuditEvent) {
    const genuine = await generateKeyPair('ES256');
    const leaked = await generateKeyPair('ES256');
    const jwk = async (key: CryptoKey, kid: string) => ({ ...(await exportJWK(key)), kid, alg: 'ES256' });
    const keys = createLocalJWKSet({ keys: [await jwk(genuine.publicKey, 'genuine'), await jwk(leaked.publicKey, 'leaked')] });
    const records: AuditRecord[] = [];
    let prev = GENESIS_HASH;
    for (let seq = 1; seq <= 6; seq += 1) {
      const plain: AuditEvent = {
        id: `01KC00000000000000000000${String(seq).padStart(2, '0')}`,
        time: new Date(withdrawnAt + seq * 1000).toISOString(),
        decision: 'denied',
        reason: 'unsupported_media_type',
        request: { id: `r${seq}` },
      };
      const event = seq === 6 && last !== undefined ? last(plain) : plain;
      const hash = chainHash(prev, event);
      records.push({ event, chain: { seq, prev_hash: prev, hash } });
      prev = hash;
    }
    const anchor = async (seq: number, key: CryptoKey, kid: string, iat: number, claims: Record<string, unknown>) => ({
      seq,
      hash: records[seq - 1]?.chain.hash ?? '',
      time: new Date(iat * 1000).toISOString(),
      jws: await new SignJWT({ seq, hash: records[seq - 1]?.chain.hash, role: 'anchor', ...claims })
        .setProtectedHeader({ alg: 'ES256', kid, typ: CHECKPOINT_TYPE })
        .setIssuer('https://keyway.test')
        .setIssuedAt(iat)
        .sign(key),
    });
    const kept = await anchor(2, genuine.privateKey, 'genuine', day, {
      withdrawn_keys: [{ kid: 'leaked', withdrawn_at: new Date(withdrawnAt).toISOString() }],
    });
    const forged = await anchor(4, leaked.privateKey, 'leaked', day + 3600, {});
    async function* keptRecords() {
      yield* records.slice(4);
    }
    return verifyAuditLog({ records: keptRecords(), checkpoints: [forged], kept: [kept], keys });
  }

  it('fails a later anchor signed with the withdrawn key that names it no more: an earlier anchor kept elsewhere names it', async () => {
    expect(await pruned()).toMatchObject({
      ok: false,
      anchor: 4,
      withdrawn_keys: [{ kid: 'leaked', seq: 2, time: new Date(withdrawnAt).toISOString(), pruned: true }],
      problem: { kind: 'checkpoint_key_withdrawn', seq: 4, kid: 'leaked' },
    });
  });

  it('holds the withdrawal to the earliest time an anchor names, though a record the thief appended names a later one', async () => {
    // Without the master key's MACs (--macs) a record appended past the last checkpoint is the store's word: this one says
    // the leaked key was withdrawn a year on.
    const later = new Date(withdrawnAt + 365 * 86_400_000).toISOString();
    const report = await pruned((event) => ({
      ...event,
      time: later,
      decision: 'granted',
      reason: 'signing_key_withdrawn',
      detail: 'withdrew signing key leaked (ES256) for a keyway command on the data directory, run by thief; transitions: none',
      signing_key: { kid: 'leaked', alg: 'ES256', withdrawn_at: later },
    }));
    expect(report).toMatchObject({
      ok: false,
      anchor: 4,
      withdrawn_keys: [{ kid: 'leaked', seq: 6, time: new Date(withdrawnAt).toISOString(), anchor: 2 }],
      problem: { kind: 'checkpoint_key_withdrawn', seq: 4, kid: 'leaked' },
    });
    // The time is the anchor's, not the record's: the message says so, and names both.
    expect(report.problem?.message).toContain(
      `after that key was withdrawn (record 6 says ${later}; the anchor at seq 2 names ${new Date(withdrawnAt).toISOString()}, which counts)`,
    );
  });
});
