import { describe, expect, it } from 'vitest';
import { compilePolicyFiles, loadPolicies, PolicyLoadError, type PolicyFile, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import { checkPolicies } from '../../src/core/policy/lint/lint-policies.ts';
import { leaked, SECRET_FILES } from '../support/secret-files.ts';

const OPTIONS: PolicyLoadOptions = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: false };

const GOOD = `version: 1
issuer: github
match:
  repository_id: "734201"
grant:
  audience: https://deploy.acme.dev
  scopes: [deploy:write]
`;

function problems(files: Record<string, string>, options: Partial<PolicyLoadOptions> = {}) {
  try {
    loadPolicies(toFiles(files), { ...OPTIONS, ...options });
  } catch (error) {
    if (error instanceof PolicyLoadError) return error.problems;
    throw error;
  }
  throw new Error('expected the policies not to load');
}

function toFiles(files: Record<string, string>): PolicyFile[] {
  return Object.entries(files).map(([path, text]) => ({ path, text }));
}

describe('loading policies', () => {
  it('loads a valid file, with the id taken from its path and defaults applied', () => {
    const set = loadPolicies(toFiles({ 'deploy/prod.yaml': GOOD }), OPTIONS);
    const [policy] = set.policies;
    expect(policy).toMatchObject({
      id: 'deploy/prod',
      file: 'deploy/prod.yaml',
      effect: 'allow',
      mode: 'enforce',
      subjectAudience: 'https://keyway.test',
      issuer: { url: 'https://token.actions.githubusercontent.com' },
      grant: { audiences: ['https://deploy.acme.dev'], scopes: ['deploy:write'], ttlSeconds: 300 },
    });
    expect(set.issuer('https://token.actions.githubusercontent.com')?.preset.name).toBe('github');
    expect(set.acceptedAudiences('https://token.actions.githubusercontent.com')).toEqual(['https://keyway.test']);
  });

  it('rejects an unknown field, at its line and column, so a typo never widens a policy', () => {
    const found = problems({ 'p.yaml': GOOD.replace('  scopes:', '  scope:') });
    expect(found).toEqual([{ file: 'p.yaml', line: 7, column: 3, message: 'unknown field grant.scope' }]);
    expect(problems({ 'p.yaml': `${GOOD}matchh: {}\n` })[0]).toMatchObject({ line: 8, column: 1, message: 'unknown field matchh' });
    expect(problems({ 'p.yaml': GOOD.replace('"734201"', '{ glob: "7*", regexp: "x" }') })[0]?.message).toMatch(/matcher/);
  });

  it('rejects duplicate YAML keys, which would otherwise let a later line override an earlier one', () => {
    expect(problems({ 'p.yaml': GOOD.replace('  repository_id: "734201"', '  repository_id: "734201"\n  repository_id: "1"') })[0]?.message).toMatch(
      /unique|duplicate/i,
    );
  });

  it('rejects a match line, an actor line or a claim named __proto__, constructor or prototype, which would otherwise be dropped unread', () => {
    const message = 'a map cannot hold a key named __proto__, constructor or prototype, which would not be read';
    for (const name of ['__proto__', 'constructor', 'prototype']) {
      // Dropped, the line would leave the policy matching every token of repository 734201.
      expect(problems({ 'p.yaml': GOOD.replace('  repository_id: "734201"', `  repository_id: "734201"\n  ${name}: "x"`) })).toEqual([
        { file: 'p.yaml', line: 3, column: 1, message: `match: ${message}` },
      ]);
      const actor = GOOD.replace('grant:', `match_actor:\n  iss: https://ci.example\n  sub: orchestrator\n  ${name}: "x"\ngrant:`);
      expect(problems({ 'p.yaml': actor })).toEqual([{ file: 'p.yaml', line: 5, column: 1, message: `match_actor: ${message}` }]);
      const claims = GOOD.replace('  scopes: [deploy:write]', `  scopes: [deploy:write]\n  claims: { ${name}: "{repository}" }`);
      expect(problems({ 'p.yaml': claims })).toEqual([{ file: 'p.yaml', line: 8, column: 3, message: `grant.claims: ${message}` }]);
    }
  });

  it('reports YAML syntax errors with their position', () => {
    expect(problems({ 'p.yaml': 'version: 1\nmatch: [unclosed\n' })[0]).toMatchObject({ file: 'p.yaml', message: expect.stringMatching(/^YAML: /) });
    expect(problems({ 'p.yaml': 'version: 1\ndescription: |x\n' })).toEqual([
      { file: 'p.yaml', line: 2, column: 15, message: expect.stringMatching(/^YAML: /) },
    ]);
  });

  it('names a required field that is missing as required, not as unknown', () => {
    expect(problems({ 'p.yaml': GOOD.replace('version: 1\n', '') })).toEqual([{ file: 'p.yaml', line: 1, column: 1, message: 'version is required' }]);
  });

  it('never quotes a value it refuses: says where, what was expected and what kind of value came', () => {
    const found = problems({ 'p.yaml': GOOD.replace('  scopes: [deploy:write]', '  ttl: 600\n  scopes: deploy:write') });
    expect(found).toEqual([
      { file: 'p.yaml', line: 8, column: 3, message: 'grant.scopes: expected Array, got text of 12 characters' },
      { file: 'p.yaml', line: 7, column: 3, message: 'grant.ttl: expected string, got a number' },
    ]);
  });

  it.each([
    ['a bare issuer URL with credentials', 'issuer: https://ci:Wd4kRz8qLm2Tx6Pn@oidc.acme.dev', 'https://oidc.acme.dev/ must not carry credentials'],
    [
      "a preset's instance URL with credentials",
      'issuer: { kind: gitlab, url: "https://ci:Wd4kRz8qLm2Tx6Pn@gitlab.acme.dev" }',
      'https://gitlab.acme.dev/ must not carry credentials',
    ],
    [
      'a bare issuer URL with a query',
      'issuer: "https://oidc.acme.dev/?private_token=Wd4kRz8qLm2Tx6Pn"',
      'issuer https://oidc.acme.dev/ must not have a query or fragment',
    ],
    [
      'a bare issuer URL with a fragment',
      'issuer: "https://oidc.acme.dev/#Wd4kRz8qLm2Tx6Pn"',
      'issuer https://oidc.acme.dev/ must not have a query or fragment',
    ],
    [
      "a preset's instance URL with a query",
      'issuer: { kind: gitlab, url: "https://gitlab.acme.dev?private_token=Wd4kRz8qLm2Tx6Pn" }',
      'issuer https://gitlab.acme.dev/ must not have a query or fragment',
    ],
    ['an http issuer URL with a query', 'issuer: "http://oidc.acme.dev/?private_token=Wd4kRz8qLm2Tx6Pn"', 'http://oidc.acme.dev/ must use https'],
    [
      "a bare URL with Forgejo's path and credentials",
      'issuer: https://ci:Wd4kRz8qLm2Tx6Pn@forgejo.acme.dev/api/actions',
      'https://forgejo.acme.dev/api/actions must not carry credentials',
    ],
    [
      "a bare URL with Forgejo's path and a query",
      'issuer: "https://forgejo.acme.dev/api/actions?token=Wd4kRz8qLm2Tx6Pn"',
      'issuer https://forgejo.acme.dev/api/actions must not have a query or fragment',
    ],
    [
      "a bare URL whose query ends in Forgejo's path",
      'issuer: "https://forgejo.acme.dev/?token=Wd4kRz8qLm2Tx6Pn/api/actions"',
      'issuer https://forgejo.acme.dev/ must not have a query or fragment',
    ],
  ])('names %s without what a secret pasted into a URL would be', (_, issuer, message) => {
    const found = problems({ 'p.yaml': GOOD.replace('issuer: github', issuer) });
    expect(leaked(JSON.stringify(found), ['Wd4kRz8qLm2Tx6Pn'])).toEqual([]);
    expect(found).toEqual([{ file: 'p.yaml', line: 2, column: expect.any(Number), message }]);
  });

  // A value as large as a policy file may be: a problem or finding names the line and quotes a bounded head of it.
  const HUGE = 'x'.repeat(200_000);
  it.each([
    ['an unknown preset', `issuer: ${HUGE}`],
    ['an unknown preset as the kind', `issuer: { kind: ${HUGE} }`],
    ['an issuer that is no URL', `issuer: { kind: gitlab, url: "${HUGE}" }`],
    ['an issuer URL on http', `issuer: "http://oidc.acme.dev/${HUGE}"`],
    ['an issuer URL with a query', `issuer: "https://oidc.acme.dev/?${HUGE}"`],
    ["another preset's issuer URL", `issuer: { kind: gitlab, url: "https://token.actions.githubusercontent.com/${HUGE}" }`],
    ["an issuer URL not of the preset's shape", `issuer: { kind: github, url: "https://ghe.acme.dev/${HUGE}" }`],
    ['an issuer URL with credentials', `issuer: "https://ci:pw@oidc.acme.dev/${HUGE}"`],
    ['a self-managed path written bare', `issuer: "https://${HUGE}.acme.dev/_services/token"`],
    ['a value that can never match', 'issuer: github', `"${HUGE}"`],
    ['the same issuer with other rules', `issuer: { kind: oidc, url: "https://oidc.acme.dev/${HUGE}", max_token_age: 7m }`],
  ])('quotes a bounded head of a value as large as a policy file: %s', (_, issuer, repositoryId = '"734201"') => {
    const text = GOOD.replace('issuer: github', issuer).replace('"734201"', repositoryId);
    const other = `version: 1\nissuer: "https://oidc.acme.dev/${HUGE}"\nmatch: { sub: x }\ngrant: { audience: x }\n`;
    const found = checkPolicies(compilePolicyFiles(toFiles({ 'p.yaml': text, 'q.yaml': other }), OPTIONS));
    expect(found.length).toBeGreaterThan(0);
    for (const finding of found) expect(finding.message.length, finding.message.slice(0, 200)).toBeLessThan(2048);
  });

  it.each(Object.entries(SECRET_FILES))('names a policy file that is a link to a file of secrets (%s) and its problem, quoting none of it', (_, file) => {
    const found = problems({ 'linked.yaml': file.text });
    expect(found.length).toBeGreaterThan(0);
    for (const problem of found)
      expect(problem).toMatchObject({ file: 'linked.yaml', message: expect.stringMatching(/^(YAML: |expected |\w+ is required$|unknown field )/) });
    expect(leaked(JSON.stringify(found), file.secrets)).toEqual([]);
  });

  it('refuses an alias with no anchor before it, and aliases that expand too far, at their line: a problem, never a crash', () => {
    expect(problems({ 'p.yaml': `${GOOD}description: *nowhere\n` })).toEqual([
      { file: 'p.yaml', line: 8, column: 14, message: 'YAML: an alias (*name) names no anchor (&name) set before it' },
    ]);
    const bomb = 'a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]\n';
    expect(problems({ 'p.yaml': bomb })).toEqual([{ file: 'p.yaml', line: 2, column: 8, message: 'YAML: aliases expand to too many nodes (at most 50)' }]);
  });

  it('rejects a file holding more than one document', () => {
    expect(problems({ 'p.yaml': `${GOOD}---\n${GOOD}` })[0]?.message).toMatch(/^YAML: /);
  });

  it.each([
    ['version 2', GOOD.replace('version: 1', 'version: 2'), /version must be 1/],
    ['an allow policy without a grant', 'version: 1\nissuer: github\nmatch: { repository_id: "1" }\n', /allow policy needs a grant/],
    ['a deny policy with a grant', GOOD.replace('version: 1', 'version: 1\neffect: deny'), /deny policy has no grant/],
    ['an empty match', GOOD.replace('match:\n  repository_id: "734201"', 'match: {}'), /match needs at least one claim/],
    ['a ttl above the cap', GOOD.replace('  scopes', '  ttl: 2h\n  scopes'), /above the broker's cap/],
    ['a bad duration', GOOD.replace('  scopes', '  ttl: 10 minutes\n  scopes'), /duration/],
    ['a reserved claim', GOOD.replace('  scopes', '  claims: { aud: x }\n  scopes'), /cannot set aud/],
    ['a bad template', GOOD.replace('  scopes', '  subject: "repo:{repository"\n  scopes'), /unclosed/],
    [
      'a template placing two claims side by side',
      GOOD.replace('  scopes', '  subject: "{repository_owner}{environment}"\n  scopes'),
      /no delimiter between {repository_owner} and {environment}/,
    ],
    [
      'a template parting two claims by letters only',
      GOOD.replace('  scopes', '  claims: { x: "repo{repository}env{environment}" }\n  scopes'),
      /no delimiter between {repository} and {environment}/,
    ],
    ['a catastrophic regex', GOOD.replace('"734201"', '{ regex: "(a+)+" }'), /catastrophically/],
    [
      'a workflow_ref regex whose @ sits in a group, where it could align with an @ inside the ref',
      GOOD.replace('"734201"', '"734201"\n  workflow_ref: { regex: "(acme/api/.*@refs/heads/main)" }'),
      /^regex \(acme\/api\/.\*@refs\/heads\/main\) writes @ only inside a group or class/,
    ],
    ['an unknown preset', GOOD.replace('issuer: github', 'issuer: jenkins'), /unknown issuer preset/],
    ['an http issuer', GOOD.replace('issuer: github', 'issuer: http://ci.example.com'), /must use https/],
    ['a loopback http issuer without the development flag', GOOD.replace('issuer: github', 'issuer: http://127.0.0.1:9000'), /KEYWAY_ALLOW_HTTP_LOOPBACK/],
    ['an issuer with a query', GOOD.replace('issuer: github', 'issuer: "https://ci.example.com/?a=b"'), /query or fragment/],
    // The URL parser drops an empty query or fragment; the written issuer, which iss must equal, still has it.
    ['an issuer with an empty query', GOOD.replace('issuer: github', 'issuer: "https://ci.example.com/?"'), /query or fragment/],
    ['an issuer with an empty fragment', GOOD.replace('issuer: github', 'issuer: "https://ci.example.com/#"'), /query or fragment/],
    ['a scope with a space', GOOD.replace('[deploy:write]', '["deploy write"]'), /scope/],
    [
      'a match written as a list (it would read as claims named 0, 1, …)',
      GOOD.replace('match:\n  repository_id: "734201"', 'match: ["734201"]'),
      /match: expected a map/,
    ],
    ['grant.claims written as a list', GOOD.replace('  scopes', '  claims: ["{repository}"]\n  scopes'), /grant.claims: expected a map/],
    [
      'require_dpop beside a GitHub token, which cannot be bound to a key',
      GOOD.replace('  scopes', '  require_dpop: true\n  github: { repositories: [acme/api], permissions: { contents: read } }\n  scopes'),
      /require_dpop cannot go with grant.github/,
    ],
    [
      'require_dpop beside a cloud token, which the cloud would not check',
      GOOD.replace('  scopes', '  require_dpop: true\n  cloud: { provider: aws, roles: [arn:aws:iam::123456789012:role/deploy] }\n  scopes'),
      /require_dpop cannot go with grant.github or grant.cloud/,
    ],
  ])('rejects %s', (_name, text, message) => {
    expect(problems({ 'p.yaml': text })[0]?.message).toMatch(message);
  });

  it('takes a ttl equal to the broker’s cap, and refuses one a second or a minute over it', () => {
    const withTtl = (ttl: string) => ({ 'p.yaml': GOOD.replace('  scopes', `  ttl: ${ttl}\n  scopes`) });
    expect(loadPolicies(toFiles(withTtl('1h')), OPTIONS).policies[0]?.grant?.ttlSeconds).toBe(3600);
    expect(problems(withTtl('61m'))[0]?.message).toMatch(/above the broker's cap of 3600s/);
    expect(problems(withTtl('3601s'))[0]?.message).toMatch(/above the broker's cap of 3600s/);
  });

  // The token's own claims, and those a reader takes for delegation, binding or sign-in strength: a policy that set one
  // would mint a token that says something keyway never decided (an act naming an actor no actor_token proved).
  it.each([
    'iss',
    'sub',
    'aud',
    'exp',
    'nbf',
    'iat',
    'jti',
    'client_id',
    'scope',
    'src_iss',
    'src_sub',
    'src_jti',
    'src_kid',
    'cnf',
    'act',
    'may_act',
    'https://aws.amazon.com/tags',
    'auth_time',
    'acr',
    'amr',
  ])('refuses grant.claims setting %s, which keyway sets or a reader trusts', (name) => {
    const messages = problems({ 'p.yaml': GOOD.replace('  scopes', `  claims: { "${name}": "{repository}" }\n  scopes`) }).map((problem) => problem.message);
    expect(messages).toContain(`grant.claims cannot set ${name}: keyway sets it`);
  });

  it('accepts a loopback http issuer when the operator allows it for development', () => {
    const set = loadPolicies(toFiles({ 'p.yaml': GOOD.replace('issuer: github', 'issuer: http://127.0.0.1:9000') }), { ...OPTIONS, allowHttpLoopback: true });
    expect(set.policies[0]?.issuer.url).toBe('http://127.0.0.1:9000');
  });

  it('keeps an issuer URL exactly as written, trailing slash and all', () => {
    const aks = 'https://westeurope.oic.prod-aks.azure.com/9e8d7c6b-5a4f-4e3d-a2c1-b0a9f8e7d6c5/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/';
    const set = loadPolicies(toFiles({ 'p.yaml': GOOD.replace('issuer: github', `issuer: "${aks}"`) }), OPTIONS);
    expect(set.issuer(aks)).toBeDefined();
    expect(set.issuer(aks.slice(0, -1))).toBeUndefined();
  });

  it('gives a preset instance URL the preset rules', () => {
    const gitlab = GOOD.replace('issuer: github', 'issuer: { kind: gitlab, url: "https://gitlab.acme.dev" }').replace('repository_id', 'project_id');
    const set = loadPolicies(toFiles({ 'p.yaml': gitlab }), OPTIONS);
    expect(set.issuer('https://gitlab.acme.dev')?.preset.requiredClaims).toContain('job_id');
  });

  it('reads grant.require_dpop, off unless set', () => {
    const [plain, bound] = ['', '  require_dpop: true\n'].map((line) =>
      loadPolicies(toFiles({ 'p.yaml': GOOD.replace('  scopes', `${line}  scopes`) }), OPTIONS),
    );
    expect(plain?.policies[0]?.grant?.requireDpop).toBe(false);
    expect(bound?.policies[0]?.grant?.requireDpop).toBe(true);
  });

  it.each([
    ['no iss', 'match_actor: { sub: deploy-orchestrator }'],
    ['an iss glob', 'match_actor: { iss: { glob: "https://*" }, sub: deploy-orchestrator }'],
    ['an iss regex', 'match_actor: { iss: { regex: "^https://token\\\\.actions" }, sub: deploy-orchestrator }'],
  ])('rejects match_actor with %s: the actor may come from any trusted issuer, whose tokens can carry the same sub', (_, line) => {
    const found = problems({ 'p.yaml': GOOD.replace('grant:', `${line}\ngrant:`) });
    expect(found.map((problem) => problem.message).join('\n')).toMatch(/match_actor needs iss/);
  });

  it('loads match_actor that names the actor issuer exactly, one or a list', () => {
    for (const iss of ['https://token.actions.githubusercontent.com', '[https://token.actions.githubusercontent.com, https://gitlab.com]']) {
      const set = loadPolicies(
        toFiles({ 'p.yaml': GOOD.replace('grant:', `match_actor: { iss: ${iss}, sub: "repo:acme/orchestrator:ref:refs/heads/main" }\ngrant:`) }),
        OPTIONS,
      );
      expect(set.policies[0]?.actorConditions?.map((condition) => condition.key)).toEqual(['iss', 'sub']);
    }
  });

  it('folds match_actor as the preset of each issuer iss names that the set trusts, a later file’s too, and refuses a line they fold differently', () => {
    const GITHUB = 'https://token.actions.githubusercontent.com';
    const onGitLab = (text: string) => text.replace('issuer: github', 'issuer: gitlab').replace('repository_id: "734201"', 'project_id: "42"');
    const actorOf = (iss: string, lines: string) =>
      onGitLab(GOOD).replace('grant:', `match_actor:\n  iss: ${iss}\n  repository_owner_id: "1200934"\n  ${lines}\ngrant:`);
    const actorLines = (files: Record<string, string>) => loadPolicies(toFiles(files), OPTIONS).policies.find((policy) => policy.id === 'a')?.actorConditions;
    // GitHub is trusted by b.yaml, compiled after a.yaml.
    const folded = actorLines({
      'a.yaml': actorOf(GITHUB, 'repository: acme/Orchestrator\n  job_workflow_ref: "acme/o/d.yml@refs/heads/main"'),
      'b.yaml': GOOD,
    });
    expect(folded?.map((line) => [line.key, line.fold])).toEqual([
      ['iss', 'exact'],
      ['repository_owner_id', 'exact'],
      ['repository', 'whole'],
      ['job_workflow_ref', 'before-@'],
    ]);
    expect(folded?.[2]?.matcher.test('acme/orchestrator')).toBe(true);
    expect(folded?.[3]?.matcher.test('ACME/O/d.yml@refs/heads/main')).toBe(true);
    expect(folded?.[3]?.matcher.test('acme/o/d.yml@refs/heads/MAIN')).toBe(false);
    // An issuer no file trusts verifies no actor token: its lines compare exactly, as they did.
    const exact = actorLines({ 'a.yaml': actorOf(GITHUB, 'repository: acme/Orchestrator\n  job_workflow_ref: "acme/o/d.yml@refs/heads/main"') });
    expect(exact?.map((line) => line.fold)).toEqual(['exact', 'exact', 'exact', 'split-@']);
    // Both send environment: GitHub without case, GitLab exactly.
    const mixed = problems({ 'a.yaml': actorOf(`[${GITHUB}, https://gitlab.com]`, 'environment: Production'), 'b.yaml': GOOD });
    expect(mixed.map((problem) => problem.message)).toEqual([
      `match_actor.environment: the issuers iss names compare it differently (${GITHUB} without case, https://gitlab.com exactly): write a policy for each`,
    ]);
  });

  it('folds a match_actor line by the issuers iss names whose tokens may carry the claim: one that never sends it cannot disagree', () => {
    const GITHUB = 'https://token.actions.githubusercontent.com';
    const FORGEJO = 'https://codeberg.org/api/actions';
    const forgejo = GOOD.replace('issuer: github', `issuer: { kind: forgejo, url: "${FORGEJO}" }`);
    const guardrail = (lines: string) =>
      `version: 1\neffect: deny\nissuer: github\nmatch:\n  sub: { exists: true }\nmatch_actor:\n  iss: [${GITHUB}, ${FORGEJO}]\n  ${lines}\n`;
    // Forgejo sends no environment nor job_workflow_ref: GitHub's folding holds, for its actors, and the policy loads.
    const set = loadPolicies(
      toFiles({ 'a.yaml': GOOD, 'f.yaml': forgejo, 'g.yaml': guardrail('environment: Production\n  job_workflow_ref: "acme/o/d.yml@refs/heads/main"') }),
      OPTIONS,
    );
    const lines = set.policies.find((policy) => policy.id === 'g')?.actorConditions;
    expect(lines?.map((line) => [line.key, line.fold])).toEqual([
      ['iss', 'exact'],
      ['environment', 'whole'],
      ['job_workflow_ref', 'before-@'],
    ]);
    expect(lines?.[1]?.matcher.test('production')).toBe(true);
    // Both send actor, and fold it alike; both send workflow_ref, each before its @.
    expect(loadPolicies(toFiles({ 'a.yaml': GOOD, 'f.yaml': forgejo, 'g.yaml': guardrail('actor: Mallory') }), OPTIONS).policies).toHaveLength(3);
  });

  it('refuses a match_actor iss that spells a trusted issuer otherwise: no actor token names it, so a deny would hold none', () => {
    const GITHUB = 'https://token.actions.githubusercontent.com';
    const guardrail = (iss: string) => `version: 1
effect: deny
issuer: github
match:
  sub: { exists: true }
match_actor:
  iss: ${iss}
  repository: acme/orchestrator
`;
    for (const iss of [
      `${GITHUB}/`,
      'HTTPS://Token.Actions.GitHubUserContent.com',
      'https://token.actions.githubusercontent.com:443',
      `[https://gitlab.com, ${GITHUB}//]`,
    ]) {
      const found = problems({ 'a.yaml': GOOD, 'g.yaml': guardrail(iss) });
      expect(found.map((problem) => [problem.file, problem.message])).toEqual([
        [
          'g.yaml',
          expect.stringContaining(
            `match_actor.iss: ${iss.replace(/^\[https:\/\/gitlab\.com, /, '').replace(/\]$/, '')} is not how its issuer's tokens name it: they say ${GITHUB}`,
          ),
        ],
      ]);
    }
    // The issuer's own spelling, and one the set does not trust (a repository's own policies name the central set's issuers), load.
    for (const iss of [GITHUB, 'https://gitlab.example.com']) {
      expect(loadPolicies(toFiles({ 'a.yaml': GOOD, 'g.yaml': guardrail(iss) }), OPTIONS).policies).toHaveLength(2);
    }
  });

  it('reads a GitHub sub, and a match_actor sub, at the @ that ends its workflow ref’s names; a deny’s as wide as written', () => {
    const GITHUB = 'https://token.actions.githubusercontent.com';
    // Either field GitHub joins names to a ref in: the caller's workflow_ref, the job's job_workflow_ref.
    for (const field of ['job_workflow_ref', 'workflow_ref']) {
      const PINNED = `{ glob: "repo:acme/app:${field}:acme/w/**@refs/heads/main" }`;
      const MAIN = `repo:acme/app:${field}:acme/w/.github/workflows/d.yml@refs/heads/main`;
      const SMUGGLED = `repo:acme/app:${field}:acme/w/.github/workflows/d.yml@refs/heads/x@refs/heads/main`;
      const lines = `  sub: ${PINNED}\nmatch_actor: { iss: ${GITHUB}, sub: ${PINNED} }\n`;
      const policy = (effect: string) =>
        effect === 'allow' ? GOOD.replace('grant:', `${lines}grant:`) : `version: 1\neffect: deny\nissuer: github\nmatch:\n${lines}`;
      const subLines = (effect: string) => {
        const [found] = loadPolicies(toFiles({ 'p.yaml': policy(effect) }), OPTIONS).policies;
        return [found?.conditions.find((line) => line.key === 'sub'), found?.actorConditions?.find((line) => line.key === 'sub')];
      };
      for (const line of subLines('allow')) {
        expect(line?.matcher.test(MAIN)).toBe(true);
        expect(line?.matcher.test(SMUGGLED)).toBe(false);
      }
      for (const line of subLines('deny')) expect(line?.matcher.test(SMUGGLED)).toBe(true);
    }
  });

  it('rejects two policies with one id', () => {
    expect(
      problems({ 'a.yaml': GOOD.replace('version: 1', 'version: 1\nid: same'), 'b.yaml': GOOD.replace('version: 1', 'version: 1\nid: same') })[0]?.message,
    ).toMatch(/also used by a.yaml/);
  });

  it('reports every problem in every file at once', () => {
    const found = problems({ 'a.yaml': GOOD.replace('version: 1', 'version: 3'), 'b.yaml': GOOD.replace('issuer: github', 'issuer: nope') });
    expect(found.map((problem) => problem.file)).toEqual(['a.yaml', 'b.yaml']);
    // File by file, a policy's own problems (compiled once every file's issuer is known) among them.
    const compiledLate = problems({
      'a.yaml': GOOD.replace('repository_id: "734201"', 'repository_id: "x"'),
      'b.yaml': GOOD.replace('version: 1', 'version: 3'),
    });
    expect(compiledLate.map((problem) => problem.file)).toEqual(['a.yaml', 'b.yaml']);
  });

  it('keeps disabled policies and dev-issuer policies out of decisions, and says why', () => {
    const set = loadPolicies(
      toFiles({
        'off.yaml': GOOD.replace('version: 1', 'version: 1\ndisabled: true'),
        'dev.yaml': GOOD.replace('issuer: github', 'issuer: dev'),
        'on.yaml': GOOD,
      }),
      OPTIONS,
    );
    expect(set.policies.map((policy) => policy.id)).toEqual(['on']);
    expect(set.inactive.map((policy) => [policy.id, policy.why])).toEqual([
      ['dev', expect.stringMatching(/development issuer is off/)],
      ['off', 'disabled: true'],
    ]);
  });

  it('resolves the dev issuer only when the development issuer is on', () => {
    const set = loadPolicies(toFiles({ 'dev.yaml': GOOD.replace('issuer: github', 'issuer: dev') }), {
      ...OPTIONS,
      devIssuerUrl: 'http://127.0.0.1:8787/dev-issuer',
    });
    expect(set.policies[0]?.issuer).toMatchObject({ url: 'http://127.0.0.1:8787/dev-issuer', preset: { name: 'dev' } });
  });

  describe('the template rule', () => {
    const withSubject = (subject: string, issuer = 'github') =>
      GOOD.replace('issuer: github', `issuer: ${issuer}`).replace('  scopes', `  subject: "${subject}"\n  scopes`);

    it('refuses at load a claim the issuer never sends: a typo that would otherwise deny at run time', () => {
      expect(problems({ 'p.yaml': withSubject('{enviroment}') })).toEqual([
        { file: 'p.yaml', line: 7, column: 3, message: 'grant.subject reads {enviroment}, a claim github tokens never carry (a typo?)' },
      ]);
      expect(problems({ 'p.yaml': GOOD.replace('  scopes', '  claims: { team: "{/repo_propery_team}" }\n  scopes') })[0]?.message).toMatch(
        /grant.claims.team reads \{\/repo_propery_team\}/,
      );
    });

    it("takes a claim named by a documented prefix from its start only: Buildkite's agent_tag:<NAME>", () => {
      const buildkite = (subject: string) =>
        withSubject(subject, 'buildkite').replace('repository_id: "734201"', 'organization_id: 0184990a-4776-4e4f-b0a0-2f9bd7a4d6ec');
      expect(loadPolicies(toFiles({ 'p.yaml': buildkite('{agent_tag:queue}') }), OPTIONS).policies).toHaveLength(1);
      expect(problems({ 'p.yaml': buildkite('{my_agent_tag:queue}') })[0]?.message).toMatch(
        /reads \{my_agent_tag:queue\}, a claim buildkite tokens never carry/,
      );
    });

    it('refuses at load a claim that is always a list or an object', () => {
      const gitlab = withSubject('{groups_direct}', 'gitlab').replace('repository_id', 'project_id');
      expect(problems({ 'p.yaml': gitlab })[0]?.message).toMatch(/groups_direct}, which gitlab sends as a list or object/);
    });

    it('accepts claims the issuer documents, families like repo_property_*, and anything for an open-ended issuer', () => {
      expect(() => loadPolicies(toFiles({ 'p.yaml': withSubject('{repository}:{environment}:{repo_property_team}') }), OPTIONS)).not.toThrow();
      expect(() =>
        loadPolicies(toFiles({ 'p.yaml': withSubject('{anything}', 'https://oidc.acme.dev').replace('repository_id', 'sub') }), OPTIONS),
      ).not.toThrow();
    });
  });

  it("refuses a top-level claim spelt as a JSON Pointer, which would skip its issuer's case folding and formats", () => {
    // As a deny guardrail, `/repository: Acme/Legacy` would compare byte for byte and let acme/legacy through.
    const guard = 'version: 1\neffect: deny\nissuer: github\nmatch:\n  /repository: Acme/Legacy\n';
    expect(problems({ 'guard.yaml': guard })).toEqual([
      {
        file: 'guard.yaml',
        line: 5,
        column: 3,
        message: "match./repository: write it as repository: a JSON Pointer to a top-level claim skips github's rules for it (case folding, formats)",
      },
    ]);
    expect(problems({ 'p.yaml': GOOD.replace('repository_id', '/repository_id') })[0]?.message).toMatch(/^match\.\/repository_id: write it as repository_id:/);
    // A name holding "/" can be written plainly too; only one starting with "/" needs a pointer, as do nested claims.
    expect(problems({ 'p.yaml': GOOD.replace('issuer: github', 'issuer: https://oidc.acme.dev').replace('repository_id', '/a~1b') })[0]?.message).toMatch(
      /write it as a\/b:/,
    );
    const open = (key: string) => GOOD.replace('issuer: github', 'issuer: https://oidc.acme.dev').replace('repository_id', key);
    expect(() => loadPolicies(toFiles({ 'p.yaml': open('/~1rooted') }), OPTIONS)).not.toThrow();
    expect(() => loadPolicies(toFiles({ 'p.yaml': open('/kubernetes.io/namespace') }), OPTIONS)).not.toThrow();
  });

  it('compiles disabled policies too, so a broken one cannot hide until it is switched back on', () => {
    expect(problems({ 'p.yaml': GOOD.replace('version: 1', 'version: 1\ndisabled: true').replace('"734201"', '{ regex: "(a+)+" }') })[0]?.message).toMatch(
      /catastrophically/,
    );
  });
});
