import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeGitHub } from '../support/fake-github.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, expectRefusal, freshIssuer, postToken, type BrokerHarness, type StartBroker } from './exchange-suite.ts';

export const GITHUB_TOKEN_TYPE = 'urn:keyway:params:oauth:token-type:github-installation-token';

export const ACME_INSTALLATION = {
  id: 5150,
  owner: 'acme',
  repositories: [
    { id: 734201, name: 'api' },
    { id: 734202, name: 'docs' },
    { id: 734203, name: 'infra' },
  ],
  permissions: { contents: 'write', pull_requests: 'write', issues: 'write', checks: 'write', metadata: 'read' },
};

/** Policies granting GitHub tokens to the test issuer's acme/api jobs. */
export function githubPolicies(issuer: TestIssuer): Record<string, string> {
  const header = `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\n`;
  return {
    'github/release.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/main }
grant:
  github:
    repositories: [acme/api, acme/docs]
    permissions: { contents: write, pull_requests: write }
  ttl: 10m
`,
    'github/short.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/short }
grant:
  github: { owner: acme, repositories: [api], permissions: { contents: read } }
  ttl: 1s
`,
    'github/ghost.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/ghost }
grant:
  github: { repositories: [acme/ghost], permissions: { contents: read } }
`,
    'jwt/only.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/jwt-only }
grant: { audience: https://deploy.acme.dev }
`,
  };
}

/** `requested_token_type` for a GitHub token, with optional repositories (resource) and permissions (scope). */
export function githubForm(token: string, extra: Record<string, string | string[]> = {}): URLSearchParams {
  return exchangeForm(token, { requested_token_type: GITHUB_TOKEN_TYPE, ...extra });
}

/** What a refused request asks for: repositories (resource), permissions (scope), and the job's ref. */
type GitHubAsk = { readonly resource?: string | readonly string[]; readonly scope?: string; readonly ref?: string };

