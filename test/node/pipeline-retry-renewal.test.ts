import { join } from 'node:path';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { REASONS } from '../../src/core/errors/reasons.ts';
import { silentLogger } from '../../src/core/log.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { startFlakyProxy, type FlakyProxy } from '../support/flaky-proxy.ts';
import { ciClaims, TestIssuer } from '../support/test-issuer.ts';
import { actionStep, readEnvironmentFile } from '../support/github-runner.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';
import { runProcess, testConfig, writeTree, type Environment, type ProcessResult } from './node-harness.ts';

const CLI = join(process.cwd(), 'src/cli/main.ts');
const FIRST_EVENT = 'evt-first-try';
const FIRST_DESCRIPTION = 'GitHub could not mint the installation token: answered 502';

/** `keyway exchange --url URL …` in a fresh job directory whose file `ci-token` holds `token`. */
function exchange(url: string, args: readonly string[], env: Environment = {}, token = ciToken()): Promise<ProcessResult> {
  const cwd = mkdtempSync(join(tmpdir(), 'keyway-job-'));
  writeFileSync(join(cwd, 'ci-token'), token);
  return runProcess(process.execPath, [CLI, 'exchange', '--url', url, ...args], { cwd, env: { PATH: process.env['PATH'], HOME: cwd, TMPDIR: cwd, ...env } });
}

