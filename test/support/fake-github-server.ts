import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { HttpBindings } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { decodeJwt, importSPKI, jwtVerify } from 'jose';
import type { FakeCall, FakeCheckRun, FakeCommitStatus, FakeFile, FakeInstallation } from './fake-github.ts';
import { misbehave, type Misbehaviour } from './misbehaviour.ts';
import { serveOnLoopback } from './serve-on-loopback.ts';

/** GitHub's organization permissions, by its naming: `members`, `team_discussions` and every `organization_…`. */
const isOrganizationPermission = (name: string): boolean => name === 'members' || name === 'team_discussions' || name.startsWith('organization_');

/**
 * A fake GitHub REST API on 127.0.0.1, for the endpoints keyway calls. Each App created through
 * `POST /_test/apps` gets its own API base (`<origin>/apps/<id>`, like a GitHub Enterprise Server
 * `https://HOST/api/v3`), its own RSA key (handed out as PKCS#1 PEM, as GitHub does, and as
 * PKCS#8) and its own installations, tokens, files and call log. App JWTs are verified with the
 * App's public key; token requests are checked against the installation's repositories and
 * permissions; revoked tokens get 401. Tests drive it over HTTP (`<api>/_test/...`, see
 * fake-github.ts), so the same client works from Node and from workerd.
 */

interface FakeToken {
  readonly installationId: number;
  readonly repositories: readonly { readonly id: number; readonly name: string }[];
  readonly permissions: Readonly<Record<string, string>>;
  readonly expiresAt: number;
  revoked: boolean;
}

interface FakeApp {
  readonly id: number;
  readonly publicKey: CryptoKey;
  readonly installations: Map<number, FakeInstallation>;
  readonly tokens: Map<string, FakeToken>;
  /** By key, each file's bytes. */
  readonly files: Map<string, Buffer>;
  /**
   * Files (keys of `files`) that are symlinks, with their target's path: listed as `symlink`, read as their target's
   * text and path, as GitHub does for a file target.
   */
  readonly symlinks: Map<string, string>;
  /**
   * Entries (keys of `files`, with no bytes) that are submodules, with their repository's URL: listed as `file` with size 0,
   * as GitHub lists a submodule "for backwards compatibility", and read as `type: submodule`, with no content.
   */
  readonly submodules: Map<string, string>;
  readonly branches: Map<string, string>;
  /** Repository roles by `owner/repo:user` (lower case): admin, maintain, write, triage, read. */
  readonly roles: Map<string, string>;
  readonly calls: FakeCall[];
  /** The commit statuses set with the App's installation tokens: GitHub attributes each to the App whose token set it. */
  readonly statuses: FakeCommitStatus[];
  /** The App's check runs by id, as they stand now (only the App that created a check run may update it). */
  readonly checkRuns: Map<number, FakeCheckRun>;
  down: boolean;
  /** How every API call fails, when it does (a redirect goes to the API root). */
  misbehaviour: Misbehaviour | undefined;
  /** Answers every API call as GitHub does once the rate limit is spent: 403 with x-ratelimit-remaining 0. */
  rateLimited: boolean;
  /** A rate limit counted down by every API call, reported in x-ratelimit-* headers; at 0 the App is rate limited until reset. */
  quota: { remaining: number; resetAt: number } | undefined;
  /**
   * Contents reads at `ref` wait until the test releases them (a slow GitHub, for races), then are answered, or fail with the
   * status the release gives (GitHub failing mid-way); `waiting` counts those held now.
   */
  hold: { ref: string; suffix: string; waiting: number; released: Promise<number | undefined>; release: (status?: number) => void } | undefined;
}

/** What a repository route names, by name or by id. */
interface NamedRepository {
  readonly owner: string;
  readonly repo: string;
  /** Undefined for a name no installation holds. */
  readonly id: number | undefined;
  readonly public: boolean;
}

/** A repository's REST routes, each also under GitHub's id alias (`/repositories/{id}/…`), which keyway's proxy calls. */
const REPOSITORY_ROUTES = ['/repos/:owner/:repo', '/repositories/:id{[0-9]+}'];

