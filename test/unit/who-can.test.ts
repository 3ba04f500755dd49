import { describe, expect, it } from 'vitest';
import { explainClaims } from '../../src/core/policy/explain.ts';
import { loadPolicies } from '../../src/core/policy/load-policies.ts';
import type { AccessRequest } from '../../src/core/policy/decide.ts';
import { whoCan, WhoCanError, type WhoCanQuestion } from '../../src/core/policy/who-can.ts';
import type { Matcher } from '../../src/core/policy/schema.ts';

const GITHUB = 'https://token.actions.githubusercontent.com';
const BROKER = 'https://keyway.test';
const OWNER = 'repository_owner_id: "9"';

const set = loadPolicies(
  [
    {
      path: 'deploy.yaml',
      text: `version: 1\ndescription: deploy\nissuer: github\nmatch:\n  ${OWNER}\n  repository_id: "1"\n  environment: production\n  event_name: [push, workflow_dispatch]\n  runner_environment: github-hosted\n  ref_protected: "true"\ngrant:\n  audience: https://deploy.example\n  scopes: [deploy:write, artifacts:read]\n`,
    },
    {
      path: 'preview.yaml',
      text: `version: 1\nissuer: github\nmatch:\n  ${OWNER}\n  repository_id: "2"\n  ref: { glob: "refs/heads/*" }\ngrant:\n  audience: [https://preview.example, https://deploy.example]\n  scopes: [deploy:write]\n`,
    },
    {
      path: 'read.yaml',
      text: `version: 1\nissuer: github\nmatch:\n  ${OWNER}\n  repository_id: "3"\ngrant:\n  audience: https://deploy.example\n  scopes: [artifacts:read]\n`,
    },
    {
      path: 'trial.yaml',
      text: `version: 1\nmode: audit\nissuer: github\nmatch:\n  ${OWNER}\n  repository_id: "4"\ngrant:\n  audience: https://deploy.example\n  scopes: [deploy:write]\n`,
    },
    {
      path: 'off.yaml',
      text: `version: 1\ndisabled: true\nissuer: github\nmatch:\n  ${OWNER}\n  repository_id: "5"\ngrant:\n  audience: https://deploy.example\n  scopes: [deploy:write, old:scope]\n`,
    },
    {
      path: 'bot.yaml',
      text: `version: 1\nissuer: github\nmatch:\n  ${OWNER}\n  repository_id: "6"\n  event_name: push\ngrant:\n  github:\n    owner: acme\n    repositories: [api]\n    permissions: { contents: write, issues: read }\n`,
    },
    { path: 'guard.yaml', text: 'version: 1\neffect: deny\nissuer: github\nmatch:\n  event_name: [pull_request_target, workflow_run]\n' },
    { path: 'watch.yaml', text: 'version: 1\neffect: deny\nmode: audit\nissuer: github\nmatch:\n  runner_environment: self-hosted\n' },
  ],
  { brokerIssuer: BROKER, maxTtlSeconds: 3600, allowHttpLoopback: false },
);

/** A token that meets every line of a policy: the first value each line lists, a branch for the glob. */
function tokenMeeting(conditions: readonly { claim: string; matcher: Matcher }[]): Record<string, unknown> {
  const claims: Record<string, unknown> = {
    iss: GITHUB,
    sub: 'repo:acme/x:ref:refs/heads/main',
    repository: 'acme/x',
    repository_owner: 'acme',
    ref: 'refs/heads/main',
    event_name: 'push',
    run_id: '7',
  };
  for (const { claim, matcher } of conditions) {
    const first = Array.isArray(matcher) ? matcher[0] : matcher;
    claims[claim === 'subject_audience' ? 'aud' : claim] = typeof first === 'object' ? 'refs/heads/feature' : first;
  }
  return claims;
}

