/**
 * `npm run bench:policy`: how long one policy decision takes with 10, 1,000 and 10,000
 * policies, and whether the 10,000 figure stays within 1.5× of the 10 figure (the policy
 * index keeps the work per decision to a handful of candidates). A figure, not a test: it
 * prints and exits 0 whatever it measures.
 */
import { decide, type AccessRequest } from '../src/core/policy/decide.ts';
import { loadPolicies } from '../src/core/policy/load-policies.ts';
import type { PolicySet } from '../src/core/policy/policy-set.ts';
import { claimsGrantedIn, realisticPolicyFiles } from './realistic-policies.ts';

const SIZES = [10, 1_000, 10_000] as const;
const GITHUB = 'https://token.actions.githubusercontent.com';
const BROKER = 'https://keyway.example.com';
const BATCHES = 25;
const BATCH_MS = 40;

function policySet(size: number): PolicySet {
  return loadPolicies(realisticPolicyFiles(size, 'github'), { brokerIssuer: BROKER, maxTtlSeconds: 3600, allowHttpLoopback: false });
}

/** Median nanoseconds per decision over timed batches, after a warm-up. */
function measure(set: PolicySet, size: number): number {
  const issuer = set.issuer(GITHUB);
  if (issuer === undefined) throw new Error('the set trusts no GitHub issuer');
  const token = { issuer, claims: { iss: GITHUB, aud: BROKER, ...claimsGrantedIn(size) } };
  const request: AccessRequest = { audiences: [], scopes: ['deploy:write'] };
  const once = () => {
    const decision = decide(set, token, request);
    if (!decision.granted) throw new Error(`expected a grant, got ${decision.reason}`);
  };
  for (let i = 0; i < 20_000; i++) once();
  const perBatch: number[] = [];
  for (let batch = 0; batch < BATCHES; batch++) {
    let runs = 0;
    const started = process.hrtime.bigint();
    const until = started + BigInt(BATCH_MS * 1e6);
    let now = started;
    while (now < until) {
      for (let i = 0; i < 100; i++) once();
      runs += 100;
      now = process.hrtime.bigint();
    }
    perBatch.push(Number(now - started) / runs);
  }
  perBatch.sort((a, b) => a - b);
  return perBatch[Math.floor(perBatch.length / 2)] as number;
}

const results = SIZES.map((size) => {
  const set = policySet(size);
  return { size, policies: set.policies.length, ns: measure(set, size) };
});

console.log('keyway policy decision time (median of 25 batches; index → deny guardrails → allow match → grant)');
for (const result of results) {
  console.log(`  ${String(result.policies).padStart(6)} policies: ${(result.ns / 1000).toFixed(2).padStart(7)} µs per decision`);
}
const small = results[0] as (typeof results)[number];
const large = results.at(-1) as (typeof results)[number];
const ratio = large.ns / small.ns;
console.log(`  10,000 vs 10: ${ratio.toFixed(2)}× — ${ratio <= 1.5 ? 'within' : 'NOT within'} 1.5×`);
