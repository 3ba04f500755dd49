import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeGitHub } from '../support/fake-github.ts';
import { pageCookie } from '../support/audit-page-sign-in.ts';
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
  ownerId: 1200934,
  permissions: { contents: 'write', pull_requests: 'write', issues: 'write', checks: 'write', metadata: 'read', members: 'write' },
};

/** A personal account: GitHub gives its installations no organization permissions. */
export const PERSONAL_INSTALLATION = {
  id: 6160,
  owner: 'octo-user',
  ownerType: 'User' as const,
  ownerId: 777,
  repositories: [{ id: 9001, name: 'dots' }],
  permissions: { contents: 'read', metadata: 'read', members: 'read' },
};

/** The operator's allowlist of organization permissions the suites run with. */
export const ORGANIZATION_PERMISSIONS_SETTING = { KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS: 'members:read' };

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
  ttl: 1m
`,
    'github/ghost.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/ghost }
grant:
  github: { repositories: [acme/ghost], permissions: { contents: read } }
`,
    'jwt/only.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/jwt-only }
grant: { audience: https://deploy.acme.dev }
`,
    // Organization permissions: central policies only, for an owner pinned by id, within the operator's allowlist.
    'github/org.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/org }
grant:
  github: { owner: acme, owner_id: "1200934", repositories: [api], permissions: { contents: read }, organization_permissions: { members: read } }
`,
    'github/org-write.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/org-write }
grant:
  github: { owner: acme, owner_id: "1200934", repositories: [api], permissions: { contents: read }, organization_permissions: { members: write } }
`,
    'github/org-renamed.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/org-renamed }
grant:
  github: { owner: acme, owner_id: "4242", repositories: [api], permissions: { contents: read }, organization_permissions: { members: read } }
`,
    'github/pinned.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/pinned }
grant:
  github: { owner: acme, owner_id: "4242", repositories: [api], permissions: { contents: read } }
`,
    // Another owner's repositories with no owner_id: granted only to a caller whose own account that owner is.
    'github/unpinned.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/unpinned }
grant:
  github: { owner: globex, repositories: [cfg], permissions: { contents: read } }
`,
    'github/org-personal.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/org-personal }
grant:
  github: { owner: octo-user, owner_id: "777", repositories: [dots], permissions: { contents: read }, organization_permissions: { members: read } }
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
    /** How far the broker's clock runs behind the real one: a token minted in the past is due by the real clock (the Workers alarm's). */
    let clockBehindMs = 0;

    /** A GitHub Actions issuer of another GitHub deployment than the App's (a GitHub Enterprise Server beside it). */
    let server: TestIssuer;

    beforeAll(async () => {
      issuer = freshIssuer(issuerBase(), 'github-grants');
      server = freshIssuer(issuerBase().replace('//127.0.0.1:', '//localhost:'), 'github-grants-server');
      github = await FakeGitHub.create(githubBase());
      await github.install(ACME_INSTALLATION);
      await github.install(PERSONAL_INSTALLATION);
      // The login globex, held now by an account (666) other than the one a globex job's token names (100): renamed, registered again.
      await github.install({
        id: 8666,
        owner: 'globex',
        ownerId: 666,
        repositories: [{ id: 96601, name: 'cfg' }],
        permissions: { contents: 'write', metadata: 'read' },
      });
      // The suite's auditors read records on the /audit page (audience: the broker, as a harness runs it), revoke tokens and ask who can.
      const auditors = `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\nmatch: { repository_id: "734201", ref: refs/heads/auditors }
grant: { audience: https://keyway.test, scopes: [audit:read, tokens:revoke, policy:explain] }
`;
      // That server's jobs of its account 1200934, the number acme's account has on the App's GitHub, granted acme's repositories unpinned.
      const serverJobs = `version: 1\nissuer: { kind: github, url: "${server.url}" }\nmatch: { repository_owner_id: "1200934", ref: refs/heads/main }
grant:
  github: { owner: acme, repositories: [api], permissions: { contents: read } }
`;
      // Single use, and an organization permission beyond the operator's allowlist beside one within it.
      const singleUse = `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\nsingle_use: true\nmatch: { repository_id: "734201", ref: refs/heads/org-single }
grant:
  github: { owner: acme, owner_id: "1200934", repositories: [api], permissions: { contents: read }, organization_permissions: { members: write } }
`;
      broker = await start(
        { ...githubPolicies(issuer), 'auditors.yaml': auditors, 'github/server.yaml': serverJobs, 'github/org-single.yaml': singleUse },
        {
          settings: { ...github.settings, ...ORGANIZATION_PERMISSIONS_SETTING },
          now: () => Date.now() - clockBehindMs,
        },
      );
    });
    afterAll(() => broker.close());

    const job = (ref = 'refs/heads/main', overrides: Record<string, unknown> = {}): Promise<string> =>
      issuer.sign(ciClaims(issuer.url, broker.issuer, { ref, ...overrides }));
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
      expect(event?.github).toMatchObject({
        installation_id: ACME_INSTALLATION.id,
        owner: 'acme',
        repositories: ['docs'],
        permissions: { contents: 'read', metadata: 'read' },
      });
      // Dated from the request, as a keyway token's exp is: however long GitHub took to mint, the grant lives its TTL, no more.
      expect(Date.parse(event!.github!.expires_at) - Date.parse(event!.time)).toBe(600_000);
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
      if (resource !== undefined)
        form['resource'] = ([] as string[]).concat(resource).map((target) => (target.includes('://') ? target : repositoryUrl(target)));
      await expectRefusal(broker, await postToken(broker, githubForm(await job(ref), form)), { error, reason });
      expect((await github.calls()).length).toBe(before);
    });

    it('grants organization permissions from a central policy for the owner pinned by id, audited apart from repository permissions', async () => {
      const result = await postToken(broker, githubForm(await job('refs/heads/org')));
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      expect(result.body['scope']).toBe('contents:read metadata:read members:read');
      expect((await github.calls()).at(-1)).toMatchObject({ body: { repositories: ['api'], permissions: { contents: 'read', members: 'read' } }, status: 201 });
      const token = result.body['access_token'] as string;
      expect(await github.organizationMembersStatus(token, 'acme')).toBe(200);
      const event = await broker.auditEvent(result.body['audit_event_id'] as string);
      expect(event?.github).toMatchObject({ permissions: { contents: 'read', metadata: 'read' }, organization_permissions: { members: 'read' } });
      expect(event?.github?.permissions).not.toHaveProperty('members');

      // A repository-only token reaches no organization endpoint.
      const repositoryOnly = await postToken(broker, githubForm(await job()));
      expect(await github.organizationMembersStatus(repositoryOnly.body['access_token'] as string, 'acme')).toBe(403);
      expect((await broker.auditEvent(repositoryOnly.body['audit_event_id'] as string))?.github).not.toHaveProperty('organization_permissions');
    });

    it("shows the GitHub token's owner, installation, repositories and permissions on the /audit page's event view", async () => {
      const result = await postToken(broker, githubForm(await job('refs/heads/org')));
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      const auditor = await postToken(broker, exchangeForm(await job('refs/heads/auditors'), { scope: 'audit:read' }));
      expect(auditor.status, JSON.stringify(auditor.body)).toBe(200);
      const page = await broker.request(`/audit/events/${String(result.body['audit_event_id'])}`, {
        headers: { cookie: await pageCookie(broker, String(auditor.body['access_token'])) },
      });
      expect(page.status).toBe(200);
      const html = await page.text();
      const appId = (await broker.auditEvent(String(result.body['audit_event_id'])))?.github?.app_id;
      expect(appId).toBeTypeOf('string');
      expect(html).toContain(`<dd data-field="GitHub owner / installation">acme / ${ACME_INSTALLATION.id} (App ${String(appId)})</dd>`);
      expect(html).toContain('<dd data-field="GitHub repositories">api</dd>');
      expect(html).toContain('<dd data-field="GitHub permissions">contents:read, metadata:read</dd>');
      expect(html).toContain('<dd data-field="GitHub organization permissions">members:read</dd>');
      expect(html).not.toContain(String(result.body['access_token']));
      expect(html).not.toContain('data-field="cloud"');
    });

    it.each([
      ['beyond the operator allowlist', 'refs/heads/org-write', 'invalid_scope', 'github_permission_not_allowed'],
      ['for an owner whose account id is not the pinned one', 'refs/heads/org-renamed', 'invalid_target', 'github_owner_mismatch'],
    ] as const)('refuses organization permissions %s, audited, before any token is minted', async (_what, ref, error, reason) => {
      const before = await tokenCalls();
      const refused = await postToken(broker, githubForm(await job(ref)));
      await expectRefusal(broker, refused, { error, reason });
      expect(await tokenCalls()).toBe(before);
    });

    it("does not use a single-use token up on organization permissions beyond the operator's allowlist: the job can retry asking within it", async () => {
      const token = await job('refs/heads/org-single');
      const before = await tokenCalls();
      await expectRefusal(broker, await postToken(broker, githubForm(token)), { error: 'invalid_scope', reason: 'github_permission_not_allowed' });
      expect(await tokenCalls()).toBe(before);
      const within = await postToken(broker, githubForm(token, { scope: 'contents:read' }));
      expect(within.status, JSON.stringify(within.body)).toBe(200);
      await expectRefusal(broker, await postToken(broker, githubForm(token, { scope: 'contents:read' })), { error: 'invalid_request', reason: 'replayed' });
    });

    it("holds the owner_id pin when the caller asks only for repository permissions: no token for another account's repositories", async () => {
      const before = await tokenCalls();
      const refused = await postToken(broker, githubForm(await job('refs/heads/org-renamed'), { scope: 'contents:read' }));
      await expectRefusal(broker, refused, { error: 'invalid_target', reason: 'github_owner_mismatch' });
      // A grant of repository permissions only that writes an owner_id is held to it too.
      await expectRefusal(broker, await postToken(broker, githubForm(await job('refs/heads/pinned'))), {
        error: 'invalid_target',
        reason: 'github_owner_mismatch',
      });
      expect(await tokenCalls()).toBe(before);
    });

    it("gives a token for an owner the policy does not pin by id only on the caller's own account, held by the id its token carries", async () => {
      const before = await tokenCalls();
      // Not the caller's own account: the grant needs owner_id.
      const stranger = await expectRefusal(broker, await postToken(broker, githubForm(await job('refs/heads/unpinned'))), {
        error: 'invalid_target',
        reason: 'github_repository_not_granted',
      });
      expect(stranger.detail).toContain('grants repositories of globex, which is not the caller');
      // The caller's own account by login, but the login is now on another account than the one its token names.
      const renamed = await job('refs/heads/unpinned', { repository_owner: 'globex', repository_owner_id: '100' });
      const impostor = await expectRefusal(broker, await postToken(broker, githubForm(renamed)), { error: 'invalid_target', reason: 'github_owner_mismatch' });
      expect(impostor.detail).toContain('on account id 666, not 100');
      expect(await tokenCalls()).toBe(before);
    });

    it("takes no other GitHub deployment's account for the caller's own: its repository_owner_id numbers that deployment's accounts, whatever login and number it shares", async () => {
      const before = await tokenCalls();
      // A job of the server's acme, whose account there has the number acme's has on the App's GitHub.
      const serverJob = await server.sign(
        ciClaims(server.url, broker.issuer, { ref: 'refs/heads/main', repository_owner: 'acme', repository_owner_id: '1200934' }),
      );
      const refused = await expectRefusal(broker, await postToken(broker, githubForm(serverJob)), {
        error: 'invalid_target',
        reason: 'github_repository_not_granted',
      });
      expect(refused.detail).toContain('grants repositories of acme, which is not the caller');
      expect(await tokenCalls()).toBe(before);
    });

    it('answers 503 github_refused when GitHub will not give organization permissions to a personal account installation', async () => {
      const refused = await postToken(broker, githubForm(await job('refs/heads/org-personal')));
      const event = await expectRefusal(broker, refused, { status: 503, error: 'temporarily_unavailable', reason: 'github_refused' });
      expect(event.detail).toContain('not granted to this installation: members');
      expect((await github.calls()).at(-1)).toMatchObject({ path: `/app/installations/${PERSONAL_INSTALLATION.id}/access_tokens`, status: 422 });
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

    it.each([
      ['breaks off mid-body', { kind: 'truncated', status: 201 }],
      ['is larger than the cap', { kind: 'padded', bytes: 256 * 1024 + 1, declared: false, status: 201 }],
    ] as const)("answers 503 temporarily_unavailable with an audit record and no token when GitHub's answer %s", async (_what, how) => {
      // The installation is known by now, so the one call is the token's, which GitHub answers 201, cut short or too long.
      expect((await postToken(broker, githubForm(await job()))).status).toBe(200);
      await github.misbehave(how);
      try {
        const result = await postToken(broker, githubForm(await job()));
        const event = await expectRefusal(broker, result, { status: 503, error: 'temporarily_unavailable', reason: 'github_unavailable' });
        expect(event.decision).toBe('error');
      } finally {
        await github.misbehave(null);
      }
    });

    it('answers 503 when GitHub refuses what the policy grants (the App is not installed on that repository), asking nothing more', async () => {
      const result = await postToken(broker, githubForm(await job('refs/heads/ghost')));
      const event = await expectRefusal(broker, result, { status: 503, error: 'temporarily_unavailable', reason: 'github_refused' });
      expect(event.decision).toBe('error');
      expect((await github.calls()).at(-1)).toMatchObject({ body: { repositories: ['ghost'] }, status: 422 });
    });

    it("revokes a token its holder hands back to /revoke at once, at the App's API, recording by its SHA-256 the grant it came from", async () => {
      const granted = await postToken(broker, githubForm(await job()));
      expect(granted.status).toBe(200);
      const token = granted.body['access_token'] as string;
      const grant = await broker.auditEvent(granted.body['audit_event_id'] as string);
      const tokenSha256 = grant?.github?.token_sha256 ?? '';
      const handBack = () =>
        broker.request('/revoke', {
          method: 'POST',
          body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
      const revocations = async () =>
        (await github.calls()).filter(
          (call) => call.method === 'DELETE' && call.path === '/installation/token' && call.auth === `token:${tokenSha256.slice(0, 12)}`,
        );

      const answer = await handBack();
      expect(answer.status).toBe(200);
      expect(await answer.text()).toBe('');
      // Which tokens this broker takes back, said whatever the token: a pipeline hands a GitHub token back only to one that says so.
      expect(answer.headers.get('keyway-revokes')).toBe('urn:keyway:params:oauth:token-type:github-installation-token');
      // Its ten minutes are far off: only the hand-back makes it due now, and it starts the round itself (Node's timer, the
      // Durable Object's alarm); the round asked for after that one only waits for it to be over.
      await expect.poll(async () => (await github.repositoriesVisibleTo(token)).status).toBe(401);
      await broker.revokeDueGitHubTokens();
      expect((await revocations()).map((call) => call.status)).toEqual([204]);
      const [record] = (await broker.recentAuditEvents()).filter((event) => event.reason === 'token_revoked' && event.subject_token?.sha256 === tokenSha256);
      expect(record).toMatchObject({
        decision: 'granted',
        detail: `a GitHub installation token (granted in ${grant?.id}) handed back by its holder: revoked at its App's API by the revocation round, now (or at its retry, if an attempt failed)`,
        subject_token: { sha256: tokenSha256 },
      });
      expect(JSON.stringify(record)).not.toContain(token);
      // Its one record: not also one of a token that is no JWT, which would say it was not revoked.
      expect((await broker.recentAuditEvents()).filter((event) => event.request.id === record?.request.id)).toEqual([record]);

      // Its row is gone: handed back again, it is a token the broker does not know, answered alike and sent nowhere.
      const again = await handBack();
      expect(again.status).toBe(200);
      expect(again.headers.get('keyway-revokes')).toBe(answer.headers.get('keyway-revokes'));
      await broker.revokeDueGitHubTokens();
      expect(await revocations()).toHaveLength(1);
      const [unknown] = (await broker.recentAuditEvents()).filter((event) => event.reason === 'token_malformed');
      // Kept by its length alone, as any token that is not this broker's: a SHA-256 of a guessable secret would give it away.
      expect(unknown?.subject_token).toEqual({ length: token.length });
    });

    it('revokes a GitHub token an operator with tokens:revoke hands back, as its holder can, recording the operator', async () => {
      const granted = await postToken(broker, githubForm(await job()));
      expect(granted.status).toBe(200);
      const token = granted.body['access_token'] as string;
      const tokenSha256 = (await broker.auditEvent(granted.body['audit_event_id'] as string))?.github?.token_sha256 ?? '';
      const operator = await postToken(broker, exchangeForm(await job('refs/heads/auditors'), { scope: 'tokens:revoke' }));
      expect(operator.status, JSON.stringify(operator.body)).toBe(200);
      const answer = await broker.request('/revoke', {
        method: 'POST',
        body: new URLSearchParams({ token }),
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${String(operator.body['access_token'])}` },
      });
      expect(answer.status).toBe(200);
      await broker.revokeDueGitHubTokens();
      expect((await github.repositoriesVisibleTo(token)).status).toBe(401);
      const [record] = (await broker.recentAuditEvents()).filter((event) => event.reason === 'token_revoked' && event.subject_token?.sha256 === tokenSha256);
      expect(record?.detail).toMatch(/^a GitHub installation token \(granted in [^)]+\) handed back by operator \S+: revoked at its App's API/);
    });

    it("lists for a GitHub permission, on POST /v1/policy/who-can, the grants that pin no owner_id for the App's deployment's jobs only", async () => {
      const operator = await postToken(broker, exchangeForm(await job('refs/heads/auditors'), { scope: 'policy:explain' }));
      expect(operator.status, JSON.stringify(operator.body)).toBe(200);
      const response = await broker.request('/v1/policy/who-can', {
        method: 'POST',
        body: JSON.stringify({ github_permission: 'contents:read' }),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${String(operator.body['access_token'])}` },
      });
      expect(response.status).toBe(200);
      // The App is on this machine's (fake) GitHub, as the suite's issuer is: the server's jobs beside it number their accounts apart.
      const listed = ((await response.json()) as { allow: { id: string }[] }).allow.map((policy) => policy.id);
      expect(listed).toEqual(expect.arrayContaining(['github/release', 'github/short']));
      expect(listed).not.toContain('github/server');
    });

    it('revokes the token when the policy TTL passes, and only then', async () => {
      /** A GitHub token from the one-minute policy, minted `agoMs` before now by the broker's clock (the subject token too). */
      const mintedAgo = async (agoMs: number) => {
        clockBehindMs = agoMs;
        try {
          const iat = Math.floor((Date.now() - agoMs) / 1000);
          const result = await postToken(broker, githubForm(await job('refs/heads/short', { iat, nbf: iat - 5, exp: iat + 300 })));
          expect(result.status).toBe(200);
          expect(result.body['expires_in']).toBe(60);
          return result.body['access_token'] as string;
        } finally {
          clockBehindMs = 0;
        }
      };
      const before = await tokenCalls();
      const overdue = await mintedAgo(61_000);
      const halfway = await mintedAgo(30_000);
      expect(await tokenCalls()).toBe(before + 2);
      const other = (await postToken(broker, githubForm(await job()))).body['access_token'] as string;
      // (The overdue one may be gone already: a Workers alarm set in the past runs at once.)
      for (const token of [halfway, other]) expect((await github.repositoriesVisibleTo(token)).status).toBe(200);
      await broker.revokeDueGitHubTokens();
      expect((await github.repositoriesVisibleTo(overdue)).status).toBe(401);
      // Thirty seconds of its minute left, and a token with ten minutes left: neither is touched.
      expect((await github.repositoriesVisibleTo(halfway)).status).toBe(200);
      expect((await github.repositoriesVisibleTo(other)).status).toBe(200);
      // The fake GitHub names a caller's token by its SHA-256's first 12 hex digits: the revocation was of overdue, and only it.
      const named = async (token: string) =>
        `token:${[...new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token)))]
          .map((byte) => byte.toString(16).padStart(2, '0'))
          .join('')
          .slice(0, 12)}`;
      const revoked = (await github.calls())
        .filter((call) => call.method === 'DELETE' && call.path === '/installation/token' && call.status === 204)
        .map((call) => call.auth);
      expect(revoked).toContain(await named(overdue));
      for (const token of [halfway, other]) expect(revoked).not.toContain(await named(token));
    });
  });
  repositoryPolicyFetchSuite(runtime, start, issuerBase, githubBase);
}

