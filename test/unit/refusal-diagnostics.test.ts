import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { AUDIT_BOUNDS, boundAuditEvent } from '../../src/core/audit/bound-audit-event.ts';
import { explainAuditEvent } from '../../src/core/policy/explain-audit-event.ts';
import { explainClaims } from '../../src/core/policy/explain.ts';
import { loadPolicies, PolicyLoadError, policySetVersion, type PolicyFile } from '../../src/core/policy/load-policies.ts';
import { refusalDiagnostics } from '../../src/core/policy/refusal-diagnostics.ts';

const GITHUB = 'https://token.actions.githubusercontent.com';
const BROKER = 'https://keyway.test';
const OPTIONS = { brokerIssuer: BROKER, maxTtlSeconds: 3600, allowHttpLoopback: false };
const ANY = { audiences: [], scopes: undefined };

const files = (entries: Record<string, string>): PolicyFile[] => Object.entries(entries).map(([path, text]) => ({ path, text }));
const load = (entries: Record<string, string>) => loadPolicies(files(entries), OPTIONS);
const problems = (entries: Record<string, string>): string => {
  try {
    load(entries);
  } catch (error) {
    if (error instanceof PolicyLoadError) return error.message;
    throw error;
  }
  return '';
};

/** Pinned to one organisation by id, and to a ref and an environment whose values the pipeline must not learn. */
const DEPLOY = (diagnostics: string) => `version: 1
issuer: github
${diagnostics}
match:
  repository_owner_id: "1200934"
  ref: { glob: "refs/tags/v*" }
  environment: secret-env-name
grant: { audience: https://deploy.example }
`;
const WIDER = `version: 1
issuer: github
diagnostics: claim-names
match:
  repository_owner_id: "1200934"
  repository_id: "42"
  ref: refs/heads/release
  environment: staging
  workflow: ci
grant: { audience: https://deploy.example }
`;
const GUARD = 'version: 1\neffect: deny\nissuer: github\nmatch:\n  event_name: pull_request_target\n';

const claims = (overrides: Record<string, unknown> = {}) => ({
  iss: GITHUB,
  aud: BROKER,
  sub: 'repo:acme/api:ref:refs/heads/main',
  repository_owner_id: '1200934',
  repository_id: '42',
  ref: 'refs/heads/main',
  environment: 'production',
  event_name: 'push',
  ...overrides,
});

