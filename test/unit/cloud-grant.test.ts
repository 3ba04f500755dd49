import { describe, expect, it } from 'vitest';
import { compilePolicyFiles, loadPolicies, PolicyLoadError, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import { lintPolicies } from '../../src/core/policy/lint/lint-policies.ts';

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

/** The policy `deploy`, whose keyway tokens for `audience` a policy trusting the broker itself takes. */
const DEPLOY_MINTER = (audience: string) => `version: 1\nissuer: github\nmatch:\n  repository_owner_id: "1200934"\ngrant:\n  audience: ${audience}\n`;

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
    ['a ttl a second over an hour', policy(AWS, '  ttl: 3601s\n'), /at most 1h/],
    ['a bad Workload Identity provider', policy('provider: gcp\nworkload_identity_provider: projects/x/pools/y'), /workloadIdentityPools/],
    ['a tenant that is not a GUID', policy('provider: azure\ntenant_id: acme\nclient_ids: [3f2504e0-4f89-41d3-9a0c-0305e82c3301]'), /GUID/],
    ['a session tag template reading a claim the issuer never sends', policy(AWS).replace('{repository}', '{nonsense_claim}'), /nonsense_claim/],
  ])('refuses %s when loading', (_, text, message) => {
    expect(messages(text).join('\n')).toMatch(message);
  });

  it.each([
    ['sts.amazonaws.com', /sts\.amazonaws\.com is aws's STS audience/],
    ['STS.AmazonAWS.com', /is aws's STS audience/],
    ['api://AzureADTokenExchange', /is azure's STS audience/],
    ['https://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci-pool/providers/keyway', /is gcp's STS audience/],
    ['//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci-pool/providers/keyway', /is gcp's STS audience/],
    ['sts.amazonaws.com.cn', /is aws's STS audience/],
    ['api://AzureADTokenExchangeUSGov', /is azure's STS audience/],
    ['api://AzureADTokenExchangeChina', /is azure's STS audience/],
    ['api://azureadtokenexchangeussec', /is azure's STS audience/],
    ['https://iam.googleapis.com:443/projects/123/locations/global/workloadIdentityPools/ci-pool/providers/keyway', /is gcp's STS audience/],
    ['HTTPS://IAM.googleapis.com./projects/123/locations/global/workloadIdentityPools/ci-pool/providers/keyway', /is gcp's STS audience/],
  ])('refuses a keyway access token for %s: the cloud would take it without grant.cloud and its sub lint', (audience, message) => {
    const text = `version: 1\nissuer: github\nmatch:\n  repository_owner_id: "1200934"\ngrant:\n  audience: [https://api.example, "${audience}"]\n  subject: "policy:prod"\n`;
    expect(messages(text).join('\n')).toMatch(message);
  });

  it.each([
    'https://iam.googleapis.com.evil.example/x',
    'api://deploy',
    'https://sts.amazonaws.com.example',
    'sts.amazonaws.com.evil',
    'api://AzureADTokenExchangeBroker',
    'api://azureadtokenexchange-gateway/read',
  ])('loads a keyway access token for %s, which no cloud STS takes', (audience) => {
    const text = `version: 1\nissuer: github\nmatch:\n  repository_owner_id: "1200934"\ngrant:\n  audience: [https://api.example, "${audience}"]\n  subject: "policy:prod"\n`;
    expect(loadPolicies([{ path: 'p.yaml', text }], OPTIONS).policies[0]?.grant?.audiences).toContain(audience);
  });

  it('refuses a policy trusting the broker itself for tokens of a cloud audience: those are the cloud tokens it minted, not identities', () => {
    const trustingTheBroker = (audience: string) =>
      `version: 1\nissuer: { kind: oidc, url: "${OPTIONS.brokerIssuer}", extra_algorithms: [ES256] }\nsubject_audience: ${audience}\nmatch: { client_id: deploy }\ngrant: { audience: https://api.example }\n`;
    expect(messages(trustingTheBroker('sts.amazonaws.com')).join('\n')).toMatch(/subject_audience sts\.amazonaws\.com is a cloud STS audience/);
    expect(messages(trustingTheBroker('api://AzureADTokenExchange')).join('\n')).toMatch(/is a cloud STS audience/);
    const minter = { path: 'deploy.yaml', text: DEPLOY_MINTER('https://keyway.test/proxy/keyed') };
    expect(loadPolicies([{ path: 'p.yaml', text: trustingTheBroker('https://keyway.test/proxy/keyed') }, minter], OPTIONS).policies).toHaveLength(2);
  });

  it('refuses a policy trusting the broker itself for the audience of a keyway-jwt proxy upstream, which holds every such token', () => {
    const trustingTheBroker = (audience: string) =>
      `version: 1\nissuer: { kind: oidc, url: "${OPTIONS.brokerIssuer}", extra_algorithms: [ES256] }\nsubject_audience: ${audience}\nmatch: { client_id: deploy }\ngrant: { audience: https://api.example }\n`;
    const withUpstream = { ...OPTIONS, upstreamAudiences: ['https://deploy.internal'] };
    const refused = () => loadPolicies([{ path: 'p.yaml', text: trustingTheBroker('https://deploy.internal') }], withUpstream);
    expect(refused).toThrow(/subject_audience https:\/\/deploy\.internal is the audience of a keyway-jwt proxy upstream \(KEYWAY_PROXY_UPSTREAMS\)/);
    const minter = { path: 'deploy.yaml', text: DEPLOY_MINTER('https://other.internal') };
    expect(loadPolicies([{ path: 'p.yaml', text: trustingTheBroker('https://other.internal') }, minter], withUpstream).policies).toHaveLength(2);
    // Another issuer's tokens for that audience are not the broker's: the upstream holds none of them.
    const other = `version: 1\nissuer: { kind: oidc, url: "https://idp.example" }\nsubject_audience: https://deploy.internal\nmatch: { sub: "svc" }\ngrant: { audience: https://api.example }\n`;
    expect(loadPolicies([{ path: 'p.yaml', text: other }], withUpstream).policies).toHaveLength(1);
  });

  it("refuses a policy trusting the broker itself for the /audit page's audience: its tokens are the page's sessions, held in browsers", () => {
    const trustingTheBroker = (audience: string) =>
      `version: 1\nissuer: { kind: oidc, url: "${OPTIONS.brokerIssuer}", extra_algorithms: [ES256] }\nsubject_audience: ${audience}\nmatch: { client_id: auditors }\ngrant: { audience: https://api.example }\n`;
    const withMinter = (audience: string) => [
      { path: 'p.yaml', text: trustingTheBroker(audience) },
      { path: 'auditors.yaml', text: DEPLOY_MINTER(audience) },
    ];
    expect(() => loadPolicies(withMinter('https://keyway.test/audit'), OPTIONS)).toThrow(
      /subject_audience https:\/\/keyway\.test\/audit is the \/audit page's: the broker's own tokens for it are the page's sessions/,
    );
    expect(loadPolicies(withMinter('https://keyway.test/audits'), OPTIONS).policies).toHaveLength(2);
    // Another issuer's tokens for that audience are no session of the page's.
    const other = `version: 1\nissuer: { kind: oidc, url: "https://idp.example" }\nsubject_audience: https://keyway.test/audit\nmatch: { sub: "svc" }\ngrant: { audience: https://api.example }\n`;
    expect(loadPolicies([{ path: 'p.yaml', text: other }], OPTIONS).policies).toHaveLength(1);
  });

  it('refuses a grant.claims entry that would overwrite the session tags claim', () => {
    expect(messages(policy(AWS, '  claims: { "https://aws.amazon.com/tags": "{repository}" }\n')).join('\n')).toMatch(/keyway sets it/);
  });
});

describe('lint: cloud-subject-collision', () => {
  const aws = (subject: string | undefined, extra = '') =>
    policy(AWS, `${subject === undefined ? '' : `  subject: "${subject}"\n`}`).replace('grant:\n', `${extra}grant:\n`);
  const found = (files: Record<string, string>) =>
    lintPolicies(
      compilePolicyFiles(
        Object.entries(files).map(([path, text]) => ({ path, text })),
        OPTIONS,
      ),
    )
      .filter((finding) => finding.rule === 'cloud-subject-collision')
      .map((finding) => `${finding.file}: ${finding.message}`);

  it('refuses two grants to one cloud whose subs could be the same, in both policies, and stops the set from loading', () => {
    const files = { 'a.yaml': aws('repo:{repository}'), 'b.yaml': aws('repo:acme/api') };
    expect(found(files)).toEqual([
      "a.yaml: the cloud token's sub (repo:{repository}) could be the sub of b's (repo:acme/api), and sts.amazonaws.com tells them apart by sub alone",
      "b.yaml: the cloud token's sub (repo:acme/api) could be the sub of a's (repo:{repository}), and sts.amazonaws.com tells them apart by sub alone",
    ]);
    expect(() =>
      loadPolicies(
        Object.entries(files).map(([path, text]) => ({ path, text })),
        OPTIONS,
      ),
    ).toThrow(/cloud-subject-collision|could be the sub of/);
    // A default sub is its policy's own, and another's template can still reach it.
    expect(found({ 'a.yaml': aws(undefined), 'b.yaml': aws('policy:{ref}') })).toHaveLength(2);
  });

  it('lets subs apart stand: a delimiter a value cannot hold, another cloud, default subs, or a reasoned ignore', () => {
    expect(found({ 'a.yaml': aws('repo:{repository}'), 'b.yaml': aws('repo:{repository}:env:{environment}') })).toEqual([]);
    expect(found({ 'a.yaml': aws(undefined), 'b.yaml': aws(undefined) })).toEqual([]);
    const azure = policy(
      'provider: azure\ntenant_id: 8d9f2c6e-1b3a-4c5d-9e7f-0a1b2c3d4e5f\nclient_ids: [3f2504e0-4f89-41d3-9a0c-0305e82c3301]',
      '  subject: "repo:acme/api"\n',
    );
    expect(found({ 'a.yaml': aws('repo:{repository}'), 'b.yaml': azure })).toEqual([]);
    const silenced = (text: string) => `${text}lint:\n  ignore:\n    cloud-subject-collision: both policies name one repository's deploys\n`;
    expect(found({ 'a.yaml': silenced(aws('repo:{repository}')), 'b.yaml': silenced(aws('repo:acme/api')) })).toEqual([]);
  });

  it('compares Google grants per Workload Identity pool, not per provider: a principal names the pool and the sub, never the provider', () => {
    const gcp = (pool: string, provider: string, subject: string) =>
      policy(
        `provider: gcp\nworkload_identity_provider: projects/123456789/locations/global/workloadIdentityPools/${pool}/providers/${provider}\nservice_accounts: [deployer@acme-prod.iam.gserviceaccount.com]`,
        `  subject: "${subject}"\n`,
      );
    const pool = 'projects/123456789/locations/global/workloadIdentityPools/keyway';
    expect(found({ 'a.yaml': gcp('keyway', 'prod', 'policy:a'), 'b.yaml': gcp('keyway', 'team-b', 'policy:{ref}') })).toEqual([
      `a.yaml: the cloud token's sub (policy:a) could be the sub of b's (policy:{ref}), and Workload Identity pool ${pool} tells them apart by sub alone`,
      `b.yaml: the cloud token's sub (policy:{ref}) could be the sub of a's (policy:a), and Workload Identity pool ${pool} tells them apart by sub alone`,
    ]);
    expect(found({ 'a.yaml': gcp('keyway', 'prod', 'policy:a'), 'b.yaml': gcp('keyway-dev', 'prod', 'policy:a') })).toEqual([]);
  });
});
