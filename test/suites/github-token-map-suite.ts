import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeGitHub, type FakeInstallation } from '../support/fake-github.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, expectRefusal, freshIssuer, postToken, type BrokerHarness, type StartBroker } from './exchange-suite.ts';
import { ACME_INSTALLATION } from './github-exchange-suite.ts';
import { auditorPolicies, auditorToken } from './audit-api-suite.ts';
import type { Inventory } from '../../src/core/audit/inventory.ts';
import type { LogFields, Logger } from '../../src/core/log.ts';

export const GITHUB_TOKEN_MAP_TYPE = 'urn:keyway:params:oauth:token-type:github-installation-token-map';

/** The second organization, spelled with capitals as GitHub shows it; requests may spell it in any case. */
const OCTO_INSTALLATION: FakeInstallation = {
  id: 7170,
  owner: 'Octo-Org',
  ownerId: 31337,
  repositories: [{ id: 880101, name: 'site' }],
  permissions: { contents: 'write', metadata: 'read' },
};
/** An owner a policy grants, whose token GitHub fails to mint (502). */
const FLAKY_INSTALLATION: FakeInstallation = {
  id: 7171,
  owner: 'flaky-org',
  repositories: [{ id: 880201, name: 'tools' }],
  permissions: { contents: 'read', metadata: 'read' },
  tokenStatus: 502,
};
/** A login deleted and registered again by another account: the policy pins the old account's id. */
const REBORN_INSTALLATION: FakeInstallation = {
  id: 7172,
  owner: 'reborn-org',
  ownerId: 6666,
  repositories: [{ id: 880301, name: 'app' }],
  permissions: { contents: 'read', metadata: 'read' },
};
/** An owner whose token GitHub mints, but refuses to revoke the first time it is asked. */
const BRITTLE_INSTALLATION: FakeInstallation = {
  id: 7174,
  owner: 'brittle-org',
  repositories: [{ id: 880501, name: 'lib' }],
  permissions: { contents: 'read', metadata: 'read' },
  revokeFailures: 1,
};
/** An owner whose token GitHub mints, but takes two and a half seconds to revoke. */
const SLOW_REVOKE_INSTALLATION: FakeInstallation = {
  id: 7175,
  owner: 'slow-org',
  repositories: [{ id: 880601, name: 'cli' }],
  permissions: { contents: 'read', metadata: 'read' },
  revokeDelayMs: 2500,
};
/** An account the App is installed on that no policy grants. */
const STRANGER_INSTALLATION: FakeInstallation = {
  id: 7173,
  owner: 'stranger-org',
  repositories: [{ id: 880401, name: 'secrets' }],
  permissions: { contents: 'write', metadata: 'read' },
};

/** Each owner granted by its own central policy to the acme/api job on refs/heads/multi. */
function tokenMapPolicies(issuer: TestIssuer): Record<string, string> {
  const policy = (grant: string, ttl: string) =>
    `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\n` +
    `match: { repository_id: "734201", ref: refs/heads/multi }\ngrant:\n  github: ${grant}\n  ttl: ${ttl}\n`;
  const single = (grant: string) =>
    `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\nsingle_use: true\n` +
    `match: { repository_id: "734201", ref: refs/heads/multi-single }\ngrant:\n  github: ${grant}\n`;
  return {
    'map/acme.yaml': policy('{ owner: acme, repositories: [api, docs], permissions: { contents: write } }', '10m'),
    'map/octo.yaml': policy('{ owner: Octo-Org, owner_id: "31337", repositories: [site], permissions: { contents: write } }', '5m'),
    'map/flaky.yaml': policy('{ owner: flaky-org, owner_id: "71710", repositories: [tools], permissions: { contents: read } }', '5m'),
    'map/reborn.yaml': policy('{ owner: reborn-org, owner_id: "5555", repositories: [app], permissions: { contents: read } }', '5m'),
    'map/brittle.yaml': policy('{ owner: brittle-org, owner_id: "71740", repositories: [lib], permissions: { contents: read } }', '5m'),
    'map/slow.yaml': policy('{ owner: slow-org, owner_id: "71750", repositories: [cli], permissions: { contents: read } }', '5m'),
    'map/uninstalled.yaml': policy('{ owner: gone-org, owner_id: "71750", repositories: [old], permissions: { contents: read } }', '5m'),
    // Single use, one owner's grant with an organization permission the operator allows none of (no allowlist here).
    'map/single-acme.yaml': single('{ owner: acme, owner_id: "1200934", repositories: [api], permissions: { contents: read } }'),
    'map/single-octo.yaml': single(
      '{ owner: Octo-Org, owner_id: "31337", repositories: [site], permissions: { contents: read }, organization_permissions: { members: read } }',
    ),
    // Watches the jobs of acme/audited only, so no other test's record names it: it would grant acme's docs, no other owner's.
    'map/audited.yaml':
      `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\nmode: audit\n` +
      'match: { repository_id: "734201", repository: acme/audited, ref: refs/heads/multi }\n' +
      'grant:\n  github: { owner: acme, repositories: [docs], permissions: { contents: read } }\n',
  };
}

