import { decodeJwt, decodeProtectedHeader } from 'jose';
import { describe, expect, inject, it } from 'vitest';
import { importAppPrivateKey, signAppJwt } from '../../src/features/github/app/app-jwt.ts';
import { createCheckRun } from '../../src/features/github/app/check-run.ts';
import { getContents } from '../../src/features/github/app/contents.ts';
import { GitHubClient } from '../../src/features/github/app/github-client.ts';
import { GitHubError } from '../../src/features/github/app/github-error.ts';
import { readGitHubAppSettings } from '../../src/features/github/app/github-settings.ts';
import { InstallationCache } from '../../src/features/github/app/installation-cache.ts';
import { findRepositoryInstallation } from '../../src/features/github/app/installation.ts';
import { createInstallationToken, revokeInstallationToken } from '../../src/features/github/app/installation-token.ts';
import { ConfigError } from '../../src/core/settings/read-settings.ts';
import { FakeGitHub } from '../support/fake-github.ts';

const INSTALLATION = {
  id: 41,
  owner: 'acme',
  repositories: [
    { id: 1001, name: 'app' },
    { id: 1002, name: 'infra' },
    { id: 1003, name: 'keyway-policies' },
  ],
  permissions: { contents: 'write', pull_requests: 'write', checks: 'write', metadata: 'read' },
};

async function setup(options: { pkcs8?: boolean; timeoutMs?: number; maxBytes?: number } = {}): Promise<{ github: FakeGitHub; client: GitHubClient }> {
  const github = await FakeGitHub.create(inject('fakeGitHubBase'));
  await github.install(INSTALLATION);
  const settings = readGitHubAppSettings({
    ...github.settings,
    ...(options.pkcs8 === true ? { KEYWAY_GITHUB_APP_PRIVATE_KEY: github.privateKeyPkcs8Pem } : {}),
  })!;
  const client = await GitHubClient.forApp(
    settings,
    { fetch: (input, init) => fetch(input, init), timeoutMs: options.timeoutMs ?? 3000, maxBytes: options.maxBytes ?? 256 * 1024, allowHttpLoopback: true },
    Date.now,
  );
  return { github, client };
}

describe('GitHub App settings', () => {
  it('are all or nothing, and default the API to api.github.com', () => {
    expect(readGitHubAppSettings({})).toBeUndefined();
    expect(() => readGitHubAppSettings({ KEYWAY_GITHUB_APP_ID: '1' })).toThrow(ConfigError);
    expect(() => readGitHubAppSettings({ KEYWAY_GITHUB_APP_ID: '1', KEYWAY_GITHUB_APP_PRIVATE_KEY: 'not a key' })).toThrow(/PEM/);
    const settings = readGitHubAppSettings({
      KEYWAY_GITHUB_APP_ID: '1',
      KEYWAY_GITHUB_APP_PRIVATE_KEY: '-----BEGIN RSA PRIVATE KEY-----\\nAAAA\\n-----END RSA PRIVATE KEY-----',
    });
    expect(settings?.apiUrl).toBe('https://api.github.com');
    expect(settings?.privateKeyPem).toContain('\nAAAA\n');
    // Without its trailing slashes, however many.
    for (const written of ['https://ghe.example.com/api/v3/', 'https://ghe.example.com/api/v3//']) {
      expect(
        readGitHubAppSettings({ KEYWAY_GITHUB_APP_ID: '1', KEYWAY_GITHUB_APP_PRIVATE_KEY: '-----BEGIN PRIVATE KEY-----', KEYWAY_GITHUB_API_URL: written })
          ?.apiUrl,
        written,
      ).toBe('https://ghe.example.com/api/v3');
    }
  });
});

describe('App JWT', () => {
  it('is RS256, issued 60 s in the past, valid for at most 10 minutes, from a PKCS#1 or PKCS#8 key', async () => {
    const github = await FakeGitHub.create(inject('fakeGitHubBase'));
    for (const pem of [github.privateKeyPem, github.privateKeyPkcs8Pem]) {
      const now = Date.now();
      const jwt = await signAppJwt(await importAppPrivateKey(pem), github.appId, now);
      expect(decodeProtectedHeader(jwt).alg).toBe('RS256');
      const claims = decodeJwt(jwt);
      expect(claims.iss).toBe(github.appId);
      expect(claims.iat).toBe(Math.floor(now / 1000) - 60);
      expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(600);
    }
    expect(github.privateKeyPem).toContain('BEGIN RSA PRIVATE KEY');
  });

  it('is accepted by the fake GitHub, which verifies it with the App public key', async () => {
    for (const pkcs8 of [false, true]) {
      const { github, client } = await setup({ pkcs8 });
      const cache = new InstallationCache(client, { ttlSeconds: 60, maxEntries: 10 }, Date.now);
      expect((await cache.get('acme')).id).toBe(41);
      const [call] = await github.calls();
      expect(call).toMatchObject({ method: 'GET', path: '/orgs/acme/installation', auth: 'app', status: 200 });
    }
  });
});

