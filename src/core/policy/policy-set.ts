import type { IssuerDirectory } from '../verify/verify-subject-token.ts';
import type { TrustedIssuer } from '../verify/trusted-issuer.ts';
import { claimReader, type ClaimReader } from '../claims/claim-value.ts';
import type { Policy } from './policy.ts';
import { PolicyIndex } from './policy-index.ts';

/** A policy that loaded but takes no part in decisions, and why. */
export interface InactivePolicy {
  readonly id: string;
  readonly file: string;
  readonly why: string;
  /** The compiled policy, when its issuer resolves (a disabled policy is checked like any other). */
  readonly policy?: Policy;
}

/**
 * The loaded, immutable set of trust policies. It is also the registry of trusted issuers:
 * an issuer is trusted exactly when an active policy names it.
 */
export class PolicySet implements IssuerDirectory {
  readonly policies: readonly Policy[];
  readonly inactive: readonly InactivePolicy[];
  readonly index: PolicyIndex;
  /**
   * What identifies the files this set was loaded from (`policySetVersion`), recorded with every decision so that
   * `keyway audit explain` can tell whether it still holds the set that decided. Undefined for sets made in memory.
   */
  readonly version: string | undefined;
  readonly #issuers = new Map<string, TrustedIssuer>();
  readonly #audiences = new Map<string, string[]>();
  readonly #byIssuer = new Map<string, Policy[]>();
  /** Claims some policy of the issuer reads, plus the preset's audit claims: recorded in audit events. */
  readonly #recordedClaims = new Map<string, Map<string, ClaimReader>>();
  /** Issuers with an allow policy that lets refused callers learn claim names: only their refusals are looked at again. */
  readonly #diagnosed = new Set<string>();

  constructor(policies: readonly Policy[], inactive: readonly InactivePolicy[] = [], version?: string) {
    this.policies = policies;
    this.version = version;
    this.inactive = inactive;
    this.index = new PolicyIndex(policies);
    for (const policy of policies) {
      const url = policy.issuer.url;
      this.#issuers.set(url, policy.issuer);
      const audiences = this.#audiences.get(url) ?? [];
      if (!audiences.includes(policy.subjectAudience)) audiences.push(policy.subjectAudience);
      this.#audiences.set(url, audiences);
      const ofIssuer = this.#byIssuer.get(url) ?? [];
      ofIssuer.push(policy);
      this.#byIssuer.set(url, ofIssuer);
      let recorded = this.#recordedClaims.get(url);
      if (recorded === undefined) {
        // `aud` too, so a recorded decision can be explained again later.
        recorded = new Map(['aud', ...policy.issuer.preset.auditClaims].map((key) => [key, claimReader(key)]));
        this.#recordedClaims.set(url, recorded);
      }
      for (const condition of policy.conditions) recorded.set(condition.key, condition.read);
      if (policy.effect === 'allow' && policy.diagnostics === 'claim-names') this.#diagnosed.add(url);
    }
  }

  issuer(url: string): TrustedIssuer | undefined {
    return this.#issuers.get(url);
  }

  /** The active policies of one issuer, in id order. */
  forIssuer(url: string): readonly Policy[] {
    return this.#byIssuer.get(url) ?? [];
  }

  /** True when some allow policy of the issuer has `diagnostics: claim-names`. */
  diagnoses(url: string): boolean {
    return this.#diagnosed.has(url);
  }

  acceptedAudiences(url: string): readonly string[] {
    return this.#audiences.get(url) ?? [];
  }

  /** The claims of a verified token worth keeping in its audit record. */
  recordedClaims(url: string, claims: Readonly<Record<string, unknown>>): Record<string, unknown> {
    const recorded: Record<string, unknown> = {};
    for (const [key, read] of this.#recordedClaims.get(url) ?? []) {
      const value = read(claims);
      if (value !== undefined) recorded[key] = value;
    }
    return recorded;
  }

  get issuers(): readonly TrustedIssuer[] {
    return [...this.#issuers.values()];
  }
}
