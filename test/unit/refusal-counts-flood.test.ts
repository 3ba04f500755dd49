import { describe, expect, it } from 'vitest';
import { MAX_REFUSAL_KEYS, RefusalCounts, refusalKey } from '../../src/features/alerts/refusal-counts.ts';

describe('refusal counts in memory under a flood of claimed identities', () => {
  it("still count a chosen identity's refusals, and a new address's, to the burst threshold after a flood of distinct claimed subs fills the cap", () => {
    const counts = new RefusalCounts();
    const start = 1_800_000_000_000;
    const windowStart = start - 300_000;
    const issuer = 'https://token.actions.githubusercontent.com';
    // 100,000 forged tokens, each claiming a sub of its own (no key needed to claim one), from four networks (IPv6 /64s;
    // the default client limit lets each send some 31,000 in the default 300 s window): those four addresses burst, but
    // every key the cap allows is now held.
    for (let i = 0; i < MAX_REFUSAL_KEYS; i += 1) {
      counts.count(refusalKey.address(`2001:db8:0:${i % 4}::1`), start, windowStart);
      counts.count(refusalKey.identity(issuer, `repo:junk/${i}:ref:refs/heads/main`), start, windowStart);
    }
    // Then ten refusals of the identity the flood covers for, from an address not yet seen: each should be counted.
    const victim = refusalKey.identity(issuer, 'repo:acme/app:environment:production');
    const attacker = refusalKey.address('203.0.113.7');
    let identityDenials = 0;
    let addressDenials = 0;
    for (let n = 0; n < 10; n += 1) {
      identityDenials = counts.count(victim, start + 1_000, windowStart + 1_000);
      addressDenials = counts.count(attacker, start + 1_000, windowStart + 1_000);
    }
    // KEYWAY_ALERT_BURST_THRESHOLD's default is 10: denial_burst_identity and denial_burst_address fire on the tenth.
    expect({ identityDenials, addressDenials }).toEqual({ identityDenials: 10, addressDenials: 10 });
  });
});
