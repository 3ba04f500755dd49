import { describe, expect, it } from 'vitest';
import { loadPolicies, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import { runPolicyTests } from '../../src/core/policy/testing/run-policy-tests.ts';

const OPTIONS: PolicyLoadOptions = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: false };
const set = loadPolicies(
  [
    {
      path: 'deploy.yaml',
      text: 'version: 1\nissuer: github\nmatch:\n  repository_id: "1"\n  ref: refs/heads/main\ngrant:\n  audience: [https://a.example, https://b.example]\n  scopes: [deploy:write, read]\n  ttl: 10m\n  subject: "{repository}"\n  claims: { ref: "{ref}" }\n',
    },
    { path: 'guard.yaml', text: 'version: 1\neffect: deny\nissuer: github\nmatch:\n  event_name: workflow_run\n' },
  ],
  OPTIONS,
);

const FILE = `version: 1
issuer: github
fixtures:
  main:
    sub: "repo:acme/api:ref:refs/heads/main"
    repository: acme/api
    repository_id: "1"
    repository_owner_id: "9"
    ref: refs/heads/main
    event_name: push
    run_id: "1"
cases:
`;

function run(cases: string) {
  return runPolicyTests(set, [{ path: 't.test.yaml', text: FILE + cases }], OPTIONS);
}

describe('policy tests', () => {
  it("passes cases whose every expectation holds, through the broker's own decision", () => {
    const { results, problems } = run(`  - name: grant
    fixture: main
    request: { audience: https://b.example, scope: read }
    expect: { decision: granted, policy: deploy, audience: https://b.example, scopes: [read], ttl: 10m, subject: acme/api, claims: { ref: refs/heads/main } }
  - name: guard
    fixture: main
    claims: { event_name: workflow_run }
    expect: { decision: denied, reason: denied_by_policy, denied_by: [guard] }
  - name: removed claim
    fixture: main
    claims: { ref: null }
    expect: { decision: denied, reason: claims_invalid }
  - name: claims only, no fixture
    claims: { iss: "https://gitlab.com", sub: x }
    expect: { decision: denied, reason: issuer_untrusted }
`);
    expect(problems).toEqual([]);
    expect(results.map((result) => [result.name, result.failures])).toEqual([
      ['grant', []],
      ['guard', []],
      ['removed claim', []],
      ['claims only, no fixture', []],
    ]);
    expect(results[1]).toMatchObject({ file: 't.test.yaml', line: 17, column: 5 });
  });

  it('fails a case on each expectation that does not hold, saying what it got', () => {
    const { results } = run(`  - name: wrong
    fixture: main
    expect: { decision: granted, policy: other, audience: https://b.example, scopes: [read], ttl: 5m, subject: x, claims: {} }
  - name: wrong decision
    fixture: main
    claims: { event_name: workflow_run }
    expect: { decision: granted }
  - name: wrong reason
    fixture: main
    claims: { ref: refs/heads/dev }
    expect: { decision: denied, reason: denied_by_policy }
  - name: no such fixture
    fixture: mian
    expect: { decision: denied }
`);
    expect(results.map((result) => result.failures)).toEqual([
      [
        'expected policy "other", got "deploy"',
        'expected audience ["https://b.example"], got ["https://a.example"]',
        'expected scopes ["read"], got ["deploy:write","read"]',
        'expected ttl "5m", got "600s"',
        'expected subject "x", got "acme/api"',
        'expected claims {}, got {"ref":"refs/heads/main"}',
      ],
      ['expected granted, got denied (denied_by_policy: denied by guard)'],
      ['expected reason "denied_by_policy", got "no_policy_matched: no allow policy matched the token"'],
      ['no fixture named mian in this file'],
    ]);
  });

  it('reports a test file that does not validate, at its line', () => {
    const { results, problems } = run(`  - name: typo
    fixture: main
    expect: { decision: granted, polcy: deploy }
`);
    expect(results).toEqual([]);
    expect(problems).toEqual([{ file: 't.test.yaml', line: 15, column: 34, message: 'unknown field cases.0.expect.polcy' }]);
  });

  it('asks for a cloud token with request.cloud, and checks the cloud token the grant gives', () => {
    const cloudSet = loadPolicies(
      [
        {
          path: 'aws.yaml',
          text: 'version: 1\nissuer: github\nmatch:\n  repository_id: "1"\ngrant:\n  cloud:\n    provider: aws\n    roles: [arn:aws:iam::123456789012:role/deploy]\n    session_tags: { Repository: "{repository}" }\n',
        },
      ],
      OPTIONS,
    );
    const role = 'arn:aws:iam::123456789012:role/deploy';
    const { results, problems } = runPolicyTests(
      cloudSet,
      [
        {
          path: 't.test.yaml',
          text: `${FILE}  - name: holds
    fixture: main
    request: { cloud: true, audience: "${role}" }
    expect: { decision: granted, cloud: { provider: aws, identity: "${role}", audience: sts.amazonaws.com, session_tags: { Repository: acme/api } } }
  - name: wrong
    fixture: main
    request: { cloud: true, audience: "${role}" }
    expect: { decision: granted, cloud: { provider: gcp, identity: "arn:aws:iam::123456789012:role/admin", audience: x, session_tags: {} } }
  - name: not asked as a cloud token
    fixture: main
    request: { audience: "${role}" }
    expect: { decision: granted }
`,
        },
      ],
      OPTIONS,
    );
    expect(problems).toEqual([]);
    expect(results.map((result) => result.failures)).toEqual([
      [],
      [
        'expected cloud.provider "gcp", got "aws"',
        `expected cloud.identity "arn:aws:iam::123456789012:role/admin", got "${role}"`,
        'expected cloud.audience "x", got "sts.amazonaws.com"',
        'expected cloud.session_tags {}, got {"Repository":"acme/api"}',
      ],
      [expect.stringMatching(/^expected granted, got denied/)],
    ]);
  });
});