describe('installation lookup', () => {
  it('is cached for the TTL, refreshed on invalidate, and falls back to the user installation', async () => {
    const { github, client } = await setup();
    await github.install({ id: 77, owner: 'octocat', ownerType: 'User', repositories: [{ id: 5, name: 'dotfiles' }], permissions: { contents: 'read' } });
    const clock = { now: 1_000_000 };
    const cache = new InstallationCache(client, { ttlSeconds: 60, maxEntries: 10 }, () => clock.now);
    await cache.get('acme');
    await cache.get('ACME');
    expect((await github.calls()).length).toBe(1);
    clock.now += 61_000;
    await cache.get('acme');
    expect((await github.calls()).length).toBe(2);
    cache.invalidate('acme');
    await cache.get('acme');
    expect((await github.calls()).length).toBe(3);
    expect(await cache.get('octocat')).toMatchObject({ id: 77, owner: 'octocat' });
    expect((await github.calls()).slice(-2).map((call) => `${call.path} ${call.status}`)).toEqual([
      '/orgs/octocat/installation 404',
      '/users/octocat/installation 200',
    ]);
  });

  it('finds the installation covering one repository, and none for a repository outside it', async () => {
    const { client } = await setup();
    expect(await findRepositoryInstallation(client, 'acme', 'infra')).toMatchObject({ id: 41, owner: 'acme' });
    await expect(findRepositoryInstallation(client, 'acme', 'elsewhere')).rejects.toMatchObject({ code: 'not_found' });
  });

  it('does not remember a failed lookup', async () => {
    const { github, client } = await setup();
    const cache = new InstallationCache(client, { ttlSeconds: 60, maxEntries: 10 }, Date.now);
    await expect(cache.get('nobody')).rejects.toMatchObject({ code: 'not_found' });
    await github.install({ id: 78, owner: 'nobody', repositories: [], permissions: {} });
    expect((await cache.get('nobody')).id).toBe(78);
  });
});

describe('installation tokens', () => {
  it('are limited to the repositories and permissions asked for, and revoked with DELETE /installation/token', async () => {
    const { github, client } = await setup();
    const minted = await createInstallationToken(client, { installationId: 41, repositories: ['app'], permissions: { contents: 'read' } });
    expect(minted.repositories.map((repository) => repository.name)).toEqual(['app']);
    expect(minted.permissions).toEqual({ contents: 'read', metadata: 'read' });
    expect(minted.expiresAt).toBeGreaterThan(Date.now() + 50 * 60_000);
    const post = (await github.calls()).at(-1);
    expect(post).toMatchObject({
      method: 'POST',
      path: '/app/installations/41/access_tokens',
      auth: 'app',
      body: { repositories: ['app'], permissions: { contents: 'read' } },
    });
    expect(await github.repositoriesVisibleTo(minted.token)).toEqual({ status: 200, names: ['app'] });
    expect(await revokeInstallationToken(client, minted.token)).toBe('revoked');
    expect((await github.repositoriesVisibleTo(minted.token)).status).toBe(401);
    expect(await revokeInstallationToken(client, minted.token)).toBe('already_invalid');
  });

  it('beyond the installation are refused by GitHub with a typed error', async () => {
    const { client } = await setup();
    await expect(createInstallationToken(client, { installationId: 41, repositories: ['elsewhere'], permissions: { contents: 'read' } })).rejects.toMatchObject(
      { name: 'GitHubError', code: 'rejected', status: 422 },
    );
    await expect(
      createInstallationToken(client, { installationId: 41, repositories: ['app'], permissions: { administration: 'write' } }),
    ).rejects.toMatchObject({ code: 'rejected' });
    await expect(createInstallationToken(client, { installationId: 9, repositories: ['app'], permissions: { contents: 'read' } })).rejects.toMatchObject({
      code: 'not_found',
    });
  });
});

