import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actionStep } from '../support/github-runner.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';
import { REPOSITORY_ROOT, runProcess } from './node-harness.ts';

/** The job's CI token as GitHub's token service hands it out: good at the broker for minutes, to whoever holds it. */
const CI_TOKEN =
  'eyJhbGciOiJSUzI1NiIsImtpZCI6ImNpIn0.eyJpc3MiOiJodHRwczovL3Rva2VuLmFjdGlvbnMuZ2l0aHVidXNlcmNvbnRlbnQuY29tIiwic3ViIjoicmVwbzphY21lL2FwaTpyZWY6cmVmcy9oZWFkcy9tYWluIn0.c2lnbmF0dXJlLW9mLXRoZS1jaS10b2tlbg';

/**
 * The CI token goes to the broker, and what the broker (or a proxy or WAF in front of it) answers reaches the job log: a
 * refusal that quotes the request, as some error pages do, would print the live CI token in a log that may be public. In
 * GitHub Actions it is masked as soon as it is read, as @actions/core's getIDToken does, before anything could print it.
 */
describe('the pipeline side masks the CI token in GitHub Actions before anything could print it', () => {
  let broker: Awaited<ReturnType<typeof serveOnLoopback>>;

  beforeAll(async () => {
    broker = await serveOnLoopback(async (request) => {
      const path = new URL(request.url).pathname;
      if (path.startsWith('/.well-known/')) return Response.json({ issuer: broker.base, token_endpoint: `${broker.base}/token` });
      if (path === '/idtoken') return Response.json({ value: CI_TOKEN });
      if (path.startsWith('/proxy/')) {
        const refusal = { error: 'access_denied', error_description: `refused: ${request.headers.get('authorization')}` };
        return Response.json(refusal, { status: 403, headers: { 'keyway-error': 'proxy_request_denied' } });
      }
      const sent = new URLSearchParams(await request.text()).get('subject_token');
      return Response.json({ error: 'invalid_grant', error_description: `the subject_token ${sent} is not accepted` }, { status: 400 });
    });
  });
  afterAll(async () => {
    await broker?.close();
  });

  const runner = () => ({
    PATH: process.env['PATH'],
    GITHUB_ACTIONS: 'true',
    ACTIONS_ID_TOKEN_REQUEST_URL: `${broker.base}/idtoken`,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'request-token',
  });
  const keyway = (...args: string[]) => runProcess(process.execPath, [join(REPOSITORY_ROOT, 'src/cli/main.ts'), ...args], { env: runner() });

  /** The CI token shows in the log (the broker's refusal quotes it), and its first line there is its mask. */
  function expectMaskedFirst(log: string): void {
    const lines = log.split('\n').filter((line) => line.includes(CI_TOKEN));
    expect(lines.length, log).toBeGreaterThan(1);
    expect(lines[0]).toBe(`::add-mask::${CI_TOKEN}`);
  }

  it('keyway exchange, a token or a token map: refused with the CI token quoted, the mask comes first', async () => {
    for (const args of [[], ['--github-token-map', '--repository', 'acme/api']]) {
      const result = await keyway('exchange', '--url', broker.base, '--retries', '0', ...args);
      expect(result.code, result.stderr).toBe(4);
      expectMaskedFirst(result.stderr);
    }
  });

  it('the Action, a token or a token map: refused with the CI token quoted, the mask comes first', async () => {
    for (const inputs of [{}, { 'github-token-map': 'true', repositories: 'acme/api' }] as Record<string, string>[]) {
      const step = actionStep(
        { githubRequestUrl: `${broker.base}/idtoken`, githubRequestToken: 'request-token', githubApiUrl: broker.base },
        { url: broker.base, ...inputs },
      );
      const main = await step.run('main');
      expect(main.code).toBe(1);
      expectMaskedFirst(main.stdout);
    }
  });

  it('keyway proxy: a refusal that quotes the CI token it was sent is logged after the mask', async () => {
    const call = "await fetch(process.env.KEYWAY_PROXY_URL + '/repos/acme/api', { headers: { authorization: 'Bearer ' + process.env.KEYWAY_PROXY_SECRET } })";
    const result = await keyway('proxy', '--upstream', 'github', '--url', broker.base, '--', process.execPath, '--input-type=module', '-e', call);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/refused by the broker: GET \/repos\/acme\/api → HTTP 403 proxy_request_denied/);
    expectMaskedFirst(result.stderr);
  });
});