/** A JWT-shaped CI token the fake never verifies; each one different. */
function ciToken(): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'RS256' })}.${part({ sub: 'repo:acme/api:ref:refs/heads/main', jti: crypto.randomUUID() })}.c2lnbmF0dXJl`;
}

interface TokenRequest {
  readonly subjectToken: string;
  readonly proof: string | null;
}

/**
 * A broker as keyway's answers a try that fails after the claim: the first token request is recorded (its CI token and its
 * DPoP proof's jti claimed, as single use), then answered 503 with an audit event id; a later request presenting something
 * already claimed is refused as the broker refuses a replay, anything else is granted. Also GitHub Actions' token service,
 * minting a new token per request.
 */
describe('a retried exchange does not replay what the broker used up', () => {
  let server: Awaited<ReturnType<typeof serveOnLoopback>>;
  const requests: TokenRequest[] = [];
  const ciRequests: string[] = [];
  let singleUseSubject = true;

  beforeAll(async () => {
    const claimedTokens = new Set<string>();
    const claimedProofs = new Set<string>();
    server = await serveOnLoopback(async (request) => {
      const url = new URL(request.url);
      if (url.pathname === '/.well-known/oauth-authorization-server') return Response.json({ issuer: server.base, token_endpoint: `${server.base}/token` });
      if (url.pathname === '/github-token') {
        ciRequests.push(url.searchParams.get('audience') ?? '');
        return Response.json({ value: ciToken() });
      }
      if (url.pathname === '/revoke') return new Response(null, { status: 200 });
      const form = new URLSearchParams(await request.text());
      const subjectToken = form.get('subject_token') ?? '';
      const proof = request.headers.get('dpop');
      requests.push({ subjectToken, proof });
      const jti = proof === null ? undefined : (decodeJwt(proof).jti as string);
      if (jti !== undefined && claimedProofs.has(jti)) {
        return Response.json(
          {
            error: 'invalid_dpop_proof',
            error_description: REASONS.dpop_proof_replayed.description,
            audit_event_id: 'evt-retry',
          },
          { status: 400 },
        );
      }
      if (singleUseSubject && claimedTokens.has(subjectToken)) {
        return Response.json(
          {
            error: 'invalid_request',
            error_description: REASONS.replayed.description,
            audit_event_id: 'evt-retry',
          },
          { status: 400 },
        );
      }
      if (jti !== undefined) claimedProofs.add(jti);
      if (singleUseSubject) claimedTokens.add(subjectToken);
      if (requests.length === 1) {
        return Response.json({ error: 'temporarily_unavailable', error_description: FIRST_DESCRIPTION, audit_event_id: FIRST_EVENT }, { status: 503 });
      }
      if (form.get('requested_token_type') === 'urn:keyway:params:oauth:token-type:github-installation-token-map') {
        return Response.json({
          issued_token_type: 'urn:keyway:params:oauth:token-type:github-installation-token-map',
          github_tokens: { acme: { access_token: 'ghs_granted', expires_in: 600 } },
          audit_event_id: 'evt-granted',
        });
      }
      return Response.json({
        access_token: ciToken(),
        issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        token_type: proof === null ? 'Bearer' : 'DPoP',
        expires_in: 600,
        audit_event_id: 'evt-granted',
      });
    });
  });
  afterAll(async () => {
    await server?.close();
  });
  beforeEach(() => {
    requests.length = 0;
    ciRequests.length = 0;
    singleUseSubject = true;
  });

  const keyway = (args: readonly string[], env: Environment = {}) => exchange(server.base, args, env);

  it('--dpop: the retry carries a new proof (another jti, signed anew), so the 503 is followed by the token', async () => {
    singleUseSubject = false;
    const result = await keyway(['--subject-token-file', 'ci-token', '--dpop', '--exec', '--', process.execPath, '-e', 'process.exit(0)']);
    expect(result.stderr).toMatch(/answered 503; try 2 of 4/);
    expect(result.code).toBe(0);
    expect(requests).toHaveLength(2);
    const [first, second] = requests.map((sent) => decodeJwt(sent.proof ?? ''));
    expect(second?.jti).not.toBe(first?.jti);
    expect(requests[1]?.proof).not.toBe(requests[0]?.proof);
  });

  it('on GitHub Actions: the retry asks the token service for a new CI token, which the broker has not used', async () => {
    const result = await keyway([], {
      GITHUB_ACTIONS: 'true',
      ACTIONS_ID_TOKEN_REQUEST_URL: `${server.base}/github-token?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'rt',
    });
    expect(result.code).toBe(0);
    expect(ciRequests).toEqual([server.base, server.base]);
    expect(requests).toHaveLength(2);
    expect(requests[1]?.subjectToken).not.toBe(requests[0]?.subjectToken);
    // Both tokens are masked before they could reach the log, and both hashes logged.
    for (const { subjectToken } of requests) expect(result.stderr).toContain(`::add-mask::${subjectToken}`);
    expect(result.stderr.match(/CI token from GitHub Actions/g)).toHaveLength(2);
  });

  it('the GitHub Action (its bundle) asks for a new CI token for the retry too, and sets the token it is then granted', async () => {
    const step = actionStep(
      { githubRequestUrl: `${server.base}/github-token?api-version=2.0`, githubRequestToken: 'rt', githubApiUrl: server.base },
      { url: server.base },
    );
    const result = await step.run('main');
    expect(result.stdout).toMatch(/answered 503; try 2 of 4/);
    expect(result.code).toBe(0);
    expect(ciRequests).toEqual([server.base, server.base]);
    expect(requests[1]?.subjectToken).not.toBe(requests[0]?.subjectToken);
    expect(readEnvironmentFile(step.files.GITHUB_OUTPUT)['token']).toMatch(/^eyJ/);
  });

  for (const [what, args] of [
    ['an access token', []],
    ['a token map', ['--github-token-map', '--repository', 'acme/api']],
  ] as const) {
    it(`${what} from a file: the same token is resent, and its refusal as used up ends in the 503 it follows, exit 5`, async () => {
      const result = await keyway(['--subject-token-file', 'ci-token', ...args]);
      expect(requests).toHaveLength(2);
      expect(requests[1]?.subjectToken).toBe(requests[0]?.subjectToken);
      expect(result.code).toBe(5);
      const failure = result.stderr.slice(result.stderr.indexOf('broker unavailable:'));
      expect(failure).toContain(`answered 503: temporarily_unavailable (${FIRST_DESCRIPTION}) in audit event ${FIRST_EVENT}`);
      expect(failure).toContain(
        `the retry was then refused (HTTP 400): invalid_request: ${REASONS.replayed.description}\nkeyway: audit_event_id=${FIRST_EVENT}\n`,
      );
      expect(result.stderr).not.toMatch(/^keyway: refused/m);
    });
  }
});

