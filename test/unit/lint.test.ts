import { describe, expect, it } from 'vitest';
import { compilePolicyFiles, loadPolicies, PolicyLoadError, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import { checkPolicies, isReadOnlyScope, lintPolicies, type LintFinding } from '../../src/core/policy/lint/lint-policies.ts';
import { LINT_RULE_IDS, LINT_RULES } from '../../src/core/policy/lint/lint-rules.ts';

const OPTIONS: PolicyLoadOptions = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: false };

function lint(files: Record<string, string>): LintFinding[] {
  return lintPolicies(
    compilePolicyFiles(
      Object.entries(files).map(([path, text]) => ({ path, text })),
      OPTIONS,
    ),
  );
}

const rules = (files: Record<string, string>): string[] => lint(files).map((finding) => finding.rule);

/** A GitHub allow policy: `match` lines as YAML, and the grant's scopes. */
const github = (match: string, scopes = '[artifacts:read]', extra = '') =>
  `version: 1\nissuer: github\n${extra}match:\n${match}\ngrant:\n  audience: https://a.example\n  scopes: ${scopes}\n`;

const PINNED = '  repository_owner_id: "1200934"\n  repository_id: "734201"\n';
/** Every GitHub untrusted context excluded, so write-scope tests see only what they add. */
const SAFE_CONTEXT = '  event_name: push\n  runner_environment: github-hosted\n  ref_protected: "true"\n';
/** GitHub's event_name values that run untrusted code or input with the repository's identity. */
const UNTRUSTED_EVENTS = [
  'pull_request',
  'pull_request_target',
  'workflow_run',
  'issue_comment',
  'pull_request_review',
  'pull_request_review_comment',
  'discussion_comment',
  'issues',
  'discussion',
  'fork',
  'watch',
  'gollum',
  'check_run',
  'check_suite',
  'status',
];

