import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startFakeCi, type FakeCi } from '../support/fake-ci.ts';
import { PROXIED_JOB_SCRIPT, proxiedJob, runKeywayProxy } from '../support/proxied-job.ts';
import { TestIssuer } from '../support/test-issuer.ts';
import { writeTree } from './node-harness.ts';

const JWT = /eyJ[\w-]+\.[\w-]+\.[\w-]+/;

/**
 * The `keyway proxy` process in front of a stand-in broker that records what reaches
 * /proxy/github/… and answers as the contract says (the end-to-end test against the real broker
 * is in proxy-end-to-end.test.ts): what the command's environment holds, what the broker gets,
 * exit codes, the job log.
 */
describe('keyway proxy', () => {
  let ci: FakeCi;
  let broker: Server;
  let brokerUrl: string;
  const received: { method: string; path: string; authorization: string | undefined; body: string }[] = [];

  beforeAll(async () => {
    ci = await startFakeCi(new TestIssuer(inject('testIssuerBase'), `proxy-cli-${crypto.randomUUID().slice(0, 8)}`));
    broker = createServer(async (request, response) => {
      received.push({ method: request.method ?? '', path: request.url ?? '', authorization: request.headers.authorization, body: await text(request) });
      if (request.method === 'DELETE') {
        const refusal = { error: 'access_denied', error_description: 'the request is not allowed', audit_event_id: '01JF0000000000000000000000' };
        return response.writeHead(403, { 'content-type': 'application/json', 'keyway-error': 'proxy_request_denied' }).end(JSON.stringify(refusal));
      }
      response.writeHead(request.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await new Promise<void>((resolve) => broker.listen(0, '127.0.0.1', resolve));
    brokerUrl = `http://127.0.0.1:${(broker.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await ci?.close();
    await new Promise((resolve) => broker?.close(resolve));
  });
  beforeEach(() => {
    received.length = 0;
    ci.requests.length = 0;
  });

  it('runs the command with no token in its environment, sends its calls with the job’s CI token, and exits with its status', async () => {
    const directory = writeTree({ 'job.mjs': PROXIED_JOB_SCRIPT });
    const result = await runKeywayProxy(ci, ['--upstream', 'github', '--url', brokerUrl], directory, 7, [
      'GET /repos/acme/app',
      'POST /repos/acme/app/issues/1/comments',
      'GET /repos/acme/app gh',
    ]);
    expect(result.code, result.stderr).toBe(7);
    const { env, calls } = proxiedJob(result, directory);
    expect(calls.map(({ call, status }) => [call, status])).toEqual([
      ['GET /repos/acme/app', 200],
      ['POST /repos/acme/app/issues/1/comments', 201],
      ['GET /repos/acme/app gh', 200],
    ]);

    // No token of any kind reached the command: not the CI token, not the token service, not the step's own.
    const values = Object.values(env).join('\n');
    expect(values).not.toMatch(JWT);
    expect(values).not.toContain(ci.githubRequestToken);
    expect(values).not.toContain('ghs_the_steps_own_token');
    for (const name of ['ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN']) expect(env).not.toHaveProperty(name);
    expect(env['KEYWAY_PROXY_SECRET']).toMatch(/^[\w-]{43}$/);
    expect(env).toMatchObject({ GITHUB_TOKEN: env['KEYWAY_PROXY_SECRET'], GH_TOKEN: env['KEYWAY_PROXY_SECRET'], GH_HOST: 'github.localhost' });
    expect(env['GITHUB_API_URL']).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(env['HTTP_PROXY']).toBe(env['GITHUB_API_URL']);

    // The broker got each call under /proxy/github, with a CI token for its own audience and never the per-run secret.
    expect(received.map(({ method, path }) => `${method} ${path}`)).toEqual([
      'GET /proxy/github/repos/acme/app',
      'POST /proxy/github/repos/acme/app/issues/1/comments',
      'GET /proxy/github/repos/acme/app',
    ]);
    expect(received[1]?.body).toBe('{"body":"Built by the job"}');
    for (const { authorization } of received) {
      expect(authorization).toMatch(/^Bearer eyJ/);
      expect(decodeJwt((authorization ?? '').slice('Bearer '.length))).toMatchObject({ aud: brokerUrl, repository: 'acme/api' });
    }
    expect(ci.requests).toEqual([{ source: 'github', audience: brokerUrl }]);
    expect(result.stderr).toMatch(/^keyway: CI token from GitHub Actions \(audience http:\/\/127\.0\.0\.1:\d+\), sha256 [0-9a-f]{64}, expires 20/m);
    expect(result.stderr).toMatch(/^keyway: proxy: 3 request\(s\) forwarded \(0 answered with Keyway-Error\), 0 refused here$/m);
    // The CI token shows only in its mask, written as it was read.
    const sent = (received[0]?.authorization ?? '').slice('Bearer '.length);
    expect(result.stderr.split('\n').filter((line) => JWT.test(line))).toEqual([`::add-mask::${sent}`]);
    expect(result.stdout).not.toMatch(JWT);
    expect(result.stderr).not.toContain(env['KEYWAY_PROXY_SECRET']);
  });

  it('warns when NO_PROXY covers api.github.localhost, as Go and curl read it: gh would call it itself, not through the forwarder', async () => {
    const directory = writeTree({ 'job.mjs': PROXIED_JOB_SCRIPT });
    const run = (noProxy: Record<string, string>) => runKeywayProxy(ci, ['--upstream', 'github', '--url', brokerUrl], directory, 0, [], noProxy);
    for (const [variable, value, entry] of [
      ['NO_PROXY', '127.0.0.1,localhost', 'localhost'],
      ['no_proxy', '.corp.example, *.GitHub.localhost:80', '*.github.localhost:80'],
      ['NO_PROXY', '*', '*'],
    ] as const) {
      const result = await run({ [variable]: value });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toContain(`keyway: ${variable}=${entry} covers api.github.localhost: gh calls it itself, not through this forwarder`);
    }
    const unaffected = await run({ NO_PROXY: '127.0.0.1,::1,.corp.example,mylocalhost,github.localhost:8080' });
    expect(unaffected.code, unaffected.stderr).toBe(0);
    expect(unaffected.stderr).not.toContain('covers api.github.localhost');
  });

  it('reads the CI token again once it is within a minute of its expiry: a long job’s later calls carry a fresh one', async () => {
    // Tokens that live 61 s are fresh for one second: the call after the pause needs a new one.
    const shortLived = await startFakeCi(new TestIssuer(inject('testIssuerBase'), `proxy-cli-short-${crypto.randomUUID().slice(0, 8)}`), {
      lifetimeSeconds: 61,
    });
    try {
      const directory = writeTree({ 'job.mjs': PROXIED_JOB_SCRIPT });
      const result = await runKeywayProxy(shortLived, ['--upstream', 'github', '--url', brokerUrl], directory, 0, [
        'GET /repos/acme/app',
        'WAIT 1500',
        'GET /repos/acme/app',
      ]);
      expect(result.code, result.stderr).toBe(0);
      const [first, second] = received.map(({ authorization }) => authorization);
      expect(received).toHaveLength(2);
      expect(second).not.toBe(first);
      expect(shortLived.requests.length).toBeGreaterThanOrEqual(2);
      expect(result.stderr.match(/^keyway: CI token from GitHub Actions/gm)?.length).toBe(shortLived.requests.length);
    } finally {
      await shortLived.close();
    }
  });

  it('hands the broker’s Keyway-Error refusal to the command as it came and names it in the job log', async () => {
    const directory = writeTree({ 'job.mjs': PROXIED_JOB_SCRIPT });
    const result = await runKeywayProxy(ci, ['--upstream', 'github', '--url', brokerUrl], directory, 0, ['DELETE /repos/acme/app']);
    expect(result.code, result.stderr).toBe(0);
    const { env, calls } = proxiedJob(result, directory);
    expect(calls).toEqual([
      {
        call: 'DELETE /repos/acme/app',
        status: 403,
        keywayError: 'proxy_request_denied',
        body: '{"error":"access_denied","error_description":"the request is not allowed","audit_event_id":"01JF0000000000000000000000"}',
        pages: [{ url: `${env['GITHUB_API_URL']}/repos/acme/app`, status: 403 }],
      },
    ]);
    expect(result.stderr).toContain(
      'keyway: refused by the broker: DELETE /repos/acme/app → HTTP 403 proxy_request_denied access_denied: the request is not allowed (audit_event_id=01JF0000000000000000000000)',
    );
    expect(result.stderr).toMatch(/proxy: 1 request\(s\) forwarded \(1 answered with Keyway-Error\), 0 refused here/);
  });

  it('does not run the command when the job has no CI token: exit 3, the reason in the log', async () => {
    const directory = writeTree({ 'job.mjs': PROXIED_JOB_SCRIPT });
    const result = await runKeywayProxy(ci, ['--upstream', 'github', '--url', brokerUrl], directory, 0, [], {
      ACTIONS_ID_TOKEN_REQUEST_URL: undefined,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: undefined,
    });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^keyway: no CI token: .*permissions: id-token: write/m);
    expect(existsSync(join(directory, 'env.json'))).toBe(false);
    expect(received).toEqual([]);
  });

  it.each([
    [['--url', 'http://127.0.0.1:1'], '--upstream names one of the broker'],
    [['--upstream', 'github', '--url', 'http://127.0.0.1:1', '--subject-token-file', '-'], 'standard input is the command'],
  ])('refuses bad usage %j with exit 2, running nothing', async (args, message) => {
    const directory = writeTree({ 'job.mjs': PROXIED_JOB_SCRIPT });
    const result = await runKeywayProxy(ci, args, directory, 0, []);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    expect(existsSync(join(directory, 'env.json'))).toBe(false);
  });
});