/** Issue 19: one exchange for repositories of several owners, one installation token per owner, all or nothing. */
export function githubTokenMapSuite(runtime: string, start: StartBroker, issuerBase: () => string, githubBase: () => string): void {
  describe(`GitHub token maps (several owners) on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let issuer: TestIssuer;
    let github: FakeGitHub;
    /** How far the broker's clock runs behind the real one: a token minted in the past is due by the real clock. */
    let clockBehindMs = 0;
    let people: TestIssuer;
    /** A GitHub Actions issuer of another GitHub deployment than the App's (a GitHub Enterprise Server beside it). */
    let server: TestIssuer;
    /** What the broker logged as errors. */
    const errors: { message: string; fields: LogFields | undefined }[] = [];
    const log: Logger = { info() {}, warn() {}, error: (message, fields) => errors.push({ message, fields }) };

    beforeAll(async () => {
      people = freshIssuer(issuerBase(), 'github-map-people');
      issuer = freshIssuer(issuerBase(), 'github-map');
      server = freshIssuer(issuerBase().replace('//127.0.0.1:', '//localhost:'), 'github-map-server');
      github = await FakeGitHub.create(githubBase());
      for (const installation of [
        ACME_INSTALLATION,
        OCTO_INSTALLATION,
        FLAKY_INSTALLATION,
        REBORN_INSTALLATION,
        STRANGER_INSTALLATION,
        BRITTLE_INSTALLATION,
        SLOW_REVOKE_INSTALLATION,
      ]) {
        await github.install(installation);
      }
      // That server's jobs of its acme, whose account there has the number acme's has on the App's GitHub, granted acme's docs unpinned.
      const serverJobs =
        `version: 1\nissuer: { kind: github, url: "${server.url}" }\nmatch: { repository_owner_id: "1200934", ref: refs/heads/multi }\n` +
        'grant:\n  github: { owner: acme, repositories: [docs], permissions: { contents: read } }\n';
      broker = await start(
        { ...tokenMapPolicies(issuer), 'map/server.yaml': serverJobs, ...auditorPolicies(people, 'https://keyway.test') },
        { settings: { ...github.settings, KEYWAY_ALERT_RULES: 'first_policy_exchange' }, now: () => Date.now() - clockBehindMs, log },
      );
    });
    afterAll(() => broker.close());

    const job = async (): Promise<string> => issuer.sign(ciClaims(issuer.url, broker.issuer, { ref: 'refs/heads/multi' }));
    const repositoryUrl = (path: string): string => `${new URL(github.apiUrl).origin}/${path}`;
    const askFor = async (paths: readonly string[], extra: Record<string, string> = {}) =>
      postToken(broker, exchangeForm(await job(), { requested_token_type: GITHUB_TOKEN_MAP_TYPE, resource: paths.map(repositoryUrl), ...extra }));
    const sha256 = async (text: string): Promise<string> =>
      [...new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)))].map((byte) => byte.toString(16).padStart(2, '0')).join('');
    const tokenCalls = async (): Promise<number> => (await github.calls()).filter((call) => call.path.endsWith('/access_tokens')).length;

    it('answers a map owner → token, one installation token per owner, audited in one record without the tokens', async () => {
      const result = await askFor(['acme/docs', 'Octo-Org/site'], { scope: 'contents:read' });
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      expect(result.body).not.toHaveProperty('access_token');
      expect(result.body).toMatchObject({ issued_token_type: GITHUB_TOKEN_MAP_TYPE, token_type: 'N_A', expires_in: 300 });
      const tokens = result.body['github_tokens'] as Record<string, { access_token: string; expires_in: number; scope: string; repositories: string[] }>;
      expect(Object.keys(tokens)).toEqual(['acme', 'octo-org']);
      expect(tokens['acme']).toMatchObject({ token_type: 'Bearer', expires_in: 600, scope: 'contents:read metadata:read', repositories: ['docs'] });
      expect(tokens['octo-org']).toMatchObject({ token_type: 'Bearer', expires_in: 300, scope: 'contents:read metadata:read', repositories: ['site'] });
      expect(await github.repositoriesVisibleTo(tokens['acme']!.access_token)).toEqual({ status: 200, names: ['docs'] });
      expect(await github.repositoriesVisibleTo(tokens['octo-org']!.access_token)).toEqual({ status: 200, names: ['site'] });

      const event = await broker.auditEvent(result.body['audit_event_id'] as string);
      expect(event).toMatchObject({ decision: 'granted', reason: 'granted', policy: { granted_by: 'map/acme' } });
      expect(event).not.toHaveProperty('github');
      expect(event?.github_tokens).toEqual([
        expect.objectContaining({
          owner: 'acme',
          installation_id: ACME_INSTALLATION.id,
          granted_by: 'map/acme',
          repositories: ['docs'],
          token_sha256: await sha256(tokens['acme']!.access_token),
        }),
        expect.objectContaining({
          owner: 'Octo-Org',
          installation_id: OCTO_INSTALLATION.id,
          granted_by: 'map/octo',
          repositories: ['site'],
          token_sha256: await sha256(tokens['octo-org']!.access_token),
        }),
      ]);
      const recorded = JSON.stringify(event);
      for (const token of Object.values(tokens)) expect(recorded).not.toContain(token.access_token);
    });

    it('revokes each token of a map on its own policy TTL: the five-minute one is due, the ten-minute one is not', async () => {
      // Minted six minutes ago by the broker's clock (the subject token too).
      clockBehindMs = 6 * 60_000;
      let result;
      try {
        const iat = Math.floor((Date.now() - clockBehindMs) / 1000);
        const token = await issuer.sign(ciClaims(issuer.url, broker.issuer, { ref: 'refs/heads/multi', iat, nbf: iat - 5, exp: iat + 300 }));
        result = await postToken(
          broker,
          exchangeForm(token, { requested_token_type: GITHUB_TOKEN_MAP_TYPE, resource: ['acme/api', 'octo-org/site'].map(repositoryUrl) }),
        );
      } finally {
        clockBehindMs = 0;
      }
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      const tokens = result.body['github_tokens'] as Record<string, { access_token: string }>;
      await broker.revokeDueGitHubTokens();
      expect((await github.repositoriesVisibleTo(tokens['octo-org']!.access_token)).status).toBe(401);
      expect((await github.repositoriesVisibleTo(tokens['acme']!.access_token)).status).toBe(200);
    });

    it("does not use a single-use token up on an owner's organization permissions beyond the operator's allowlist, and mints nothing", async () => {
      const token = await issuer.sign(ciClaims(issuer.url, broker.issuer, { ref: 'refs/heads/multi-single' }));
      const ask = (paths: readonly string[]) =>
        postToken(broker, exchangeForm(token, { requested_token_type: GITHUB_TOKEN_MAP_TYPE, resource: paths.map(repositoryUrl) }));
      const before = await tokenCalls();
      const refused = await expectRefusal(broker, await ask(['acme/api', 'Octo-Org/site']), {
        error: 'invalid_scope',
        reason: 'github_permission_not_allowed',
      });
      expect(refused.detail).toMatch(/^owner octo-org: members:read is beyond/);
      expect(await tokenCalls()).toBe(before);
      const acmeOnly = await ask(['acme/api']);
      expect(acmeOnly.status, JSON.stringify(acmeOnly.body)).toBe(200);
      await expectRefusal(broker, await ask(['acme/api']), { error: 'invalid_request', reason: 'replayed' });
    });

    it('treats Octo-Org and octo-org as one owner: one token, keyed by the login in lower case', async () => {
      const before = (await github.calls()).filter((call) => call.path === `/app/installations/${OCTO_INSTALLATION.id}/access_tokens`).length;
      const result = await askFor(['Octo-Org/site', 'octo-org/SITE', 'OCTO-ORG/site']);
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      expect(Object.keys(result.body['github_tokens'] as object)).toEqual(['octo-org']);
      const asked = (await github.calls()).filter((call) => call.path === `/app/installations/${OCTO_INSTALLATION.id}/access_tokens`);
      expect(asked.length).toBe(before + 1);
      expect(asked.at(-1)).toMatchObject({ body: { repositories: ['site'] }, status: 201 });
    });

    it("gives an owner asked for two repositories, with another owner's between them, one token for both", async () => {
      const result = await askFor(['acme/api', 'octo-org/site', 'acme/docs']);
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      const tokens = result.body['github_tokens'] as Record<string, { access_token: string; repositories: string[] }>;
      expect(Object.keys(tokens)).toEqual(['acme', 'octo-org']);
      expect(tokens['acme']?.repositories).toEqual(['api', 'docs']);
      expect(await github.repositoriesVisibleTo(tokens['acme']!.access_token)).toEqual({ status: 200, names: ['api', 'docs'] });
    });

    it('records an audit-mode policy as it would decide for every owner: it would deny a map it would grant only one owner of', async () => {
      const token = await issuer.sign(ciClaims(issuer.url, broker.issuer, { ref: 'refs/heads/multi', repository: 'acme/audited' }));
      const ask = (paths: readonly string[]) =>
        postToken(broker, exchangeForm(token, { requested_token_type: GITHUB_TOKEN_MAP_TYPE, resource: paths.map(repositoryUrl) }));
      // The owner it would deny named first, and last: the map is granted (the policy only watches), and recorded as it would deny.
      for (const paths of [
        ['octo-org/site', 'acme/docs'],
        ['acme/docs', 'octo-org/site'],
      ]) {
        const result = await ask(paths);
        expect(result.status, JSON.stringify(result.body)).toBe(200);
        const event = await broker.auditEvent(result.body['audit_event_id'] as string);
        expect(event?.policy?.audit_mode, paths.join(' ')).toEqual([{ policy: 'map/audited', would: 'deny' }]);
      }
      const alone = await ask(['acme/docs']);
      expect((await broker.auditEvent(alone.body['audit_event_id'] as string))?.policy?.audit_mode).toEqual([{ policy: 'map/audited', would: 'grant' }]);
    });

    it('refuses the whole request when a policy grants one owner but not another, naming it, minting nothing', async () => {
      const before = await tokenCalls();
      const result = await askFor(['acme/api', 'stranger-org/secrets']);
      const event = await expectRefusal(broker, result, { error: 'invalid_target', reason: 'github_repository_not_granted' });
      expect(result.body).not.toHaveProperty('github_tokens');
      expect(result.body['error_description']).toMatch(/^owner stranger-org: /);
      expect(event.detail).toMatch(/^owner stranger-org: /);
      expect(event).not.toHaveProperty('github_tokens');
      // Decided before anything is minted: GitHub was not asked for acme's token either.
      expect(await tokenCalls()).toBe(before);
    });

    it('refuses a permission one owner does not grant, though the other does, naming that owner', async () => {
      const before = await tokenCalls();
      // map/acme grants contents:write, map/flaky only contents:read.
      const result = await askFor(['acme/api', 'flaky-org/tools'], { scope: 'contents:write' });
      const event = await expectRefusal(broker, result, { error: 'invalid_scope', reason: 'github_permission_not_granted' });
      expect(event.detail).toMatch(/^owner flaky-org: /);
      expect(await tokenCalls()).toBe(before);
    });

    it.each([
      ['GitHub fails to mint its token (502)', ['acme/docs', 'flaky-org/tools'], 'flaky-org', 503, 'temporarily_unavailable', 'github_unavailable'],
      ['the App is not installed on it', ['acme/docs', 'gone-org/old'], 'gone-org', 503, 'temporarily_unavailable', 'github_refused'],
      [
        'its login now belongs to another account than the policy pins',
        ['acme/docs', 'reborn-org/app'],
        'reborn-org',
        400,
        'invalid_target',
        'github_owner_mismatch',
      ],
    ] as const)('revokes the tokens already minted and returns none when %s', async (_why, paths, failing, status, error, reason) => {
      const before = (await github.tokens()).length;
      const result = await askFor(paths);
      const event = await expectRefusal(broker, result, { status, error, reason });
      expect(result.body).not.toHaveProperty('github_tokens');
      expect(result.body['error_description']).toMatch(new RegExp(`^owner ${failing}: `));
      expect(event.detail).toMatch(new RegExp(`^owner ${failing}: `));
      expect(event).not.toHaveProperty('github_tokens');
      // acme's token was minted first, then taken back before the refusal left.
      const minted = (await github.tokens()).slice(before);
      expect(minted).toEqual([expect.objectContaining({ revoked: true, repositories: ['docs'] })]);
      const deletes = (await github.calls()).filter((call) => call.method === 'DELETE' && call.path === '/installation/token');
      expect(deletes.at(-1)).toMatchObject({ auth: `token:${minted[0]!.sha256.slice(0, 12)}`, status: 204 });
    });

    it('makes a minted token of a refused map due for revocation now when GitHub fails its first revocation, not at its TTL', async () => {
      const before = (await github.tokens()).length;
      const result = await askFor(['brittle-org/lib', 'flaky-org/tools']);
      await expectRefusal(broker, result, { status: 503, error: 'temporarily_unavailable', reason: 'github_unavailable' });
      const [minted] = (await github.tokens()).slice(before);
      expect(minted).toMatchObject({ repositories: ['lib'] });
      const deletes = (await github.calls()).filter((call) => call.method === 'DELETE' && call.auth === `token:${minted!.sha256.slice(0, 12)}`);
      expect(deletes[0]).toMatchObject({ status: 502 });
      // The operator learns which owner's token is still out, and under which record.
      expect(errors.filter(({ fields }) => fields?.['audit_event_id'] === result.body['audit_event_id'])).toEqual([
        {
          message: 'github token map: tokens could not be revoked now; the revocation round retries them',
          fields: { audit_event_id: result.body['audit_event_id'], owners: ['brittle-org'] },
        },
      ]);
      // Its five-minute TTL is far off: only a revocation due now is taken back by this round (or by the timer before it).
      await broker.revokeDueGitHubTokens();
      expect((await github.tokens()).slice(before)[0]).toMatchObject({ revoked: true });
    });

    it('answers a refused map only once the tokens already minted are revoked, however long GitHub takes to revoke them', async () => {
      const before = (await github.tokens()).length;
      const result = await askFor(['slow-org/cli', 'flaky-org/tools']);
      // Read as soon as the answer came, before anything else can give GitHub time to finish.
      expect((await github.tokens()).slice(before)).toEqual([expect.objectContaining({ repositories: ['cli'], revoked: true })]);
      await expectRefusal(broker, result, { status: 503, error: 'temporarily_unavailable', reason: 'github_unavailable' });
    });

    it("takes no other GitHub deployment's account for the caller's own in a map: its repository_owner_id numbers that deployment's accounts", async () => {
      const before = await tokenCalls();
      const serverJob = await server.sign(
        ciClaims(server.url, broker.issuer, { ref: 'refs/heads/multi', repository_owner: 'acme', repository_owner_id: '1200934' }),
      );
      const refused = await postToken(broker, exchangeForm(serverJob, { requested_token_type: GITHUB_TOKEN_MAP_TYPE, resource: repositoryUrl('acme/docs') }));
      const event = await expectRefusal(broker, refused, { error: 'invalid_target', reason: 'github_repository_not_granted' });
      expect(event.detail).toContain('which is not the caller');
      expect(await tokenCalls()).toBe(before);
    });

    it("counts each owner's token in the inventory as a grant by its own policy, with its permissions and repositories", async () => {
      // A repository of its own, so no other test's grants are counted with these.
      const token = await issuer.sign(ciClaims(issuer.url, broker.issuer, { ref: 'refs/heads/multi', repository: 'acme/inventoried' }));
      const result = await postToken(
        broker,
        exchangeForm(token, {
          requested_token_type: GITHUB_TOKEN_MAP_TYPE,
          resource: ['acme/docs', 'octo-org/site'].map(repositoryUrl),
          scope: 'contents:read',
        }),
      );
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      const response = await broker.request('/v1/inventory?repository=acme/inventoried', {
        headers: { authorization: `Bearer ${await auditorToken(broker, people)}` },
      });
      expect(response.status).toBe(200);
      const [identity, ...others] = ((await response.json()) as Inventory).identities;
      expect(others).toEqual([]);
      expect(identity).toMatchObject({
        repository: 'acme/inventoried',
        policies: [
          { value: 'map/acme', count: 1 },
          { value: 'map/octo', count: 1 },
        ],
        github_permissions: [
          { value: 'contents:read', count: 2 },
          { value: 'metadata:read', count: 2 },
        ],
        github_repositories: [
          { value: 'docs', count: 1 },
          { value: 'site', count: 1 },
        ],
      });
    });

    it("raises first_policy_exchange for each owner's policy the first time it grants, the second owner's too", async () => {
      expect((await askFor(['acme/api', 'octo-org/site'])).status).toBe(200);
      const bearer = `Bearer ${await auditorToken(broker, people)}`;
      const firstUses = async () => {
        const { alerts } = (await (await broker.request('/v1/audit/alerts', { headers: { authorization: bearer } })).json()) as {
          alerts: { rule: string; details: Record<string, unknown> }[];
        };
        return alerts.filter((alert) => alert.rule === 'first_policy_exchange').map((alert) => alert.details['policy']);
      };
      // Alerts are raised once the answer has left: wait for them, a bounded number of times (15 s: 5 s ran out once in a
      // fresh-clone run on a loaded machine, the alerts not yet raised).
      let policies = await firstUses();
      for (let attempt = 0; attempt < 150 && !(policies.includes('map/acme') && policies.includes('map/octo')); attempt += 1) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        policies = await firstUses();
      }
      expect(policies.filter((policy) => policy === 'map/acme' || policy === 'map/octo').sort()).toEqual(['map/acme', 'map/octo']);
    });

    it('revokes every token of the map and answers 503 with none when the audit record cannot be written', async () => {
      const before = (await github.tokens()).length;
      // On Workers, workerd prints the failed append as an `uncaught exception … no such table: audit_events`: the vitest
      // pool's Durable Object wrapper reports every rejecting RPC so (cloudflare/workers-sdk#14736), one the broker awaited and
      // answered 503 too.
      await broker.tamper('ALTER TABLE audit_events RENAME TO audit_events_away', []);
      let result;
      try {
        result = await askFor(['acme/docs', 'octo-org/site']);
      } finally {
        await broker.tamper('ALTER TABLE audit_events_away RENAME TO audit_events', []);
      }
      expect(result.status).toBe(503);
      expect(result.body).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
      const minted = (await github.tokens()).slice(before);
      expect(minted).toEqual([
        expect.objectContaining({ repositories: ['docs'], revoked: true }),
        expect.objectContaining({ repositories: ['site'], revoked: true }),
      ]);
    });

    it('asks for the repositories to be named, and keeps a repository policy to one token', async () => {
      const unnamed = await postToken(broker, exchangeForm(await job(), { requested_token_type: GITHUB_TOKEN_MAP_TYPE }));
      await expectRefusal(broker, unnamed, { error: 'invalid_target', reason: 'github_repository_not_granted' });
      expect(unnamed.body['error_description']).toBe('a GitHub token map needs its repositories named: resource https://github.com/OWNER/REPO');
      const repositoryPolicy = await askFor(['acme/api'], { scope: 'policy:release' });
      await expectRefusal(broker, repositoryPolicy, { error: 'invalid_target', reason: 'github_repository_not_granted' });
    });
  });
}
