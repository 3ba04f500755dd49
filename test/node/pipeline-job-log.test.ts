import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_TYPE } from '../../src/core/exchange/token-exchange-request.ts';
import { actionStep } from '../support/github-runner.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';
import { REPOSITORY_ROOT, runProcess, writeTree } from './node-harness.ts';

const CI_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaS1qb2IifQ.c2lnbmF0dXJl';
const REQUEST_TOKEN = 'request-token';
/** What a broker that is not keyway (or one in the hands of someone else) could put in its refusal: workflow commands, a terminal escape. */
const UNREADABLE_TOKEN = 'ghs_live token';
const FORGED = 'no\n::set-output name=token::forged\r\n::stop-commands::end\n\u001b[2J';

/**
 * A GitHub Actions runner reads every line a step writes, on either stream, as a possible workflow command (`::set-output`,
 * `::add-mask::`, `::stop-commands::`), after leading spaces. What others answer the pipeline side (a broker's refusal, a
 * cloud's message) reaches the job log as one inert line: a line feed in it must not start a line of its own.
 */
describe("the job log: others' answers written inert, never a token they carry", () => {
  let broker: Awaited<ReturnType<typeof serveOnLoopback>>;

  beforeAll(async () => {
    broker = await serveOnLoopback(async (request) => {
      const { pathname } = new URL(request.url);
      if (pathname.startsWith('/.well-known/')) return Response.json({ issuer: broker.base, token_endpoint: `${broker.base}/token` });
      // The GitHub Actions token service, as the runner names it.
      if (pathname === '/idtoken') {
        return request.headers.get('authorization') === `bearer ${REQUEST_TOKEN}` ? Response.json({ value: CI_TOKEN }) : new Response(null, { status: 401 });
      }
      const form = new URLSearchParams(await request.text());
      if (form.get('requested_token_type') === TOKEN_TYPE.githubInstallationTokenMap) {
        // Live GitHub tokens, one of a shape keyway does not take: the answer is refused whole, before any token is masked.
        const github_tokens = { acme: { access_token: UNREADABLE_TOKEN, expires_in: 3600 }, 'octo-org': { access_token: 'ghs_readable', expires_in: '3600' } };
        return Response.json({ issued_token_type: TOKEN_TYPE.githubInstallationTokenMap, github_tokens });
      }
      return Response.json({ error: 'access_denied', error_description: FORGED, audit_event_id: 'evt\n::error::forged' }, { status: 400 });
    });
  });
  afterAll(async () => {
    await broker?.close();
  });

  /** The lines the runner would read as workflow commands. */
  const commands = (output: string) => output.split(/\r\n|\r|\n/).filter((line) => line.trimStart().startsWith('::'));

  it('keyway exchange: a refusal whose description holds line feeds and escapes is logged on one line, escaped', async () => {
    const cwd = writeTree({});
    const env = {
      PATH: process.env['PATH'],
      HOME: cwd,
      GITHUB_ACTIONS: 'true',
      ACTIONS_ID_TOKEN_REQUEST_URL: `${broker.base}/idtoken?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN,
    };
    const result = await runProcess(process.execPath, [join(REPOSITORY_ROOT, 'src/cli/main.ts'), 'exchange', '--url', broker.base], { env, cwd });
    expect(result.code, result.stderr).toBe(4);
    // The one workflow command is the CI token's mask, written as it was read.
    expect(commands(result.stderr)).toEqual([`::add-mask::${CI_TOKEN}`]);
    expect(result.stderr).not.toContain('\u001b');
    expect(result.stderr).toContain(
      'refused (HTTP 400): access_denied: no\\u000a::set-output name=token::forged\\u000d\\u000a::stop-commands::end\\u000a\\u001b[2J',
    );
    expect(result.stderr).toContain('audit_event_id=evt\\u000a::error::forged');
  });

  it('a token map keyway cannot read: the log names where and what was expected, never a token received', async () => {
    const cwd = writeTree({});
    const env = {
      PATH: process.env['PATH'],
      HOME: cwd,
      GITHUB_ACTIONS: 'true',
      ACTIONS_ID_TOKEN_REQUEST_URL: `${broker.base}/idtoken?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN,
    };
    const args = [join(REPOSITORY_ROOT, 'src/cli/main.ts'), 'exchange', '--url', broker.base, '--github-token-map', '--repository', 'acme/api'];
    const result = await runProcess(process.execPath, args, { env, cwd });
    expect(result.code, result.stderr).toBe(5);
    expect(result.stderr).toContain('answered a token map keyway cannot read: github_tokens.acme.access_token: expected /^');
    expect(result.stderr).toContain('github_tokens.octo-org.expires_in: expected number');
    expect(result.stderr).not.toContain(UNREADABLE_TOKEN);
    expect(result.stderr).not.toContain('ghs_readable');
  });

  it('the GitHub Action: the same refusal is logged on one line, and its annotation is the one workflow command', async () => {
    const step = actionStep(
      { githubRequestUrl: `${broker.base}/idtoken?api-version=2.0`, githubRequestToken: REQUEST_TOKEN, githubApiUrl: broker.base },
      { url: broker.base },
    );
    const result = await step.run('main');
    expect(result.code).toBe(1);
    expect(commands(result.stdout)).toEqual([
      `::add-mask::${CI_TOKEN}`,
      '::error::keyway: refused (HTTP 400): access_denied: no\\u000a::set-output name=token::forged\\u000d\\u000a::stop-commands::end\\u000a\\u001b[2J',
    ]);
    expect(result.stdout).not.toContain('\u001b');
    expect(result.stdout).toContain('keyway: refused (HTTP 400): access_denied: no\\u000a::set-output name=token::forged');
  });
});
