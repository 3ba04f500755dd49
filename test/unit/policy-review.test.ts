import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import type { Reason } from '../../src/core/errors/reasons.ts';
import { readGitHubWebhookSettings } from '../../src/features/github/webhooks/webhook-settings.ts';
import { loadPolicies, type PolicyFile } from '../../src/core/policy/load-policies.ts';
import { replayImpact } from '../../src/features/github/repository-policies/replay-impact.ts';
import { loadRepositoryPolicies, repositoryPolicyRules } from '../../src/features/github/repository-policies/repository-policies.ts';
import { readRepositoryPolicySettings } from '../../src/features/github/repository-policies/repository-policy-settings.ts';
import { PolicyLoadError } from '../../src/core/policy/load-policies.ts';
import { CHECK_RUN_LIMITS, reviewPolicyChange } from '../../src/features/github/repository-policies/review-policy-change.ts';
import { ALL_SECRETS, leaked, SECRET_FILES } from '../support/secret-files.ts';

const GITHUB = 'https://token.actions.githubusercontent.com';
const BROKER = 'https://keyway.test';
const OPTIONS = { brokerIssuer: BROKER, maxTtlSeconds: 3600, allowHttpLoopback: false };

const deploy = (environments: string): PolicyFile => ({
  path: 'deploy.yaml',
  text: `version: 1\nissuer: github\nmatch:\n  repository_id: "1"\n  environment: ${environments}\n  runner_environment: github-hosted\n  ref_protected: "true"\ngrant:\n  audience: https://deploy.example\n  scopes: [deploy:read, deploy:write]\n`,
});
const guard: PolicyFile = { path: 'guard.yaml', text: 'version: 1\neffect: deny\nissuer: github\nmatch:\n  event_name: [pull_request_target, workflow_run]\n' };

let counter = 0;
/** An audit record as the exchange writes one for a verified GitHub token. */
function audited(reason: Reason, claims: Record<string, unknown>, request: { scope?: string[] } = {}): AuditEvent {
  counter += 1;
  const verified = reason !== 'token_expired' && reason !== 'issuer_untrusted';
  return {
    id: `01JTEST${String(counter).padStart(19, '0')}`,
    time: new Date(Date.UTC(2026, 10, 20, 10, counter)).toISOString(),
    decision: reason === 'granted' ? 'granted' : 'denied',
    reason,
    request: { id: `r${counter}`, audience: ['https://deploy.example'], ...(request.scope === undefined ? {} : { scope: request.scope }) },
    subject_token: { sha256: 'ab'.repeat(32) },
    ...(verified
      ? {
          issuer: GITHUB,
          subject: `repo:acme/api:environment:${String(claims['environment'])}`,
          claims: {
            repository: 'acme/api',
            repository_id: '1',
            repository_owner_id: '9',
            ref: 'refs/heads/main',
            run_id: '5',
            runner_environment: 'github-hosted',
            ref_protected: 'true',
            event_name: 'push',
            ...claims,
          },
        }
      : {}),
  };
}

const base = loadPolicies([deploy('production'), guard], OPTIONS);

