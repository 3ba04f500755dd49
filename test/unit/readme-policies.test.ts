import { describe, expect, it } from 'vitest';
import { loadPolicies } from '../../src/core/policy/load-policies.ts';
import { README_POLICIES } from '../support/readme-policies.ts';

describe('the README’s example policies', () => {
  it('cover every CI preset', () => {
    expect([...README_POLICIES.keys()].sort()).toEqual(
      [
        'azure-devops',
        'bitbucket',
        'buildkite',
        'circleci',
        'circleci-root',
        'forgejo',
        'github',
        'github-guardrail',
        'gitlab',
        'google',
        'kubernetes',
        'terraform-apply',
        'terraform-plan',
      ].sort(),
    );
  });

  it('load as written, with their real issuers, under production settings', () => {
    const set = loadPolicies(
      [...README_POLICIES].map(([name, text]) => ({ path: `ci/${name}.yaml`, text })),
      { brokerIssuer: 'https://keyway.example.com', maxTtlSeconds: 3600, allowHttpLoopback: false },
    );
    expect(set.policies).toHaveLength(README_POLICIES.size);
    expect(Object.fromEntries(set.policies.map((policy) => [policy.id, policy.issuer.preset.name]))).toEqual({
      'ci/azure-devops': 'azure-devops',
      'ci/bitbucket': 'bitbucket',
      'ci/buildkite': 'buildkite',
      'ci/circleci': 'circleci',
      'ci/circleci-root': 'circleci',
      'ci/forgejo': 'forgejo',
      'ci/github': 'github',
      'ci/github-guardrail': 'github',
      'ci/gitlab': 'gitlab',
      'ci/google': 'google',
      'ci/kubernetes': 'kubernetes',
      'ci/terraform-apply': 'terraform',
      'ci/terraform-plan': 'terraform',
    });
  });
});