describe('lint rules', () => {
  it('every rule has a severity and a one-line why', () => {
    for (const id of LINT_RULE_IDS) {
      expect(['error', 'warning', 'notice']).toContain(LINT_RULES[id].severity);
      expect(LINT_RULES[id].why).toMatch(/^[a-z].{20,}[^.]$/);
      expect(LINT_RULES[id].why).not.toContain('\n');
    }
  });

  it('a pinned, gated policy passes clean', () => {
    expect(lint({ 'p.yaml': github(PINNED + SAFE_CONTEXT, '[deploy:write]') })).toEqual([]);
  });

  describe('unpinned-tenant (error): shared issuers', () => {
    it('flags an allow policy on github.com that pins no owner, repository, enterprise or sub', () => {
      const [finding] = lint({ 'p.yaml': github('  ref: refs/heads/main\n  environment: production') });
      expect(finding).toMatchObject({ rule: 'unpinned-tenant', severity: 'error', file: 'p.yaml', line: 3, column: 1 });
      expect(finding?.message).toContain('https://token.actions.githubusercontent.com');
      expect(finding?.message).toContain('a sub pins one only when its first key is repo, repository, repository_id, repository_owner, repository_owner_id');
    });

    it('flags gitlab.com and a GitLab instance alike: one issuer for every project it serves', () => {
      expect(rules({ 'p.yaml': 'version: 1\nissuer: gitlab\nmatch: { ref_protected: "true" }\ngrant: { audience: x }\n' })).toContain('unpinned-tenant');
      expect(
        rules({ 'p.yaml': 'version: 1\nissuer: { kind: gitlab, url: "https://gitlab.acme.dev" }\nmatch: { ref: main }\ngrant: { audience: x }\n' }),
      ).toContain('unpinned-tenant');
      expect(rules({ 'p.yaml': 'version: 1\nissuer: gitlab\nmatch: { project_id: "4200" }\ngrant: { audience: x, scopes: [a:read] }\n' })).not.toContain(
        'unpinned-tenant',
      );
    });

    it('flags a Forgejo instance and Buildkite alike, and takes no Buildkite slug for a pin: a slug can be renamed and registered again', () => {
      const forgejo =
        'version: 1\nissuer: { kind: forgejo, url: "https://codeberg.org/api/actions" }\nmatch: { ref: refs/heads/main }\ngrant: { audience: x }\n';
      const buildkite = (match: string) => `version: 1\nissuer: buildkite\nmatch: { ${match} }\ngrant: { audience: x, scopes: [a:read] }\n`;
      expect(rules({ 'p.yaml': forgejo })).toContain('unpinned-tenant');
      expect(rules({ 'p.yaml': buildkite('organization_slug: acme-inc') })).toContain('unpinned-tenant');
      expect(rules({ 'p.yaml': buildkite('organization_id: 0184990a-4776-4e4f-b0a0-2f9bd7a4d6ec') })).not.toContain('unpinned-tenant');
    });

    it.each([
      ['repository_owner_id', '  repository_owner_id: "1"'],
      ['repository_id', '  repository_id: "1"'],
      ['enterprise_id', '  enterprise_id: "1"'],
      ['a list of ids', '  repository_id: ["1", "2"]'],
      ['an exact sub', '  sub: "repo:acme/api:ref:refs/heads/main"'],
      ['a sub glob naming the owner completely', '  sub: { glob: "repo:acme/*:ref:refs/heads/main" }'],
      ['an immutable sub glob', '  sub: { glob: "repo:acme@1200934/*" }'],
      ['a customised sub that starts with the owner id', '  sub: "repository_owner_id:1200934:environment:production"'],
      ['a customised sub glob that starts with the repository id', '  sub: { glob: "repository_id:734201:*" }'],
      ['a customised sub that starts with the enterprise id', '  sub: "enterprise_id:4242:repository_id:734201"'],
      ['a glob without a wildcard: an exact value', '  repository_owner_id: { glob: "1200934" }'],
    ])('accepts a tenant pinned by %s', (_name, match) => {
      expect(rules({ 'p.yaml': github(match) })).not.toContain('unpinned-tenant');
    });

    it.each([
      ['a sub glob whose owner is a prefix only: repo:acme* also matches acme-evil', '  sub: { glob: "repo:acme*" }'],
      ['a sub glob with the owner wildcarded', '  sub: { glob: "repo:*/api:*" }'],
      ['a sub regex', '  sub: { regex: "repo:acme/.*" }'],
      ['not', '  repository_owner_id: { not: "666" }'],
      ['exists', '  repository_id: { exists: true }'],
      ['a list holding a glob', '  repository_id: ["1", { glob: "*" }]'],
      ['a name only: names are not tenants', '  repository_owner: acme'],
      // GitHub lets each repository choose its sub's claims, include_claim_keys, and signs them for any account.
      [
        "a customised sub of a reusable workflow: any account's job that calls it is signed this sub",
        '  sub: "job_workflow_ref:acme/workflows/.github/workflows/deploy.yml@refs/heads/main"',
      ],
      ['a customised sub glob of a reusable workflow', '  sub: { glob: "job_workflow_ref:acme/workflows/*" }'],
      ["a customised sub of an environment: any account's environment of that name", '  sub: "environment:production"'],
      ['a customised sub whose owner id is not first: what comes before it is free text', '  sub: "environment:x:repository_owner_id:1200934"'],
      ["a customised sub whose first key only starts with a repository key's name", '  sub: "repository_visibility:public:ref:refs/heads/main"'],
      ["a customised sub glob whose first key only starts with a repository key's name", '  sub: { glob: "repository_visibility:public:*" }'],
      ["a customised sub that starts with the actor: an actor runs jobs in any account's repositories", '  sub: "actor_id:4242:repository_owner_id:1200934"'],
    ])('does not count %s as a pin', (_name, match) => {
      expect(rules({ 'p.yaml': github(match) })).toContain('unpinned-tenant');
    });

    it('flags a Bitbucket policy that pins no workspace or repository UUID: the issuer URL names the workspace by a slug that can change hands', () => {
      const issuer = '{ kind: bitbucket, url: https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc }';
      const bitbucket = (match: string) => `version: 1\nissuer: ${issuer}\nmatch:\n${match}\ngrant: { audience: x, scopes: [a:read] }\n`;
      const [finding] = lint({ 'p.yaml': bitbucket('  branchName: main') });
      expect(finding).toMatchObject({ rule: 'unpinned-tenant', severity: 'error', line: 3 });
      expect(finding?.message).toContain('names its workspace by a slug');
      expect(() => loadPolicies([{ path: 'p.yaml', text: bitbucket('  branchName: main') }], OPTIONS)).toThrow(/\(unpinned-tenant\)/);
      for (const pin of ['workspaceUuid: "{5a4f2c9e-1b3d-4e8f-9a7c-6d5e4f3a2b10}"', 'repositoryUuid: "{7c1e9d2a-3b4f-4a6e-8d9c-0f1e2d3c4b5a}"']) {
        expect(rules({ 'p.yaml': bitbucket(`  ${pin}\n  branchName: main`) })).toEqual([]);
      }
    });

    it('leaves deny guardrails alone: one that covers every tenant is the point', () => {
      expect(lint({ 'g.yaml': 'version: 1\neffect: deny\nissuer: github\nmatch: { event_name: workflow_run }\n' })).toEqual([]);
    });

    it('does not apply to issuers that serve one tenant', () => {
      expect(rules({ 'p.yaml': 'version: 1\nissuer: https://oidc.acme.dev\nmatch: { sub: svc }\ngrant: { audience: x }\n' })).toEqual([]);
    });

    it('stops the set from loading unless silenced with a reason', () => {
      const text = github('  ref: refs/heads/main');
      expect(() => loadPolicies([{ path: 'p.yaml', text }], OPTIONS)).toThrow(PolicyLoadError);
      expect(() => loadPolicies([{ path: 'p.yaml', text }], OPTIONS)).toThrow(/p.yaml:3:1 .* \(unpinned-tenant\)/);
      const silenced = `${text}lint:\n  ignore:\n    unpinned-tenant: "GHES instance for one company; every repository is ours"\n`;
      expect(loadPolicies([{ path: 'p.yaml', text: silenced }], OPTIONS).policies).toHaveLength(1);
    });
  });

  /** A policy that trusts the broker itself (OPTIONS' issuer), as /proxy's keyway-token callers are decided. */
  const own = (match: string, effect = '') =>
    `version: 1\n${effect}issuer: { kind: oidc, url: "https://keyway.test" }\nsubject_audience: https://keyway.test/proxy/deploy\nmatch: ${match}\n` +
    (effect === '' ? 'grant:\n  proxy: { upstream: deploy, allow: [{ method: GET, path: "/x/**" }] }\n' : '');
  /** A GitHub policy minting keyway tokens for `audience`. */
  const minter = (audience: string, extra = '') => github(PINNED, '[artifacts:read]', extra).replace('https://a.example', audience);
  /** The policies whose tokens `own` policies pin, each granting the audience they take. */
  const MINTERS = {
    'deploy/production.yaml': minter('[https://deploy.example, https://keyway.test/proxy/deploy]'),
    'deploy/staging.yaml': minter('https://keyway.test/proxy/deploy'),
  };

  describe("unpinned-client-id (error): keyway's own tokens", () => {
    it('flags an allow policy trusting the broker that pins no client_id, or pins it by pattern', () => {
      const patterns = [
        '{ client_id: { glob: "deploy/*" } }',
        '{ client_id: { regex: "deploy/.*" } }',
        '{ client_id: { regex: "deploy/(production|staging)?" } }',
        '{ client_id: { regex: "deploy/[a-z]+" } }',
        '{ client_id: { regex: "deploy/production|deploy/s.aging" } }',
        '{ client_id: [deploy/production, { regex: "deploy\\\\.+" }] }',
      ];
      for (const match of ['{ sub: "https://token.actions.githubusercontent.com#repo:acme/api:ref:refs/heads/main" }', ...patterns]) {
        const [finding, ...rest] = lint({ 'p.yaml': own(match) });
        expect(rest).toEqual([]);
        expect(finding).toMatchObject({ rule: 'unpinned-client-id', severity: 'error', file: 'p.yaml', line: 4 });
        expect(finding?.message).toContain('https://keyway.test/proxy/deploy');
      }
    });

    it('passes one that names the granting policies exactly, a deny policy, and a policy of any other issuer naming no client_id', () => {
      expect(lint({ 'p.yaml': own('{ client_id: deploy/production }'), ...MINTERS })).toEqual([]);
      expect(lint({ 'p.yaml': own('{ client_id: [deploy/production, deploy/staging] }'), ...MINTERS })).toEqual([]);
      expect(lint({ 'p.yaml': own('{ sub: x }', 'effect: deny\n') })).toEqual([]);
      expect(rules({ 'p.yaml': 'version: 1\nissuer: https://oidc.acme.dev\nmatch: { sub: svc }\ngrant: { audience: x }\n' })).toEqual([]);
    });

    it('takes a pin written as a glob without a wildcard or as a nested list, which admit only the values they write', () => {
      for (const match of ['{ client_id: { glob: deploy/production } }', '{ client_id: [[deploy/production], { glob: deploy/staging }] }']) {
        expect(lint({ 'p.yaml': own(match), ...MINTERS }), match).toEqual([]);
      }
      // A JSON Pointer cannot spell client_id another way: it is refused when the policies load, and says how to write it.
      const pointer = checkPolicies(compilePolicyFiles([{ path: 'p.yaml', text: own('{ "/client_id": deploy/production }') }], OPTIONS));
      expect(pointer.map((finding) => [finding.rule, finding.message])).toEqual([
        ['invalid-policy', expect.stringMatching(/^match\.\/client_id: write it as client_id:/)],
      ]);
    });

    it('takes a pin written as a regex of literal text and alternatives: a policy regex matches the whole value', () => {
      // `deploy/production` admits that id alone, as `^deploy/production$` does.
      const regexes = [
        'deploy/production',
        '^deploy/production$',
        'deploy\\/production',
        '^deploy/(?:production|staging)$',
        '(deploy/production|^deploy/staging)',
      ];
      for (const regex of regexes) {
        const match = `{ client_id: { regex: ${JSON.stringify(regex)} } }`;
        expect(lint({ 'p.yaml': own(match), ...MINTERS }), match).toEqual([]);
      }
    });

    it('stops a broker-trusting policy without client_id from loading unless silenced with a reason', () => {
      const text = own('{ sub: x }');
      expect(() => loadPolicies([{ path: 'p.yaml', text }], OPTIONS)).toThrow(/p.yaml:4:1 .* \(unpinned-client-id\)/);
      const silenced = `${text}lint:\n  ignore:\n    unpinned-client-id: "every policy granting this audience is ours"\n`;
      expect(loadPolicies([{ path: 'p.yaml', text: silenced }], OPTIONS).policies).toHaveLength(1);
    });
  });

  describe('unmatched-client-id (error): a client_id pin no token can carry', () => {
    const unmatched = (files: Record<string, string>) =>
      lint(files)
        .filter((finding) => finding.rule === 'unmatched-client-id')
        .map(({ severity, file, line, message }) => ({ severity, file, line, message }));

    it('flags a pin to no policy of the set, to one minting tokens for other audiences, to a deny policy and to one minting none', () => {
      const match = '{ client_id: [deploy/production, deploy/prod, deploy/staging, guard, github-only] }';
      const findings = unmatched({
        'p.yaml': own(match),
        'deploy/production.yaml': MINTERS['deploy/production.yaml'],
        'deploy/staging.yaml': minter('[https://deploy.example, https://keyway.test/proxy/other]'),
        'guard.yaml': 'version: 1\neffect: deny\nissuer: github\nmatch: { event_name: pull_request }\n',
        'github-only.yaml': minter('https://x.example').replace(
          '  audience: https://x.example\n',
          '  cloud: { provider: aws, roles: ["arn:aws:iam::123456789012:role/r"] }\n',
        ),
      });
      const tail =
        ', so no token this policy takes carries it: a typo or a stale entry, and a policy later named or widened to fit it would be trusted here without this file changing';
      expect(findings).toEqual(
        [
          'client_id deploy/prod is the id of no policy of this set',
          'client_id deploy/staging mints no keyway token for https://keyway.test/proxy/deploy (it grants https://deploy.example, https://keyway.test/proxy/other)',
          'client_id guard is a deny policy, which mints no token',
          'client_id github-only mints no keyway token for https://keyway.test/proxy/deploy (it grants none)',
        ].map((message) => ({ severity: 'error', file: 'p.yaml', line: 4, message: `${message}${tail}` })),
      );
    });

    it('flags each id a regex pin writes out that no token can carry', () => {
      const findings = unmatched({ 'p.yaml': own('{ client_id: { regex: "deploy/(production|prod|staging)|gaurd$" } }'), ...MINTERS });
      expect(findings.map(({ message }) => message.split(',')[0])).toEqual([
        'client_id deploy/prod is the id of no policy of this set',
        'client_id gaurd is the id of no policy of this set',
      ]);
    });

    it('passes a pin to a disabled or audit-only policy granting the audience: it comes back', () => {
      const files = {
        'p.yaml': own('{ client_id: [off, watching] }'),
        'off.yaml': minter('https://keyway.test/proxy/deploy', 'disabled: true\n'),
        'watching.yaml': minter('https://keyway.test/proxy/deploy', 'mode: audit\n'),
      };
      expect(unmatched(files)).toEqual([]);
    });

    it('stops the set from loading unless silenced with a reason', () => {
      const text = own('{ client_id: deploy/prod }');
      const files = (policy: string) => [{ path: 'p.yaml', text: policy }, ...Object.entries(MINTERS).map(([path, minted]) => ({ path, text: minted }))];
      expect(() => loadPolicies(files(text), OPTIONS)).toThrow(
        /p.yaml:4:\d+ client_id deploy\/prod is the id of no policy of this set.* \(unmatched-client-id\)/,
      );
      const silenced = `${text}lint:\n  ignore:\n    unmatched-client-id: "deploy/prod is created by the next change of this directory"\n`;
      expect(loadPolicies(files(silenced), OPTIONS).policies).toHaveLength(3);
    });
  });

  describe("policy-review-writable (warning): the repository keyway's review protects", () => {
    /** A broker whose policy repository, the one its review protects, is acme/keyway-policies (id 4242). */
    const REVIEWED: PolicyLoadOptions = { ...OPTIONS, reviewedRepository: { owner: 'acme', name: 'keyway-policies', id: '4242' } };
    const findings = (text: string, options = REVIEWED) =>
      lintPolicies(compilePolicyFiles([{ path: 'p.yaml', text }], options)).filter((finding) => finding.rule === 'policy-review-writable');
    /** A pinned, gated GitHub policy of the repository `repositoryId`, with `grant` as YAML lines. */
    const granting = (grant: string, repositoryId = '734201') =>
      `version: 1\nissuer: github\nmatch:\n  repository_owner_id: "1200934"\n  repository_id: "${repositoryId}"\n${SAFE_CONTEXT}grant:\n${grant}`;

    it('flags a GitHub token with statuses: write or checks: write on the policy repository, however its name is cased', () => {
      const [statuses, ...rest] = findings(granting('  github: { repositories: [Acme/Keyway-Policies], permissions: { statuses: write } }\n'));
      expect(rest).toEqual([]);
      expect(statuses).toMatchObject({ rule: 'policy-review-writable', severity: 'warning', line: 10 });
      expect(statuses?.message).toContain('statuses:write');
      expect(statuses?.message).toContain("until keyway's check run exists");
      const [checks] = findings(granting('  github: { owner: acme, repositories: [api, keyway-policies], permissions: { checks: write, contents: read } }\n'));
      expect(checks?.message).toMatch(/checks:write, in the policy repository .*overwrite keyway's own/);
    });

    it('flags a GitHub token with administration: write on the policy repository, which can take the required check off the branch', () => {
      const [administration, ...rest] = findings(granting('  github: { repositories: [acme/keyway-policies], permissions: { administration: write } }\n'));
      expect(rest).toEqual([]);
      expect(administration?.message).toMatch(/administration:write, in the policy repository .*branch protection or rulesets/);
      const proxied =
        '  proxy: { upstream: github, allow: [{ method: PUT, path: "/repos/acme/keyway-policies/branches/*/protection", permissions: { administration: write } }] }\n';
      expect(findings(granting(proxied))).toHaveLength(1);
      expect(findings(granting('  github: { repositories: [acme/keyway-policies], permissions: { administration: read } }\n'))).toEqual([]);
    });

    it('flags a proxy rule that reaches the policy repository: a chore from its own jobs, its name written out, or a wildcard', () => {
      expect(findings(granting('  proxy: { upstream: github, allow: [{ chore: commit-status }] }\n', '4242'))).toHaveLength(1);
      expect(findings(granting('  proxy: { upstream: github, allow: [{ chore: check-run }] }\n', '4242'))).toHaveLength(2);
      const written =
        '  proxy: { upstream: github, allow: [{ method: POST, path: "/repos/acme/keyway-policies/check-runs", permissions: { checks: write } }] }\n';
      expect(findings(granting(written))).toHaveLength(1);
      const wildcard = '  proxy: { upstream: github, allow: [{ method: POST, path: "/repos/acme/*/statuses/*", permissions: { statuses: write } }] }\n';
      expect(findings(granting(wildcard))).toHaveLength(1);
      expect(
        findings(granting('  proxy: { upstream: github, allow: [{ method: POST, path: "/repos/**", permissions: { statuses: write } }] }\n')),
      ).toHaveLength(1);
    });

    it("passes another repository's writes, its owner and name under another root than /repos, a chore of jobs pinned to another repository, reads, and any set where no policy repository is configured", () => {
      expect(findings(granting('  github: { repositories: [acme/api], permissions: { statuses: write, checks: write } }\n'))).toEqual([]);
      expect(findings(granting('  github: { repositories: [acme/keyway-policies], permissions: { statuses: read, checks: read } }\n'))).toEqual([]);
      expect(findings(granting('  proxy: { upstream: github, allow: [{ chore: commit-status }, { chore: check-run }] }\n'))).toEqual([]);
      expect(findings(granting('  proxy: { upstream: github, allow: [{ chore: comment }] }\n', '4242'))).toEqual([]);
      // Its owner and name under another root than /repos: no path of that repository.
      expect(
        findings(granting('  proxy: { upstream: github, allow: [{ method: POST, path: "/orgs/acme/keyway-policies", permissions: { statuses: write } }] }\n')),
      ).toEqual([]);
      expect(findings(granting('  github: { repositories: [acme/keyway-policies], permissions: { statuses: write } }\n'), OPTIONS)).toEqual([]);
    });

    it('is silenced with a reason, as any rule', () => {
      const text = `${granting('  github: { repositories: [acme/keyway-policies], permissions: { statuses: write } }\n')}lint:\n  ignore:\n    policy-review-writable: "a pool: statuses tokens never come from the reviewing App"\n`;
      const compilation = compilePolicyFiles([{ path: 'p.yaml', text }], REVIEWED);
      expect(compilation.problems).toEqual([]);
      expect(lintPolicies(compilation)).toEqual([]);
    });
  });

  describe('proxy-upstream-audience (warning): a token granted at /token for a keyway-jwt proxy upstream, which takes it directly', () => {
    const UPSTREAM = 'https://deploy.acme.dev';
    const WITH_UPSTREAM: PolicyLoadOptions = { ...OPTIONS, upstreamAudiences: [UPSTREAM] };
    const findings = (audience: string, options = WITH_UPSTREAM, extra = '') =>
      lintPolicies(
        compilePolicyFiles(
          [
            {
              path: 'p.yaml',
              text: github(PINNED, '[artifacts:read]', extra).replace('audience: https://a.example', `audience: [https://a.example, "${audience}"]`),
            },
          ],
          options,
        ),
      ).filter((finding) => finding.rule === 'proxy-upstream-audience');

    it('flags an allow policy whose grant.audience names the upstream’s audience, at that line', () => {
      const [finding, ...more] = findings(UPSTREAM);
      expect(more).toEqual([]);
      expect(finding).toMatchObject({ rule: 'proxy-upstream-audience', severity: 'warning' });
      expect(finding?.message).toContain(`grant.audience ${UPSTREAM} is the audience of a keyway-jwt proxy upstream`);
    });

    it('says nothing of another audience, of a set compiled without the upstreams, or of a policy that silences it', () => {
      expect(findings('https://deploy.acme.dev/other')).toEqual([]);
      expect(findings(UPSTREAM, OPTIONS)).toEqual([]);
      expect(findings(UPSTREAM, WITH_UPSTREAM, 'lint:\n  ignore:\n    proxy-upstream-audience: "the deploy job calls it directly"\n')).toEqual([]);
    });
  });

  describe("unreachable-github-grant (warning): a GitHub grant that pins no owner_id, for another CI system's or deployment's jobs", () => {
    const SERVER = 'https://ghes.acme.dev/_services/token';
    const ON_GITHUB_COM: PolicyLoadOptions = { ...OPTIONS, githubDeployment: 'github.com' };
    const findings = (text: string, options = ON_GITHUB_COM) =>
      lintPolicies(compilePolicyFiles([{ path: 'p.yaml', text }], options)).filter((finding) => finding.rule === 'unreachable-github-grant');
    /** A GitHub token for acme/api to the jobs of account 1200934 of `issuer`, as a repository's own policy grants it (`pin` empty). */
    const granting = (issuer: string, pin = '', extra = '') =>
      `version: 1\nissuer: ${issuer}\nmatch:\n  repository_owner_id: "1200934"\n  repository_id: "734201"\n${SAFE_CONTEXT}grant:\n  github: { owner: acme,${pin} repositories: [api], permissions: { contents: read } }\n${extra}`;
    const server = `{ kind: github, url: "${SERVER}" }`;

    it("flags a GitHub Enterprise Server's policy where the App is on github.com: it can never grant, and says what to do", () => {
      const [finding, ...rest] = findings(granting(server));
      expect(rest).toEqual([]);
      expect(finding).toMatchObject({ rule: 'unreachable-github-grant', severity: 'warning', line: 10 });
      expect(finding?.message).toContain(
        `${SERVER} is a GitHub issuer of ghes.acme.dev, which numbers its accounts apart: this policy never grants its jobs a GitHub token`,
      );
      expect(finding?.message).toContain("the App's GitHub deployment (github.com, KEYWAY_GITHUB_API_URL's)");
      expect(finding?.message).toContain('grant these jobs from a central policy that pins grant.github.owner_id');
      // The reverse: github.com's jobs where the App is on that server.
      expect(findings(granting('github'), { ...OPTIONS, githubDeployment: 'ghes.acme.dev' })).toHaveLength(1);
    });

    it("passes the App's own deployment's issuers, a grant that pins owner_id, a deny policy, and a set compiled without a deployment", () => {
      expect(findings(granting('github'))).toEqual([]);
      expect(findings(granting(server), { ...OPTIONS, githubDeployment: 'ghes.acme.dev' })).toEqual([]);
      expect(findings(granting('{ kind: github, url: "https://token.actions.acme.ghe.com" }'), { ...OPTIONS, githubDeployment: 'acme.ghe.com' })).toEqual([]);
      expect(findings(granting(server, ' owner_id: "1200934",'))).toEqual([]);
      expect(findings(`version: 1\neffect: deny\nissuer: ${server}\nmatch: { event_name: workflow_run }\n`)).toEqual([]);
      expect(findings(granting(server), OPTIONS)).toEqual([]);
    });

    it("flags another CI system's policy, whose tokens name no GitHub account, with or without the App's deployment", () => {
      const gitlab = (pin = '') =>
        `version: 1\nissuer: https://gitlab.com\nmatch:\n  project_id: "42"\n  ref: main\n  ref_protected: "true"\ngrant:\n  github: { owner: acme,${pin} repositories: [api], permissions: { contents: read } }\n`;
      for (const options of [ON_GITHUB_COM, OPTIONS]) {
        const [finding, ...rest] = findings(gitlab(), options);
        expect(rest).toEqual([]);
        expect(finding).toMatchObject({ rule: 'unreachable-github-grant', severity: 'warning', line: 8 });
        expect(finding?.message).toContain('https://gitlab.com is a gitlab issuer, whose tokens name no GitHub account of their own');
      }
      expect(findings(gitlab(' owner_id: "1200934",'))).toEqual([]);
    });

    it('is silenced with a reason, as any rule', () => {
      const text = granting(server, '', 'lint:\n  ignore:\n    unreachable-github-grant: "the App moves to this server next week"\n');
      expect(lintPolicies(compilePolicyFiles([{ path: 'p.yaml', text }], ON_GITHUB_COM))).toEqual([]);
    });
  });

  describe('name-without-id (warning): resurrected names', () => {
    it.each([
      ['repository', 'repository_id', '  repository_owner_id: "1"\n  repository: acme/api'],
      ['repository_owner', 'repository_owner_id', '  repository_id: "1"\n  repository_owner: acme'],
      ['actor', 'actor_id', `${PINNED}  actor: octocat`],
    ])('flags %s without %s', (_name, id, match) => {
      const findings = lint({ 'p.yaml': github(match) }).filter((finding) => finding.rule === 'name-without-id');
      expect(findings).toHaveLength(1);
      expect(findings[0]?.message).toContain(`pin ${id}`);
    });

    it('flags GitLab paths without their ids', () => {
      const findings = lint({
        'p.yaml': 'version: 1\nissuer: gitlab\nmatch:\n  project_id: "1"\n  namespace_path: acme\ngrant: { audience: x, scopes: [a:read] }\n',
      });
      expect(findings.map((finding) => [finding.rule, finding.line])).toEqual([['name-without-id', 5]]);
    });

    it('accepts a name beside its id, and presence-only lines', () => {
      expect(rules({ 'p.yaml': github(`${PINNED}  repository: acme/api\n  repository_owner: acme`) })).not.toContain('name-without-id');
      expect(rules({ 'p.yaml': github(`${PINNED}  actor: { exists: true }`) })).not.toContain('name-without-id');
    });
  });

  describe('write-from-untrusted (warning)', () => {
    const contexts = (match: string, scopes = '[deploy:write]', more: Record<string, string> = {}) =>
      lint({ 'p.yaml': github(match, scopes), ...more })
        .filter((finding) => finding.rule === 'write-from-untrusted')
        .map((finding) => /reachable from (\S+)/.exec(finding.message)?.[1]);

    it('names every untrusted context a write scope is reachable from', () => {
      expect(contexts(PINNED)).toEqual([...UNTRUSTED_EVENTS, 'self-hosted', 'unprotected']);
    });

    it('is satisfied by lines that exclude each context', () => {
      expect(contexts(PINNED + SAFE_CONTEXT)).toEqual([]);
      expect(
        contexts(`${PINNED}  event_name: { not: [${UNTRUSTED_EVENTS.join(', ')}] }\n  runner_environment: github-hosted\n  ref_protected: "true"`),
      ).toEqual([]);
    });

    it('catches the pull_request_target trap: ref pinned to main alone does not keep it out, and the message says why', () => {
      expect(contexts(`${PINNED}  ref: refs/heads/main\n  runner_environment: github-hosted\n  ref_protected: "true"`)).toEqual(UNTRUSTED_EVENTS);
      expect(contexts(`${PINNED}  event_name: { glob: "pull_request*" }\n  runner_environment: github-hosted\n  ref_protected: "true"`)).toEqual([
        'pull_request',
        'pull_request_target',
        'pull_request_review',
        'pull_request_review_comment',
      ]);
      const target = lint({ 'p.yaml': github(`${PINNED}  ref: refs/heads/main\n  event_name: [push, pull_request_target]`, '[deploy:write]') }).find(
        (finding) => finding.message.includes('from pull_request_target'),
      );
      expect(target?.message).toContain('since December 2025 their ref is always the default branch, so ref: refs/heads/main alone does not exclude them');
    });

    it('knows the comment and review triggers, which run what others wrote with the repository’s identity', () => {
      const findings = lint({
        'p.yaml': github(
          `${PINNED}  ref: refs/heads/main\n  event_name: { not: [pull_request, pull_request_target, workflow_run] }\n  runner_environment: github-hosted\n  ref_protected: "true"`,
          '[deploy:write]',
        ),
      });
      expect(findings.map((finding) => [finding.rule, finding.line, /reachable from (\S+)/.exec(finding.message)?.[1]])).toEqual([
        ['write-from-untrusted', 7, 'issue_comment'],
        ['write-from-untrusted', 7, 'pull_request_review'],
        ['write-from-untrusted', 7, 'pull_request_review_comment'],
        ['write-from-untrusted', 7, 'discussion_comment'],
        ['write-from-untrusted', 7, 'issues'],
        ['write-from-untrusted', 7, 'discussion'],
        ['write-from-untrusted', 7, 'fork'],
        ['write-from-untrusted', 7, 'watch'],
        ['write-from-untrusted', 7, 'gollum'],
        ['write-from-untrusted', 7, 'check_run'],
        ['write-from-untrusted', 7, 'check_suite'],
        ['write-from-untrusted', 7, 'status'],
      ]);
      expect(findings[0]?.message).toContain('anyone who can comment');
    });

    it('knows Forgejo’s pull request, comment, issue, fork, wiki and review triggers (its event_name is the workflow’s on: key)', () => {
      const forgejo = (match: string) =>
        'version: 1\nissuer: { kind: forgejo, url: "https://codeberg.org/api/actions" }\n' +
        `match:\n  repository_owner_id: "1"\n  repository_id: "2"\n${match}grant: { audience: x, scopes: [deploy:write] }\n`;
      const reachable = (match: string) =>
        lint({ 'p.yaml': forgejo(match) })
          .filter((finding) => finding.rule === 'write-from-untrusted')
          .map((finding) => /reachable from (\S+)/.exec(finding.message)?.[1]);
      const untrusted = [
        'pull_request',
        'pull_request_target',
        'issue_comment',
        'pull_request_comment',
        'issues',
        'fork',
        'gollum',
        'pull_request_review',
        'pull_request_review_comment',
      ];
      expect(reachable('  ref_protected: "true"\n')).toEqual(untrusted);
      expect(reachable(`  ref_protected: "true"\n  event_name: { not: [${untrusted.join(', ')}] }\n`)).toEqual([]);
      expect(lint({ 'p.yaml': forgejo('  ref_protected: "true"\n') }).find((finding) => finding.message.includes('from issue_comment'))?.message).toContain(
        'anyone who can comment',
      );
    });

    it('counts a deny guardrail that refuses the context for every token', () => {
      const guard = { 'g.yaml': `version: 1\neffect: deny\nissuer: github\nmatch: { event_name: [${UNTRUSTED_EVENTS.join(', ')}] }\n` };
      expect(contexts(`${PINNED}  runner_environment: github-hosted\n  ref_protected: "true"`, '[deploy:write]', guard)).toEqual([]);
      // A guardrail that names no audience holds for an allow policy with an audience of its own too.
      const ownAudience = github(
        `${PINNED}  runner_environment: github-hosted\n  ref_protected: "true"\n`,
        '[deploy:write]',
        'subject_audience: https://own.example\n',
      );
      const findings = lint({ 'p.yaml': ownAudience, ...guard }).filter((finding) => finding.rule === 'write-from-untrusted');
      expect(findings).toEqual([]);
      expect(lint({ 'p.yaml': ownAudience }).filter((finding) => finding.rule === 'write-from-untrusted')).not.toEqual([]);
    });

    it('does not count guardrails that are narrower, in audit mode, for another audience, or for delegated requests only', () => {
      const base = `${PINNED}  runner_environment: github-hosted\n  ref_protected: "true"\n  event_name: [push, workflow_run]`;
      const narrower = { 'g.yaml': 'version: 1\neffect: deny\nissuer: github\nmatch: { event_name: workflow_run, repository_id: "1" }\n' };
      const audit = { 'g.yaml': 'version: 1\neffect: deny\nmode: audit\nissuer: github\nmatch: { event_name: workflow_run }\n' };
      const elsewhere = {
        'g.yaml': 'version: 1\neffect: deny\nissuer: github\nsubject_audience: https://other.example\nmatch: { event_name: workflow_run }\n',
      };
      // It names an actor, so it holds only when a request carries an actor_token; the pipeline's own token passes it.
      const delegated = {
        'g.yaml':
          'version: 1\neffect: deny\nissuer: github\nmatch: { event_name: workflow_run }\nmatch_actor: { iss: https://token.actions.githubusercontent.com, sub: some-bot }\n',
      };
      for (const guard of [narrower, audit, elsewhere, delegated]) expect(contexts(base, '[deploy:write]', guard)).toEqual(['workflow_run']);
    });

    it('leaves read-only grants alone', () => {
      expect(contexts(PINNED, '[artifacts:read, packages.pull, repo-ro]')).toEqual([]);
    });

    it('knows GitLab merge request pipelines, self-hosted runners and unprotected refs', () => {
      const findings = lint({ 'p.yaml': 'version: 1\nissuer: gitlab\nmatch: { project_id: "1" }\ngrant: { audience: x, scopes: [deploy:write] }\n' });
      expect(findings.filter((finding) => finding.rule === 'write-from-untrusted')).toHaveLength(3);
    });

    it('knows Buildkite builds started by hand or through the API, which pick any branch and commit, and self-hosted agents', () => {
      const findings = lint({
        'p.yaml':
          'version: 1\nissuer: buildkite\nmatch: { organization_id: 0184990a-4776-4e4f-b0a0-2f9bd7a4d6ec }\ngrant: { audience: x, scopes: [deploy:write] }\n',
      });
      expect(
        findings.filter((finding) => finding.rule === 'write-from-untrusted').map((finding) => /reachable from (.*): add/.exec(finding.message)?.[1]),
      ).toEqual([
        'builds started by hand in the Buildkite UI (any branch, any commit)',
        'builds started through the Buildkite API (any branch, any commit)',
        'self-hosted agents (the token is only as safe as the agent host)',
      ]);
    });
  });

  it('isReadOnlyScope: a scope reads when one of its parts says so', () => {
    expect(['artifacts:read', 'contents.read', 'packages:pull', 'db-ro', 'read'].every(isReadOnlyScope)).toBe(true);
    expect(['deploy:write', 'deploy:staging', 'admin', 'readwrite', 'thread:post'].some(isReadOnlyScope)).toBe(false);
  });

  describe('matches-everything and wildcard-owner (warnings)', () => {
    it.each([['{ glob: "*" }'], ['{ glob: "**" }'], ['{ regex: ".*" }'], ['{ regex: ".+" }'], ['{ regex: "[\\\\s\\\\S]*" }'], ['[main, { glob: "**" }]']])(
      'flags %s',
      (matcher) => {
        expect(rules({ 'p.yaml': github(`${PINNED}  environment: ${matcher}`) })).toContain('matches-everything');
      },
    );

    // Its line reads it on each side of the first `@`, where it is priced side by side and loads: compiled whole, it does not.
    it('reads a job_workflow_ref regex as its line does, on each side of its @', () => {
      const policy = github(`${PINNED}  job_workflow_ref: { regex: "acme/.*@refs/heads/.*-[0-9a-f]{40}" }`);
      expect(rules({ 'p.yaml': policy })).toEqual([]);
      expect(loadPolicies([{ path: 'p.yaml', text: policy }], OPTIONS).policies).toHaveLength(1);
      expect(rules({ 'p.yaml': github(`${PINNED}  job_workflow_ref: { regex: ".*" }`) })).toContain('matches-everything');
    });

    it('leaves real patterns alone', () => {
      expect(rules({ 'p.yaml': github(`${PINNED}  ref: { glob: "refs/heads/*" }\n  environment: { regex: "prod(-eu)?" }`) })).not.toContain(
        'matches-everything',
      );
    });

    it.each([
      ['repository', '{ glob: "*/api" }'],
      ['repository', '{ glob: "**" }'],
      ['repository_owner', '{ glob: "acme*" }'],
      ['job_workflow_ref', '{ glob: "*/workflows/.github/workflows/deploy.yml@refs/heads/main" }'],
    ])('flags a wildcard in the owner part of %s: %s', (claim, matcher) => {
      expect(rules({ 'p.yaml': github(`${PINNED}  ${claim}: ${matcher}`) })).toContain('wildcard-owner');
    });

    it('accepts wildcards after the owner', () => {
      expect(rules({ 'p.yaml': github(`${PINNED}  repository: { glob: "acme/*" }\n  job_workflow_ref: { glob: "acme/workflows/**" }`) })).not.toContain(
        'wildcard-owner',
      );
    });
  });

  describe('match_actor: the per-line rules read the actor lines, against the actor issuer', () => {
    const GITHUB = 'https://token.actions.githubusercontent.com';
    /** A pinned GitHub policy whose actor must satisfy `actor` (YAML lines under match_actor, after its iss). */
    const delegated = (actor: string, iss = GITHUB) => github(PINNED).replace('grant:\n', `match_actor:\n  iss: ${iss}\n${actor}\ngrant:\n`);
    const ORCHESTRATOR = '  job_workflow_ref: acme/orchestrator/.github/workflows/deploy.yml@refs/heads/main';

    it('unpinned-tenant (error): an actor from a shared issuer with no tenant pin, on the match_actor line', () => {
      const findings = lint({ 'p.yaml': delegated(ORCHESTRATOR) });
      expect(findings).toEqual([expect.objectContaining({ rule: 'unpinned-tenant', severity: 'error', line: 7, column: 1 })]);
      expect(findings[0]?.message).toContain(`${GITHUB} signs tokens for every project it serves, and this allow policy's match_actor`);
      expect(() => loadPolicies([{ path: 'p.yaml', text: delegated(ORCHESTRATOR) }], OPTIONS)).toThrow(PolicyLoadError);
      expect(rules({ 'p.yaml': delegated(`  repository_owner_id: "1200934"\n${ORCHESTRATOR}`) })).toEqual([]);
    });

    it('unpinned-tenant: an actor issuer that serves one tenant, or a deny policy, needs no pin', () => {
      const own = 'version: 1\nissuer: https://oidc.acme.dev\nmatch: { sub: orchestrator }\ngrant: { audience: x }\n';
      expect(rules({ 'p.yaml': delegated('  sub: orchestrator', 'https://oidc.acme.dev'), 'own.yaml': own })).toEqual([]);
      const deny = `version: 1\neffect: deny\nissuer: github\nmatch: { repository_id: "734201" }\nmatch_actor: { iss: ${GITHUB}, environment: dev }\n`;
      expect(rules({ 'g.yaml': deny })).toEqual([]);
    });

    it.each([
      ['matches-everything', '  repository_owner_id: "1200934"\n  environment: { glob: "**" }', 'match_actor.environment: { glob: "**" } accepts every value'],
      [
        'wildcard-owner',
        '  repository_owner_id: "1200934"\n  job_workflow_ref: { glob: "*/orchestrator/.github/workflows/deploy.yml@refs/heads/main" }',
        'match_actor.job_workflow_ref: { glob: "*/orchestrator/.github/workflows/deploy.yml@refs/heads/main" } has a wildcard',
      ],
      ['spoofable-claim', '  repository_owner_id: "1200934"\n  workflow: Deploy', 'match_actor.workflow is chosen by whoever edits the pipeline'],
      ['unknown-claim', '  repository_owner_id: "1200934"\n  enviroment: production', `never carry enviroment (match_actor, for actors from ${GITHUB})`],
      ['name-without-id', '  repository_owner_id: "1200934"\n  repository: acme/orchestrator', 'match_actor.repository is a name that can be renamed'],
    ])('%s on a match_actor line', (rule, actor, message) => {
      const findings = lint({ 'p.yaml': delegated(actor) });
      expect(findings.map((finding) => [finding.rule, finding.line])).toEqual([[rule, 10]]);
      expect(findings[0]?.message).toContain(message);
    });

    it('an actor issuer no policy trusts: no issuer to judge its lines by, but a pattern that accepts everything is still one', () => {
      expect(rules({ 'p.yaml': delegated('  sub: { regex: ".*" }', 'https://ci.elsewhere.dev') })).toEqual(['matches-everything']);
    });
  });

  describe('case-insensitive-ref (error): git refs are case-sensitive', () => {
    const REFS = `${PINNED}  ref: refs/heads/main\n  job_workflow_ref: acme/workflows/.github/workflows/deploy.yml@refs/heads/main\n  repository: acme/api\n`;
    /** The compilation as an issuer would make it that compared these claims without case (GitHub's preset did, for workflow refs). */
    const foldedWhole = (text: string, keys: readonly string[]) => {
      const compilation = compilePolicyFiles([{ path: 'p.yaml', text }], OPTIONS);
      return {
        ...compilation,
        files: compilation.files.map((entry) =>
          entry.policy === undefined
            ? entry
            : {
                ...entry,
                policy: {
                  ...entry.policy,
                  conditions: entry.policy.conditions.map((line) => (keys.includes(line.key) ? { ...line, fold: 'whole' as const } : line)),
                },
              },
        ),
      };
    };

    it('flags each ref-bearing line of an allow policy that compares without case, and no name line', () => {
      const findings = lintPolicies(foldedWhole(github(REFS), ['ref', 'job_workflow_ref', 'repository'])).filter(
        (finding) => finding.rule === 'case-insensitive-ref',
      );
      expect(findings.map((finding) => [finding.severity, finding.line])).toEqual([
        ['error', 6],
        ['error', 7],
      ]);
      expect(findings[1]?.message).toBe(
        'job_workflow_ref carries a git ref, and github compares it without case: refs/heads/MAIN, which anyone who can push may create unprotected, passes for refs/heads/main',
      );
    });

    it('is quiet for the shipped presets, which fold workflow refs before the @ only, and for deny policies', () => {
      expect(rules({ 'p.yaml': github(REFS) })).not.toContain('case-insensitive-ref');
      const guard = 'version: 1\neffect: deny\nissuer: github\nmatch:\n  ref: refs/heads/main\n';
      expect(lintPolicies(foldedWhole(guard, ['ref'])).map((finding) => finding.rule)).not.toContain('case-insensitive-ref');
    });
  });

  it('spoofable-claim: the free-text workflow name is not a gate', () => {
    const [finding] = lint({ 'p.yaml': github(`${PINNED}  workflow: Deploy to production`) });
    expect(finding).toMatchObject({ rule: 'spoofable-claim', line: 6 });
    expect(finding?.message).toContain('workflow_ref');
    expect(rules({ 'p.yaml': github(`${PINNED}  workflow_ref: acme/api/.github/workflows/deploy.yml@refs/heads/main`) })).toEqual([]);
  });

  it('long-ttl: grants above 15 minutes', () => {
    const long = github(PINNED).replace('grant:\n', 'grant:\n  ttl: 16m\n');
    expect(lint({ 'p.yaml': long })).toEqual([expect.objectContaining({ rule: 'long-ttl', severity: 'warning', line: 8 })]);
    expect(rules({ 'p.yaml': github(PINNED).replace('grant:\n', 'grant:\n  ttl: 15m\n') })).toEqual([]);
  });

  it('unknown-claim: a match line on a claim the issuer never sends', () => {
    expect(lint({ 'p.yaml': github(`${PINNED}  enviroment: { exists: false }`) })).toEqual([expect.objectContaining({ rule: 'unknown-claim', line: 6 })]);
    expect(rules({ 'p.yaml': github(`${PINNED}  repo_property_team: platform`) })).toEqual([]);
    expect(rules({ 'p.yaml': 'version: 1\nissuer: https://oidc.acme.dev\nmatch: { anything: x }\ngrant: { audience: x }\n' })).toEqual([]);
  });

  describe('name-based-sub (notice): GitHub immutable subjects', () => {
    it.each([['"repo:acme/api:ref:refs/heads/main"'], ['{ glob: "repo:acme/api:*" }'], ['{ regex: "^repo:acme/api:.*" }']])('hints on %s', (matcher) => {
      const findings = lint({ 'p.yaml': github(`  sub: ${matcher}`) });
      expect(findings.map((finding) => [finding.rule, finding.severity])).toContainEqual(['name-based-sub', 'notice']);
      expect(findings.find((finding) => finding.rule === 'name-based-sub')?.message).toContain('repo:OWNER@OWNER_ID/REPO@REPO_ID');
    });

    it('is quiet for the immutable form, and applies to deny policies too (a guardrail by name misses renamed repositories)', () => {
      expect(rules({ 'p.yaml': github('  sub: { glob: "repo:acme@1200934/api@734201:*" }') })).toEqual([]);
      expect(rules({ 'g.yaml': 'version: 1\neffect: deny\nissuer: github\nmatch: { sub: "repo:evil/x:ref:refs/heads/main" }\n' })).toEqual([
        'name-based-sub',
        'exact-sub-guard',
      ]);
    });
  });

  describe('exact-sub-guard (warning): a deny or not: on a sub that carries names the CI system treats without case', () => {
    const deny = (issuer: string, sub: string) => `version: 1\neffect: deny\nissuer: ${issuer}\nmatch: { sub: ${sub} }\n`;
    const guardFindings = (files: Record<string, string>) => lint(files).filter((finding) => finding.rule === 'exact-sub-guard');

    it.each([
      ['github', '"repo:acme@1200934/api@734201:environment:production"', 'repo:Acme/API:environment:PRODUCTION'],
      ['github', '{ glob: "repo:acme@1200934/*:environment:prod*" }', 'environment'],
      ['gitlab', '{ glob: "project_path:acme/app:*" }', 'project_path:Acme/App'],
      ['github', '{ regex: "^.*:environment:production$" }', 'environment'],
      ['github', '{ regex: "^repo:acme/legacy:.*" }', 'repo:Acme/API'],
      ['github', '[{ regex: "^repo:acme/legacy:.*" }]', 'repo:Acme/API'],
      ['github', '{ regex: "(repo):acme/legacy:.*" }', 'repo:Acme/API'],
      ['github', '{ regex: ".*environment:production" }', 'environment'],
      ['github', '{ glob: "*environment:production" }', 'environment'],
      ['{ kind: forgejo, url: "https://codeberg.org/api/actions" }', '"repo:acme/api:ref:refs/heads/main"', 'repo:Acme/API'],
    ])('warns on a deny on %s sub %s', (issuer, sub, named) => {
      const [finding, ...rest] = guardFindings({ 'g.yaml': deny(issuer, sub) });
      expect(rest).toEqual([]);
      expect(finding).toMatchObject({ severity: 'warning', line: 4 });
      expect(finding?.message).toContain(named);
      expect(finding?.message).toContain('slips past this deny');
    });

    it("warns on an allow's not: on sub, alone or in a list, and names match_actor's line as such", () => {
      const not = '  sub: { not: { glob: "repo:acme@1200934/api@734201:environment:production" } }';
      expect(guardFindings({ 'p.yaml': github(`${PINNED}${not}`) })[0]?.message).toContain('slips past this not:');
      const listed = '  sub: [{ not: "repo:acme@1200934/api@734201:environment:production" }]';
      expect(guardFindings({ 'p.yaml': github(`${PINNED}${listed}`) })).toHaveLength(1);
      const actor = `${PINNED}match_actor:\n  iss: https://token.actions.githubusercontent.com\n${PINNED}${not}\n`;
      const delegated = `version: 1\nissuer: github\nmatch:\n${actor}grant:\n  audience: https://a.example\n  scopes: [artifacts:read]\n`;
      expect(guardFindings({ 'p.yaml': delegated })[0]?.message).toMatch(/^match_actor\.sub compares byte for byte/);
    });

    it("is quiet for an allow's exact or glob sub (only stricter), a deny on sub's presence, and an issuer whose sub carries no folded name", () => {
      expect(guardFindings({ 'p.yaml': github(`${PINNED}  sub: "repo:acme@1200934/api@734201:environment:production"`) })).toEqual([]);
      expect(guardFindings({ 'g.yaml': deny('github', '{ exists: false }') })).toEqual([]);
      // A deny's not: another case fails the not, so it is denied: case only widens it.
      expect(guardFindings({ 'g.yaml': deny('github', '{ not: "repo:acme/api:environment:production" }') })).toEqual([]);
      // No name in it, only a key that ends like one (subrepo:, my_environment:).
      expect(guardFindings({ 'g.yaml': deny('github', '{ glob: "subrepo:x:my_environment:y" }') })).toEqual([]);
      expect(guardFindings({ 'g.yaml': deny('https://oidc.acme.dev', '"deployer"') })).toEqual([]);
      // Names none: a custom GitHub subject of ids and the ref, a GitLab one of ids (the ref compares exactly, as it should).
      expect(guardFindings({ 'g.yaml': deny('github', '{ glob: "repository_owner_id:1200934:repository_id:734201:ref:*" }') })).toEqual([]);
      expect(guardFindings({ 'g.yaml': deny('gitlab', '{ glob: "project_id:20:ref_type:branch:ref:main" }') })).toEqual([]);
      expect(guardFindings({ 'g.yaml': 'version: 1\neffect: deny\nissuer: github\nmatch: { environment: production }\n' })).toEqual([]);
    });
  });

  it('name-based-sub (notice): a GitLab sub names the project by its path, which another project can take on gitlab.com; quiet beside the id', () => {
    const gitlab = (match: string) => `version: 1\nissuer: gitlab\nmatch:\n${match}\ngrant: { audience: x, scopes: [a:read] }\n`;
    for (const sub of ['"project_path:acme/app:ref_type:branch:ref:main"', '{ glob: "project_path:acme/*" }', '{ glob: "job_project_path:acme/app:*" }']) {
      const findings = lint({ 'p.yaml': gitlab(`  sub: ${sub}`) });
      expect(findings.map((finding) => [finding.rule, finding.severity])).toEqual([['name-based-sub', 'notice']]);
      expect(findings[0]?.message).toContain('pin project_id');
    }
    expect(rules({ 'p.yaml': gitlab('  project_id: "20"\n  sub: "project_path:acme/app:ref_type:branch:ref:main"') })).toEqual([]);
    expect(rules({ 'p.yaml': gitlab('  sub: { glob: "job_project_id:20:*" }') })).toEqual([]);
  });

  it('name-based-sub (notice): a Kubernetes sub names the service account by namespace and name, which anyone who may create one there can take; quiet beside its uid', () => {
    const kubernetes = (match: string) =>
      `version: 1\nissuer: { kind: kubernetes, url: "https://oidc.eks.eu-west-1.amazonaws.com/id/B716D3B5C1E54AB7" }\nmatch:\n${match}\ngrant: { audience: x, scopes: [a:read] }\n`;
    for (const sub of [
      '"system:serviceaccount:ci:deployer"',
      '{ glob: "system:serviceaccount:ci:*" }',
      '{ regex: "^system:serviceaccount:ci:deploy(er)?$" }',
    ]) {
      const findings = lint({ 'p.yaml': kubernetes(`  sub: ${sub}`) });
      expect(findings.map((finding) => [finding.rule, finding.severity])).toEqual([['name-based-sub', 'notice']]);
      expect(findings[0]?.message).toContain('pin /kubernetes.io/serviceaccount/uid');
    }
    const uid = '  /kubernetes.io/serviceaccount/uid: 3f9a2c1e-7b6d-4e5f-8a9b-0c1d2e3f4a5b\n';
    expect(rules({ 'p.yaml': kubernetes(`${uid}  sub: "system:serviceaccount:ci:deployer"`) })).toEqual([]);
  });

  describe('default-audience (warning): a subject_audience other relying parties receive too', () => {
    const UUID = '8d5a3a2c-3c16-4a3e-9d55-4c4d2f3e9b11';
    const policy = (issuer: string, match: string, audience: string, effect = 'allow') =>
      `version: 1\neffect: ${effect}\nissuer: ${issuer}\nsubject_audience: "${audience}"\nmatch:\n${match}\n` +
      (effect === 'allow' ? 'grant: { audience: https://a.example, scopes: [a:read] }\n' : '');
    const circleci = `{ kind: circleci, url: "https://oidc.circleci.com/org/${UUID}" }`;
    const CIRCLECI_PROJECT = '  oidc.circleci.com/project-id: 2f7c8a41-6d1e-4b8f-9c3a-0e5b7d9f1a22';
    const eks = 'https://oidc.eks.eu-west-1.amazonaws.com/id/B716D3B5C1E54AB7';
    const kubernetes = `{ kind: kubernetes, url: "${eks}" }`;
    const SERVICE_ACCOUNT = '  /kubernetes.io/serviceaccount/uid: 3f9a2c1e-7b6d-4e5f-8a9b-0c1d2e3f4a5b';
    const buildkite = '  organization_id: 0190f4a7-6b2a-4f5e-9c3d-1a2b3c4d5e6f';
    const bitbucket = '{ kind: bitbucket, url: "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc" }';
    const BITBUCKET_WORKSPACE = '  workspaceUuid: "{5a4f2c9e-1b3d-4e8f-9a7c-6d5e4f3a2b10}"';
    const forgejo = '{ kind: forgejo, url: "https://codeberg.org/api/actions" }';
    const ghes = '{ kind: github, url: "https://ghe.acme.dev/_services/token" }';

    it.each([
      ["CircleCI's organization id, the aud of $CIRCLE_OIDC_TOKEN in every job", circleci, CIRCLECI_PROJECT, UUID, 'circleci run oidc get'],
      ["the Kubernetes API server's audience", kubernetes, SERVICE_ACCOUNT, 'https://kubernetes.default.svc', 'projected'],
      ["kubeadm's API server audience", kubernetes, SERVICE_ACCOUNT, 'https://kubernetes.default.svc.cluster.local', 'projected'],
      ["the cluster's issuer, its API server's default audience", kubernetes, SERVICE_ACCOUNT, eks, 'projected'],
      ["GitHub's default, https://github.com/<owner>", 'github', PINNED.trimEnd(), 'https://github.com/acme', 'audience'],
      ["GitHub Enterprise Server's default, https://<host>/<owner>", ghes, PINNED.trimEnd(), 'https://ghe.acme.dev/acme', 'audience'],
      ["Buildkite's default, https://buildkite.com/<org-slug>", 'buildkite', buildkite, 'https://buildkite.com/acme', '--audience'],
      [
        "Bitbucket's default, the workspace's ari",
        bitbucket,
        BITBUCKET_WORKSPACE,
        'ari:cloud:bitbucket::workspace/5a4f2c9e-1b3d-4e8f-9a7c-6d5e4f3a2b10',
        'audiences',
      ],
      ["Forgejo's default, <instance>/<owner>", forgejo, '  repository_id: "42"', 'https://codeberg.org/acme', 'audience'],
      ["AWS STS's, which GitHub jobs ask for to assume a role", 'github', PINNED.trimEnd(), 'sts.amazonaws.com', 'audience'],
      ["Entra ID's token exchange audience, on GitLab", 'gitlab', '  project_id: "20"', 'api://AzureADTokenExchange', 'aud'],
      [
        "a Google Workload Identity provider's",
        'gitlab',
        '  project_id: "20"',
        '//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/ci/providers/gitlab',
        'aud',
      ],
    ])('flags %s', (_name, issuer, match, audience, advice) => {
      const findings = lint({ 'p.yaml': policy(issuer, match, audience) });
      expect(findings).toEqual([expect.objectContaining({ rule: 'default-audience', severity: 'warning', line: 4, column: 1 })]);
      expect(findings[0]?.message).toContain(audience);
      expect(findings[0]?.message).toContain(advice);
    });

    it("is quiet for keyway's own audience, the broker's issuer by default, deny policies, and Azure DevOps' fixed audience", () => {
      expect(rules({ 'p.yaml': policy(circleci, CIRCLECI_PROJECT, 'https://keyway.acme.example') })).toEqual([]);
      expect(rules({ 'p.yaml': policy(kubernetes, SERVICE_ACCOUNT, 'https://keyway.acme.example') })).toEqual([]);
      expect(rules({ 'p.yaml': policy('github', PINNED.trimEnd(), 'https://github.com/acme/keyway') })).toEqual([]);
      expect(rules({ 'p.yaml': policy('github', PINNED.trimEnd(), 'https://keyway.test').replace('subject_audience: "https://keyway.test"\n', '') })).toEqual(
        [],
      );
      expect(rules({ 'g.yaml': policy(circleci, CIRCLECI_PROJECT, UUID, 'deny') })).toEqual([]);
      const ado = '{ kind: azure-devops, url: "https://vstoken.dev.azure.com/0b2f5c4e-8f1a-4d3b-9c2e-7a6b5d4c3e21" }';
      expect(rules({ 'p.yaml': policy(ado, '  def_id: "1"', 'api://AzureADTokenExchange') })).toEqual([]);
    });

    it('loads: a warning, silenced with a reason like any other', () => {
      expect(() => loadPolicies([{ path: 'p.yaml', text: policy(circleci, CIRCLECI_PROJECT, UUID) }], OPTIONS)).not.toThrow();
      const silenced = policy(circleci, CIRCLECI_PROJECT, UUID).replace(
        'version: 1\n',
        'version: 1\nlint: { ignore: { default-audience: "no other relying party trusts this organization" } }\n',
      );
      expect(checkPolicies(compilePolicyFiles([{ path: 'p.yaml', text: silenced }], OPTIONS))).toEqual([]);
    });
  });

  it('template-claim-optional (notice): a template claim no token is sure to carry', () => {
    const withTemplates = (match: string) =>
      github(match).replace('grant:\n', 'grant:\n  subject: "{repository}:{environment}"\n  claims: { team: "{repo_property_team}" }\n');
    expect(lint({ 'p.yaml': withTemplates(PINNED) }).map((finding) => [finding.rule, finding.message.split(' reads ')[1]?.split(',')[0]])).toEqual([
      ['template-claim-optional', '{environment}'],
      ['template-claim-optional', '{repo_property_team}'],
    ]);
    expect(rules({ 'p.yaml': withTemplates(`${PINNED}  environment: production\n  repo_property_team: { exists: true }`) })).toEqual([]);
  });

  describe('silencing', () => {
    const silenced = (ignore: string) => github(`${PINNED}  workflow: Deploy`).replace('version: 1\n', `version: 1\nlint:\n  ignore:\n${ignore}`);

    it('drops a finding the policy silences with a reason', () => {
      expect(rules({ 'p.yaml': silenced('    spoofable-claim: "also pinned by workflow_ref in the org ruleset"\n') })).toEqual([]);
    });

    it('reports an ignore entry that silences nothing (unused-ignore)', () => {
      const findings = lint({ 'p.yaml': silenced('    spoofable-claim: "needed"\n    long-ttl: "releases take long"\n') });
      expect(findings).toEqual([expect.objectContaining({ rule: 'unused-ignore', line: 5, message: expect.stringContaining('long-ttl') })]);
    });

    it('refuses an unknown rule id or an empty reason at load, and never silences unused-ignore itself', () => {
      const problems = (ignore: string) => compilePolicyFiles([{ path: 'p.yaml', text: silenced(ignore) }], OPTIONS).problems.map((problem) => problem.message);
      expect(problems('    spoofable-claims: "typo"\n')).toEqual(['unknown field lint.ignore.spoofable-claims']);
      expect(problems('    spoofable-claim: "  "\n')[0]).toMatch(/say why/);
      expect(problems('    unused-ignore: "no"\n')).toEqual(['unknown field lint.ignore.unused-ignore']);
    });
  });

  it('checks disabled policies too, since they come back', () => {
    expect(rules({ 'p.yaml': github(`${PINNED}  workflow: Deploy`, '[artifacts:read]', 'disabled: true\n') })).toEqual(['spoofable-claim']);
  });

  it('checkPolicies lists load problems as invalid-policy errors first, in file order, then the lint', () => {
    const compilation = compilePolicyFiles(
      [
        { path: 'b.yaml', text: github(`${PINNED}  workflow: Deploy`) },
        { path: 'a.yaml', text: github(PINNED).replace('scopes:', 'scope:') },
      ],
      OPTIONS,
    );
    expect(checkPolicies(compilation).map((finding) => [finding.file, finding.rule, finding.severity])).toEqual([
      ['a.yaml', 'invalid-policy', 'error'],
      ['b.yaml', 'spoofable-claim', 'warning'],
    ]);
  });
});