describe('replayImpact', () => {
  const events = [
    audited('granted', { environment: 'production' }),
    audited('granted', { environment: 'production' }),
    audited('granted', { environment: 'production' }, { scope: ['deploy:read'] }),
    audited('no_policy_matched', { environment: 'staging' }),
    audited('no_policy_matched', { environment: 'staging' }),
    audited('denied_by_policy', { environment: 'staging', event_name: 'pull_request_target' }),
    audited('scope_not_granted', { environment: 'production' }, { scope: ['admin'] }),
    // Refused before any policy: a replay under any set changes nothing.
    audited('token_expired', {}),
    audited('replayed', { environment: 'staging' }),
    audited('issuer_untrusted', {}),
  ];

  it('counts what a proposed set newly allows and newly denies, on the claims the records kept', () => {
    const proposed = loadPolicies([deploy('staging'), guard], OPTIONS);
    const impact = replayImpact(proposed, events, BROKER);
    expect(impact).toMatchObject({ replayed: 7, skipped: 3, newlyAllowed: 2, newlyDenied: 3 });
    expect(impact.examples.allowed.map((example) => [example.was, example.now, example.policy])).toEqual([
      ['no_policy_matched', 'granted', 'deploy'],
      ['no_policy_matched', 'granted', 'deploy'],
    ]);
    expect(impact.examples.denied.map((example) => example.now)).toEqual(['no_policy_matched', 'no_policy_matched', 'no_policy_matched']);
    // The guardrail still holds for the staging attempt from pull_request_target, and the scope refusal stays refused.
    expect(impact.examples.allowed.map((example) => example.event_id)).not.toContain(events[5]!.id);
  });

  it('changes nothing under the same set, and denies everything under an empty one', () => {
    expect(replayImpact(base, events, BROKER)).toMatchObject({ replayed: 7, newlyAllowed: 0, newlyDenied: 0 });
    const empty = loadPolicies([], OPTIONS);
    const impact = replayImpact(empty, events, BROKER);
    expect(impact).toMatchObject({ newlyAllowed: 0, newlyDenied: 3 });
    expect(impact.examples.denied.every((example) => example.now === 'issuer_untrusted')).toBe(true);
  });

  it('keeps at most 10 examples of each, and counts them all', () => {
    const many = Array.from({ length: 25 }, () => audited('no_policy_matched', { environment: 'staging' }));
    const impact = replayImpact(loadPolicies([deploy('staging')], OPTIONS), many, BROKER);
    expect(impact.newlyAllowed).toBe(25);
    expect(impact.examples.allowed).toHaveLength(10);
  });
});

