import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GITHUB_INSTALLATION_TOKEN_TYPE, REVOCATIONS } from '../../src/cli/pipeline/revoke-token.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';

const revoke = REVOCATIONS.get(GITHUB_INSTALLATION_TOKEN_TYPE)!;
const TOKEN = 'ghs_liveInstallationToken0123456789';

/**
 * How the pipeline side hands a GitHub installation token back when its command ends (`keyway exchange --exec`, the
 * Action's post step): to the broker when it says it takes GitHub tokens back (keyway-revokes); else, to a broker of
 * an earlier release that answers 200 and revokes nothing, at the runner's GitHub as before, over https only, and a 401
 * counted as gone only when GitHub said it. The broker's side: github-exchange-suite.ts.
 */
describe('the pipeline revoking a GitHub installation token', () => {
  let github: FakeGitHub;
  let server: Awaited<ReturnType<typeof serveOnLoopback>>;
  let oldBroker: Awaited<ReturnType<typeof serveOnLoopback>>;
  let newBroker: Awaited<ReturnType<typeof serveOnLoopback>>;
  /** A broker of this release that answers /revoke as a test sets `brokerAnswer`. */
  let setBroker: Awaited<ReturnType<typeof serveOnLoopback>>;
  let brokerAnswer = (): Response => new Response(null, { status: 200 });
  const received: string[] = [];
  const handedBack: string[] = [];

  beforeAll(async () => {
    github = await FakeGitHub.create(inject('fakeGitHubBase'));
    // Answers as `keyway proxy`'s forwarder does a token that is not its per-run secret; under /relayed, as keyway does
    // with an upstream's headers passed on (GitHub's request id among them) beside its own refusal. Under /plain, as any
    // other server refuses it, naming neither; under /github/<status>, as GitHub answers with that status.
    server = await serveOnLoopback((request) => {
      const { pathname } = new URL(request.url);
      received.push(`${request.method} ${pathname} ${request.headers.get('authorization')}`);
      if (pathname.startsWith('/plain/')) return new Response(null, { status: 401 });
      const asGitHub = /^\/github\/(\d{3})\//.exec(pathname);
      if (asGitHub !== null) return new Response(null, { status: Number(asGitHub[1]), headers: { 'x-github-request-id': 'C0FE:5678' } });
      const relayed: Record<string, string> = pathname.startsWith('/relayed/') ? { 'x-github-request-id': 'C0FE:1234' } : {};
      return Response.json({ error: 'invalid_client' }, { status: 401, headers: { 'keyway-error': 'forwarder_unauthenticated', ...relayed } });
    });
    // RFC 7009's answer from a broker released before GitHub tokens could be handed back, and one naming another type only.
    oldBroker = await serveOnLoopback(async (request) => {
      handedBack.push(`old ${request.method} ${new URL(request.url).pathname} ${new URLSearchParams(await request.text()).get('token')}`);
      return new Response(null, { status: 200, headers: { 'keyway-revokes': 'urn:example:token-type:other' } });
    });
    newBroker = await serveOnLoopback(async (request) => {
      handedBack.push(`new ${request.method} ${new URL(request.url).pathname} ${new URLSearchParams(await request.text()).get('token')}`);
      return new Response(null, { status: 200, headers: { 'keyway-revokes': GITHUB_INSTALLATION_TOKEN_TYPE } });
    });
    setBroker = await serveOnLoopback(async (request) => {
      handedBack.push(`set ${request.method} ${new URL(request.url).pathname} ${new URLSearchParams(await request.text()).get('token')}`);
      return brokerAnswer();
    });
  });
  afterAll(async () => {
    await Promise.all([server.close(), oldBroker.close(), newBroker.close(), setBroker.close()]);
  });

  const atOldBroker = (env: Record<string, string>) => ({ broker: new URL(oldBroker.base), env, fetch });

  it('hands the token to a broker that takes GitHub tokens back, and sends it nowhere else', async () => {
    received.length = 0;
    handedBack.length = 0;
    const answer = await revoke(TOKEN, { broker: new URL(newBroker.base), env: { GITHUB_API_URL: server.base }, fetch });
    expect(answer).toBe("handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API");
    expect(handedBack).toEqual([`new POST /revoke ${TOKEN}`]);
    expect(received).toEqual([]);
  });

  it('hands the token to a broker that names GitHub tokens among other types it takes back, with spaces after the commas', async () => {
    received.length = 0;
    handedBack.length = 0;
    brokerAnswer = () => new Response(null, { status: 200, headers: { 'keyway-revokes': `urn:example:token-type:other, ${GITHUB_INSTALLATION_TOKEN_TYPE}` } });
    const answer = await revoke(TOKEN, { broker: new URL(setBroker.base), env: { GITHUB_API_URL: server.base }, fetch });
    expect(answer).toBe("handed the GitHub installation token back to the broker, which revokes it at its GitHub App's API");
    expect(handedBack).toEqual([`set POST /revoke ${TOKEN}`]);
    expect(received).toEqual([]);
  });

  it("sends the token nowhere else when the broker answers other than 200 (a flood's 429): the token was not revoked", async () => {
    received.length = 0;
    brokerAnswer = () => Response.json({ error: 'temporarily_unavailable' }, { status: 429, headers: { 'retry-after': '30' } });
    await expect(revoke(TOKEN, { broker: new URL(setBroker.base), env: { GITHUB_API_URL: server.base }, fetch })).rejects.toThrow(
      /^the broker answered 429 to the revocation$/,
    );
    expect(received).toEqual([]);
  });

  it("revokes the token at the runner's GitHub when the broker does not say it takes GitHub tokens back", async () => {
    handedBack.length = 0;
    expect(await revoke(TOKEN, atOldBroker({ GITHUB_API_URL: github.apiUrl }))).toBe(
      "the runner's GitHub no longer takes the GitHub installation token: it expired, was revoked, or is another GitHub deployment's",
    );
    expect(handedBack).toEqual([`old POST /revoke ${TOKEN}`]);
    await expect(revoke(TOKEN, atOldBroker({}))).rejects.toThrow(/^the broker does not take GitHub tokens back, and GITHUB_API_URL is not set/);
  });

  it('does not count a 401 from another server (the proxy forwarder) as gone: the token was not revoked', async () => {
    received.length = 0;
    await expect(revoke(TOKEN, atOldBroker({ GITHUB_API_URL: server.base }))).rejects.toThrow(
      /^127\.0\.0\.1:\d+ \(not GitHub: no x-github-request-id\) answered 401 to the revocation: the token was not revoked$/,
    );
    expect(received).toEqual([`DELETE /installation/token Bearer ${TOKEN}`]);
    await expect(revoke(TOKEN, atOldBroker({ GITHUB_API_URL: `${server.base}/relayed` }))).rejects.toThrow(
      /^GitHub answered 401 to the revocation: the token was not revoked$/,
    );
    // Nor one from a server that is not GitHub at all, which names no request id of GitHub's.
    await expect(revoke(TOKEN, atOldBroker({ GITHUB_API_URL: `${server.base}/plain` }))).rejects.toThrow(
      /^127\.0\.0\.1:\d+ \(not GitHub: no x-github-request-id\) answered 401 to the revocation: the token was not revoked$/,
    );
  });

  it("counts as revoked GitHub's 204 only, and as gone its 401 only: any other answer of GitHub's leaves the token live", async () => {
    for (const status of [200, 403, 404, 500]) {
      await expect(revoke(TOKEN, atOldBroker({ GITHUB_API_URL: `${server.base}/github/${status}` })), String(status)).rejects.toThrow(
        new RegExp(`^GitHub answered ${status} to the revocation: the token was not revoked$`),
      );
    }
  });

  it('sends the token over plain http to no host but this machine by name (0.0.0.0 reaches it, and is not one)', async () => {
    received.length = 0;
    const port = new URL(server.base).port;
    for (const api of [`http://0.0.0.0:${port}/api/v3`, 'ftp://ghe.example/api', 'not a url']) {
      await expect(revoke(TOKEN, atOldBroker({ GITHUB_API_URL: api })), api).rejects.toThrow(/is not an https URL: the token was not sent there$/);
    }
    expect(received).toEqual([]);
  });
});