type FakeEnv = { Bindings: HttpBindings; Variables: { app: FakeApp; auth: string; token: FakeToken | undefined } };

const LEVELS = ['read', 'write', 'admin'];
const covers = (held: string | undefined, wanted: string): boolean =>
  held !== undefined && LEVELS.indexOf(held) >= LEVELS.indexOf(wanted) && LEVELS.includes(wanted);
const hash = (token: string): string => createHash('sha256').update(token).digest('hex').slice(0, 12);
const fileKey = (owner: string, repo: string, path: string, ref: string): string => `${owner.toLowerCase()}/${repo.toLowerCase()}:${ref}:${path}`;

export async function startFakeGitHubServer(): Promise<{ base: string; close(): Promise<void> }> {
  const apps = new Map<number, FakeApp>();
  let base = '';
  const root = new Hono<{ Bindings: HttpBindings }>();

  root.post('/_test/apps', async (c) => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const id = apps.size + 1;
    const spki = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    apps.set(id, {
      id,
      publicKey: await importSPKI(spki, 'RS256'),
      installations: new Map(),
      tokens: new Map(),
      files: new Map(),
      symlinks: new Map(),
      submodules: new Map(),
      branches: new Map(),
      roles: new Map(),
      calls: [],
      statuses: [],
      checkRuns: new Map(),
      down: false,
      misbehaviour: undefined,
      rateLimited: false,
      quota: undefined,
      hold: undefined,
    });
    return c.json({
      apiUrl: `${base}/apps/${id}`,
      appId: String(id),
      privateKeyPem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
      privateKeyPkcs8Pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    });
  });

  const api = new Hono<FakeEnv>();

  /** On the shared base every App calls, as on github.com, the App is the App JWT's iss or the App whose token it is. */
  const appOfCredential = (c: Context<FakeEnv>): FakeApp | undefined => {
    const credential = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '')?.[1];
    if (credential === undefined) return undefined;
    if (credential.split('.').length !== 3) return [...apps.values()].find((app) => app.tokens.has(credential));
    try {
      return apps.get(Number(decodeJwt(credential).iss));
    } catch {
      return undefined;
    }
  };

  // GitHub names every answer, its errors too, with a request id: what tells a client GitHub's 401 from another server's.
  api.use('*', async (c, next) => {
    c.header('x-github-request-id', crypto.randomUUID().toUpperCase());
    await next();
  });
  api.use('*', async (c, next) => {
    const shared = c.req.param('app') === 'shared';
    const app = shared ? appOfCredential(c) : apps.get(Number(c.req.param('app')));
    // GitHub's answer to a JWT for an App it does not know (or whose key does not match).
    if (app === undefined && shared) return c.json({ message: 'A JSON web token could not be decoded' }, 401);
    if (app === undefined) return c.json({ message: 'no such app' }, 404);
    c.set('app', app);
    const isAdmin = c.req.path.includes('/_test/');
    if (isAdmin) return next();
    if (app.down) {
      app.calls.push({ method: c.req.method, path: apiPath(c), query: new URL(c.req.url).search, auth: 'none', body: undefined, status: 503 });
      return c.json({ message: 'down for the test' }, 503);
    }
    if (app.misbehaviour !== undefined) {
      app.calls.push({ method: c.req.method, path: apiPath(c), query: new URL(c.req.url).search, auth: 'none', body: undefined, status: 0 });
      return misbehave(c, app.misbehaviour, { message: 'misbehaving for the test' }, `${base}/apps/${app.id}`);
    }
    if (app.rateLimited) {
      const body = c.req.method === 'POST' ? ((await c.req.raw.clone().json()) as unknown) : undefined;
      app.calls.push({ method: c.req.method, path: apiPath(c), query: new URL(c.req.url).search, auth: 'none', body, status: 403 });
      const reset = String(Math.ceil(Date.now() / 1000) + 60);
      c.header('x-ratelimit-limit', '5000');
      c.header('x-ratelimit-remaining', '0');
      c.header('x-ratelimit-reset', reset);
      const documentation = 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api';
      return c.json({ message: 'API rate limit exceeded for installation.', documentation_url: documentation }, 403);
    }
    if (app.quota !== undefined) {
      const reset = String(Math.ceil(app.quota.resetAt / 1000));
      c.header('x-ratelimit-limit', '5000');
      c.header('x-ratelimit-reset', reset);
      if (app.quota.remaining <= 0) {
        c.header('x-ratelimit-remaining', '0');
        const body = c.req.method === 'POST' ? ((await c.req.raw.clone().json()) as unknown) : undefined;
        app.calls.push({ method: c.req.method, path: apiPath(c), query: new URL(c.req.url).search, auth: 'none', body, status: 403 });
        return c.json({ message: `API rate limit exceeded for app ID ${app.id}.` }, 403);
      }
      app.quota.remaining -= 1;
      c.header('x-ratelimit-remaining', String(app.quota.remaining));
    }
    const authorization = c.req.header('authorization') ?? '';
    const credential = /^Bearer (.+)$/.exec(authorization)?.[1];
    let auth = 'none';
    if (credential !== undefined && credential.split('.').length === 3) auth = (await verifyAppJwt(app, credential)) ? 'app' : 'invalid';
    else if (credential !== undefined) {
      const token = app.tokens.get(credential);
      if (token !== undefined && !token.revoked && token.expiresAt > Date.now()) {
        auth = `token:${hash(credential)}`;
        c.set('token', token);
      } else auth = 'invalid';
    }
    c.set('auth', auth);
    const body = c.req.method === 'POST' || c.req.method === 'PATCH' ? ((await c.req.raw.clone().json()) as unknown) : undefined;
    const badHeaders = c.req.header('x-github-api-version') !== '2022-11-28' || !(c.req.header('accept') ?? '').includes('application/vnd.github+json');
    const response = badHeaders ? c.json({ message: 'missing Accept or X-GitHub-Api-Version' }, 400) : await next().then(() => c.res);
    app.calls.push({ method: c.req.method, path: apiPath(c), query: new URL(c.req.url).search, auth, body, status: response.status });
    return response;
  });

  const requireApp = (c: Context<FakeEnv>): Response | undefined =>
    c.get('auth') === 'app' ? undefined : c.json({ message: 'A JSON web token could not be decoded' }, 401);
  const requireToken = (c: Context<FakeEnv>): FakeToken | Response => c.get('token') ?? c.json({ message: 'Bad credentials' }, 401);

  const installationOf = (app: FakeApp, owner: string, type?: string): FakeInstallation | undefined =>
    [...app.installations.values()].find(
      (installation) => installation.owner.toLowerCase() === owner.toLowerCase() && (type === undefined || (installation.ownerType ?? 'Organization') === type),
    );
  const installationJson = (installation: FakeInstallation): object => ({
    id: installation.id,
    account: { login: installation.owner, id: installation.ownerId ?? installation.id * 10, type: installation.ownerType ?? 'Organization' },
    permissions: installation.permissions,
    repository_selection: 'selected',
  });

  for (const [route, type] of [
    ['/orgs/:owner/installation', 'Organization'],
    ['/users/:owner/installation', undefined],
  ] as const) {
    api.get(route, (c) => {
      const refused = requireApp(c);
      if (refused !== undefined) return refused;
      const installation = installationOf(c.get('app'), c.req.param('owner')!, type);
      return installation === undefined ? c.json({ message: 'Not Found' }, 404) : c.json(installationJson(installation));
    });
  }
  api.get('/repos/:owner/:repo/installation', (c) => {
    const refused = requireApp(c);
    if (refused !== undefined) return refused;
    const installation = installationOf(c.get('app'), c.req.param('owner'));
    const has = installation?.repositories.some((repository) => repository.name.toLowerCase() === c.req.param('repo').toLowerCase());
    return installation === undefined || has !== true ? c.json({ message: 'Not Found' }, 404) : c.json(installationJson(installation));
  });

  api.post('/app/installations/:id/access_tokens', async (c) => {
    const refused = requireApp(c);
    if (refused !== undefined) return refused;
    const app = c.get('app');
    const installation = app.installations.get(Number(c.req.param('id')));
    if (installation === undefined) return c.json({ message: 'Not Found' }, 404);
    if (installation.tokenStatus !== undefined) return c.json({ message: 'failing for the test' }, installation.tokenStatus as ContentfulStatusCode);
    const request = await c.req.json<{ repositories?: string[]; repository_ids?: number[]; permissions?: Record<string, string> }>();
    const byName = new Map(installation.repositories.map((repository) => [repository.name.toLowerCase(), repository]));
    const names = request.repositories ?? [];
    const ids = request.repository_ids ?? [];
    const repositories = [
      ...names.map((name) => byName.get(name.toLowerCase())),
      ...ids.map((id) => installation.repositories.find((repository) => repository.id === id)),
    ];
    if (repositories.some((repository) => repository === undefined))
      return c.json({ message: 'There is at least one repository that does not exist or is not accessible to the parent installation.' }, 422);
    const permissions = request.permissions ?? installation.permissions;
    // GitHub: organization permissions exist only for an App installed on an organization; a personal account has none to give.
    const organizationOnly = Object.keys(permissions).filter(isOrganizationPermission);
    if (organizationOnly.length > 0 && (installation.ownerType ?? 'Organization') !== 'Organization')
      return c.json({ message: `The permissions requested are not granted to this installation: ${organizationOnly.join(', ')}` }, 422);
    for (const [name, level] of Object.entries(permissions)) {
      if (!covers(installation.permissions[name], level))
        return c.json({ message: `The permissions requested are not granted to this installation: ${name}` }, 422);
    }
    const token = `ghs_${randomBytes(27).toString('base64url')}`;
    const granted = { ...permissions, metadata: 'read' };
    const selected = repositories.length === 0 ? installation.repositories : (repositories as FakeInstallation['repositories']);
    const expiresAt = Date.now() + (installation.tokenLifetimeMs ?? 3600_000);
    app.tokens.set(token, { installationId: installation.id, repositories: selected, permissions: granted, expiresAt, revoked: false });
    if (installation.tokenDelayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, installation.tokenDelayMs));
    return c.json(
      {
        token,
        expires_at: new Date(expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        permissions: granted,
        repository_selection: installation.tokenAnswerForEveryRepository === true ? 'all' : 'selected',
        ...(installation.tokenAnswerNamesNoRepository === true
          ? {}
          : { repositories: selected.map(({ id, name }) => ({ id, name, full_name: `${installation.owner}/${name}` })) }),
      },
      201,
    );
  });

  api.delete('/installation/token', async (c) => {
    const token = requireToken(c);
    if (token instanceof Response) return token;
    const installation = c.get('app').installations.get(token.installationId);
    if (installation !== undefined && (installation.revokeFailures ?? 0) > 0) {
      c.get('app').installations.set(installation.id, { ...installation, revokeFailures: (installation.revokeFailures ?? 0) - 1 });
      return c.json({ message: 'failing for the test' }, 502);
    }
    if (installation?.revokeDelayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, installation.revokeDelayMs));
    token.revoked = true;
    return c.body(null, 204);
  });

  api.get('/installation/repositories', (c) => {
    const token = requireToken(c);
    if (token instanceof Response) return token;
    const installation = c.get('app').installations.get(token.installationId)!;
    return c.json({
      total_count: token.repositories.length,
      repositories: token.repositories.map(({ id, name }) => ({ id, name, full_name: `${installation.owner}/${name}` })),
    });
  });

  // Organization permissions reach the organization whatever repositories the token names: "List organization members".
  api.get('/orgs/:org/members', (c) => {
    const token = requireToken(c);
    if (token instanceof Response) return token;
    const installation = c.get('app').installations.get(token.installationId)!;
    if (installation.owner.toLowerCase() !== c.req.param('org').toLowerCase()) return c.json({ message: 'Not Found' }, 404);
    if (!covers(token.permissions['members'], 'read')) return c.json({ message: 'Resource not accessible by integration' }, 403);
    return c.json([{ login: 'octocat', id: 1, type: 'User' }]);
  });

  /**
   * The repository a path names: `/repos/{owner}/{repo}` by name (as the caller wrote it), `/repositories/{id}` by id,
   * GitHub's alias that a rename does not move. Undefined for an id no installation holds.
   */
  const namedRepository = (c: Context<FakeEnv>): NamedRepository | undefined => {
    const id = c.req.param('id');
    const owner = c.req.param('owner');
    const name = c.req.param('repo');
    for (const installation of c.get('app').installations.values()) {
      for (const repository of installation.repositories) {
        const named =
          id === undefined
            ? installation.owner.toLowerCase() === owner!.toLowerCase() && repository.name.toLowerCase() === name!.toLowerCase()
            : repository.id === Number(id);
        if (!named) continue;
        const found = { id: repository.id, public: repository.public === true };
        return id === undefined ? { owner: owner!, repo: name!, ...found } : { owner: installation.owner, repo: repository.name, ...found };
      }
    }
    return id === undefined ? { owner: owner!, repo: name!, id: undefined, public: false } : undefined;
  };

  /** A token's access to the named repository: one it holds, at the permission's level; a public one to read, as any token may. */
  const repositoryAccess = (c: Context<FakeEnv>, permission: string, level: string): NamedRepository | Response => {
    const token = requireToken(c);
    if (token instanceof Response) return token;
    const repository = namedRepository(c);
    if (repository === undefined) return c.json({ message: 'Not Found' }, 404);
    const installation = c.get('app').installations.get(token.installationId)!;
    const inToken =
      installation.owner.toLowerCase() === repository.owner.toLowerCase() &&
      token.repositories.some((held) => held.name.toLowerCase() === repository.repo.toLowerCase());
    if (!inToken && repository.public && level === 'read') return repository;
    if (!inToken) return c.json({ message: 'Not Found' }, 404);
    if (!covers(token.permissions[permission], level)) return c.json({ message: 'Resource not accessible by integration' }, 403);
    return repository;
  };

  api.on(
    'GET',
    REPOSITORY_ROUTES.map((route) => `${route}/contents/*`),
    async (c) => {
      const access = repositoryAccess(c, 'contents', 'read');
      if (access instanceof Response) return access;
      const path = decodeURIComponent(c.req.path.replace(/^.*?\/contents\//, ''));
      const ref = c.req.query('ref') ?? 'main';
      const hold = c.get('app').hold;
      if (hold !== undefined && hold.ref === ref && path.endsWith(hold.suffix)) {
        hold.waiting += 1;
        const failure = await hold.released;
        if (failure !== undefined) return c.json({ message: 'failing for the test' }, failure as ContentfulStatusCode);
      }
      const prefix = fileKey(access.owner, access.repo, '', ref);
      const files = c.get('app').files;
      const key = fileKey(access.owner, access.repo, path, ref);
      const bytes = files.get(key);
      const submodule = c.get('app').submodules.get(key);
      if (submodule !== undefined) {
        const sha = createHash('sha1').update(submodule).digest('hex');
        return c.json({ type: 'submodule', submodule_git_url: submodule, path, name: path.split('/').pop(), sha, size: 0 });
      }
      if (bytes !== undefined) {
        // A symlink to a file is answered as that file, under the target's path.
        const answered = c.get('app').symlinks.get(key) ?? path;
        return c.json({
          type: 'file',
          path: answered,
          name: answered.split('/').pop(),
          sha: createHash('sha1').update(bytes).digest('hex'),
          size: bytes.length,
          encoding: 'base64',
          content: bytes.toString('base64').replace(/(.{60})/g, '$1\n'),
        });
      }
      const entries = [...files.entries()].filter(([key]) => key.startsWith(`${prefix}${path}/`) && !key.slice(prefix.length + path.length + 1).includes('/'));
      if (entries.length === 0) return c.json({ message: 'Not Found' }, 404);
      return c.json(
        entries.map(([key, content]) => {
          const entryPath = key.slice(prefix.length);
          const type = c.get('app').symlinks.has(key) ? 'symlink' : 'file';
          return { type, path: entryPath, name: entryPath.split('/').pop(), sha: createHash('sha1').update(content).digest('hex'), size: content.length };
        }),
      );
    },
  );

  // Issue 6 part B (webhooks): branch heads, set by tests.
  api.on(
    'GET',
    REPOSITORY_ROUTES.map((route) => `${route}/branches/:branch`),
    (c) => {
      const access = repositoryAccess(c, 'metadata', 'read');
      if (access instanceof Response) return access;
      const branch = c.req.param('branch')!;
      const sha = c.get('app').branches.get(fileKey(access.owner, access.repo, branch, ''));
      return sha === undefined ? c.json({ message: 'Branch not found' }, 404) : c.json({ name: branch, commit: { sha } });
    },
  );
  api.post('/_test/branches', async (c) => {
    const branch = await c.req.json<{ owner: string; repo: string; branch: string; sha: string }>();
    c.get('app').branches.set(fileKey(branch.owner, branch.repo, branch.branch, ''), branch.sha);
    return c.json({ ok: true });
  });

  // Issue 12: "Get repository permissions for a user". GitHub answers the base role (maintain as write, triage as read) and the
  // role's own name; an installation token needs metadata: read, which every one carries. A user it does not know is a 404.
  api.on(
    'GET',
    REPOSITORY_ROUTES.map((route) => `${route}/collaborators/:username/permission`),
    (c) => {
      const access = repositoryAccess(c, 'metadata', 'read');
      if (access instanceof Response) return access;
      const username = c.req.param('username');
      const role = c.get('app').roles.get(`${access.owner}/${access.repo}:${username}`.toLowerCase());
      if (role === undefined) return c.json({ message: 'Not Found' }, 404);
      const BASE: Record<string, string> = { admin: 'admin', maintain: 'write', write: 'write', triage: 'read', read: 'read' };
      return c.json({ permission: BASE[role] ?? 'none', role_name: role, user: { login: username, type: 'User' } });
    },
  );
  api.post('/_test/roles', async (c) => {
    const role = await c.req.json<{ owner: string; repo: string; username: string; role: string }>();
    c.get('app').roles.set(`${role.owner}/${role.repo}:${role.username}`.toLowerCase(), role.role);
    return c.json({ ok: true });
  });

  // "Create a check run" and "Update a check run": a conclusion completes the check run, and `completed` needs one (422 otherwise).
  const CHECK_RUN_FIELDS = ['name', 'head_sha', 'status', 'conclusion', 'details_url', 'external_id', 'started_at', 'completed_at', 'output'] as const;
  const withCheckRunFields = (run: FakeCheckRun, body: Record<string, unknown>): FakeCheckRun | undefined => {
    const fields = Object.fromEntries(CHECK_RUN_FIELDS.filter((field) => body[field] !== undefined).map((field) => [field, body[field]]));
    const next = { ...run, ...fields } as FakeCheckRun;
    const completed = next.conclusion !== undefined ? { ...next, status: 'completed' } : next;
    return completed.status === 'completed' && completed.conclusion === undefined ? undefined : completed;
  };
  const conclusionRequired = (c: Context<FakeEnv>) => c.json({ message: 'Invalid request.\n\nNo conclusion given for a completed check run.' }, 422);
  api.on(
    'POST',
    REPOSITORY_ROUTES.map((route) => `${route}/check-runs`),
    async (c) => {
      const access = repositoryAccess(c, 'checks', 'write');
      if (access instanceof Response) return access;
      const app = c.get('app');
      const id = app.checkRuns.size + 1;
      const created: FakeCheckRun = {
        id,
        repository: `${access.owner}/${access.repo}`,
        repositoryId: access.id,
        status: 'queued',
        html_url: `https://github.test/${access.owner}/${access.repo}/runs/${id}`,
      };
      const run = withCheckRunFields(created, await c.req.json<Record<string, unknown>>());
      if (run === undefined) return conclusionRequired(c);
      app.checkRuns.set(id, run);
      return c.json(run, 201);
    },
  );
  api.on(
    'PATCH',
    REPOSITORY_ROUTES.map((route) => `${route}/check-runs/:check_run_id{[0-9]+}`),
    async (c) => {
      const access = repositoryAccess(c, 'checks', 'write');
      if (access instanceof Response) return access;
      const app = c.get('app');
      const id = Number(c.req.param('check_run_id'));
      const run = app.checkRuns.get(id);
      if (run === undefined || run.repositoryId !== access.id) return c.json({ message: 'Not Found' }, 404);
      const updated = withCheckRunFields(run, await c.req.json<Record<string, unknown>>());
      if (updated === undefined) return conclusionRequired(c);
      app.checkRuns.set(id, updated);
      return c.json(updated, 200);
    },
  );

  // "Create a commit status": anyone whose token has statuses: write, with any context; the status is the App's whose token set it.
  api.on(
    'POST',
    REPOSITORY_ROUTES.map((route) => `${route}/statuses/:sha`),
    async (c) => {
      const access = repositoryAccess(c, 'statuses', 'write');
      if (access instanceof Response) return access;
      const { state, context = 'default' } = await c.req.json<{ state: string; context?: string }>();
      const app = c.get('app');
      const status = { repository: `${access.owner}/${access.repo}`, sha: c.req.param('sha')!, state, context, appId: String(app.id) };
      app.statuses.push(status);
      return c.json({ id: app.statuses.length, state, context, creator: { login: `app-${app.id}[bot]`, type: 'Bot' } }, 201);
    },
  );

  // What a job's own REST calls ask for (gh api, octokit), made for it through keyway's proxy: a repository, an issue comment.
  api.on('GET', REPOSITORY_ROUTES, (c) => {
    const access = repositoryAccess(c, 'metadata', 'read');
    if (access instanceof Response) return access;
    return c.json({ full_name: `${access.owner}/${access.repo}`, private: !access.public });
  });
  // "List repository issues", 2 per page, 5 in all; its Link names the pages at the id alias, as GitHub's does.
  api.on(
    'GET',
    REPOSITORY_ROUTES.map((route) => `${route}/issues`),
    (c) => {
      const access = repositoryAccess(c, 'issues', 'read');
      if (access instanceof Response) return access;
      const page = Number(c.req.query('page') ?? '1');
      const pages = 3;
      const at = (n: number) => `${new URL(c.req.url).origin}/apps/${c.req.param('app')}/repositories/${access.id}/issues?page=${n}`;
      const links = [
        ...(page < pages ? [`<${at(page + 1)}>; rel="next"`, `<${at(pages)}>; rel="last"`] : []),
        ...(page > 1 ? [`<${at(1)}>; rel="first"`] : []),
      ];
      if (links.length > 0) c.header('link', links.join(', '));
      return c.json(
        [1, 2]
          .map((k) => (page - 1) * 2 + k)
          .filter((n) => n <= 5)
          .map((number) => ({ number, title: `issue ${number}` })),
      );
    },
  );
  api.on(
    'POST',
    REPOSITORY_ROUTES.map((route) => `${route}/issues/:number/comments`),
    async (c) => {
      const access = repositoryAccess(c, 'issues', 'write');
      if (access instanceof Response) return access;
      const { body } = await c.req.json<{ body: string }>();
      return c.json({ id: c.get('app').calls.length + 1, body }, 201);
    },
  );

  api.post('/_test/installations', async (c) => {
    const installation = await c.req.json<FakeInstallation>();
    c.get('app').installations.set(installation.id, installation);
    return c.json({ ok: true });
  });
  api.delete('/_test/installations/:id', (c) => {
    c.get('app').installations.delete(Number(c.req.param('id')));
    return c.json({ ok: true });
  });
  api.post('/_test/files', async (c) => {
    const file = await c.req.json<FakeFile>();
    const key = fileKey(file.owner, file.repo, file.path, file.ref ?? 'main');
    c.get('app').files.set(key, file.base64 === undefined ? Buffer.from(file.text) : Buffer.from(file.base64, 'base64'));
    if (file.submodule === undefined) c.get('app').submodules.delete(key);
    else c.get('app').submodules.set(key, file.submodule);
    // `true`: a target of the same name at the repository's root.
    if (file.symlink === undefined || file.symlink === false) c.get('app').symlinks.delete(key);
    else c.get('app').symlinks.set(key, file.symlink === true ? file.path.split('/').pop()! : file.symlink);
    return c.json({ ok: true });
  });
  api.post('/_test/settings', async (c) => {
    const settings = await c.req.json<{
      down?: boolean;
      misbehaviour?: Misbehaviour | null;
      rateLimited?: boolean;
      quota?: { remaining: number; resetInSeconds: number } | null;
    }>();
    if (settings.quota !== undefined)
      c.get('app').quota =
        settings.quota === null ? undefined : { remaining: settings.quota.remaining, resetAt: Date.now() + settings.quota.resetInSeconds * 1000 };
    if (settings.down !== undefined) c.get('app').down = settings.down;
    if (settings.misbehaviour !== undefined) c.get('app').misbehaviour = settings.misbehaviour ?? undefined;
    if (settings.rateLimited !== undefined) c.get('app').rateLimited = settings.rateLimited;
    return c.json({ ok: true });
  });
  api.post('/_test/hold', async (c) => {
    const { ref, suffix = '' } = await c.req.json<{ ref: string; suffix?: string }>();
    c.get('app').hold?.release();
    let release = (_status?: number): void => undefined;
    const released = new Promise<number | undefined>((resolve) => {
      release = resolve;
    });
    c.get('app').hold = { ref, suffix, waiting: 0, released, release };
    return c.json({ ok: true });
  });
  api.get('/_test/hold', (c) => c.json({ waiting: c.get('app').hold?.waiting ?? 0 }));
  api.delete('/_test/hold', (c) => {
    const status = c.req.query('status');
    c.get('app').hold?.release(status === undefined ? undefined : Number(status));
    c.get('app').hold = undefined;
    return c.json({ ok: true });
  });
  api.get('/_test/calls', (c) => c.json(c.get('app').calls));
  api.get('/_test/statuses', (c) => c.json(c.get('app').statuses));
  api.get('/_test/check-runs', (c) => c.json([...c.get('app').checkRuns.values()]));
  api.get('/_test/tokens', (c) =>
    c.json(
      [...c.get('app').tokens.entries()].map(([token, state]) => ({
        sha256: createHash('sha256').update(token).digest('hex'),
        revoked: state.revoked,
        repositories: state.repositories.map((repository) => repository.name),
        permissions: state.permissions,
      })),
    ),
  );

  root.route('/apps/:app', api);

  const served = await serveOnLoopback(root.fetch);
  base = served.base;
  return { base, close: served.close };
}

function apiPath(c: Context): string {
  return c.req.path.replace(/^\/apps\/[^/]+/, '');
}

/** GitHub's rules for an App JWT: RS256 with the App's key, `iss` the App id, at most 10 minutes between iat and exp. */
async function verifyAppJwt(app: FakeApp, jwt: string): Promise<boolean> {
  try {
    const { payload } = await jwtVerify(jwt, app.publicKey, { algorithms: ['RS256'], issuer: String(app.id), clockTolerance: 0 });
    if (typeof payload.iat !== 'number' || typeof payload.exp !== 'number') return false;
    if (payload.exp - payload.iat > 600 || payload.iat > Date.now() / 1000 + 60) return false;
    return true;
  } catch {
    return false;
  }
}
