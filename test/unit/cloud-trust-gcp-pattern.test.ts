import { describe, expect, it } from 'vitest';
import { loadPolicies, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import { renderTrust } from '../../src/features/cloud/trust-configuration.ts';

const OPTIONS: PolicyLoadOptions = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 7200, allowHttpLoopback: false };

describe('keyway cloud trust gcp for a templated sub', () => {
  it("admits in the pool's attribute condition every sub keyway mints for the policy: a repository's name holds /", () => {
    const text = `version: 1
issuer: github
match:
  repository_owner_id: "1200934"
grant:
  subject: "repo:{repository}"
  cloud:
    provider: gcp
    workload_identity_provider: projects/123456789/locations/global/workloadIdentityPools/keyway/providers/keyway
    service_accounts: [deployer@acme-prod.iam.gserviceaccount.com]
`;
    const { policies } = loadPolicies([{ path: 'deploy.yaml', text }], OPTIONS);
    const rendered = policies[0]?.grant?.subject?.render({ repository: 'acme/app' });
    expect(rendered).toEqual({ ok: true, value: 'repo:acme/app' });
    const trust = renderTrust('gcp', 'https://keyway.test', policies);
    // The CEL condition's RE2 pattern, as printed in the gcloud command (no character class here differs between RE2 and JavaScript).
    const pattern = /assertion\.sub\.matches\('([^']*)'\)/.exec(trust)?.[1];
    expect(pattern).toBeDefined();
    expect(new RegExp(pattern ?? '').test('repo:acme/app')).toBe(true);
  });
});
