import { describe, expect, it } from 'vitest';
import type { GitHubTokenMinter, GitHubTokenRequest, MintedGitHubToken } from '../../src/core/exchange/ports.ts';
import type { IssuedGrant } from '../../src/core/policy/decide.ts';
import { redactedStream } from '../../src/features/proxy/capped-stream.ts';
import { PROXY_GITHUB_TOKEN_SECONDS, UpstreamCredentials, type GitHubScope, type Upstream } from '../../src/features/proxy/upstream-credential.ts';

/**
 * The proxy's cache of installation tokens, at the scale and the instants a request over HTTP cannot reach: a thousand
 * repositories, the reuse window to the millisecond. GitHub here answers as the App does (the token scoped to the one
 * repository asked for, its id, an hour's life), so every mint is counted.
 */
const UPSTREAM = { name: 'github', auth: { kind: 'github-app' } } as unknown as Upstream;
const REQUEST = { grant: {} as IssuedGrant, source: { iss: 'https://ci.example', sub: 'job' } };
const HOUR = 3600_000;
/** A token is handed out until a minute before keyway revokes it. */
const REUSE_MS = PROXY_GITHUB_TOKEN_SECONDS * 1000 - 60_000;

function setup() {
  const clock = { now: 1_800_000_000_000 };
  const minted: GitHubTokenRequest[] = [];
  const revoked: string[] = [];
  const github: GitHubTokenMinter = {
    apiUrl: 'https://api.github.example',
    deployment: 'api.github.example',
    checkMintable: () => undefined,
    mint: async (request): Promise<MintedGitHubToken> => {
      minted.push(request);
      const token = `ghs_${minted.length}`;
      return {
        appId: '1',
        token,
        tokenSha256: '',
        installationId: 1,
        owner: request.owner,
        // GitHub spells the name as the repository has it, whatever case it was asked in.
        repositories: request.repositories.map((name) => ({ id: 1000 + minted.length, name: name.toUpperCase() })),
        permissions: request.permissions,
        organizationPermissions: {},
        revokeAt: request.revokeAt,
        githubExpiresAt: clock.now + HOUR,
        revokeNow: async () => void revoked.push(token),
      };
    },
  };
  const credentials = new UpstreamCredentials({
    issuer: 'https://keyway.example',
    keys: () => {
      throw new Error('no keyway JWT is minted for a GitHub App upstream');
    },
    now: () => clock.now,
    github,
  });
  const scope = (repository: string, permissions: Record<string, string> = { contents: 'read' }): GitHubScope => ({
    owner: 'acme',
    repository,
    permissions,
    ownerId: '1200934',
  });
  const token = async (of: GitHubScope) => (await credentials.for(UPSTREAM, REQUEST, of, `event-${minted.length}`)).secret;
  return { clock, minted, revoked, credentials, scope, token };
}

describe("the proxy's installation-token cache", () => {
  it('hands a token out until a minute before keyway revokes it, to the millisecond, and mints another from then', async () => {
    const { clock, minted, scope, token } = setup();
    const first = await token(scope('api'));
    // Revoked ten minutes after it was asked for.
    expect(minted[0]?.revokeAt).toBe(clock.now + 600_000);
    clock.now += REUSE_MS - 1;
    expect(await token(scope('api'))).toBe(first);
    clock.now += 1;
    expect(await token(scope('api'))).not.toBe(first);
    expect(minted).toHaveLength(2);
  });

  // A 40-character token's search took 0.05-0.1 ms to build for each answer; a token serves many until it expires.
  it("prepares a reused token's redaction once, with the token, and it redacts the token", async () => {
    const { credentials, scope } = setup();
    const credential = () => credentials.for(UPSTREAM, REQUEST, scope('api'), 'event');
    const first = await credential();
    const second = await credential();
    expect(second.secret).toBe(first.secret);
    expect(first.redaction).toBeDefined();
    expect(second.redaction).toBe(first.redaction);
    const echoed = new Response(`{"authorization":"Bearer ${first.secret}"}`).body!;
    expect(await new Response(redactedStream(echoed, second.redaction)).text()).toBe('{"authorization":"Bearer [redacted]"}');
  });

  it('keys a token by its permissions whatever order a rule names them in', async () => {
    const { minted, scope, token } = setup();
    const first = await token(scope('api', { contents: 'read', issues: 'read' }));
    expect(await token(scope('api', { issues: 'read', contents: 'read' }))).toBe(first);
    expect(minted).toHaveLength(1);
  });

  it('takes the repository id from GitHub’s answer whatever case GitHub spells the name in', async () => {
    const { credentials, scope } = setup();
    const credential = await credentials.for(UPSTREAM, REQUEST, scope('api'), 'event');
    expect(credential.repositoryId).toBe(1001);
  });

  it('holds at most a thousand tokens: one more while all are live is minted per call, never held', async () => {
    const { minted, scope, token } = setup();
    for (let index = 0; index < 1000; index += 1) await token(scope(`repo-${index}`));
    for (let index = 0; index < 1000; index += 1) await token(scope(`repo-${index}`));
    expect(minted).toHaveLength(1000);
    const extra = await token(scope('one-more'));
    expect(await token(scope('one-more'))).not.toBe(extra);
    expect(minted).toHaveLength(1002);
  });

  it('makes room by dropping the tokens past their reuse, and holds the next one', async () => {
    const { clock, minted, scope, token } = setup();
    for (let index = 0; index < 1000; index += 1) await token(scope(`repo-${index}`));
    clock.now += REUSE_MS;
    const next = await token(scope('next'));
    expect(await token(scope('next'))).toBe(next);
    expect(minted).toHaveLength(1001);
  });

  it("lets a request that takes its token back drop only that token, not another request's minted for the same scope since", async () => {
    const { minted, revoked, credentials, scope, token } = setup();
    // Two requests fill the same scope at once: the second's token is the one held.
    const [first, second] = await Promise.all([
      credentials.for(UPSTREAM, REQUEST, scope('api'), 'event-a'),
      credentials.for(UPSTREAM, REQUEST, scope('api'), 'event-b'),
    ]);
    await first.revokeNow?.();
    expect(revoked).toEqual([first.secret]);
    expect(await token(scope('api'))).toBe(second.secret);
    // Taken back, the held one is handed to no later request.
    await second.revokeNow?.();
    expect(await token(scope('api'))).not.toBe(second.secret);
    expect(minted).toHaveLength(3);
  });
});
