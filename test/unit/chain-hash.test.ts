import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import canonicalize from 'canonicalize';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { auditIndex } from '../../src/core/audit/audit-index.ts';
import { canonicalEvent, chainHash, chainHashOfCanonical, GENESIS_HASH } from '../../src/core/audit/chain-hash.ts';
import { auditEvent } from '../suites/store-contract.ts';

describe('an audit event in its canonical form', () => {
  // Keys a JCS encoder must order by UTF-16 code unit, not as V8 enumerates them (integer-like keys first).
  const event: AuditEvent = auditEvent({
    claims: { z: 1, '10': 'ten', '2': 'two', é: 'e', A: [{ y: 0.1, x: 1e21 }], quote: '"\\\u0001\u2028' },
    detail: 'x'.repeat(3),
  });

  it('is the JCS text of the event, with the index columns derived from it', () => {
    const canonical = canonicalEvent(event);
    expect(canonical.text).toBe(canonicalize(event));
    expect(JSON.parse(canonical.text)).toEqual(event);
    expect(canonical.index).toEqual(auditIndex(event));
  });

  it('chains to the same hash as the event does (what keyway audit verify recomputes)', () => {
    const prev = 'ab'.repeat(32);
    expect(chainHashOfCanonical(prev, canonicalEvent(event).text)).toBe(chainHash(prev, event));
    expect(chainHashOfCanonical(GENESIS_HASH, canonicalEvent(event).text)).toBe(chainHash(GENESIS_HASH, event));
  });

  it('is SHA-256 over the JCS text of {event, prev_hash}, the first record chained to 64 zeros: what any verifier of an export recomputes', () => {
    const independently = (prev: string) => bytesToHex(sha256(utf8ToBytes(canonicalize({ event, prev_hash: prev }) as string)));
    expect(GENESIS_HASH).toBe('0'.repeat(64));
    expect(chainHash(GENESIS_HASH, event)).toBe(independently('0'.repeat(64)));
    const prev = 'ab'.repeat(32);
    expect(chainHash(prev, event)).toBe(independently(prev));
    expect(chainHashOfCanonical(prev, canonicalEvent(event).text)).toBe(independently(prev));
  });

  it('records a lone surrogate as U+FFFD, in the text and in the index', () => {
    const canonical = canonicalEvent(auditEvent({ subject: 'x\ud800y', subject_token: { sha256: 'cd'.repeat(32), claimed_sub: '\udfff' } }));
    const stored = JSON.parse(canonical.text) as AuditEvent;
    expect(stored.subject).toBe('x\ufffdy');
    expect(stored.subject_token?.claimed_sub).toBe('\ufffd');
    expect(canonical.index.subject).toBe('x\ufffdy');
    expect(chainHashOfCanonical(GENESIS_HASH, canonical.text)).toBe(chainHash(GENESIS_HASH, stored));
  });

  it('records a number JSON has no form for (a claim of 1e400 parses to Infinity) as null, as JSON.stringify writes it', () => {
    const canonical = canonicalEvent(auditEvent({ claims: { run_id: Number.POSITIVE_INFINITY, run_attempt: Number.NaN, sub: 'x\ud800' } }));
    const stored = JSON.parse(canonical.text) as AuditEvent;
    expect(stored.claims).toEqual({ run_id: null, run_attempt: null, sub: 'x\ufffd' });
    expect(chainHashOfCanonical(GENESIS_HASH, canonical.text)).toBe(chainHash(GENESIS_HASH, stored));
  });
});
