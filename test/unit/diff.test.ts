import { describe, expect, it } from 'vitest';
import { diffPolicies } from '../../src/core/policy/diff/diff-policies.ts';
import { compilePolicyFiles, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';

const OPTIONS: PolicyLoadOptions = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 7200, allowHttpLoopback: false };

const compile = (files: Record<string, string>) =>
  compilePolicyFiles(
    Object.entries(files).map(([path, text]) => ({ path, text })),
    OPTIONS,
  );
const diff = (before: Record<string, string>, after: Record<string, string>) => diffPolicies(compile(before), compile(after));

const DEPLOY = `version: 1
description: deploy
issuer: github
match:
  repository_id: "1"
  ref: refs/heads/main
  environment: production
  event_name: [push, workflow_dispatch]
grant:
  audience: https://deploy.example
  scopes: [deploy:write]
  ttl: 10m
`;
const GUARD = 'version: 1\neffect: deny\nissuer: github\nmatch:\n  event_name: [pull_request_target, workflow_run]\n';

describe('diffPolicies', () => {
  it('reports nothing for identical sets', () => {
    expect(diff({ 'd.yaml': DEPLOY, 'g.yaml': GUARD }, { 'd.yaml': DEPLOY, 'g.yaml': GUARD })).toEqual([]);
  });

  it('reports no change of a line written the same, however long its list: past the tries a diff makes, comparing would not show it', () => {
    const globs = `[${Array.from({ length: 300 }, (_, i) => `{ glob: "env-${i}/*" }`).join(', ')}]`;
    const policy = DEPLOY.replace('environment: production', `environment: ${globs}`);
    expect(diff({ 'd.yaml': policy }, { 'd.yaml': policy.replace('ttl: 10m', 'ttl: 5m') })).toEqual([
      { id: 'd', status: 'narrowed', access: 'none', changes: [{ what: 'grant.ttl: 600s → 300s', access: 'narrowed' }] },
    ]);
  });

  it('tells apart lines that JSON writes alike: YAML\'s .inf and -.inf match the texts "Infinity" and "-Infinity"', () => {
    const line = (value: string) => DEPLOY.replace('environment: production', `environment: [staging, ${value}]`);
    expect(diff({ 'd.yaml': line('.inf') }, { 'd.yaml': line('-.inf') })).toEqual([
      {
        id: 'd',
        status: 'changed',
        access: 'none',
        changes: [{ what: 'match.environment: ["staging","Infinity"] → ["staging","-Infinity"]', access: 'changed' }],
      },
    ]);
    expect(diff({ 'd.yaml': line('.inf') }, { 'd.yaml': line('"Infinity"') })).toEqual([]);
  });

  it("reads an issuer's rules at the same URL: a longer max_token_age or another algorithm widens, another kind changes", () => {
    const GHES = 'url: "https://ghes.example/_services/token"';
    const issued = (issuer: string) => DEPLOY.replace('issuer: github', `issuer: { ${issuer} }`);
    const changes = (before: string, after: string) => diff({ 'd.yaml': issued(before) }, { 'd.yaml': issued(after) })[0]?.changes;
    expect(changes(`kind: github, ${GHES}`, `kind: github, ${GHES}, max_token_age: 24h`)).toEqual([
      { what: 'issuer.max_token_age: 600s → 86400s', access: 'widened' },
    ]);
    expect(changes(`kind: github, ${GHES}, max_token_age: 24h`, `kind: github, ${GHES}`)).toEqual([
      { what: 'issuer.max_token_age: 86400s → 600s', access: 'narrowed' },
    ]);
    expect(changes(`kind: github, ${GHES}`, `kind: github, ${GHES}, extra_algorithms: [ES256]`)).toEqual([
      { what: 'issuer.algorithms: + ES256', access: 'widened' },
    ]);
    expect(changes(`kind: github, ${GHES}`, `kind: gitlab, ${GHES}`)).toContainEqual({ what: 'issuer.kind: github → gitlab', access: 'changed' });
  });

  it('shows single_use dropped as widening, a proxy grant or a cloud grant edited as changed, and the diagnostics a pipeline learns', () => {
    const changes = (before: string, after: string) =>
      diff({ 'd.yaml': DEPLOY.replace('grant:\n', before) }, { 'd.yaml': DEPLOY.replace('grant:\n', after) })[0]?.changes;
    expect(changes('single_use: true\ngrant:\n', 'grant:\n')).toEqual([{ what: 'single_use: true → false', access: 'widened' }]);
    expect(changes('grant:\n', 'single_use: true\ngrant:\n')).toEqual([{ what: 'single_use: false → true', access: 'narrowed' }]);
    expect(changes('diagnostics: none\ngrant:\n', 'diagnostics: claim-names\ngrant:\n')).toEqual([
      { what: 'diagnostics: "none" → "claim-names"', access: 'none' },
    ]);
    const CLOUD = (tags: string) =>
      `version: 1\nissuer: github\nmatch: { repository_owner_id: "1", repository_id: "2" }\ngrant:\n  cloud: { provider: aws, roles: ["arn:aws:iam::123456789012:role/deploy"], session_tags: { ${tags} } }\n`;
    expect(diff({ 'c.yaml': CLOUD('team: "{repository_owner}"') }, { 'c.yaml': CLOUD('team: admins') })[0]?.changes).toEqual([
      { what: expect.stringMatching(/^grant\.cloud: .*"team":"\{repository_owner\}".* → .*"team":"admins"/), access: 'changed' },
    ]);
    const PROXY = (allow: string) =>
      `version: 1\nissuer: github\nmatch: { repository_owner_id: "1", repository_id: "2" }\ngrant:\n  proxy: { upstream: github, allow: [${allow}] }\n`;
    const READ = '{ method: GET, path: "/repos/{repository}/issues" }';
    const DELETE = '{ method: DELETE, path: "/repos/{repository}", permissions: { administration: write } }';
    expect(diff({ 'p.yaml': PROXY(READ) }, { 'p.yaml': PROXY(`${READ}, ${DELETE}`) })).toEqual([
      {
        id: 'p',
        status: 'changed',
        access: 'none',
        changes: [
          {
            what: 'grant.proxy: {"upstream":"github","allow":[{"method":"GET","path":"/repos/{repository}/issues"}]} → {"upstream":"github","allow":[{"method":"GET","path":"/repos/{repository}/issues"},{"method":"DELETE","path":"/repos/{repository}","permissions":{"administration":"write"}}]}',
            access: 'changed',
          },
        ],
      },
    ]);
  });

  it('a removed line widens an allow policy; an added one narrows it', () => {
    expect(diff({ 'd.yaml': DEPLOY }, { 'd.yaml': DEPLOY.replace('  environment: production\n', '') })).toEqual([
      { id: 'd', status: 'widened', access: 'none', changes: [{ what: 'match.environment: line "production" removed', access: 'widened' }] },
    ]);
    expect(diff({ 'd.yaml': DEPLOY }, { 'd.yaml': DEPLOY.replace('  ref:', '  ref_protected: "true"\n  ref:') })[0]).toMatchObject({
      status: 'narrowed',
      changes: [{ what: 'match.ref_protected: line "true" added', access: 'narrowed' }],
    });
  });

  it('a broadened glob or list widens, a tightened one narrows, two unrelated values cannot be ranked', () => {
    const changed = (from: string, to: string) => diff({ 'd.yaml': DEPLOY }, { 'd.yaml': DEPLOY.replace(from, to) })[0]?.status;
    expect(changed('ref: refs/heads/main', 'ref: { glob: "refs/heads/*" }')).toBe('widened');
    expect(changed('[push, workflow_dispatch]', '[push, workflow_dispatch, schedule]')).toBe('widened');
    expect(changed('[push, workflow_dispatch]', 'push')).toBe('narrowed');
    expect(changed('environment: production', 'environment: staging')).toBe('changed');
    expect(changed('environment: production', 'environment: { regex: "prod.*" }')).toBe('widened');
    expect(changed('environment: production', 'environment: { regex: "staging|qa" }')).toBe('changed');
  });

  it('never calls a GitHub sub narrower that takes a branch its pinned glob did not: the glob reads the workflow ref at its first @', () => {
    const PINNED = '  sub: { glob: "repo:acme/app:job_workflow_ref:acme/w/**@refs/heads/main" }\n';
    const SMUGGLED = '  sub: "repo:acme/app:job_workflow_ref:acme/w/.github/workflows/d.yml@refs/heads/x@refs/heads/main"\n';
    const withSub = (line: string) => DEPLOY.replace('  ref:', `${line}  ref:`);
    expect(diff({ 'd.yaml': withSub(PINNED) }, { 'd.yaml': withSub(SMUGGLED) })[0]?.status).toBe('changed');
    expect(diff({ 'd.yaml': withSub(PINNED) }, { 'd.yaml': withSub(SMUGGLED.replace('x@refs/heads/', '')) })[0]?.status).toBe('narrowed');
  });

  it('audiences, scopes and a longer TTL widen; fewer narrow; a new subject template changes', () => {
    const [widened] = diff(
      { 'd.yaml': DEPLOY },
      {
        'd.yaml': DEPLOY.replace('[deploy:write]', '[deploy:write, admin]')
          .replace('ttl: 10m', 'ttl: 1h')
          .replace('audience: https://deploy.example', 'audience: [https://deploy.example, https://x.example]'),
      },
    );
    expect(widened?.status).toBe('widened');
    expect(widened?.changes.map((change) => change.what)).toEqual(['grant.audience: + https://x.example', 'grant.scopes: + admin', 'grant.ttl: 600s → 3600s']);
    expect(diff({ 'd.yaml': DEPLOY }, { 'd.yaml': DEPLOY.replace('ttl: 10m', 'ttl: 5m') })[0]?.status).toBe('narrowed');
    expect(diff({ 'd.yaml': DEPLOY }, { 'd.yaml': DEPLOY.replace('ttl: 10m', 'ttl: 10m\n  subject: "{repository}"') })[0]).toMatchObject({ status: 'changed' });
    expect(diff({ 'd.yaml': DEPLOY }, { 'd.yaml': DEPLOY.replace('[deploy:write]', '[artifacts:read]').replace('ttl: 10m', 'ttl: 1h') })[0]?.status).toBe(
      'widened and narrowed',
    );
  });

  it('names organization permissions on a line of their own, apart from repository permissions', () => {
    const org = (level: string) =>
      `version: 1\nissuer: github\nmatch: { repository_owner_id: "1200934", repository_id: "1", ref_protected: "true", event_name: push, runner_environment: github-hosted }\n` +
      `grant:\n  github: { owner: acme, owner_id: "1200934", repositories: [api], permissions: { contents: read }, organization_permissions: { members: ${level} } }\n`;
    expect(diff({}, { 'o.yaml': org('read') })[0]?.changes.map((change) => [change.what, change.access])).toEqual([
      ['allow, enforced', 'widened'],
      ['organization permissions for acme (id 1200934): members:read', 'widened'],
    ]);
    const [raised] = diff({ 'o.yaml': org('read') }, { 'o.yaml': org('write') });
    expect(raised).toMatchObject({ status: 'widened', changes: [{ what: 'grant.github.organization_permissions: members: read → write', access: 'widened' }] });
  });

  it('reads a GitHub permission level lowered as narrowing, raised or added as widening', () => {
    const levels = (permissions: string) =>
      `version: 1\nissuer: github\nmatch: { repository_owner_id: "1", repository_id: "2" }\n` +
      `grant:\n  github: { owner: acme, repositories: [api], permissions: { ${permissions} } }\n`;
    const summary = (before: string, after: string) =>
      diff({ 'p.yaml': levels(before) }, { 'p.yaml': levels(after) }).map((entry) => [entry.status, entry.changes.map((change) => change.what)]);
    expect(summary('contents: write, issues: write', 'contents: read')).toEqual([
      ['narrowed', ['grant.github.permissions: contents: write → read', 'grant.github.permissions: - issues:write']],
    ]);
    expect(summary('contents: read', 'contents: write, pull_requests: read')).toEqual([
      ['widened', ['grant.github.permissions: contents: read → write', 'grant.github.permissions: + pull_requests:read']],
    ]);
  });

  it('reads a deny policy the other way round: matching more narrows access', () => {
    expect(diff({ 'g.yaml': GUARD }, { 'g.yaml': GUARD.replace('[pull_request_target, workflow_run]', 'pull_request_target') })[0]?.status).toBe('widened');
    expect(diff({ 'g.yaml': GUARD }, { 'g.yaml': GUARD.replace('workflow_run]', 'workflow_run, schedule]') })[0]?.status).toBe('narrowed');
  });

  it('adding or removing a policy widens or narrows by its effect; audit mode and disabled ones change nothing', () => {
    const summary = (d: ReturnType<typeof diff>) => d.map((entry) => [entry.id, entry.status, entry.access]);
    expect(summary(diff({}, { 'd.yaml': DEPLOY, 'g.yaml': GUARD, 'a.yaml': DEPLOY.replace('version: 1', 'version: 1\nmode: audit') }))).toEqual([
      ['a', 'added', 'none'],
      ['d', 'added', 'widened'],
      ['g', 'added', 'narrowed'],
    ]);
    expect(summary(diff({ 'd.yaml': DEPLOY, 'g.yaml': GUARD }, {}))).toEqual([
      ['d', 'removed', 'narrowed'],
      ['g', 'removed', 'widened'],
    ]);
  });

  it('switching a policy on, off, to audit mode or to deny moves access accordingly', () => {
    const status = (before: string, after: string) => diff({ 'd.yaml': before }, { 'd.yaml': after })[0];
    expect(status(DEPLOY, DEPLOY.replace('version: 1', 'version: 1\ndisabled: true'))).toMatchObject({
      status: 'narrowed',
      changes: [{ what: 'now inactive (was allow, enforced)' }],
    });
    expect(status(DEPLOY.replace('version: 1', 'version: 1\nmode: audit'), DEPLOY)?.status).toBe('widened');
    expect(status(GUARD, GUARD.replace('version: 1', 'version: 1\nmode: audit'))?.status).toBe('widened');
    // An edit to a policy that does not take part changes nothing.
    expect(
      status(
        DEPLOY.replace('version: 1', 'version: 1\ndisabled: true'),
        DEPLOY.replace('version: 1', 'version: 1\ndisabled: true').replace('  environment: production\n', ''),
      )?.status,
    ).toBe('edited');
  });

  it('shows delegation and DPoP edits: match_actor changed, require_dpop off widens and on narrows', () => {
    const actor = DEPLOY.replace('grant:', 'match_actor: { iss: https://ci.example, sub: orchestrator }\ngrant:');
    expect(diff({ 'd.yaml': DEPLOY }, { 'd.yaml': actor })[0]).toMatchObject({
      status: 'changed',
      changes: [{ what: 'match_actor: undefined → {"iss":"https://ci.example","sub":"orchestrator"}', access: 'changed' }],
    });
    const bound = DEPLOY.replace('  ttl: 10m', '  ttl: 10m\n  require_dpop: true');
    expect(diff({ 'd.yaml': bound }, { 'd.yaml': DEPLOY })[0]).toMatchObject({
      status: 'widened',
      changes: [{ what: 'grant.require_dpop: true → false', access: 'widened' }],
    });
    expect(diff({ 'd.yaml': DEPLOY }, { 'd.yaml': bound })[0]?.status).toBe('narrowed');
  });

  it('calls a description edit an edit, without effect on access', () => {
    expect(diff({ 'd.yaml': DEPLOY }, { 'd.yaml': DEPLOY.replace('description: deploy', 'description: deploy acme/api') })).toEqual([
      { id: 'd', status: 'edited', access: 'none', changes: [{ what: 'description: "deploy" → "deploy acme/api"', access: 'none' }] },
    ]);
  });
});