describe('diagnostics: what a refused pipeline may learn', () => {
  it('stays silent by default', () => {
    const set = load({ 'deploy.yaml': DEPLOY(''), 'guard.yaml': GUARD });
    const issuer = set.issuer(GITHUB)!;
    expect(refusalDiagnostics(set, { issuer, claims: claims() }, ANY)).toBeUndefined();
  });

  it('names the claims that failed for the closest allow policy, never their values or patterns, and the guardrails that fired', () => {
    const set = load({ 'deploy.yaml': DEPLOY('diagnostics: claim-names'), 'wider.yaml': WIDER, 'guard.yaml': GUARD });
    const issuer = set.issuer(GITHUB)!;
    // deploy fails ref and environment (2 lines), wider fails ref, environment and workflow (3): deploy is closest.
    const diagnostics = refusalDiagnostics(set, { issuer, claims: claims({ event_name: 'pull_request_target' }) }, ANY);
    expect(diagnostics).toEqual({ failed_claims: ['ref', 'environment'], denied_by: ['guard'] });
    expect(JSON.stringify(diagnostics)).not.toMatch(/refs\/|secret-env-name|production|1200934/);
    // The same measure as `keyway policy explain`.
    expect(explainClaims(set, claims({ event_name: 'pull_request_target' }), ANY).closest).toEqual({ policy: 'deploy', failed_claims: ['ref', 'environment'] });
  });

  it("follows the closest policy's own setting: a closest policy with diagnostics none says nothing", () => {
    const set = load({ 'deploy.yaml': DEPLOY('diagnostics: none'), 'wider.yaml': WIDER });
    expect(refusalDiagnostics(set, { issuer: set.issuer(GITHUB)!, claims: claims() }, ANY)).toBeUndefined();
  });

  it('tells a stranger from another organisation of a shared issuer nothing, even when the closest policy allows claim names', () => {
    const set = load({ 'deploy.yaml': DEPLOY('diagnostics: claim-names') });
    expect(refusalDiagnostics(set, { issuer: set.issuer(GITHUB)!, claims: claims({ repository_owner_id: '666' }) }, ANY)).toBeUndefined();
  });

  it("tells a pipeline nothing about another organisation's policies on a shared issuer: only its own tenant's policies can be closest", () => {
    // The stranger's own policy (first by id, so it wins ties) fails ref and workflow for its tokens.
    const stranger = `version: 1
issuer: github
diagnostics: claim-names
match:
  repository_owner_id: "666"
  ref: refs/heads/release
  workflow: deploy
grant: { audience: https://deploy.example }
`;
    const set = load({ 'a-stranger.yaml': stranger, 'deploy.yaml': DEPLOY('diagnostics: claim-names') });
    const probe = (environment: string) =>
      refusalDiagnostics(set, { issuer: set.issuer(GITHUB)!, claims: claims({ repository_owner_id: '666', ref: 'refs/tags/v1', environment }) }, ANY);
    // Guessing acme's environment right brings acme's policy within one line (its tenant pin): that must not show.
    expect(probe('secret-env-name')).toEqual({ failed_claims: ['ref', 'workflow'], denied_by: [] });
    expect(probe('production')).toEqual({ failed_claims: ['ref', 'workflow'], denied_by: [] });
  });

  it('is set per issuer too, and every policy of the issuer must agree on it', () => {
    const perIssuer = DEPLOY('').replace('issuer: github', 'issuer: { kind: github, diagnostics: claim-names }');
    const set = load({ 'deploy.yaml': perIssuer });
    expect(refusalDiagnostics(set, { issuer: set.issuer(GITHUB)!, claims: claims() }, ANY)).toEqual({ failed_claims: ['ref', 'environment'], denied_by: [] });
    expect(problems({ 'deploy.yaml': perIssuer, 'guard.yaml': GUARD })).toMatch(/every policy naming one issuer must give it the same kind and overrides/);
  });

  it('cannot be enabled on a shared issuer for a policy without a tenant pin', () => {
    const unpinned =
      'version: 1\nissuer: github\ndiagnostics: claim-names\nmatch:\n  ref: refs/heads/main\ngrant: { audience: x }\nlint: { ignore: { unpinned-tenant: test } }\n';
    expect(problems({ 'open.yaml': unpinned })).toMatch(
      /open.yaml:3:\d+ diagnostics: claim-names on https:\/\/token.actions.githubusercontent.com, .* needs a tenant pin/,
    );
    const byIssuer = unpinned.replace('issuer: github\ndiagnostics: claim-names', 'issuer: { kind: github, diagnostics: claim-names }');
    expect(problems({ 'open.yaml': byIssuer })).toMatch(/needs a tenant pin/);
    // An issuer that serves one tenant needs no pin.
    expect(problems({ 'own.yaml': 'version: 1\nissuer: https://oidc.acme.dev\ndiagnostics: claim-names\nmatch: { sub: svc }\ngrant: { audience: x }\n' })).toBe(
      '',
    );
  });

  it('belongs on allow policies only', () => {
    expect(problems({ 'guard.yaml': `${GUARD}diagnostics: claim-names\n` })).toMatch(/diagnostics belongs on allow policies/);
  });
});

describe('the version of a policy set', () => {
  it('is the same for the same files and changes with any text', () => {
    const entries = { 'deploy.yaml': DEPLOY(''), 'guard.yaml': GUARD };
    expect(load(entries).version).toBe(policySetVersion(files(entries)));
    expect(load(entries).version).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(load({ ...entries, 'guard.yaml': `${GUARD}# changed\n` }).version).not.toBe(load(entries).version);
  });
});

