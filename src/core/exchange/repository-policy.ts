import { ExchangeError } from '../errors/exchange-error.ts';
import { isPolicyFile } from '../policy/load-policies.ts';
import { PolicySet } from '../policy/policy-set.ts';

/** The scope entry that names a repository's own policy: `policy:release` is `.github/keyway/release.yaml`. */
export const REPOSITORY_POLICY_SCOPE = 'policy:';
const POLICY_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/;

/** `scope` entries that name a repository policy, and the rest (GitHub permissions). */
export function splitPolicyScope(scopes: readonly string[] | undefined): { readonly policy: string | undefined; readonly rest: readonly string[] | undefined } {
  if (scopes === undefined) return { policy: undefined, rest: undefined };
  const named = scopes.filter((scope) => scope.startsWith(REPOSITORY_POLICY_SCOPE)).map((scope) => scope.slice(REPOSITORY_POLICY_SCOPE.length));
  const rest = scopes.filter((scope) => !scope.startsWith(REPOSITORY_POLICY_SCOPE));
  if (named.length > 1) throw new ExchangeError('malformed_request', 'scope names more than one repository policy', { public: true });
  const [policy] = named;
  if (policy !== undefined && !POLICY_NAME.test(policy))
    throw new ExchangeError('malformed_request', `policy:${policy} is not a policy name (letters, digits, . _ -)`, { public: true });
  // NAME.test.yaml is a policy test: the review of .github/keyway/ lists policy files only, so it would be a policy nobody reviewed.
  if (policy !== undefined && !isPolicyFile(`${policy}.yaml`))
    throw new ExchangeError('malformed_request', `policy:${policy} names a policy test (${policy}.yaml), not a policy`, { public: true });
  return { policy, rest: rest.length === 0 ? undefined : rest };
}

/**
 * A repository's policy and the central set's deny policies: the guardrails hold for every repository, and one on trial
 * (`mode: audit`) records what it would deny here too, as it does for the central set's grants.
 */
export function withCentralGuardrails(central: PolicySet, repositoryPolicies: PolicySet): PolicySet {
  const guardrails = central.policies.filter((policy) => policy.effect === 'deny');
  return new PolicySet([...guardrails, ...repositoryPolicies.policies]);
}