describe('reviewPolicyChange', () => {
  it('passes a change that loads, with the impact as title and the access diff in the summary', () => {
    const review = reviewPolicyChange({
      base: [deploy('production'), guard],
      proposed: [deploy('[production, staging]'), guard],
      events: [audited('no_policy_matched', { environment: 'staging' })],
      loadOptions: OPTIONS,
      directory: 'policies',
    });
    expect(review.conclusion).toBe('success');
    expect(review.output.title).toBe('would newly allow 1, newly deny 0; 1 policy widens access');
    expect(review.output.summary).toContain('| `deploy` | **widened** |');
    expect(review.output.summary).toContain('#### Lint of `policies`: 0 errors');
  });

  it('names in its title and headline a policy changed in a way no direction can be proven of, as it names one that widens', () => {
    const review = reviewPolicyChange({
      base: [deploy('{ regex: "prod-[a-z]+" }'), guard],
      proposed: [deploy('{ regex: ".+" }'), guard],
      events: [],
      loadOptions: OPTIONS,
      directory: 'policies',
    });
    expect(review.output.title).toBe('would newly allow 0, newly deny 0; 1 policy changes access in a way keyway cannot rank');
    expect(review.output.summary).toContain('**1 policy changes access in a way keyway cannot rank.**');
    expect(review.output.summary).toContain('| `deploy` | **changed** |');
  });

  it("shows a policy's widening whatever a large edit of a policy before it in the change tries: each policy tries lists of its own", () => {
    const globs = (prefix: string, n: number, last: readonly string[] = []): string =>
      JSON.stringify([...Array.from({ length: n }, (_, i) => `${prefix}${i}-*`), ...last].map((glob) => ({ glob })));
    // A guardrail's 140 globs, each tried against the 141 that replace them, the last of which includes it: 19,880 tries to rank.
    const block = (line: string): PolicyFile => ({ path: 'block.yaml', text: guard.text.replace('[pull_request_target, workflow_run]', line) });
    const review = reviewPolicyChange({
      base: [block(globs('e', 140)), deploy(globs('prod', 20))],
      proposed: [block(globs('f', 140, ['e*'])), deploy(globs('prod', 20, ['stag-*']))],
      events: [],
      loadOptions: OPTIONS,
      directory: 'policies',
    });
    expect(review.output.title).toBe('would newly allow 0, newly deny 0; 1 policy widens access');
    expect(review.output.summary).toContain('| `block` | **narrowed** |');
    expect(review.output.summary).toContain('| `deploy` | **widened** |');
  });

  it("fails a change that does not load, with an annotation on each problem's line, and shows a failed switch", () => {
    const broken = { path: 'deploy.yaml', text: deploy('production').text.replace('  scopes:', '  scope:') };
    const review = reviewPolicyChange({
      base: [deploy('production')],
      proposed: [broken, guard],
      events: [],
      loadOptions: OPTIONS,
      directory: 'config/keyway',
      lastSwitch: {
        ok: false,
        at: '2026-11-23T10:00:00.000Z',
        policies: 1,
        source: 'github acme/policies@abc',
        problems: ['deploy.yaml:10:3 unknown field grant.scope'],
      },
    });
    expect(review.conclusion).toBe('failure');
    expect(review.impact).toBeUndefined();
    expect(review.output.annotations).toContainEqual(
      expect.objectContaining({ path: 'config/keyway/deploy.yaml', start_line: 10, end_line: 10, annotation_level: 'failure', title: 'keyway invalid-policy' }),
    );
    expect(review.output.summary).toContain('**The live policy set did not switch** at 2026-11-23T10:00:00.000Z (github acme/policies@abc)');
  });

  it("shows what a pull request's author wrote as text: a backtick cannot close its code span, nor a name or message add Markdown or HTML", () => {
    // A value that would close `…` early and put an image, a link and bold text in the check run; an unknown field named as HTML.
    const forged = '"x` ![ok](https://example.test/p.png) **no policy widens access** `y"';
    const proposed = { path: 'deploy.yaml', text: deploy(forged).text.replace('  scopes:', '  "<img src=x>":') };
    const review = reviewPolicyChange({
      base: [deploy('production'), guard],
      proposed: [deploy(forged), guard],
      events: [],
      loadOptions: OPTIONS,
      directory: 'policies',
    });
    const broken = reviewPolicyChange({ base: [deploy('production')], proposed: [proposed], events: [], loadOptions: OPTIONS, directory: 'policies' });
    for (const { output } of [review, broken]) {
      // Outside code spans, nothing of the value is Markdown: every backtick-delimited span holds the value whole.
      const outside = output.summary.replace(/(`+) ?[^`](?:.*?[^`])? ?\1/g, '');
      expect(outside).not.toContain('![ok]');
      expect(outside).not.toContain('**no policy widens access**');
      expect(outside).not.toMatch(/(?<!\\)<img/);
    }
    expect(review.output.summary).toContain('``match.environment: "production" → "x` ![ok](https://example.test/p.png) **no policy widens access** `y"``');
    expect(broken.output.summary).toContain('\\<img src=x\\>');
  });

  it('quotes nothing in the check run of a policy file holding secrets (a file of another copied in): it names the file, line and problem', () => {
    const secretFiles = Object.entries(SECRET_FILES).map(([name, file]) => ({ path: `copied${name}.yaml`, text: file.text }));
    const review = reviewPolicyChange({
      base: [deploy('production')],
      proposed: [deploy('production'), ...secretFiles],
      events: [],
      loadOptions: OPTIONS,
      directory: 'policies',
    });
    expect(leaked(JSON.stringify(review.output), ALL_SECRETS)).toEqual([]);
    expect(review.conclusion).toBe('failure');
    for (const { path } of secretFiles)
      expect(review.output.annotations).toContainEqual(expect.objectContaining({ path: `policies/${path}`, title: 'keyway invalid-policy' }));
    expect(review.output.annotations).toContainEqual(
      expect.objectContaining({ path: 'policies/copied.env.yaml', message: expect.stringMatching(/^expected Object, got text of \d+ characters/) }),
    );
  });

  it('held to POLICY_REVIEW_LIMITS, refuses a change past them with none of it compiled, and reviews one within them', () => {
    /** A list of `n` regexes, the last `last`. */
    const regexes = (n: number, last: string) =>
      `[${[...Array.from({ length: n - 1 }, (_, k) => `e-${k}`), last].map((regex) => `{ regex: "${regex}" }`).join(', ')}]`;
    const change = { events: undefined, loadOptions: OPTIONS, directory: 'policies' };
    const proposed = [deploy(regexes(130, '(a+)+'))];
    const past = reviewPolicyChange({ ...change, base: [deploy('production')], proposed, limited: 'either side' });
    expect(past).toEqual({
      conclusion: 'failure',
      output: expect.objectContaining({ title: 'too large to review: the proposed policies hold 130 regexes, at most 128', annotations: [] }),
    });
    // Beyond a base that holds as many, it is reviewed: compiled, its last regex is refused.
    const within = reviewPolicyChange({ ...change, base: [deploy(regexes(130, 'e-x'))], proposed, limited: 'beyond the base' });
    expect(within.output.title).toBe('1 error: the proposed policies do not load');
    expect(within.output.summary).toContain('can backtrack catastrophically');
  });

  it("keeps to GitHub's limits: at most 50 annotations, a bounded summary", () => {
    const files = Array.from({ length: 60 }, (_, i) => ({
      path: `p${i}.yaml`,
      text: 'version: 1\nissuer: github\nmatch: { repository_id: "1" }\ngrant: { audience: x, nonsense: 1 }\n',
    }));
    const review = reviewPolicyChange({ base: [], proposed: files, events: [], loadOptions: OPTIONS, directory: 'policies' });
    expect(review.output.annotations).toHaveLength(CHECK_RUN_LIMITS.annotations);
    expect(review.output.summary.length).toBeLessThanOrEqual(CHECK_RUN_LIMITS.summaryChars);
    expect(review.output.summary).toMatch(/Annotations show the first 50 of \d+ findings/);
  });
});

describe('readGitHubWebhookSettings', () => {
  const secret = 'x'.repeat(32);
  it('is off without a secret, and refuses a policy repository without one', () => {
    expect(readGitHubWebhookSettings({})).toBeUndefined();
    expect(() => readGitHubWebhookSettings({ KEYWAY_GITHUB_POLICY_REPOSITORY: 'acme/policies' })).toThrow(/needs KEYWAY_GITHUB_WEBHOOK_SECRET/);
  });
  it('reads the repository, path and branch, and refuses what is not one', () => {
    expect(
      readGitHubWebhookSettings({
        KEYWAY_GITHUB_WEBHOOK_SECRET: secret,
        KEYWAY_GITHUB_POLICY_REPOSITORY: 'acme/policies',
        KEYWAY_GITHUB_POLICY_REPOSITORY_ID: '4242',
        KEYWAY_GITHUB_POLICY_PATH: 'config/keyway',
        KEYWAY_GITHUB_POLICY_BRANCH: 'release',
      }),
    ).toEqual({
      secret,
      policyRepository: { owner: 'acme', name: 'policies', id: 4242 },
      policyPath: 'config/keyway',
      policyBranch: 'release',
      appSecrets: {},
    });
    expect(readGitHubWebhookSettings({ KEYWAY_GITHUB_WEBHOOK_SECRET: secret })).toMatchObject({
      policyRepository: undefined,
      policyPath: 'policies',
      policyBranch: undefined,
    });
    expect(() => readGitHubWebhookSettings({ KEYWAY_GITHUB_WEBHOOK_SECRET: 'short' })).toThrow(/at least 20/);
    for (const repository of ['acme', 'acme/policies/x', '../x', 'acme/pol icies'])
      expect(() => readGitHubWebhookSettings({ KEYWAY_GITHUB_WEBHOOK_SECRET: secret, KEYWAY_GITHUB_POLICY_REPOSITORY: repository })).toThrow(/owner\/name/);
    // The name alone would follow a repository re-created under it: the id GitHub never reuses is required.
    expect(() => readGitHubWebhookSettings({ KEYWAY_GITHUB_WEBHOOK_SECRET: secret, KEYWAY_GITHUB_POLICY_REPOSITORY: 'acme/policies' })).toThrow(
      /needs KEYWAY_GITHUB_POLICY_REPOSITORY_ID/,
    );
    for (const id of ['0', '-1', '12a', '1e3', ' 42', '99999999999999999'])
      expect(() =>
        readGitHubWebhookSettings({
          KEYWAY_GITHUB_WEBHOOK_SECRET: secret,
          KEYWAY_GITHUB_POLICY_REPOSITORY: 'acme/policies',
          KEYWAY_GITHUB_POLICY_REPOSITORY_ID: id,
        }),
      ).toThrow(/KEYWAY_GITHUB_POLICY_REPOSITORY_ID must be/);
    expect(() => readGitHubWebhookSettings({ KEYWAY_GITHUB_WEBHOOK_SECRET: secret, KEYWAY_GITHUB_POLICY_REPOSITORY_ID: '4242' })).toThrow(
      /KEYWAY_GITHUB_POLICY_REPOSITORY_ID must be/,
    );
    for (const path of ['/policies', 'policies/', 'a/../b', '..', 'a//b'])
      expect(() => readGitHubWebhookSettings({ KEYWAY_GITHUB_WEBHOOK_SECRET: secret, KEYWAY_GITHUB_POLICY_PATH: path })).toThrow(/KEYWAY_GITHUB_POLICY_PATH/);
    expect(() => readGitHubWebhookSettings({ KEYWAY_GITHUB_WEBHOOK_SECRET: secret, KEYWAY_GITHUB_POLICY_BRANCH: 'a..b' })).toThrow(/branch/);
  });
});

describe("what a repository's own policies may use", () => {
  const repository = { owner: 'acme', name: 'api' };
  const central = loadPolicies([deploy('production'), guard], OPTIONS);
  const own = (permissions: string, issuer = 'github'): PolicyFile => ({
    path: 'acme/api/.github/keyway/release.yaml',
    text: [
      'version: 1',
      `issuer: ${issuer}`,
      'match: { repository_id: "734201", ref: refs/heads/main }',
      'grant:',
      `  github: { repositories: [acme/api], permissions: ${permissions} }`,
      '',
    ].join('\n'),
  });
  const problems = (file: PolicyFile, env: Record<string, string> = {}): string[] => {
    try {
      loadRepositoryPolicies([file], repository, OPTIONS, repositoryPolicyRules(readRepositoryPolicySettings(env), central));
      return [];
    } catch (error) {
      if (!(error instanceof PolicyLoadError)) throw error;
      return error.problems.map((problem) => `${problem.line}: ${problem.message}`);
    }
  };

  it('grants at most what a writer has by default: never administration, secrets or workflows', () => {
    expect(problems(own('{ contents: write, pull_requests: write, statuses: write, checks: read }'))).toEqual([]);
    const beyond = [
      ['administration', 'write'],
      ['secrets', 'read'],
      ['workflows', 'write'],
      ['repository_hooks', 'write'],
      ['actions', 'write'],
    ];
    for (const [permission, level] of beyond) {
      const message = `^5: a repository's own policy may grant ${permission} (not at all|at most at read), not ${level} \\(KEYWAY_REPOSITORY_POLICY_PERMISSIONS\\)$`;
      expect(problems(own(`{ contents: read, ${permission}: ${level} }`))).toEqual([expect.stringMatching(new RegExp(message))]);
    }
  });

  it("never grants checks: write, whatever the ceiling: the token would be keyway's own App's, which writes the policy review", () => {
    const message =
      "5: a repository's own policy cannot grant checks write, whatever KEYWAY_REPOSITORY_POLICY_PERMISSIONS says: its token would be keyway's own App's, able to write or overwrite keyway's policy review check runs in acme/api";
    expect(problems(own('{ contents: read, checks: write }'))).toEqual([message]);
    expect(problems(own('{ contents: read, checks: write }'), { KEYWAY_REPOSITORY_POLICY_PERMISSIONS: 'contents:read,checks:write' })).toEqual([message]);
    expect(problems(own('{ contents: read, checks: read }'), { KEYWAY_REPOSITORY_POLICY_PERMISSIONS: 'contents:read,checks:write' })).toEqual([]);
  });

  it('never grants organization permissions, whatever the ceiling: only central policies can', () => {
    const org = own('{ contents: read }').text.replace(
      '  github: { repositories: [acme/api], permissions: { contents: read } }',
      '  github: { owner: acme, owner_id: "1200934", repositories: [api], permissions: { contents: read }, organization_permissions: { members: read } }',
    );
    expect(problems({ path: 'acme/api/.github/keyway/release.yaml', text: org }, { KEYWAY_REPOSITORY_POLICY_PERMISSIONS: 'contents:write' })).toEqual([
      "5: a repository's own policy cannot grant organization permissions: only central policies can, for an organization pinned by id",
      "5: a repository's own policy cannot pin owner_id: whoever holds the owner's login writes it; its token goes to the caller's own account, pinned by the repository_owner_id its token carries",
    ]);
  });

  it("never chooses what refused pipelines learn: diagnostics are the operator's, and would name the central guardrails", () => {
    const message =
      "a repository's own policy cannot set diagnostics: what a refused pipeline learns (the central guardrails that fired among it) is the operator's choice";
    const perPolicy = own('{ contents: read }').text.replace('match:', 'diagnostics: claim-names\nmatch:');
    expect(problems({ path: 'acme/api/.github/keyway/release.yaml', text: perPolicy })).toEqual([`3: ${message}`]);
    const perIssuer = own('{ contents: read }', '{ kind: github, diagnostics: claim-names }');
    expect(problems(perIssuer)).toEqual([`2: ${message}`]);
    expect(problems(own('{ contents: read }', '{ kind: github, diagnostics: none }'))).toEqual([]);
  });

  it('never chooses the subject token’s audience: which audiences the broker accepts, and which guardrails hold for them, is the operator’s', () => {
    const message =
      "a repository's own policy or an organisation's guardrail cannot set subject_audience: its pipeline asks for a token for the broker (KEYWAY_ISSUER)";
    const chosen = own('{ contents: read }').text.replace('match:', 'subject_audience: https://team.example\nmatch:');
    expect(problems({ path: 'acme/api/.github/keyway/release.yaml', text: chosen })).toEqual([`3: ${message}`]);
    // A deny policy (an organisation's guardrail is one) that named an audience would hold for that audience alone: none of its repositories'.
    const scopedDeny = 'version: 1\neffect: deny\nissuer: github\nsubject_audience: https://team.example\nmatch: { event_name: workflow_dispatch }\n';
    expect(problems({ path: 'acme/api/.github/keyway/freeze.yaml', text: scopedDeny })).toEqual([`4: ${message}`]);
    expect(problems({ path: 'acme/api/.github/keyway/freeze.yaml', text: scopedDeny.replace('subject_audience: https://team.example\n', '') })).toEqual([]);
  });

  it('never grants a cloud token: a cloud trusts the sub alone, which a repository could otherwise choose', () => {
    const file = own('{ contents: read }');
    const cloud = {
      ...file,
      text: `${file.text}  subject: "policy:deploy/production"\n  cloud: { provider: aws, roles: [arn:aws:iam::123456789012:role/deploy] }\n`,
    };
    expect(problems(cloud)).toEqual(["7: a repository's own policy grants only GitHub tokens for acme/api, never cloud tokens: remove grant.cloud"]);
  });

  it('never grants proxy access: an upstream (a static secret, another repository through the App) is the operator’s to hand out', () => {
    const file = own('{ contents: read }');
    const proxy = { ...file, text: `${file.text}  proxy: { upstream: vendor, allow: [{ method: GET, path: "/**" }] }\n` };
    expect(problems(proxy)).toEqual(["6: a repository's own policy grants only GitHub tokens for acme/api, never proxy access: remove grant.proxy"]);
  });

  it("takes the operator's ceiling from KEYWAY_REPOSITORY_POLICY_PERMISSIONS, and refuses a setting that is not one", () => {
    const ceiling = { KEYWAY_REPOSITORY_POLICY_PERMISSIONS: 'contents:read, administration:write' };
    expect(problems(own('{ administration: write }'), ceiling)).toEqual([]);
    expect(problems(own('{ contents: write }'), ceiling)).toEqual([expect.stringMatching(/may grant contents at most at read, not write/)]);
    const nothing = { KEYWAY_REPOSITORY_POLICY_PERMISSIONS: 'none' };
    expect(problems(own('{ contents: read }'), nothing)).toEqual([expect.stringMatching(/may grant contents not at all/)]);
    for (const value of ['contents', 'contents:admin', 'members:read', 'contents:read:x', 'contents:read,contents:write']) {
      expect(() => readRepositoryPolicySettings({ KEYWAY_REPOSITORY_POLICY_PERMISSIONS: value })).toThrow(/KEYWAY_REPOSITORY_POLICY_PERMISSIONS/);
    }
  });

  it('names only issuers the central set trusts, narrowed by KEYWAY_REPOSITORY_POLICY_ISSUERS', () => {
    expect(problems(own('{ contents: read }'))).toEqual([]);
    const ghe = 'https://ghe.elsewhere.example/_services/token';
    const elsewhere = own('{ contents: read }', `{ kind: github, url: "${ghe}" }`);
    const notAllowed = (url: string) =>
      expect.stringMatching(new RegExp(`^2: ${url.replaceAll('.', '\\.')} is not an issuer the operator allows repository policies to name`));
    expect(problems(elsewhere)).toContainEqual(notAllowed(ghe));
    // Listing an issuer the central set does not trust allows nothing; leaving a trusted one out takes it away.
    expect(problems(elsewhere, { KEYWAY_REPOSITORY_POLICY_ISSUERS: ghe })).toContainEqual(notAllowed(ghe));
    expect(problems(own('{ contents: read }'), { KEYWAY_REPOSITORY_POLICY_ISSUERS: 'https://gitlab.com' })).toEqual([notAllowed(GITHUB)]);
    expect(problems(own('{ contents: read }'), { KEYWAY_REPOSITORY_POLICY_ISSUERS: `https://gitlab.com, ${GITHUB}` })).toEqual([]);
    for (const value of ['gitlab.com', 'http://ci.example', 'github']) {
      expect(() => readRepositoryPolicySettings({ KEYWAY_REPOSITORY_POLICY_ISSUERS: value })).toThrow(/KEYWAY_REPOSITORY_POLICY_ISSUERS/);
    }
  });

  it('grants only GitHub Actions jobs of its own account: a policy naming another issuer the central set trusts does not load', () => {
    const ci = '{ kind: oidc, url: "https://ci.example" }';
    const trusting = loadPolicies(
      [
        deploy('production'),
        guard,
        { path: 'ci.yaml', text: `version: 1\nissuer: ${ci}\nmatch: { sub: build }\ngrant: { audience: https://ci.example/deploy }\n` },
      ],
      OPTIONS,
    );
    const load = () =>
      loadRepositoryPolicies([own('{ contents: read }', ci)], repository, OPTIONS, repositoryPolicyRules(readRepositoryPolicySettings({}), trusting));
    expect(load).toThrow(PolicyLoadError);
    expect(load).toThrow(
      /a repository's own policy grants only GitHub Actions jobs of its own account, which their tokens name by repository_owner_id; https:\/\/ci\.example is not a GitHub issuer/,
    );
  });

  it('compares a match_actor line as the central set’s preset of the issuer iss names, which verifies the actor, though no file of its own names it', () => {
    const gitlab = { path: 'gitlab.yaml', text: 'version: 1\nissuer: gitlab\nmatch: { project_id: "42" }\ngrant: { audience: https://deploy.example }\n' };
    const trusting = loadPolicies([deploy('production'), guard, gitlab], OPTIONS);
    const deny: PolicyFile = {
      path: 'acme/api/.github/keyway/no-orchestrator.yaml',
      text: [
        'version: 1',
        'effect: deny',
        'issuer: github',
        'match: { repository_id: "734201" }',
        'match_actor: { iss: https://gitlab.com, namespace_id: "7", project_path: Acme/Orchestrator }',
        '',
      ].join('\n'),
    };
    const [policy] = loadRepositoryPolicies([deny], repository, OPTIONS, repositoryPolicyRules(readRepositoryPolicySettings({}), trusting)).policies;
    const line = policy?.actorConditions?.find((condition) => condition.key === 'project_path');
    expect(line?.fold).toBe('whole');
    // GitLab treats the path without case: the deny holds the orchestrator however its token spells it.
    expect(line?.matcher.test('acme/orchestrator')).toBe(true);
  });

  it('counts the regexes of its match_actor lines in the work its regexes together may do, as an exchange tests them too', () => {
    const gitlab = { path: 'gitlab.yaml', text: 'version: 1\nissuer: gitlab\nmatch: { project_id: "42" }\ngrant: { audience: https://deploy.example }\n' };
    const trusting = loadPolicies([deploy('production'), guard, gitlab], OPTIONS);
    // Each priced just under the limit one regex is held to: together past it.
    const dear = (k: number) => `{ regex: "x{0,${k}}[^y]*[^y]*y" }`;
    const deny: PolicyFile = {
      path: 'acme/api/.github/keyway/no-orchestrator.yaml',
      text: [
        'version: 1',
        'effect: deny',
        'issuer: github',
        'match: { repository_id: "734201" }',
        `match_actor: { iss: https://gitlab.com, namespace_id: "7", project_path: [${dear(14)}, ${dear(13)}] }`,
        '',
      ].join('\n'),
    };
    const load = () => loadRepositoryPolicies([deny], repository, OPTIONS, repositoryPolicyRules(readRepositoryPolicySettings({}), trusting));
    expect(load).toThrow(/the regexes of this policy together can try a value of 1024 characters in \d+ ways, more than the 16810000/);
  });

  it('counts the regexes under a not in the work its regexes together may do: testing a value tries them all the same', () => {
    const dear = (k: number) => `{ regex: "x{0,${k}}[^y]*[^y]*y" }`;
    const policy = own('{ contents: read }').text.replace('ref: refs/heads/main', `ref: refs/heads/main, workflow: { not: [${dear(14)}, ${dear(13)}] }`);
    expect(problems({ path: 'acme/api/.github/keyway/release.yaml', text: policy })).toEqual([
      expect.stringMatching(/the regexes of this policy together can try a value of 1024 characters in \d+ ways, more than the 16810000/),
    ]);
  });

  it('counts the positions its globs may keep live in the work its regexes together may do: 200 globs of a wildcard every other character do not load, 200 of branches do', () => {
    const line = (globs: readonly string[]) =>
      own('{ contents: read }').text.replace('ref: refs/heads/main', `ref: ${JSON.stringify(globs.map((glob) => ({ glob })))}`);
    // Each keeps up to 504 positions live on `aaa…b`: 1.2 s of the thread an exchange on a 1,000-character branch.
    const starry = Array.from({ length: 200 }, (_, i) => `${'*a'.repeat(250)}*-${i}`);
    expect(problems({ path: 'acme/api/.github/keyway/release.yaml', text: line(starry) })).toEqual([
      expect.stringMatching(/the regexes of this policy together can try a value of 1024 characters in \d+ ways, more than the 16810000/),
    ]);
    // Two positions each: a branch's head, then its wildcard and the match.
    const branches = Array.from({ length: 200 }, (_, i) => `refs/heads/release-${i}/*`);
    expect(problems({ path: 'acme/api/.github/keyway/release.yaml', text: line(branches) })).toEqual([]);
  });

  it('pins the organisations of KEYWAY_REPOSITORY_POLICY_ORG_GUARDRAILS by ids, and refuses an entry without them', () => {
    expect(readRepositoryPolicySettings({}).orgGuardrails).toEqual([]);
    expect(readRepositoryPolicySettings({ KEYWAY_REPOSITORY_POLICY_ORG_GUARDRAILS: 'acme:1200934:88001122, globex:3300:990' }).orgGuardrails).toEqual([
      { owner: 'acme', ownerId: 1200934, repositoryId: 88001122 },
      { owner: 'globex', ownerId: 3300, repositoryId: 990 },
    ]);
    for (const value of ['acme', 'acme:1200934', 'acme:x:1', 'acme:0:1', 'acme/.github:1:2', 'acme:1:2:3', 'acme:1:2 ACME:3:4', 'acme:1:99999999999999999']) {
      expect(() => readRepositoryPolicySettings({ KEYWAY_REPOSITORY_POLICY_ORG_GUARDRAILS: value })).toThrow(/KEYWAY_REPOSITORY_POLICY_ORG_GUARDRAILS/);
    }
  });

  it('shows the unused access of the policies it touches, from the usage it is given, and none without it', () => {
    const day = 86_400_000;
    const until = Date.UTC(2026, 10, 30);
    const granted = { issuer: GITHUB, tenant: null, repository: 'acme/api', subject: null, decision: 'granted' as const, reason: 'granted' };
    const rows = [
      {
        ...granted,
        policy_id: 'deploy',
        scopes: '["deploy:write"]',
        audiences: '["https://deploy.example"]',
        github_permissions: null,
        github_repositories: null,
        count: 2,
        first: until - 5 * day,
        last: until - day,
      },
    ];
    const change = {
      base: [deploy('production'), guard],
      proposed: [deploy('[production, staging]'), guard],
      events: [],
      loadOptions: OPTIONS,
      directory: 'policies',
    };
    const review = reviewPolicyChange({ ...change, usage: { since: until - 90 * day, until, rows } });
    expect(review.output.summary).toContain('**Unused access** of the policies this change touches, in the 90 days from 2026-09-01');
    expect(review.output.summary).toContain('| `deploy` | 2 | scope `deploy:read`: never granted in the 90 days from 2026-09-01: remove it |');
    // The guardrail is untouched and denies: not listed.
    expect(review.output.summary).not.toContain('| `guard` |');
    expect(reviewPolicyChange(change).output.summary).not.toContain('Unused access');
  });
});
