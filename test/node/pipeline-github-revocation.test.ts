import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GITHUB_INSTALLATION_TOKEN_TYPE, REVOCATIONS } from '../../src/cli/pipeline/revoke-token.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';

const revoke = REVOCATIONS[GITHUB_INSTALLATION_TOKEN_TYPE] as NonNullable<(typeof REVOCATIONS)[string]>;
const TOKEN = 'ghs_liveInstallationToken0123456789';

/**
 * How the pipeline side hands a GitHub installation token back when its command ends (`keyway exchange --exec`, the
 * Action's post step): to GitHub over https only, and a 401 counted as "already expired" only when GitHub said it.
 */
describe('the pipeline revoking a GitHub installation token', () => {
  let github: FakeGitHub;
  let server: Awaited<ReturnType<typeof serveOnLoopback>>;
  const received: string[] = [];

  beforeAll(async () => {
    github = await FakeGitHub.create(inject('fakeGitHubBase'));
    // Answers as `keyway proxy`'s forwarder does a token that is not its per-run secret.
    // Answers as `keyway proxy`'s forwarder does a token that is not its per-run secret; under /relayed, as keyway does
    // with an upstream's headers passed on (GitHub's request id among them) beside its own refusal.
    server = await serveOnLoopback((request) => {
      const { pathname } = new URL(request.url);
      received.push(`${request.method} ${pathname} ${request.headers.get('authorization')}`);
      const relayed: Record<string, string> = pathname.startsWith('/relayed/') ? { 'x-github-request-id': 'C0FE:1234' } : {};
      return Response.json({ error: 'invalid_client' }, { status: 401, headers: { 'keyway-error': 'forwarder_unauthenticated', ...relayed } });
    });
  });
  afterAll(async () => server.close());

  it("counts GitHub's own 401 (a token it does not know, or one already revoked) as expired", async () => {
    expect(await revoke(TOKEN, { env: { GITHUB_API_URL: github.apiUrl }, fetch })).toBe('the GitHub installation token had already expired');
  });

  it('does not count a 401 from another server (the proxy forwarder) as expired: the token was not revoked', async () => {
    received.length = 0;
    await expect(revoke(TOKEN, { env: { GITHUB_API_URL: server.base }, fetch })).rejects.toThrow(
      /^127\.0\.0\.1:\d+ \(not GitHub: no x-github-request-id\) answered 401 to the revocation: the token was not revoked$/,
    );
    expect(received).toEqual([`DELETE /installation/token Bearer ${TOKEN}`]);
    await expect(revoke(TOKEN, { env: { GITHUB_API_URL: `${server.base}/relayed` }, fetch })).rejects.toThrow(
      /^GitHub answered 401 to the revocation: the token was not revoked$/,
    );
  });

  it('sends the token over plain http to no host but this machine by name (0.0.0.0 reaches it, and is not one)', async () => {
    received.length = 0;
    const port = new URL(server.base).port;
    for (const api of [`http://0.0.0.0:${port}/api/v3`, 'ftp://ghe.example/api', 'not a url']) {
      await expect(revoke(TOKEN, { env: { GITHUB_API_URL: api }, fetch }), api).rejects.toThrow(/is not an https URL: the token was not sent there$/);
    }
    expect(received).toEqual([]);
  });
});