describe('explaining an audit event', () => {
  const entries = { 'deploy.yaml': DEPLOY(''), 'guard.yaml': GUARD };
  const set = load(entries);
  const event = (setVersion: string | undefined): AuditEvent => ({
    id: '01JEXAMPLE0000000000000000',
    time: '2026-12-03T12:00:00.000Z',
    decision: 'denied',
    reason: 'no_policy_matched',
    request: { id: 'r1' },
    issuer: GITHUB,
    subject: 'repo:acme/api:ref:refs/heads/main',
    claims: claims(),
    policy: { candidates: ['deploy'], matched: [], denied_by: [], audit_mode: [], ...(setVersion === undefined ? {} : { set_version: setVersion }) },
  });

  it('says when it replays the very set that decided', () => {
    const explained = explainAuditEvent(event(set.version), set, BROKER);
    expect(explained).toMatchObject({
      evaluated: true,
      policy_set: { decided: set.version, explained: set.version, same: true },
      closest: { policy: 'deploy' },
    });
  });

  it('says so when that set is no longer the one given, and explains with the one given', () => {
    const later = load({ ...entries, 'guard.yaml': `${GUARD}# changed\n` });
    const explained = explainAuditEvent(event(set.version), later, BROKER);
    expect(explained).toMatchObject({ evaluated: true, policy_set: { decided: set.version, explained: later.version, same: false } });
    expect(explained.note).toMatch(/is not the one given here .* --policies DIR/);
  });

  it('says so when the very set that decided decides otherwise now: the keyway that decided read it otherwise', () => {
    // A grant past the guardrail, as a keyway before 2026-12-04 could record one (the guard held only for the broker's audience).
    const granted: AuditEvent = {
      ...event(set.version),
      decision: 'granted',
      reason: 'granted',
      claims: claims({ repository: 'acme/api', run_id: '7', event_name: 'pull_request_target' }),
    };
    const explained = explainAuditEvent(granted, set, BROKER);
    expect(explained).toMatchObject({ evaluated: true, policy_set: { same: true }, decision: { granted: false, reason: 'denied_by_policy' } });
    expect(explained.note).toMatch(
      /yet these policies refuse it now, where they granted it then: either it asked for a GitHub token, a cloud token or proxy access \(the record keeps only the audience and scope asked for, so the replay asks for an access token, with no actor\), or the keyway that decided evaluated the same policies otherwise/,
    );
    expect(explainAuditEvent(event(set.version), set, BROKER).note).not.toMatch(/yet these policies/);
    // A delegated request: the replay has no actor to match match_actor against, so the outcomes do not compare.
    const delegated = explainAuditEvent({ ...granted, actor: { sha256: 'a'.repeat(64) } }, set, BROKER);
    expect(delegated.note).toMatch(/it was a delegated request \(with an actor token\), and the record keeps only .* so the two outcomes do not compare$/);
  });

  it('compares with what the policies decided, not with a refusal that came after them', () => {
    // The policies granted; then GitHub failed (or a DPoP proof was missing, or a single-use token came again).
    const grantable = claims({ repository: 'acme/api', run_id: '7', ref: 'refs/tags/v1.2.0', environment: 'secret-env-name' });
    const refusedAfter: AuditEvent = {
      ...event(set.version),
      decision: 'denied',
      reason: 'github_unavailable',
      request: { id: 'r2', audience: ['https://deploy.example'] },
      claims: grantable,
    };
    const explained = explainAuditEvent(refusedAfter, set, BROKER);
    expect(explained).toMatchObject({ evaluated: true, policy_set: { same: true }, decision: { granted: true } });
    expect(explained.note).not.toMatch(/yet these policies/);
    expect(explained.note).toMatch(/the policies granted it, and it was refused after them \(github_unavailable\)$/);
    // A policy refusal recorded by the same set that refuses it now: the plain note.
    const refused: AuditEvent = { ...refusedAfter, reason: 'no_policy_matched', claims: claims() };
    expect(explainAuditEvent(refused, set, BROKER).note).toBe(
      `explained by the policy set that decided (${set.version}), with the claims recorded at decision time`,
    );
  });

  it('takes a /proxy refusal of a token for an audience no policy accepts, recorded with the trace, as the policies refusing it', () => {
    // /proxy judges a CI token's audience where its policies decide, and records their trace beside audience_mismatch.
    const elsewhere: AuditEvent = {
      ...event(set.version),
      reason: 'audience_mismatch',
      claims: claims({ aud: 'https://elsewhere.example' }),
      proxy: { upstream: 'api', method: 'GET', path: '/x', query_bytes: 0 },
    };
    const explained = explainAuditEvent(elsewhere, set, BROKER);
    expect(explained).toMatchObject({ evaluated: true, policy_set: { same: true }, decision: { granted: false } });
    expect(explained.note).toBe(`explained by the policy set that decided (${set.version}), with the claims recorded at decision time`);
  });

  it('does not blame the policies when the record asked for a GitHub token, which the replay cannot ask for', () => {
    const github =
      'version: 1\nissuer: github\nmatch: { repository_owner_id: "1200934" }\ngrant:\n  github: { owner: acme, repositories: [api], permissions: { contents: read } }\n';
    const withGitHub = load({ ...entries, 'contents.yaml': github });
    // The policies granted a GitHub token; GitHub then failed. Replayed as a request for an access token, the policies refuse it.
    const refusedAfter: AuditEvent = {
      ...event(withGitHub.version),
      decision: 'error',
      reason: 'github_unavailable',
      request: { id: 'r3', scope: ['contents:read'] },
      claims: claims({ repository: 'acme/api', run_id: '7' }),
    };
    const explained = explainAuditEvent(refusedAfter, withGitHub, BROKER);
    expect(explained).toMatchObject({ evaluated: true, policy_set: { same: true }, decision: { granted: false } });
    expect(explained.note).toMatch(
      /where they granted it then: it asked for a GitHub token, and the record keeps only the audience and scope asked for, so the replay asks for an access token, with no actor, so the two outcomes do not compare$/,
    );
    expect(explained.note).not.toMatch(/evaluated the same policies otherwise/);
  });

  describe('from claims the record kept cut', () => {
    const BRANCHES =
      'version: 1\nissuer: github\nmatch:\n  repository_owner_id: "1200934"\n  ref: { regex: "refs/heads/.+" }\ngrant: { audience: https://deploy.example }\n';
    const UNSAFE = 'version: 1\neffect: deny\nissuer: github\nmatch:\n  ref: { regex: "refs/heads/.*/unsafe" }\n';
    const branches = load({ 'branches.yaml': BRANCHES, 'unsafe.yaml': UNSAFE });
    /** A branch the deny policy's regex reads whole (under 1,024 characters), longer than the record keeps. */
    const longRef = `refs/heads/${'x'.repeat(300)}/unsafe`;
    const recorded = (overrides: Partial<AuditEvent> = {}): AuditEvent =>
      boundAuditEvent({
        ...event(branches.version),
        reason: 'denied_by_policy',
        claims: claims({ repository: 'acme/api', run_id: '7', ref: longRef }),
        policy: { candidates: ['branches'], matched: ['branches'], denied_by: ['unsafe'], audit_mode: [], set_version: branches.version as string },
        ...overrides,
      });

    it('names the claim and does not present the replay as the decision: here the cut value no longer ends in /unsafe', () => {
      const record = recorded();
      expect(record.claims?.['ref']).toHaveLength(AUDIT_BOUNDS.text);
      const explained = explainAuditEvent(record, branches, BROKER);
      expect(explained).toMatchObject({
        evaluated: true,
        policy_set: { same: true },
        cut: { claims: ['ref'], request: [] },
        decision: { granted: true, policy: 'branches' },
      });
      expect(explained.note).toMatch(
        /yet these policies grant it now, where they refused it then: the record keeps claim ref cut \(a text past 256 characters ends in …, .*\), and the replay reads what it kept, not what the decision read: .* so the outcome may differ for that alone$/,
      );
      expect(explained.note).not.toMatch(/either it asked/);
    });

    it('warns even when the replay comes out as the decision did', () => {
      // Refused then by the deny policy, refused now for lack of an allow policy: the outcome agrees, the reason does not.
      const stricter = load({ 'branches.yaml': BRANCHES.replace('refs/heads/.+', 'refs/heads/main'), 'unsafe.yaml': UNSAFE });
      const record = recorded({ policy: { candidates: [], matched: [], denied_by: ['unsafe'], audit_mode: [], set_version: stricter.version as string } });
      const explained = explainAuditEvent(record, stricter, BROKER);
      expect(explained).toMatchObject({ cut: { claims: ['ref'] }, decision: { granted: false, reason: 'no_policy_matched' }, denied_by: [] });
      expect(explained.note).toMatch(
        /^explained by the policy set that decided \(sha256:[0-9a-f]+\), with the claims recorded at decision time; but the record keeps claim ref cut /,
      );
      // And whatever set explains it.
      expect(explainAuditEvent(record, branches, BROKER).note).toMatch(/is not the one given here .*; but the record keeps claim ref cut /);
    });

    it('names a cut subject and cut requested lists, but not a list asked for instead', () => {
      const subject = `repo:acme/${'a'.repeat(400)}`;
      const record = recorded({
        subject,
        // The sub claim the record keeps too, cut alike: named once.
        claims: claims({ repository: 'acme/api', run_id: '7', ref: longRef, sub: subject }),
        request: { id: 'r4', audience: Array.from({ length: 20 }, (_, index) => `https://a${index}.example`), scope: ['deploy'] },
      });
      const explained = explainAuditEvent(record, branches, BROKER);
      expect(explained).toMatchObject({ cut: { claims: ['ref', 'sub'], request: ['audience'] } });
      expect(explained.note).toMatch(/the record keeps claims ref, sub and the requested audience cut/);
      expect(explainAuditEvent(record, branches, BROKER, { audience: ['https://deploy.example'] })).toMatchObject({
        cut: { claims: ['ref', 'sub'], request: [] },
      });
      // A cut scope list; the claims named in order, the subject among them.
      const scoped = recorded({
        subject,
        claims: claims({ repository: 'acme/api', run_id: '7', ref: longRef, workflow_ref: `acme/api/${'w'.repeat(300)}` }),
        request: { id: 'r5', scope: Array.from({ length: 20 }, (_, index) => `scope-${index}`) },
      });
      expect(explainAuditEvent(scoped, branches, BROKER)).toMatchObject({ cut: { claims: ['ref', 'sub', 'workflow_ref'], request: ['scope'] } });
      expect(explainAuditEvent(scoped, branches, BROKER).note).toMatch(/the record keeps claims ref, sub, workflow_ref and the requested scope cut/);
    });

    it("names no cut iss: the replay reads the record's issuer, which it keeps whole", () => {
      const issuer = `https://ghes.acme.dev/${'o'.repeat(300)}/_services/token`;
      const record = recorded({ issuer, claims: claims({ iss: issuer, repository: 'acme/api', run_id: '7' }) });
      expect(record.issuer).toBe(issuer);
      expect(record.claims?.['iss']).toHaveLength(AUDIT_BOUNDS.text);
      expect(explainAuditEvent(record, branches, BROKER)).toMatchObject({ cut: { claims: [], request: [] } });
    });

    it('names nothing when nothing was cut, even a value that ends in …', () => {
      const record = recorded({
        decision: 'granted',
        reason: 'granted',
        // One ending in …, a character shorter than the shortest cut of a claim keeps.
        claims: claims({ repository: 'acme/api', run_id: '7', ref: 'refs/heads/wait…', environment: `${'e'.repeat(AUDIT_BOUNDS.text - 7)}…` }),
        policy: {
          granted_by: 'branches',
          candidates: ['branches'],
          matched: ['branches'],
          denied_by: [],
          audit_mode: [],
          set_version: branches.version as string,
        },
      });
      const explained = explainAuditEvent(record, branches, BROKER);
      expect(explained).toMatchObject({ cut: { claims: [], request: [] }, decision: { granted: true } });
      expect(explained.note).toBe(`explained by the policy set that decided (${branches.version}), with the claims recorded at decision time`);
    });
  });

  it('says so when the record names no version', () => {
    const explained = explainAuditEvent(event(undefined), set, BROKER);
    expect(explained).toMatchObject({ policy_set: { decided: null, same: false } });
    expect(explained.note).toMatch(/names no policy-set version/);
  });
});
