import type { TrustedIssuer } from '../issuers/trusted-issuer.ts';
import type { ClaimReader } from './claim-value.ts';
import type { CompiledMatcher } from './compile-matcher.ts';
import type { Matcher } from './schema.ts';
import type { Template } from './template.ts';

/** One `match` line, compiled. */
export interface ClaimCondition {
  /** The key as written: a claim name or a JSON Pointer. */
  readonly key: string;
  readonly written: Matcher;
  readonly read: ClaimReader;
  readonly matcher: CompiledMatcher;
  readonly caseInsensitive: boolean;
}

export interface Grant {
  /** The first is issued when the caller names no audience. */
  readonly audiences: readonly string[];
  readonly scopes: readonly string[];
  readonly ttlSeconds: number;
  readonly subject: Template | undefined;
  readonly claims: ReadonlyMap<string, Template>;
}

/** A trust policy as the broker evaluates it: plain data, checked in one place (`decide`). */
export interface Policy {
  readonly id: string;
  /** Path of the file under the policy directory. */
  readonly file: string;
  readonly description: string | undefined;
  readonly effect: 'allow' | 'deny';
  readonly mode: 'enforce' | 'audit';
  readonly issuer: TrustedIssuer;
  /** The `aud` the subject token must carry. */
  readonly subjectAudience: string;
  /** The first exchange this policy grants for a token claims it; later ones are refused as `replayed`. */
  readonly singleUse: boolean;
  readonly conditions: readonly ClaimCondition[];
  readonly grant: Grant | undefined;
}

export function audienceIncludes(aud: unknown, expected: string): boolean {
  return aud === expected || (Array.isArray(aud) && aud.includes(expected));
}

/** Every `match` line holds and the token was minted for this policy's audience. */
export function policyMatches(policy: Policy, claims: Readonly<Record<string, unknown>>): boolean {
  return (
    audienceIncludes(claims['aud'], policy.subjectAudience) &&
    policy.conditions.every((condition) => condition.matcher.test(condition.read(claims)))
  );
}