/** The GitHub token exchange end to end on one runtime, against the fake GitHub API on 127.0.0.1. */
export function githubExchangeSuite(runtime: string, start: StartBroker, issuerBase: () => string, githubBase: () => string): void {
  describe(`GitHub installation tokens on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let issuer: TestIssuer;
    let github: FakeGitHub;

    beforeAll(async () => {
      issuer = freshIssuer(issuerBase(), 'github-grants');
      github = await FakeGitHub.create(githubBase());
      await github.install(ACME_INSTALLATION);
      broker = await start(githubPolicies(issuer), { settings: github.settings });
    });
    afterAll(() => broker.close());

    const job = (ref = 'refs/heads/main', overrides: Record<string, unknown> = {}): Promise<string> => issuer.sign(ciClaims(issuer.url, broker.issuer, { ref, ...overrides }));
    // The fake is a GitHub Enterprise Server as far as keyway knows: repositories are named at its web origin.
    const repositoryUrl = (path: string): string => `${new URL(github.apiUrl).origin}/${path}`;
    const tokenCalls = async (): Promise<number> => (await github.calls()).filter((call) => call.path.endsWith('/access_tokens')).length;

    it('issues a token restricted to exactly the repositories and permissions asked for, answered per RFC 8693 and audited without the token', async () => {
      const result = await postToken(broker, githubForm(await job(), { resource: repositoryUrl('acme/docs'), scope: 'contents:read' }));
      expect(result.status).toBe(200);
      expect(result.body).toMatchObject({ issued_token_type: GITHUB_TOKEN_TYPE, token_type: 'Bearer', expires_in: 600, scope: 'contents:read metadata:read' });
      const token = result.body['access_token'] as string;
      expect(token).toMatch(/^ghs_/);
      const [asked] = (await github.calls()).filter((call) => call.path === `/app/installations/${ACME_INSTALLATION.id}/access_tokens`).slice(-1);
      expect(asked).toMatchObject({ auth: 'app', body: { repositories: ['docs'], permissions: { contents: 'read' } }, status: 201 });
      expect(await github.repositoriesVisibleTo(token)).toEqual({ status: 200, names: ['docs'] });

      const event = await broker.auditEvent(result.body['audit_event_id'] as string);
      expect(event).toMatchObject({ decision: 'granted', reason: 'granted', policy: { granted_by: 'github/release' } });
      expect(event?.github).toMatchObject({ installation_id: ACME_INSTALLATION.id, owner: 'acme', repositories: ['docs'], permissions: { contents: 'read', metadata: 'read' } });
      expect(Date.parse(event!.github!.expires_at) - Date.parse(event!.time)).toBeGreaterThanOrEqual(599_000);
      expect(JSON.stringify(event)).not.toContain(token);
      const [tokenState] = (await github.tokens()).filter((state) => state.sha256 === event?.github?.token_sha256);
      expect(tokenState).toMatchObject({ revoked: false, repositories: ['docs'] });
    });

    it('gives every repository and permission of the grant when the caller names none; OWNER/REPO works as audience', async () => {
      const all = await postToken(broker, githubForm(await job()));
      expect(all.status).toBe(200);
      expect((await github.calls()).at(-1)?.body).toEqual({ repositories: ['api', 'docs'], permissions: { contents: 'write', pull_requests: 'write' } });
      expect((await github.repositoriesVisibleTo(all.body['access_token'] as string)).names).toEqual(['api', 'docs']);
      const one = await postToken(broker, githubForm(await job(), { audience: 'acme/api', scope: 'pull_requests:read' }));
      expect(one.status).toBe(200);
      expect((await github.calls()).at(-1)?.body).toEqual({ repositories: ['api'], permissions: { pull_requests: 'read' } });
    });

    it.each([
      ['a repository outside the grant', { resource: 'acme/infra' }, 'invalid_target', 'github_repository_not_granted'],
      ['another owner', { resource: 'evil/api' }, 'invalid_target', 'github_repository_not_granted'],
      ['a repository on another host', { resource: 'https://github.com/acme/api' }, 'invalid_target', 'github_repository_not_granted'],
      ['a repository URL with more path', { resource: 'acme/api/settings' }, 'invalid_target', 'github_repository_not_granted'],
      ['one granted and one not', { resource: ['acme/api', 'acme/infra'] }, 'invalid_target', 'github_repository_not_granted'],
      ['a permission outside the grant', { scope: 'issues:write' }, 'invalid_scope', 'github_permission_not_granted'],
      ['a higher level', { scope: 'contents:admin' }, 'invalid_scope', 'github_permission_not_granted'],
      ['a scope that is not a permission', { scope: 'contents' }, 'invalid_scope', 'github_permission_not_granted'],
      ['one level of a permission twice', { scope: 'contents:read contents:write' }, 'invalid_scope', 'github_permission_not_granted'],
      ['a GitHub token from a policy that grants only JWTs', { ref: 'refs/heads/jwt-only' }, 'invalid_target', 'github_repository_not_granted'],
    ] as const)('refuses %s, and asks GitHub for nothing', async (_what, parameters: GitHubAsk, error, reason) => {
      const before = (await github.calls()).length;
      const { ref = 'refs/heads/main', resource, scope } = parameters;
      const form: Record<string, string | string[]> = scope === undefined ? {} : { scope };
      // Repository paths are written relative to the fake's web origin; a full URL is taken as written.
      if (resource !== undefined) form['resource'] = ([] as string[]).concat(resource).map((target) => (target.includes('://') ? target : repositoryUrl(target)));
      await expectRefusal(broker, await postToken(broker, githubForm(await job(ref), form)), { error, reason });
      expect((await github.calls()).length).toBe(before);
    });

    it('gives no keyway JWT from a policy that grants only a GitHub token', async () => {
      await expectRefusal(broker, await postToken(broker, exchangeForm(await job())), { error: 'invalid_target', reason: 'audience_not_granted' });
    });

    it('answers 503 temporarily_unavailable with an audit record and no token when GitHub is down', async () => {
      await github.setDown(true);
      try {
        const result = await postToken(broker, githubForm(await job()));
        const event = await expectRefusal(broker, result, { status: 503, error: 'temporarily_unavailable', reason: 'github_unavailable' });
        expect(event.decision).toBe('error');
      } finally {
        await github.setDown(false);
      }
    });

    it('answers 503 when GitHub refuses what the policy grants (the App is not installed on that repository), asking nothing more', async () => {
      const result = await postToken(broker, githubForm(await job('refs/heads/ghost')));
      const event = await expectRefusal(broker, result, { status: 503, error: 'temporarily_unavailable', reason: 'github_refused' });
      expect(event.decision).toBe('error');
      expect((await github.calls()).at(-1)).toMatchObject({ body: { repositories: ['ghost'] }, status: 422 });
    });

    it('revokes the token when the policy TTL passes, and only then', async () => {
      const before = await tokenCalls();
      const result = await postToken(broker, githubForm(await job('refs/heads/short')));
      expect(result.status).toBe(200);
      expect(result.body['expires_in']).toBe(1);
      expect(await tokenCalls()).toBe(before + 1);
      const token = result.body['access_token'] as string;
      const other = (await postToken(broker, githubForm(await job()))).body['access_token'] as string;
      expect((await github.repositoriesVisibleTo(token)).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 1200));
      await broker.revokeDueGitHubTokens();
      expect((await github.repositoriesVisibleTo(token)).status).toBe(401);
      // A token with ten minutes left is not touched.
      expect((await github.repositoriesVisibleTo(other)).status).toBe(200);
      const revocation = (await github.calls()).find((call) => call.method === 'DELETE' && call.path === '/installation/token' && call.status === 204);
      expect(revocation).toBeDefined();
    });
  });
}