describe('contents and check runs', () => {
  it('reads files and directories, and publishes check runs with an installation token', async () => {
    const { github, client } = await setup();
    await github.putFile({ owner: 'acme', repo: 'keyway-policies', path: 'policies/deploy.yaml', text: 'name: deploy\n# ünïcode\n' });
    await github.putFile({ owner: 'acme', repo: 'keyway-policies', path: 'policies/release.yaml', ref: 'abc123', text: 'name: release\n' });
    const { token } = await createInstallationToken(client, {
      installationId: 41,
      repositories: ['keyway-policies'],
      permissions: { contents: 'read', checks: 'write' },
    });
    const location = { owner: 'acme', repo: 'keyway-policies' };
    expect(await getContents(client, token, { ...location, path: 'policies/deploy.yaml' })).toMatchObject({
      path: 'policies/deploy.yaml',
      text: 'name: deploy\n# ünïcode\n',
    });
    expect(await getContents(client, token, { ...location, path: 'policies', ref: 'abc123' })).toEqual([
      expect.objectContaining({ name: 'release.yaml', type: 'file' }),
    ]);
    await expect(getContents(client, token, { ...location, path: 'missing.yaml' })).rejects.toMatchObject({ code: 'not_found' });
    await expect(getContents(client, token, { owner: 'acme', repo: 'app', path: 'x' })).rejects.toMatchObject({ code: 'not_found' });
    const run = await createCheckRun(client, token, location, {
      name: 'keyway',
      head_sha: 'abc123',
      status: 'completed',
      conclusion: 'success',
      output: { title: 'ok', summary: 'no changes' },
    });
    expect(run.id).toBe(1);
    expect((await github.calls()).at(-1)).toMatchObject({
      path: '/repos/acme/keyway-policies/check-runs',
      body: { head_sha: 'abc123', conclusion: 'success' },
      status: 201,
    });
  });
});

describe('GitHub unavailable', () => {
  it('is a typed error: 5xx, a connection closed without an answer, and a call past its deadline', async () => {
    const { github, client } = await setup({ timeoutMs: 200 });
    const call = () => client.request({ method: 'GET', path: '/app', auth: { as: 'app' } });
    await github.setDown(true);
    await expect(createInstallationToken(client, { installationId: 41, repositories: ['app'], permissions: {} })).rejects.toMatchObject({
      code: 'unavailable',
      status: 503,
    });
    await github.setDown(false);

    await github.misbehave({ kind: 'cut' });
    const cut = await call().catch((caught: unknown) => caught);
    expect(cut).toBeInstanceOf(GitHubError);
    expect(cut).toMatchObject({ code: 'unavailable' });

    // A server that takes the call and never answers: the client's deadline ends it.
    await github.misbehave({ kind: 'stall' });
    const started = Date.now();
    const stalled = await call().catch((caught: unknown) => caught);
    expect(stalled).toBeInstanceOf(GitHubError);
    expect(stalled).toMatchObject({ code: 'unavailable', cause: { name: 'TimeoutError' } });
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await github.calls()).map((recorded) => recorded.path)).toEqual(['/app/installations/41/access_tokens', '/app', '/app']);
  });

  it('is a typed error when the answer breaks off mid-body or is larger than the cap, never the raw read error', async () => {
    const { github, client } = await setup({ maxBytes: 1024 });
    const call = () => client.request({ method: 'GET', path: '/app', auth: { as: 'app' } }).catch((caught: unknown) => caught);
    await github.misbehave({ kind: 'truncated' });
    const cut = await call();
    expect(cut).toBeInstanceOf(GitHubError);
    expect(cut).toMatchObject({ code: 'unavailable', message: expect.stringContaining('broke off while reading its body') });
    for (const declared of [true, false]) {
      await github.misbehave({ kind: 'padded', bytes: 1025, declared });
      const big = await call();
      expect(big).toBeInstanceOf(GitHubError);
      // GitHub answered, with more than keyway reads: what was asked is that large (a file's contents), not GitHub failing.
      expect(big).toMatchObject({ code: 'too_large', message: expect.stringContaining('larger than 1024 bytes') });
    }
  });

  it('refuses a plain-http API base unless loopback http is allowed', async () => {
    const { github } = await setup();
    const settings = readGitHubAppSettings(github.settings)!;
    await expect(GitHubClient.forApp(settings, { fetch, timeoutMs: 1000, maxBytes: 1024, allowHttpLoopback: false }, Date.now)).rejects.toThrow(/http/);
    expect(() => GitHubClient.withTokensOnly('http://github.example/api/v3', { fetch, timeoutMs: 1000, maxBytes: 1024, allowHttpLoopback: true })).toThrow(
      /https/,
    );
  });
});
