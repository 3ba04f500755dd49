import { base64url } from 'jose';
import { describe, expect, it } from 'vitest';
import { RecordMacs, recordMacKeys } from '../../src/core/audit/record-mac.ts';
import { generateMasterKey, masterKeyId, parseMasterKey } from '../../src/core/secrets/master-keys.ts';

const HASH = 'a'.repeat(64);
const OTHER_HASH = 'b'.repeat(64);

const masterKey = () => parseMasterKey(generateMasterKey(), 'test');

/** The MAC as docs/audit/hash-chain.md specifies it, made with WebCrypto: what another implementation would check. */
async function specifiedMac(master: Uint8Array, seq: number, hash: string, chain = ''): Promise<string> {
  const raw = await crypto.subtle.importKey('raw', new Uint8Array(master), 'HKDF', false, ['deriveBits']);
  const info = new TextEncoder().encode('keyway audit record mac');
  const k = await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(), info }, raw, 256);
  const hmacKey = await crypto.subtle.importKey('raw', k, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = await crypto.subtle.sign('HMAC', hmacKey, new TextEncoder().encode(`${chain}\n${seq}.${hash}`));
  return `${masterKeyId(master)}.${base64url.encode(new Uint8Array(mac))}`;
}

describe('a record MAC', () => {
  it('is the one docs/audit/hash-chain.md specifies: HKDF of the master key under its label, HMAC of "CHAIN\\nSEQ.HASH", named by the master key id', async () => {
    const master = masterKey();
    const keys = recordMacKeys({ current: master, previous: [] });
    expect(new RecordMacs(keys).make({ seq: 7, hash: HASH })).toBe(await specifiedMac(master, 7, HASH));
    expect(new RecordMacs(keys, { chain: '3' }).make({ seq: 7, hash: HASH })).toBe(await specifiedMac(master, 7, HASH, '3'));
  });

  it("holds in its own chain only: not in another shard's, the legacy chain, or a log of one chain (Node), nor the other way", () => {
    const keys = recordMacKeys({ current: masterKey(), previous: [] });
    const chains = [undefined, '0', '1', '10', 'legacy'].map((chain) => new RecordMacs(keys, chain === undefined ? {} : { chain }));
    for (const [made, macs] of chains.entries()) {
      const mac = macs.make({ seq: 7, hash: HASH });
      for (const [checked, other] of chains.entries()) {
        expect(other.problem({ seq: 7, hash: HASH }, mac, 0)).toEqual(
          checked === made ? undefined : { kind: 'mac_invalid', why: 'carries a MAC the master key did not make: the broker did not append it' },
        );
      }
    }
  });

  it('is made under the current master key, and one a previous master key made still holds', async () => {
    const [current, previous] = [masterKey(), masterKey()];
    const macs = new RecordMacs(recordMacKeys({ current, previous: [previous] }));
    expect(macs.make({ seq: 7, hash: HASH })).toBe(await specifiedMac(current, 7, HASH));
    expect(macs.problem({ seq: 7, hash: HASH }, await specifiedMac(previous, 7, HASH), 0)).toBeUndefined();
  });

  it('holds for its own seq and hash only: not a record with the same seq and another hash, nor another seq', async () => {
    const macs = new RecordMacs(recordMacKeys({ current: masterKey(), previous: [] }));
    const mac = macs.make({ seq: 7, hash: HASH });
    expect(macs.problem({ seq: 7, hash: HASH }, mac, 0)).toBeUndefined();
    for (const link of [
      { seq: 7, hash: OTHER_HASH },
      { seq: 8, hash: HASH },
    ]) {
      expect(macs.problem(link, mac, 0)).toEqual({ kind: 'mac_invalid', why: 'carries a MAC the master key did not make: the broker did not append it' });
    }
  });

  it('named by a master key not configured, or with more to it than the key id and the MAC, is refused', async () => {
    const stranger = masterKey();
    const macs = new RecordMacs(recordMacKeys({ current: masterKey(), previous: [] }));
    const foreign = await specifiedMac(stranger, 7, HASH);
    expect(macs.problem({ seq: 7, hash: HASH }, foreign, 0)).toEqual({
      kind: 'mac_key_unknown',
      why: `carries a MAC under master key ${JSON.stringify(masterKeyId(stranger))}, which is not configured (KEYWAY_MASTER_KEY, KEYWAY_MASTER_KEY_PREVIOUS)`,
    });
    expect(macs.problem({ seq: 7, hash: HASH }, `${macs.make({ seq: 7, hash: HASH })}.x`, 0)).toMatchObject({
      kind: 'mac_key_unknown',
      why: expect.stringMatching(/^carries a MAC under master key .* which is not configured/),
    });
  });

  it('carried by none after where MACs start is missing; at or before it, taken as written before keyway made MACs', () => {
    const macs = new RecordMacs(recordMacKeys({ current: masterKey(), previous: [] }));
    expect(macs.problem({ seq: 5, hash: HASH }, null, 5)).toBeUndefined();
    expect(macs.problem({ seq: 6, hash: HASH }, null, 5)).toEqual({
      kind: 'mac_missing',
      why: 'carries no MAC, though the broker has MACed every record after 5: the broker did not append it',
    });
  });

  it('checked in order, signs no start past the records it was held to, however far the store says MACs start', () => {
    const macs = new RecordMacs(recordMacKeys({ current: masterKey(), previous: [] }));
    const check = macs.inOrder(100);
    expect(check.problem({ seq: 6, hash: HASH }, null)).toBeUndefined();
    expect(check.macsAfter(6)).toBe(6);
  });
});