const requestFor = (question: WhoCanQuestion): AccessRequest => {
  if (question.githubPermission !== undefined) {
    const [name, level] = question.githubPermission.split(':') as [string, string];
    return { audiences: [], scopes: undefined, github: { repositories: undefined, permissions: { [name]: level } } };
  }
  return { audiences: question.audience === undefined ? [] : [question.audience], scopes: question.scope === undefined ? undefined : [question.scope] };
};

describe('whoCan', () => {
  it("lists a GitHub grant that pins no owner_id with the owner as the job's own account, and never for another issuer's tokens", () => {
    const [bot] = whoCan(set, { githubPermission: 'contents:write' }).allow;
    expect(bot?.conditions.at(-1)).toEqual({ claim: 'repository_owner', matcher: 'acme' });
    const other = { ...tokenMeeting(bot?.conditions ?? []), repository_owner: 'globex' };
    expect(explainClaims(set, other, requestFor({ githubPermission: 'contents:write' })).decision).toMatchObject({ granted: false });
    const generic = loadPolicies(
      [
        {
          path: 'unpinned.yaml',
          text: 'version: 1\nissuer: { kind: oidc, url: "https://ci.example" }\nmatch: { sub: x }\ngrant:\n  github: { owner: acme, repositories: [api], permissions: { contents: write } }\n',
        },
        {
          path: 'pinned.yaml',
          text: 'version: 1\nissuer: { kind: oidc, url: "https://ci.example" }\nmatch: { sub: y }\ngrant:\n  github: { owner: acme, owner_id: "9", repositories: [api], permissions: { contents: write } }\n',
        },
      ],
      { brokerIssuer: BROKER, maxTtlSeconds: 3600, allowHttpLoopback: false },
    );
    expect(whoCan(generic, { githubPermission: 'contents:write' }).allow.map((policy) => policy.id)).toEqual(['pinned']);
  });

  it("lists a GitHub grant that pins no owner_id for the App's deployment's jobs only: another's number their accounts apart", () => {
    const server = 'https://ghes.example/_services/token';
    const unpinned = 'grant:\n  github: { owner: acme, repositories: [api], permissions: { contents: write } }\n';
    const deployments = loadPolicies(
      [
        { path: 'cloud.yaml', text: `version: 1\nissuer: github\nmatch: { ${OWNER} }\n${unpinned}` },
        { path: 'server.yaml', text: `version: 1\nissuer: { kind: github, url: "${server}" }\nmatch: { ${OWNER} }\n${unpinned}` },
        {
          path: 'server-pinned.yaml',
          text: `version: 1\nissuer: { kind: github, url: "${server}" }\nmatch: { repository_owner_id: "7" }\ngrant:\n  github: { owner: acme, owner_id: "9", repositories: [api], permissions: { contents: write } }\n`,
        },
      ],
      { brokerIssuer: BROKER, maxTtlSeconds: 3600, allowHttpLoopback: false },
    );
    const listed = (deployment: string | undefined) => whoCan(deployments, { githubPermission: 'contents:write', deployment }).allow.map((policy) => policy.id);
    expect(listed('github.com')).toEqual(['cloud', 'server-pinned']);
    expect(listed('ghes.example')).toEqual(['server', 'server-pinned']);
    expect(listed(undefined)).toEqual(['cloud', 'server', 'server-pinned']);
    // As decide answers it: the server's job of its acme, with the number acme has on github.com, gets nothing where the App is on github.com.
    const serverJob = { ...tokenMeeting([{ claim: 'repository_owner_id', matcher: '9' }]), iss: server, aud: BROKER, repository_id: '57' };
    const asked = (deployment: string) =>
      explainClaims(deployments, serverJob, {
        audiences: [],
        scopes: undefined,
        github: { repositories: undefined, permissions: { contents: 'write' }, deployment },
      }).decision;
    expect(asked('github.com')).toMatchObject({ granted: false, reason: 'github_repository_not_granted' });
    expect(asked('ghes.example')).toMatchObject({ granted: true, policy: 'server' });
  });

  it.each<WhoCanQuestion>([
    { scope: 'deploy:write' },
    { scope: 'artifacts:read' },
    { scope: 'deploy:write', audience: 'https://deploy.example' },
    { audience: 'https://preview.example' },
    { githubPermission: 'contents:write' },
    { githubPermission: 'contents:read' },
    { githubPermission: 'issues:write' },
  ])('lists exactly the policies explain grants %j for a token meeting their lines', (question) => {
    const answer = whoCan(set, question);
    const grantedBy = set.policies.flatMap((policy) => {
      const claims = tokenMeeting([
        { claim: 'subject_audience', matcher: policy.subjectAudience },
        ...policy.conditions.map((condition) => ({ claim: condition.key, matcher: condition.written })),
      ]);
      const explained = explainClaims(set, claims, requestFor(question)).policies.find((entry) => entry.id === policy.id);
      return explained?.matched === true && explained.grant?.ok === true && policy.mode === 'enforce' ? [policy.id] : [];
    });
    expect(answer.allow.map((policy) => policy.id)).toEqual(grantedBy);
    // Each listed policy's own token is granted outright: its lines are all a token needs.
    for (const policy of answer.allow) {
      expect(explainClaims(set, tokenMeeting(policy.conditions), requestFor(question)).decision).toMatchObject({ granted: true, policy: policy.id });
    }
  });

  it('answers deploy:write with the lines, the guardrails that cut in, and the untrusted contexts that reach it', () => {
    const answer = whoCan(set, { scope: 'deploy:write' });
    expect(answer.question).toEqual({ scope: 'deploy:write' });
    expect(answer.audit_only).toEqual(['trial']);
    const [deploy, preview] = answer.allow;
    expect(deploy?.conditions.slice(0, 3)).toEqual([
      { claim: 'subject_audience', matcher: BROKER },
      { claim: 'repository_owner_id', matcher: '9' },
      { claim: 'repository_id', matcher: '1' },
    ]);
    // deploy pins event_name to push and workflow_dispatch: the guardrail's events cannot reach it.
    expect(deploy?.guardrails).toEqual([]);
    expect(deploy?.untrusted).toEqual([]);
    expect(preview?.guardrails.map((guard) => guard.id)).toEqual(['guard']);
    expect(preview?.untrusted.map((context) => `${context.claim}=${context.value}`)).toEqual([
      'event_name=pull_request',
      'event_name=issue_comment',
      'event_name=pull_request_review',
      'event_name=pull_request_review_comment',
      'event_name=discussion_comment',
      'event_name=issues',
      'event_name=discussion',
      'event_name=fork',
      'event_name=watch',
      'event_name=gollum',
      'event_name=check_run',
      'event_name=check_suite',
      'event_name=status',
      'runner_environment=self-hosted',
      'ref_protected=false',
    ]);
  });

  it.each<[WhoCanQuestion, RegExp]>([
    [{ scope: 'nobody:grants' }, /no policy grants scope "nobody:grants"; the policies grant artifacts:read deploy:write old:scope/],
    [{ audience: 'https://nowhere.example' }, /no policy grants audience/],
    [{ scope: 'two words' }, /one scope token/],
    [{ githubPermission: 'contents:admin' }, /not a GitHub repository permission and level/],
    [{ githubPermission: 'contentz:write' }, /not a GitHub repository permission and level/],
    [{ scope: 'deploy:write', githubPermission: 'contents:write' }, /never granted together/],
    [{}, /ask about a scope/],
  ])('refuses %j with a clear error', (question, message) => {
    expect(() => whoCan(set, question)).toThrow(WhoCanError);
    expect(() => whoCan(set, question)).toThrow(message);
  });

  it('knows a scope only a disabled policy grants, and answers that no enforcing policy grants it', () => {
    expect(whoCan(set, { scope: 'old:scope' })).toEqual({ question: { scope: 'old:scope' }, allow: [], audit_only: [] });
  });
});
