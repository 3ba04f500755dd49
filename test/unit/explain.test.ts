import { describe, expect, it } from 'vitest';
import { explainClaims } from '../../src/core/policy/explain.ts';
import { loadPolicies } from '../../src/core/policy/load-policies.ts';

const GITHUB = 'https://token.actions.githubusercontent.com';
const BROKER = 'https://keyway.test';

const set = loadPolicies(
  [
    {
      path: 'deploy.yaml',
      text: 'version: 1\ndescription: deploy\nissuer: github\nmatch:\n  repository_id: "1"\n  environment: production\n  event_name: [push, workflow_dispatch]\ngrant:\n  audience: https://deploy.example\n  scopes: [deploy:write]\n  ttl: 10m\n  subject: "{repository}:{environment}"\n',
    },
    { path: 'guard.yaml', text: 'version: 1\neffect: deny\nissuer: github\nmatch:\n  event_name: [pull_request_target, workflow_run]\n' },
    { path: 'watch.yaml', text: 'version: 1\neffect: deny\nmode: audit\nissuer: github\nmatch:\n  runner_environment: self-hosted\n' },
    { path: 'off.yaml', text: 'version: 1\ndisabled: true\nissuer: github\nmatch: { repository_id: "2" }\ngrant: { audience: x }\n' },
    { path: 'other.yaml', text: 'version: 1\nissuer: https://oidc.acme.dev\nmatch: { sub: svc }\ngrant: { audience: x }\n' },
  ],
  { brokerIssuer: BROKER, maxTtlSeconds: 3600, allowHttpLoopback: false },
);

const claims = {
  iss: GITHUB,
  aud: BROKER,
  sub: 'repo:acme/api:environment:production',
  repository: 'acme/api',
  repository_id: '1',
  repository_owner_id: '9',
  ref: 'refs/heads/main',
  event_name: 'push',
  run_id: '5',
  environment: 'production',
};
const ANY = { audiences: [], scopes: undefined };

describe('explainClaims', () => {
  it('shows every policy of the issuer, line by line, and the grant', () => {
    const explanation = explainClaims(set, claims, ANY);
    expect(explanation.issuer).toBe(GITHUB);
    expect(explanation.preset).toBe('github');
    expect(explanation.policies.map((policy) => [policy.id, policy.matched])).toEqual([
      ['deploy', true],
      ['guard', false],
      ['watch', false],
    ]);
    expect(explanation.policies[0]?.lines).toEqual([
      { claim: 'subject_audience', matcher: BROKER, actual: BROKER, held: true },
      { claim: 'repository_id', matcher: '1', actual: '1', held: true },
      { claim: 'environment', matcher: 'production', actual: 'production', held: true },
      { claim: 'event_name', matcher: ['push', 'workflow_dispatch'], actual: 'push', held: true },
    ]);
    // A deny policy that names no subject_audience has no audience line: it holds whatever audience the token was minted for.
    expect(explanation.policies[2]?.lines).toEqual([{ claim: 'runner_environment', matcher: 'self-hosted', held: false }]);
    expect(explanation.inactive).toEqual([{ id: 'off', why: 'disabled: true' }]);
    expect(explanation.decision).toEqual({
      granted: true,
      policy: 'deploy',
      audience: ['https://deploy.example'],
      scope: ['deploy:write'],
      ttl_seconds: 600,
      subject: 'acme/api:production',
      claims: {},
    });
  });

  it('names the guardrails that fired, and explains a policy the index would have skipped', () => {
    const explanation = explainClaims(set, { ...claims, event_name: 'pull_request_target', repository_id: '3' }, ANY);
    expect(explanation.denied_by).toEqual(['guard']);
    expect(explanation.decision).toEqual({ granted: false, reason: 'denied_by_policy', detail: 'denied by guard' });
    expect(explanation.policies[0]?.lines.filter((line) => !line.held).map((line) => [line.claim, line.actual])).toEqual([
      ['repository_id', '3'],
      ['event_name', 'pull_request_target'],
    ]);
  });

  it('explains a grant that does not cover the request', () => {
    const explanation = explainClaims(set, claims, { audiences: [], scopes: ['admin'] });
    expect(explanation.policies[0]?.grant).toEqual({ ok: false, reason: 'scope_not_granted', detail: 'deploy does not grant scope admin' });
    expect(explanation.decision).toMatchObject({ granted: false, reason: 'scope_not_granted' });
  });

  it('says when the broker would refuse the claims before any policy, and still shows the policies', () => {
    const { repository_id: _dropped, ...missing } = claims;
    const explanation = explainClaims(set, missing, ANY);
    expect(explanation.decision).toMatchObject({ granted: false, reason: 'claims_invalid', detail: expect.stringContaining('repository_id') });
    expect(explanation.policies).toHaveLength(3);
    expect(explainClaims(set, { ...claims, repository_id: 1 }, ANY).decision).toMatchObject({ reason: 'claims_invalid' });
    // sub is required of every issuer's tokens, one whose preset requires nothing else too: its claims are taken as given here.
    expect(explainClaims(set, { iss: 'https://oidc.acme.dev', aud: BROKER }, ANY).decision).toMatchObject({
      granted: false,
      reason: 'claims_invalid',
      detail: expect.stringMatching(/^missing required claim sub;/),
    });
  });

  it('says when no policy trusts the issuer', () => {
    expect(explainClaims(set, { ...claims, iss: 'https://evil.example' }, ANY)).toMatchObject({
      issuer: 'https://evil.example',
      policies: [],
      decision: { granted: false, reason: 'issuer_untrusted' },
    });
    // Only a string names an issuer: an array holding the trusted URL is not read as that URL.
    expect(explainClaims(set, { ...claims, iss: [GITHUB] }, ANY)).toMatchObject({
      issuer: null,
      policies: [],
      decision: { granted: false, reason: 'issuer_untrusted' },
    });
  });
});
