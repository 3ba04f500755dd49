import { foldCase, type CaseFold } from '../claims/case-fold.ts';
import { claimTexts, type ClaimReader } from '../claims/claim-value.ts';
import type { Policy } from './policy.ts';

interface Bucket {
  readonly read: ClaimReader;
  readonly fold: CaseFold;
  readonly byValue: Map<string, Policy[]>;
}

interface IssuerShelf {
  readonly buckets: Map<string, Bucket>;
  readonly unpinned: Policy[];
}

/**
 * Finds the policies that could match a token without looking at the others. Policies are
 * shelved by issuer, then by their most selective exact `match` line (the pinned claim whose
 * values vary most across that issuer's policies); a lookup reads each pinned claim of the
 * token once. Cost grows with the number of distinct pinned claim names, not of policies.
 */
export class PolicyIndex {
  readonly #shelves = new Map<string, IssuerShelf>();
  readonly #rank = new Map<Policy, number>();

  constructor(policies: readonly Policy[]) {
    for (const [rank, policy] of policies.entries()) this.#rank.set(policy, rank);
    const byIssuer = Map.groupBy(policies, (policy) => policy.issuer.url);
    for (const [issuerUrl, issuerPolicies] of byIssuer) this.#shelves.set(issuerUrl, shelve(issuerPolicies));
  }

  /** Policies of this issuer that the token could match, in id order. */
  candidates(issuerUrl: string, claims: Readonly<Record<string, unknown>>): Policy[] {
    const shelf = this.#shelves.get(issuerUrl);
    if (shelf === undefined) return [];
    const found = new Set(shelf.unpinned);
    for (const bucket of shelf.buckets.values()) {
      for (const text of claimTexts(bucket.read(claims))) {
        for (const policy of bucket.byValue.get(foldCase(text, bucket.fold)) ?? []) found.add(policy);
      }
    }
    return [...found].sort((a, b) => (this.#rank.get(a) ?? 0) - (this.#rank.get(b) ?? 0));
  }
}

function shelve(policies: readonly Policy[]): IssuerShelf {
  const distinctValues = new Map<string, Set<string>>();
  for (const policy of policies) {
    for (const condition of policy.conditions) {
      if (condition.matcher.exact === undefined) continue;
      const values = distinctValues.get(condition.key) ?? new Set<string>();
      for (const value of condition.matcher.exact) values.add(value);
      distinctValues.set(condition.key, values);
    }
  }
  const selectivity = (key: string): number => distinctValues.get(key)?.size ?? 0;

  const shelf: IssuerShelf = { buckets: new Map(), unpinned: [] };
  for (const policy of policies) {
    const pinned = policy.conditions
      .filter((condition) => condition.matcher.exact !== undefined)
      .sort((a, b) => selectivity(b.key) - selectivity(a.key) || a.key.localeCompare(b.key))[0];
    if (pinned?.matcher.exact === undefined) {
      shelf.unpinned.push(policy);
      continue;
    }
    let bucket = shelf.buckets.get(pinned.key);
    if (bucket === undefined) {
      bucket = { read: pinned.read, fold: pinned.fold, byValue: new Map() };
      shelf.buckets.set(pinned.key, bucket);
    }
    for (const value of pinned.matcher.exact) {
      const list = bucket.byValue.get(value) ?? [];
      if (!list.includes(policy)) list.push(policy);
      bucket.byValue.set(value, list);
    }
  }
  return shelf;
}
