import { describe, expect, it } from 'vitest';
import { loadPolicies, PolicyLoadError, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';

const OPTIONS: PolicyLoadOptions = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 7200, allowHttpLoopback: false };

const policy = (cloud: string, extra = '') => `version: 1
issuer: github
match:
  repository_owner_id: "1200934"
  repository_id: "734201"
grant:
${extra}  cloud:
${cloud
  .trim()
  .split('\n')
  .map((line) => `    ${line}`)
  .join('\n')}
`;

const AWS = `provider: aws
roles: [arn:aws:iam::123456789012:role/deploy]
session_tags: { Repository: "{repository}" }
transitive_tag_keys: [Repository]`;

function messages(text: string): string[] {
  try {
    loadPolicies([{ path: 'p.yaml', text }], OPTIONS);
  } catch (error) {
    if (error instanceof PolicyLoadError) return error.problems.map((problem) => problem.message);
    throw error;
  }
  throw new Error('expected the policy not to load');
}

describe('grant.cloud', () => {
  it('compiles each provider to its audience and the identities the caller may name', () => {
    const load = (cloud: string) => loadPolicies([{ path: 'p.yaml', text: policy(cloud) }], OPTIONS).policies[0]?.grant?.cloud;
    expect(load(AWS)).toMatchObject({
      provider: 'aws',
      audience: 'sts.amazonaws.com',
      identities: ['arn:aws:iam::123456789012:role/deploy'],
      transitiveTagKeys: ['Repository'],
    });
    expect(load('provider: gcp\nworkload_identity_provider: projects/123/locations/global/workloadIdentityPools/ci-pool/providers/keyway')).toMatchObject({
      provider: 'gcp',
      audience: 'https://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci-pool/providers/keyway',
      identities: [],
    });
    expect(load('provider: azure\ntenant_id: 8D9F2C6E-1B3A-4C5D-9E7F-0A1B2C3D4E5F\nclient_ids: [3F2504E0-4F89-41D3-9A0C-0305E82C3301]')).toMatchObject({
      provider: 'azure',
      audience: 'api://AzureADTokenExchange',
      identities: ['3f2504e0-4f89-41d3-9a0c-0305e82c3301'],
      home: '8d9f2c6e-1b3a-4c5d-9e7f-0a1b2c3d4e5f',
    });
  });

  it.each([
    ['an unknown provider', policy('provider: oci\nroles: [x]'), /grant.cloud.provider is aws, gcp or azure/],
    ['a role that is not an IAM role ARN', policy('provider: aws\nroles: [arn:aws:iam::123:user/x]'), /IAM role ARN/],
    ['a session tag key with aws:', policy(`${AWS}\n`).replace('Repository: "{repository}"', 'aws:Repo: "{repository}"'), /may not begin with aws:/],
    ['a session tag key AWS does not allow', policy(AWS).replace('Repository: "{repository}"', '"Repo#1": "{repository}"'), /only letters, digits/],
    ['a session tag key over 128 characters', policy(AWS).replace('Repository: "{repository}"', `${'K'.repeat(129)}: "{repository}"`), /1 to 128/],
    [
      'two session tag keys that differ only in case',
      policy(AWS).replace('Repository: "{repository}" }', 'Repository: "{repository}", repository: x }'),
      /AWS takes for one key/,
    ],
    [
      'a transitive key that is not a session tag',
      policy(AWS).replace('transitive_tag_keys: [Repository]', 'transitive_tag_keys: [Team]'),
      /Team, which is not a session tag/,
    ],
    [
      'more than 50 session tags',
      policy(AWS).replace(
        'session_tags: { Repository: "{repository}" }',
        `session_tags: { ${Array.from({ length: 51 }, (_, i) => `T${i}: x`).join(', ')}, Repository: y }`,
      ),
      /at most 50 session tags/,
    ],
    ['a ttl over an hour', policy(AWS, '  ttl: 2h\n'), /at most 1h/],
    ['a bad Workload Identity provider', policy('provider: gcp\nworkload_identity_provider: projects/x/pools/y'), /workloadIdentityPools/],
    ['a tenant that is not a GUID', policy('provider: azure\ntenant_id: acme\nclient_ids: [3f2504e0-4f89-41d3-9a0c-0305e82c3301]'), /GUID/],
    ['a session tag template reading a claim the issuer never sends', policy(AWS).replace('{repository}', '{nonsense_claim}'), /nonsense_claim/],
  ])('refuses %s when loading', (_, text, message) => {
    expect(messages(text).join('\n')).toMatch(message);
  });

  it('refuses a grant.claims entry that would overwrite the session tags claim', () => {
    expect(messages(policy(AWS, '  claims: { "https://aws.amazon.com/tags": "{repository}" }\n')).join('\n')).toMatch(/keyway sets it/);
  });
});