/** What a caller sees of an answer: everything but the audit event id, which is new each time. */
const visible = (result: { status: number; body: Record<string, unknown> }) => ({
  status: result.status,
  error: result.body['error'],
  error_description: result.body['error_description'],
  token: 'access_token' in result.body,
});

/** `scope=policy:NAME`: when keyway reads a repository's own policy from GitHub, and what a caller can learn from it. */
function repositoryPolicyFetchSuite(runtime: string, start: StartBroker, issuerBase: () => string, githubBase: () => string): void {
  describe(`repository-owned policies on ${runtime}: verified callers only, a bounded fetch rate, the operator's ceiling and issuers`, () => {
    let broker: BrokerHarness;
    let issuer: TestIssuer;
    let github: FakeGitHub;

    /** A policy of an acme repository for acme/api's main branch, as the repository's writers could commit it. */
    const ownPolicy = (permissions: string, { issuerUrl = issuer.url, repo = 'api' } = {}): string =>
      [
        'version: 1',
        `issuer: { kind: github, url: "${issuerUrl}" }`,
        'match: { repository_id: "734201", ref: refs/heads/main }',
        'grant:',
        `  github: { repositories: [acme/${repo}], permissions: ${permissions} }`,
        '',
      ].join('\n');
    const putOwnPolicy = (name: string, text: string, repo = 'api') => github.putFile({ owner: 'acme', repo, path: `.github/keyway/${name}.yaml`, text });

    /** A GitHub Actions issuer of another GitHub deployment than the App's, which the central policies trust too. */
    let server: TestIssuer;

    beforeAll(async () => {
      issuer = freshIssuer(issuerBase(), 'repository-fetch');
      server = freshIssuer(issuerBase().replace('//127.0.0.1:', '//localhost:'), 'repository-fetch-server');
      github = await FakeGitHub.create(githubBase());
      // The App holds more than repositories may grant themselves.
      await github.install({ ...ACME_INSTALLATION, permissions: { ...ACME_INSTALLATION.permissions, administration: 'write', secrets: 'write' } });
      await putOwnPolicy('release', ownPolicy('{ contents: read }'));
      const settings = {
        ...github.settings,
        KEYWAY_RATE_LIMIT_REPOSITORY_POLICY_PER_MINUTE: '1',
        KEYWAY_RATE_LIMIT_REPOSITORY_POLICY_BURST: '5',
        // The operator widens the ceiling by secrets: read, and narrows it to read for contents.
        KEYWAY_REPOSITORY_POLICY_PERMISSIONS: 'contents:read,secrets:read',
      };
      const serverJobs = `version: 1\nissuer: { kind: github, url: "${server.url}" }\nmatch: { repository_owner_id: "1200934" }\ngrant: { audience: https://deploy.acme.dev }\n`;
      // Another tenant's jobs of the App's GitHub, asked for with an audience of its own.
      const ownAudience = `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\nsubject_audience: https://own-audience.example\nmatch: { repository_owner_id: "1300000" }\ngrant: { audience: https://own-audience-api.example }\n`;
      broker = await start({ ...githubPolicies(issuer), 'server.yaml': serverJobs, 'own-audience.yaml': ownAudience }, { settings });
    });
    afterAll(() => broker.close());

    const repositoryUrl = (path: string): string => `${new URL(github.apiUrl).origin}/${path}`;
    // Fetches are budgeted per verified caller (and its account's at ten times that): each test is a caller of its own.
    let caller = 0;
    beforeEach(() => {
      caller += 1;
    });
    const job = (overrides: Record<string, unknown> = {}): Promise<string> =>
      issuer.sign(ciClaims(issuer.url, broker.issuer, { sub: `repo:acme/api:ref:refs/heads/main:test-${caller}`, ...overrides }));
    /** A pipeline of someone else's repository, verified by the same shared issuer (as any GitHub Actions job is). */
    const stranger = (overrides: Record<string, unknown> = {}): Promise<string> =>
      job({
        sub: `repo:mallory/tools:ref:refs/heads/main:test-${caller}`,
        repository: 'mallory/tools',
        repository_id: '666',
        repository_owner: 'mallory',
        repository_owner_id: `666${caller}`,
        ...overrides,
      });
    const ask = async (token: string, repository: string, policy = 'release') =>
      postToken(broker, githubForm(token, { scope: `policy:${policy}`, resource: repositoryUrl(repository) }));
    /** Reads of an acme repository's policy file: keyway addresses the repository by its id. */
    const contentsCalls = async (repository: `acme/${string}`, policy: string) => {
      const id = ACME_INSTALLATION.repositories.find(({ name }) => `acme/${name}` === repository)?.id ?? `unknown ${repository}`;
      return (await github.calls()).filter((call) => call.path === `/repositories/${id}/contents/.github/keyway/${policy}.yaml`).length;
    };

    it('makes no GitHub call for a token that does not verify, and answers it the same whatever repository it names', async () => {
      const now = Math.floor(Date.now() / 1000);
      const stranger = freshIssuer(issuerBase(), 'stranger');
      const tokens: [string, string][] = [
        ['token_malformed', 'not-a-jwt'],
        ['issuer_untrusted', await stranger.sign(ciClaims(stranger.url, broker.issuer))],
        ['signature_invalid', await issuer.sign(ciClaims(issuer.url, broker.issuer), { key: 'foreign' })],
        ['token_expired', await job({ iat: now - 900, nbf: now - 900, exp: now - 300 })],
      ];
      const before = (await github.calls()).length;
      // A repository with the policy, one without it, one the App is not installed on.
      for (const [reason, token] of tokens) {
        const answers = [];
        for (const repository of ['acme/api', 'acme/infra', 'nobody/ghost']) {
          const result = await ask(token, repository);
          expect(result.body).not.toHaveProperty('access_token');
          expect((await broker.auditEvent(result.body['audit_event_id'] as string))?.reason).toBe(reason);
          answers.push(visible(result));
        }
        expect(answers[0]).toMatchObject({ status: 400, error: 'invalid_request', token: false });
        expect(answers).toEqual([answers[0], answers[0], answers[0]]);
      }
      expect((await github.calls()).length).toBe(before);
    });

    it("fetches no repository's own policy for its own job's token minted for another audience than the broker's, accepted by the central set or not, and answers the two alike", async () => {
      const before = (await github.calls()).length;
      const answers = [];
      for (const aud of ['https://own-audience.example', 'https://nobody-accepts.example']) {
        const probe = await ask(await job({ aud }), 'acme/api', 'release');
        expect(probe.body).not.toHaveProperty('access_token');
        expect((await broker.auditEvent(probe.body['audit_event_id'] as string))?.reason).toBe('audience_mismatch');
        answers.push(visible(probe));
      }
      expect(answers[0]).toMatchObject({ status: 400, error: 'invalid_request', token: false });
      expect(answers[1]).toEqual(answers[0]);
      expect((await github.calls()).length).toBe(before);
    });

    it('remembers a missing policy: a repeated miss is answered from the cache, not fetched again', async () => {
      for (let i = 0; i < 3; i += 1) {
        const missing = await ask(await job(), 'acme/api', 'absent');
        expect(missing).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
        expect(missing.body).not.toHaveProperty('access_token');
        expect((await broker.auditEvent(missing.body['audit_event_id'] as string))?.reason).toBe('no_policy_matched');
      }
      expect(await contentsCalls('acme/api', 'absent')).toBe(1);
    });

    it("fetches at most a caller's budget, however many repositories and policy names it invents; another caller has its own", async () => {
      for (const name of ['one', 'two', 'three', 'four', 'five']) expect((await ask(await job(), 'acme/docs', name)).status).toBe(400);
      const before = (await github.calls()).length;
      // Neither another name nor another repository (one that does not exist, or one that does) gets a fresh budget.
      const refusals = [];
      for (const [repository, name] of [
        ['acme/docs', 'six'],
        ['acme/nothing-here', 'one'],
        ['acme/infra', 'one'],
      ] as const) {
        const limited = await ask(await job(), repository, name);
        expect(limited.status).toBe(429);
        expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(limited.body).toMatchObject({ error: 'temporarily_unavailable' });
        expect(limited.body).not.toHaveProperty('access_token');
        refusals.push(limited);
      }
      expect((await github.calls()).length).toBe(before);
      // The first refusal of the run is recorded (the rest of a run are not: see RateLimitedError).
      expect((await broker.auditEvent(refusals[0]!.body['audit_event_id'] as string))?.reason).toBe('rate_limited');
      // A name already answered comes from the cache.
      expect((await ask(await job(), 'acme/docs', 'one')).status).toBe(400);
      expect((await github.calls()).length).toBe(before);
      expect(await contentsCalls('acme/docs', 'one')).toBe(1);
      // Another caller spends its own budget.
      expect((await ask(await job({ sub: `repo:acme/docs:ref:refs/heads/main:test-${caller}` }), 'acme/infra', 'one')).status).toBe(400);
      expect(await contentsCalls('acme/infra', 'one')).toBe(1);
    });

    it("fetches for one account's callers together at most ten callers' budgets, however many subjects it mints", async () => {
      // One account, a subject per branch or matrix job: each subject has a budget of 5, the account 50 in all.
      const statuses: number[] = [];
      for (let subject = 0; subject < 11; subject += 1) {
        const token = await stranger({ sub: `repo:mallory/tools:ref:refs/heads/b${subject}:test-${caller}`, repository_owner_id: `888${caller}` });
        for (let i = 0; i < 5; i += 1) statuses.push((await ask(token, 'mallory/tools', `s${subject}-${i}`)).status);
      }
      expect(statuses.filter((status) => status === 400)).toHaveLength(50);
      expect(statuses.slice(50)).toEqual([429, 429, 429, 429, 429]);
      // Another account is not held to that one's.
      expect((await ask(await stranger({ repository_owner_id: `999${caller}` }), 'mallory/tools', 'elsewhere')).status).toBe(400);
    });

    it("lets no stranger spend a repository's fetches: another account's job costs acme/api nothing, and is answered as a missing policy", async () => {
      await putOwnPolicy('deploy', ownPolicy('{ contents: read }'));
      const before = (await github.calls()).length;
      // A repository's policies grant only its owner's jobs: a stranger's names are never fetched, however many.
      for (const name of ['deploy', ...Array.from({ length: 6 }, (_, i) => `invented-${i}`)]) {
        const probe = await ask(await stranger(), 'acme/api', name);
        expect(probe).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
        expect(probe.body).not.toHaveProperty('access_token');
        const event = await broker.auditEvent(probe.body['audit_event_id'] as string);
        expect(event?.reason).toBe('no_policy_matched');
        expect(event?.detail).toContain("acme/api's own policies grant only GitHub Actions jobs of acme's account");
      }
      expect((await github.calls()).length).toBe(before);
      const pipeline = await ask(await job(), 'acme/api', 'deploy');
      expect(pipeline).toMatchObject({ status: 200, body: { scope: 'contents:read metadata:read' } });
      const event = await broker.auditEvent(pipeline.body['audit_event_id'] as string);
      expect(event).toMatchObject({ reason: 'granted', policy: { granted_by: 'acme/api/.github/keyway/deploy' } });
    });

    it("reads no policy for a job of another GitHub deployment: its account of acme's login and number is not acme's on the App's GitHub", async () => {
      // acme/api's writers trust that deployment's jobs too, of their own account as every repository policy grants.
      await putOwnPolicy('server', ownPolicy('{ contents: read }', { issuerUrl: server.url }));
      const serverJob = await server.sign(
        ciClaims(server.url, broker.issuer, {
          sub: `repo:acme/api:ref:refs/heads/main:server-${caller}`,
          repository_owner: 'acme',
          repository_owner_id: '1200934',
        }),
      );
      const refused = await ask(serverJob, 'acme/api', 'server');
      expect(refused).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
      expect(refused.body).not.toHaveProperty('access_token');
      const event = await broker.auditEvent(refused.body['audit_event_id'] as string);
      expect(event).toMatchObject({ reason: 'no_policy_matched', detail: expect.stringContaining("grant only GitHub Actions jobs of acme's account") });
      expect(await contentsCalls('acme/api', 'server')).toBe(0);
    });

    it("does not remember GitHub's rate limit as a missing policy: once GitHub answers again, the policy is read and grants", async () => {
      await putOwnPolicy('quota', ownPolicy('{ contents: read }'));
      await github.setRateLimited(true);
      let limited;
      try {
        limited = await ask(await job(), 'acme/api', 'quota');
      } finally {
        await github.setRateLimited(false);
      }
      expect(limited).toMatchObject({ status: 503, body: { error: 'temporarily_unavailable' } });
      expect(limited.body).not.toHaveProperty('access_token');
      expect(await broker.auditEvent(limited.body['audit_event_id'] as string)).toMatchObject({ decision: 'error', reason: 'github_unavailable' });
      const granted = await ask(await job(), 'acme/api', 'quota');
      expect(granted).toMatchObject({ status: 200, body: { scope: 'contents:read metadata:read' } });
    });

    it('refuses a policy that is a symlink, as one that does not load: GitHub answers it with the file it points at, outside .github/keyway/', async () => {
      await github.putFile({
        owner: 'acme',
        repo: 'api',
        path: '.github/keyway/linked.yaml',
        text: ownPolicy('{ contents: read }'),
        symlink: 'docs/linked.yaml',
      });
      const result = await ask(await job(), 'acme/api', 'linked');
      expect(result).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
      expect(result.body).not.toHaveProperty('access_token');
      const event = await broker.auditEvent(result.body['audit_event_id'] as string);
      expect(event?.reason).toBe('no_policy_matched');
      expect(event?.detail).toContain('acme/api/.github/keyway/linked.yaml is not a file (GitHub answered with docs/linked.yaml)');
    });

    it('answers a verified caller the same for a repository without the policy and one the App cannot see', async () => {
      const answers = [];
      for (const repository of ['acme/infra', 'acme/secret', 'nobody/ghost']) {
        const result = await ask(await job(), repository);
        expect(result.body).not.toHaveProperty('access_token');
        expect((await broker.auditEvent(result.body['audit_event_id'] as string))?.reason).toBe('no_policy_matched');
        answers.push(visible(result));
      }
      expect(answers[0]).toEqual({ status: 400, error: 'invalid_request', error_description: 'no trust policy grants this request', token: false });
      expect(answers).toEqual([answers[0], answers[0], answers[0]]);
    });

    it("refuses a repository policy granting beyond the operator's ceiling, though the App holds the permission", async () => {
      await putOwnPolicy('admin', ownPolicy('{ contents: read, administration: write }'));
      const result = await ask(await job(), 'acme/api', 'admin');
      expect(result).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
      expect(result.body).not.toHaveProperty('access_token');
      const event = await broker.auditEvent(result.body['audit_event_id'] as string);
      expect(event?.reason).toBe('no_policy_matched');
      expect(event?.detail).toMatch(/may grant administration not at all, not write \(KEYWAY_REPOSITORY_POLICY_PERMISSIONS\)/);
      // GitHub was asked for a token to read the policy, never for one with administration.
      const asked = (await github.calls())
        .filter((call) => call.path.endsWith('/access_tokens'))
        .map((call) => call.body as { permissions: Record<string, string> });
      expect(asked.filter((body) => 'administration' in body.permissions)).toEqual([]);
    });

    it('refuses a repository policy that pins owner_id: whoever holds the login wrote it, so its pin proves nothing', async () => {
      await putOwnPolicy(
        'pinned',
        ownPolicy('{ contents: read }').replace('github: { repositories: [acme/api],', 'github: { repositories: [acme/api], owner_id: "1200934",'),
      );
      const before = (await github.calls()).filter((call) => call.path.endsWith('/access_tokens')).length;
      const result = await ask(await job(), 'acme/api', 'pinned');
      expect(result).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
      expect(result.body).not.toHaveProperty('access_token');
      const event = await broker.auditEvent(result.body['audit_event_id'] as string);
      expect(event?.reason).toBe('no_policy_matched');
      expect(event?.detail).toContain("a repository's own policy cannot pin owner_id");
      // One token, to read the policy; none for the grant.
      expect((await github.calls()).filter((call) => call.path.endsWith('/access_tokens')).length - before).toBe(1);
    });

    it('refuses a repository policy whose regexes each load alone but together cost more than one at the limit: an exchange tests them all', async () => {
      // Each priced just under the limit one regex is held to; a branch of x's ending in `!` takes each some 20 ms on Node.
      const dear = (k: number) => `{ regex: "x{0,${k}}[^y]*[^y]*y" }`;
      await putOwnPolicy('dear', ownPolicy('{ contents: read }').replace('ref: refs/heads/main', `ref: [refs/heads/main, ${dear(14)}, ${dear(13)}]`));
      const result = await ask(await job(), 'acme/api', 'dear');
      expect(result.body).not.toHaveProperty('access_token');
      const event = await broker.auditEvent(result.body['audit_event_id'] as string);
      expect(event?.reason).toBe('no_policy_matched');
      expect(event?.detail).toMatch(/the regexes of this policy together can try a value of 1024 characters in \d+ ways, more than the 16810000/);
    });

    it('refuses a repository policy of more regexes than keyway estimates as it loads, however cheap each is to match', async () => {
      // A release line each: 33 regexes, one more than a file may write.
      const tags = Array.from({ length: 33 }, (_, n) => `{ regex: "refs/tags/v${n}\\\\.[0-9]+" }`);
      const policy = (regexes: readonly string[]) =>
        ownPolicy('{ contents: read }').replace('ref: refs/heads/main', `ref: [refs/heads/main, ${regexes.join(', ')}]`);
      await putOwnPolicy('tags', policy(tags));
      const result = await ask(await job(), 'acme/api', 'tags');
      const event = await expectRefusal(broker, result, { status: 400, error: 'invalid_request', reason: 'no_policy_matched' });
      expect(event.detail).toMatch(
        /tags\.yaml:3:\d+ the regexes of this policy are 33, of \d+ characters together: more than the 32 regexes or 2048 characters/,
      );
      // 32 of them load and grant.
      await putOwnPolicy('fewer', policy(tags.slice(1)));
      expect(await ask(await job(), 'acme/api', 'fewer')).toMatchObject({ status: 200, body: { scope: 'contents:read metadata:read' } });
    });

    it('takes the ceiling from KEYWAY_REPOSITORY_POLICY_PERMISSIONS: what the operator allows is granted, nothing above it', async () => {
      await putOwnPolicy('secrets', ownPolicy('{ contents: read, secrets: read }', { repo: 'infra' }), 'infra');
      const granted = await ask(await job(), 'acme/infra', 'secrets');
      expect(granted).toMatchObject({ status: 200, body: { scope: 'contents:read secrets:read metadata:read' } });
      await putOwnPolicy('writer', ownPolicy('{ contents: write }', { repo: 'infra' }), 'infra');
      const refused = await ask(await job(), 'acme/infra', 'writer');
      expect(refused).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
      expect(refused.body).not.toHaveProperty('access_token');
      expect((await broker.auditEvent(refused.body['audit_event_id'] as string))?.detail).toMatch(/may grant contents at most at read, not write/);
    });

    it("reads a repository's own policy only from its caller's account: under a login renamed and taken again, neither account gets the other's", async () => {
      // initech (7100) keeps a policy for its main branch; a job of initech/app asks for it and gets a token.
      const initech = {
        id: 7001,
        owner: 'initech',
        ownerId: 7100,
        repositories: [{ id: 71001, name: 'app' }],
        permissions: { contents: 'read', metadata: 'read' },
      };
      await github.install(initech);
      const policyOf = (repositoryId: string, ref: string): string =>
        `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\nmatch: { repository_id: "${repositoryId}", ref: ${ref} }\n` +
        'grant:\n  github: { repositories: [initech/app], permissions: { contents: read } }\n';
      await github.putFile({ owner: 'initech', repo: 'app', path: '.github/keyway/release.yaml', text: policyOf('71001', 'refs/heads/main') });
      const initechJob = (ref: string): Promise<string> =>
        job({
          sub: `repo:initech/app:ref:${ref}:test-${caller}`,
          ref,
          repository: 'initech/app',
          repository_id: '71001',
          repository_owner: 'initech',
          repository_owner_id: '7100',
        });
      // Its job's token for a feature branch, minted before the rename below, still names the account initech.
      const featureJob = await initechJob('refs/heads/feature');
      expect(await ask(await initechJob('refs/heads/main'), 'initech/app')).toMatchObject({ status: 200, body: { scope: 'contents:read metadata:read' } });

      // initech renames itself (its repositories and files go with it); another account (7200) registers the login, installs the
      // App and publishes a public initech/app whose policy grants initech's feature branches, which initech's own never did.
      await github.install({ ...initech, owner: 'initech-legacy' });
      await github.putFile({ owner: 'initech-legacy', repo: 'app', path: '.github/keyway/release.yaml', text: policyOf('71001', 'refs/heads/main') });
      await github.install({ ...initech, id: 7002, ownerId: 7200, repositories: [{ id: 72001, name: 'app', public: true }] });
      await github.putFile({ owner: 'initech', repo: 'app', path: '.github/keyway/release.yaml', text: policyOf('72001', 'refs/heads/main') });
      await github.putFile({ owner: 'initech', repo: 'app', path: '.github/keyway/wide.yaml', text: policyOf('71001', 'refs/heads/feature') });

      // The old account's job is not granted by the new account's file: its repository (71001) has no wide.yaml.
      const before = (await github.calls()).length;
      const wide = await ask(featureJob, 'initech/app', 'wide');
      expect(wide).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
      expect(wide.body).not.toHaveProperty('access_token');
      expect(await broker.auditEvent(wide.body['audit_event_id'] as string)).toMatchObject({
        reason: 'no_policy_matched',
        detail: expect.stringContaining('has no .github/keyway/wide.yaml'),
      });
      expect(
        (await github.calls()).slice(before).filter((call) => call.path.startsWith('/repositories/72001/') || call.path.startsWith('/repos/initech/app/')),
      ).toEqual([]);

      // Nor is the new account's job decided by the policy read for the old one, cached under the same name.
      const newcomer = await job({
        sub: `repo:initech/app:ref:refs/heads/main:test-${caller}`,
        repository: 'initech/app',
        repository_id: '72001',
        repository_owner: 'initech',
        repository_owner_id: '7200',
      });
      const release = await ask(newcomer, 'initech/app');
      expect(release.body).not.toHaveProperty('access_token');
      expect(await broker.auditEvent(release.body['audit_event_id'] as string)).toMatchObject({
        reason: 'no_policy_matched',
        detail: expect.stringContaining('initech is the account 7100, not 7200: it is not read under that name'),
      });
    });

    it('refuses a repository policy naming an issuer the operator does not allow, and fetches nothing from that issuer', async () => {
      const elsewhere = freshIssuer(issuerBase(), 'elsewhere');
      await putOwnPolicy('elsewhere', ownPolicy('{ contents: read }', { issuerUrl: elsewhere.url }));
      const ours = await ask(await job(), 'acme/api', 'elsewhere');
      const theirs = await ask(await elsewhere.sign(ciClaims(elsewhere.url, broker.issuer)), 'acme/api', 'elsewhere');
      for (const result of [ours, theirs]) {
        expect(result).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
        expect(result.body).not.toHaveProperty('access_token');
      }
      const refused = await broker.auditEvent(ours.body['audit_event_id'] as string);
      expect(refused?.reason).toBe('no_policy_matched');
      expect(refused?.detail).toContain(`${elsewhere.url} is not an issuer the operator allows repository policies to name`);
      expect((await broker.auditEvent(theirs.body['audit_event_id'] as string))?.reason).toBe('issuer_untrusted');
      expect(await elsewhere.hits()).toMatchObject({ discovery: 0, jwks: 0 });
    });
  });
}