/**
 * The real broker behind a proxy that passes the first token request on and answers 503 in place of the broker's answer:
 * the broker has claimed the proof and the single-use token, as it has when it answers a 503 of its own after the claim.
 */
describe('a retried exchange, against the real broker', () => {
  const AUDIENCE = 'https://deploy.acme.dev';
  let issuer: TestIssuer;
  let proxy: FlakyProxy;
  let broker: NodeBroker;

  beforeAll(async () => {
    issuer = new TestIssuer(inject('testIssuerBase'), `retry-renewal-${crypto.randomUUID().slice(0, 8)}`);
    proxy = await startFlakyProxy();
    const policy = (repositoryId: string, singleUse: boolean) => `
version: 1
issuer: { kind: github, url: "${issuer.url}" }
single_use: ${singleUse}
match:
  repository_owner_id: "1200934"
  repository_id: "${repositoryId}"
  ref: refs/heads/main
grant:
  audience: ${AUDIENCE}
`;
    const root = writeTree({ 'policies/once.yaml': policy('5001', true), 'policies/bound.yaml': policy('5002', false) });
    broker = await startNodeBroker(testConfig(root, { issuer: proxy.url }), { log: silentLogger });
    proxy.target = broker.url;
  });
  afterAll(async () => {
    await Promise.all([proxy?.close(), broker?.close()]);
  });
  beforeEach(() => {
    proxy.faults.length = 0;
    proxy.tokenRequests = 0;
  });

  const token = (repositoryId: string) => issuer.sign(ciClaims(issuer.url, proxy.url, { repository_id: repositoryId }));

  it('--dpop: the broker grants the retry, whose proof is not the one it claimed', async () => {
    proxy.faults.push('lost');
    const result = await exchange(
      proxy.url,
      ['--subject-token-file', 'ci-token', '--dpop', '--exec', '--', process.execPath, '-e', ''],
      {},
      await token('5002'),
    );
    expect(result.stderr).toMatch(/answered 503; try 2 of 4/);
    expect(result.code).toBe(0);
    expect(proxy.tokenRequests).toBe(2);
  });

  it('a single-use token from a file: its refusal as replayed ends in the 503 before it, exit 5', async () => {
    proxy.faults.push('lost');
    const result = await exchange(proxy.url, ['--subject-token-file', 'ci-token'], {}, await token('5001'));
    expect(proxy.tokenRequests).toBe(2);
    expect(result.code).toBe(5);
    expect(result.stderr).toContain('answered 503: temporarily_unavailable (proxy fault: the answer was lost), having used up what that try sent');
    expect(result.stderr).toContain(`the retry was then refused (HTTP 400): invalid_request: ${REASONS.replayed.description}\n`);
  });

  it('a single-use token from a file, its connection cut once the broker had it: the refusal as replayed ends in the network error, exit 5', async () => {
    proxy.faults.push('cut');
    const result = await exchange(proxy.url, ['--subject-token-file', 'ci-token'], {}, await token('5001'));
    expect(proxy.tokenRequests).toBe(2);
    expect(result.stderr).toMatch(/token fetch failed \([A-Za-z_ ]+\); try 2 of 4/);
    expect(result.code).toBe(5);
    const failure = result.stderr.slice(result.stderr.indexOf('broker unavailable:'));
    expect(failure).toMatch(
      /^broker unavailable: http:\/\/127\.0\.0\.1:\d+\/token: fetch failed \([A-Za-z_ ]+\), perhaps after the broker used up what that try sent; /,
    );
    expect(failure).toContain(`the retry was then refused (HTTP 400): invalid_request: ${REASONS.replayed.description}\n`);
    expect(result.stderr).not.toMatch(/^keyway: refused/m);
  });
});
