import { decodeJwt, decodeProtectedHeader } from 'jose';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { keywayAuth, type KeywayAuthVariables } from '../../src/index.ts';
import { silentLogger } from '../../src/core/log.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { DpopHelperError, requestDpopProof } from '../../src/cli/pipeline/dpop-signing-helper.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';
import { ciClaims, TestIssuer } from '../support/test-issuer.ts';
import { OWN_URL_ISSUER, runProcess, testConfig, writeTree, type Environment, type ProcessResult } from './node-harness.ts';

const AUDIENCE = 'https://deploy.acme.dev';
const CLI = join(process.cwd(), 'src/cli/main.ts');

/**
 * The job script `keyway exchange --dpop --exec -- node job.mjs` runs: it asks the signing helper
 * for a proof and calls the resource server with it, tries as a process without the secret would,
 * and prints what it saw (its environment and arguments too) as one JSON line.
 */
const JOB_SCRIPT = `
import { execFileSync, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { dirname } from 'node:path';
import { statSync } from 'node:fs';
const { TEST_NODE: node, TEST_CLI: cli, TEST_RESOURCE: resource, KEYWAY_TOKEN: token, KEYWAY_DPOP_SOCKET: socket } = process.env;
const url = resource + '/deploy';
const proofArgs = [cli, 'dpop', 'proof', '--method', 'POST', '--url', url];
const proof = execFileSync(node, proofArgs, { encoding: 'utf8' }).trim();
const granted = await fetch(url, { method: 'POST', headers: { authorization: 'DPoP ' + token, dpop: proof } });
const run = (env) => { const r = spawnSync(node, proofArgs, { env, encoding: 'utf8' }); return { status: r.status, stdout: r.stdout, stderr: r.stderr }; };
const { KEYWAY_DPOP_SECRET, ...withoutSecret } = process.env;
const raw = await new Promise((resolve) => {
  const sent = request({ socketPath: socket, path: '/proof', method: 'POST' }, (answer) => {
    let body = '';
    answer.on('data', (chunk) => (body += chunk)).on('end', () => resolve({ status: answer.statusCode, body }));
  });
  sent.end(JSON.stringify({ htm: 'POST', htu: url }));
});
console.log(JSON.stringify({
  status: granted.status,
  body: await granted.json(),
  proof,
  socketDirMode: statSync(dirname(socket)).mode & 0o777,
  withoutSecret: run(withoutSecret),
  wrongSecret: run({ ...process.env, KEYWAY_DPOP_SECRET: 'A'.repeat(43) }),
  rawWithoutSecret: raw,
  env: process.env,
  argv: process.argv,
}));
`;

interface JobReport {
  status: number;
  body: Record<string, unknown>;
  proof: string;
  socketDirMode: number;
  withoutSecret: { status: number; stdout: string; stderr: string };
  wrongSecret: { status: number; stdout: string; stderr: string };
  rawWithoutSecret: { status: number; body: string };
  env: Record<string, string>;
  argv: string[];
}

/** The real `keyway exchange --dpop --exec` process, the real Node broker and a resource server protected by keywayAuth, all on 127.0.0.1. */
describe('keyway exchange --dpop --exec', () => {
  let issuer: TestIssuer;
  let broker: NodeBroker;
  let audit: SqliteAuditStore;
  let resource: Awaited<ReturnType<typeof serveOnLoopback>>;
  let root: string;

  beforeAll(async () => {
    issuer = new TestIssuer(inject('testIssuerBase'), `exchange-dpop-${crypto.randomUUID().slice(0, 8)}`);
    root = writeTree({
      'policies/deploy.yaml': `
version: 1
issuer: { kind: github, url: "${issuer.url}" }
match:
  repository_owner_id: "1200934"
  repository_id: "734201"
  ref: refs/heads/main
grant:
  audience: ${AUDIENCE}
  scopes: [deploy:write]
  ttl: 10m
  require_dpop: true
`,
    });
    const config = testConfig(root, { issuer: OWN_URL_ISSUER });
    broker = await startNodeBroker(config, { log: silentLogger });
    audit = new SqliteAuditStore(openSqliteFile(join(config.dataDir, DATABASE_FILE)));
    const app = new Hono<{ Variables: KeywayAuthVariables }>();
    app.post('/deploy', keywayAuth({ issuer: broker.config.issuer, audience: AUDIENCE, scopes: ['deploy:write'] }), (c) =>
      c.json({ deployed: true, jkt: (c.get('keywayToken').cnf as { jkt?: string } | undefined)?.jkt }),
    );
    resource = await serveOnLoopback(app.fetch);
  });
  afterAll(async () => {
    await Promise.all([broker?.close(), resource?.close()]);
  });

  /** A CircleCI job's environment: nothing from the test runner's own, a fresh HOME, TMPDIR and working directory. */
  async function jobEnv(): Promise<{ env: Environment; cwd: string }> {
    const cwd = mkdtempSync(join(tmpdir(), 'keyway-dpop-job-'));
    const ciToken = await issuer.sign(ciClaims(issuer.url, broker.config.issuer));
    return {
      cwd,
      env: { PATH: process.env['PATH'], HOME: cwd, TMPDIR: cwd, CIRCLECI: 'true', CIRCLE_OIDC_TOKEN_V2: ciToken },
    };
  }
  const keyway = (args: readonly string[], job: { env: Environment; cwd: string }): Promise<ProcessResult> => runProcess(process.execPath, [CLI, ...args], job);

  it('the command gets a bound token and proofs from the helper; a process without the secret, or after the end, gets nothing', async () => {
    const job = await jobEnv();
    writeFileSync(join(job.cwd, 'job.mjs'), JOB_SCRIPT);
    const testEnv = { TEST_NODE: process.execPath, TEST_CLI: CLI, TEST_RESOURCE: resource.base };
    const jobWithTest = { cwd: job.cwd, env: { ...job.env, ...testEnv } };
    const result = await keyway(['exchange', '--url', broker.config.issuer, '--dpop', '--exec', '--', process.execPath, 'job.mjs'], jobWithTest);
    expect(result.stderr).not.toMatch(/could not|cannot/);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as JobReport;

    // The token is bound to the job's key, and the resource server accepts it with the helper's proof.
    const token = report.env['KEYWAY_TOKEN'] ?? '';
    const { cnf } = decodeJwt(token) as { cnf?: { jkt?: string } };
    expect(cnf?.jkt).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(report.status).toBe(200);
    expect(report.body).toEqual({ deployed: true, jkt: cnf?.jkt });
    expect(result.stderr).toContain(`token bound to this job's DPoP key, jkt ${cnf?.jkt}`);

    // Without the secret, from the CLI or straight on the socket: no proof.
    expect(report.socketDirMode).toBe(0o700);
    expect(report.withoutSecret).toMatchObject({ status: 1, stdout: '' });
    expect(report.withoutSecret.stderr).toContain('no signing helper');
    expect(report.wrongSecret).toMatchObject({ status: 1, stdout: '' });
    expect(report.wrongSecret.stderr).toContain('the signing helper refused: wrong or missing secret');
    expect(report.rawWithoutSecret.status).toBe(403);
    expect(report.rawWithoutSecret.body).not.toMatch(/eyJ/);

    // The key reached the command in no form: its environment gained the token, the socket and the secret only, its arguments are its own,
    // and the proof's key is a public one.
    const added = Object.keys(report.env).filter((name) => !(name in jobWithTest.env));
    expect(added.sort()).toEqual(['KEYWAY_DPOP_SECRET', 'KEYWAY_DPOP_SOCKET', 'KEYWAY_TOKEN']);
    expect(report.env['KEYWAY_DPOP_SECRET']).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(report.argv.slice(1)).toEqual([join(job.cwd, 'job.mjs')]);
    const { jwk } = decodeProtectedHeader(report.proof);
    expect(Object.keys(jwk ?? {}).sort()).toEqual(['crv', 'kty', 'x', 'y']);
    // Nor any file or log: the job's directories hold only the script (the helper's directory is gone), and the log names no key material.
    expect(readdirSync(job.cwd)).toEqual(['job.mjs']);
    expect(existsSync(report.env['KEYWAY_DPOP_SOCKET'] ?? '')).toBe(false);
    expect(result.stderr).not.toContain(token);
    expect(result.stderr).not.toMatch(/"d"|PRIVATE KEY|"kty"/);

    // After the command: the helper no longer answers, even with the leaked socket and secret...
    const late = requestDpopProof(report.env, { htm: 'POST', htu: `${resource.base}/deploy` });
    await expect(late).rejects.toBeInstanceOf(DpopHelperError);
    await expect(late).rejects.toThrow(/cannot reach the signing helper/);
    // ...a leaked proof is good once, the token alone or as Bearer is refused...
    const replayed = await fetch(`${resource.base}/deploy`, { method: 'POST', headers: { authorization: `DPoP ${token}`, dpop: report.proof } });
    expect(replayed.status).toBe(401);
    expect(replayed.headers.get('www-authenticate')).toContain('error="invalid_dpop_proof"');
    const asBearer = await fetch(`${resource.base}/deploy`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(asBearer.status).toBe(401);
    // ...and the token was revoked at the broker when the command ended.
    expect(result.stderr).toContain('keyway: revoked the keyway token');
    const { records } = await audit.query({ jti: String(decodeJwt(token).jti), reasons: ['token_revoked'], limit: 10, order: 'desc' });
    expect(records).toHaveLength(1);
  }, 90_000);

  it('a proof for another token the command holds: --token-file gives the helper its hash, never the token; in GitHub Actions the secret is masked', async () => {
    const job = await jobEnv();
    writeFileSync(join(job.cwd, 'other-token'), 'eyJother.token.value\n');
    const script = `
      const { execFileSync } = await import('node:child_process');
      const proof = execFileSync(process.env.TEST_NODE, [process.env.TEST_CLI, 'dpop', 'proof', '--method', 'get', '--url', 'https://api.acme.dev/x?q=1', '--token-file', 'other-token', '--nonce', 'n0nce'], { encoding: 'utf8' });
      process.stdout.write(proof + process.env.KEYWAY_DPOP_SECRET + '\\n');`;
    writeFileSync(join(job.cwd, 'job.mjs'), script);
    // In GitHub Actions: the token and the helper's secret are masked before the command runs.
    const env = { ...job.env, GITHUB_ACTIONS: 'true', TEST_NODE: process.execPath, TEST_CLI: CLI };
    const result = await keyway(['exchange', '--url', broker.config.issuer, '--from', 'circleci', '--dpop', '--exec', '--', process.execPath, 'job.mjs'], {
      cwd: job.cwd,
      env,
    });
    expect(result.code).toBe(0);
    const [proof = '', secret = ''] = result.stdout.trim().split('\n');
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(result.stderr.split('\n')).toContain(`::add-mask::${secret}`);
    const claims = decodeJwt(proof);
    const { createHash } = await import('node:crypto');
    expect(claims).toMatchObject({
      htm: 'GET',
      htu: 'https://api.acme.dev/x',
      nonce: 'n0nce',
      ath: createHash('sha256').update('eyJother.token.value').digest('base64url'),
    });
  }, 60_000);

  it('a helper that cannot start (TMPDIR too deep for a socket path) runs no command: exit 126, and the token is revoked', async () => {
    const job = await jobEnv();
    const deep = join(job.cwd, 'd'.repeat(100));
    mkdirSync(deep);
    const marker = join(job.cwd, 'ran');
    const result = await keyway(
      [
        'exchange',
        '--url',
        broker.config.issuer,
        '--dpop',
        '--exec',
        '--',
        process.execPath,
        '-e',
        `require('fs').writeFileSync(${JSON.stringify(marker)}, '')`,
      ],
      { cwd: job.cwd, env: { ...job.env, TMPDIR: deep } },
    );
    expect(result.code).toBe(126);
    expect(result.stderr).toContain('is too long for a Unix domain socket: set TMPDIR to a shorter directory');
    expect(existsSync(marker)).toBe(false);
    expect(readdirSync(deep)).toEqual([]);
    expect(result.stderr).toContain('keyway: revoked the keyway token');
  }, 60_000);

  it('refuses --dpop without --exec, or with a GitHub or cloud token, with exit 2 before any exchange', async () => {
    const job = await jobEnv();
    const before = (await audit.query({ limit: 1000, order: 'desc' })).records.length;
    for (const [args, message] of [
      [['--dpop'], '--dpop needs --exec'],
      [['--dpop', '--github-output', 'token'], '--dpop needs --exec'],
      [['--dpop', '--github-token', '--exec', '--', 'true'], '--dpop binds a keyway token: it does not combine with --github-token'],
      [['--dpop', '--cloud', 'aws', '--role-arn', 'arn:aws:iam::1:role/r', '--exec', '--', 'true'], 'it does not combine with --cloud'],
    ] as const) {
      const result = await keyway(['exchange', '--url', broker.config.issuer, ...args], job);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(message);
    }
    expect((await audit.query({ limit: 1000, order: 'desc' })).records).toHaveLength(before);
  }, 60_000);

  it('keyway dpop proof outside the helper: exit 1, nothing on standard output', async () => {
    const job = await jobEnv();
    const result = await keyway(['dpop', 'proof', '--method', 'POST', '--url', 'https://deploy.acme.dev/deploy'], job);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('no signing helper: KEYWAY_DPOP_SOCKET and KEYWAY_DPOP_SECRET are set only inside keyway exchange --dpop --exec');
  });
});

/**
 * A DPoP request answered with a bearer token (a broker that does not bind it, or whatever answers in the broker's place):
 * the job refuses it, but whoever answered holds it, live. It is masked before anything else is written, never printed, and
 * revoked at the broker with a proof of the job's key; the error says which was done. A loopback broker of the test's own,
 * since the real one never answers so.
 */
describe('keyway exchange --dpop answered a bearer token', () => {
  const BEARER = `eyJub3QiOiJib3VuZCJ9.eyJqdGkiOiJiZWFyZXIifQ.${crypto.randomUUID()}`;
  const revocations: { body: string; dpop: string | null }[] = [];
  let revokeStatus = 200;
  let broker: Awaited<ReturnType<typeof serveOnLoopback>>;

  beforeAll(async () => {
    broker = await serveOnLoopback(async (request) => {
      const path = new URL(request.url).pathname;
      if (path.startsWith('/.well-known/')) return Response.json({ issuer: broker.base, token_endpoint: `${broker.base}/token` });
      if (path === '/token') {
        return Response.json({
          access_token: BEARER,
          token_type: 'Bearer',
          expires_in: 600,
          issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          audit_event_id: '01UNBOUND',
        });
      }
      if (path === '/revoke') {
        revocations.push({ body: await request.text(), dpop: request.headers.get('dpop') });
        return revokeStatus === 200 ? new Response(null, { status: 200 }) : Response.json({ error: 'invalid_request' }, { status: revokeStatus });
      }
      return new Response(null, { status: 404 });
    });
  });
  afterAll(async () => {
    await broker?.close();
  });

  async function exchange(env: Environment): Promise<{ result: ProcessResult; ran: boolean }> {
    const cwd = mkdtempSync(join(tmpdir(), 'keyway-dpop-unbound-'));
    const marker = join(cwd, 'ran');
    const ciToken = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaS1qb2IifQ.c2lnbmF0dXJl';
    const result = await runProcess(
      process.execPath,
      [
        CLI,
        'exchange',
        '--url',
        broker.base,
        '--from',
        'circleci',
        '--dpop',
        '--exec',
        '--',
        process.execPath,
        '-e',
        `require('fs').writeFileSync(${JSON.stringify(marker)}, '')`,
      ],
      { cwd, env: { PATH: process.env['PATH'], HOME: cwd, TMPDIR: cwd, CIRCLE_OIDC_TOKEN_V2: ciToken, ...env } },
    );
    return { result, ran: existsSync(marker) };
  }

  it('in GitHub Actions: masked before anything else, revoked with a proof of the key, no command run, exit 5', async () => {
    revocations.length = 0;
    revokeStatus = 200;
    const { result, ran } = await exchange({ GITHUB_ACTIONS: 'true' });
    expect(result.code).toBe(5);
    expect(ran).toBe(false);
    expect(result.stdout).toBe('');
    const lines = result.stderr.split('\n');
    // The only line that holds the token is its mask, and it comes before the refusal says anything.
    expect(lines.filter((line) => line.includes(BEARER))).toEqual([`::add-mask::${BEARER}`]);
    const refusal = lines.findIndex((line) => line.includes('broker unavailable'));
    expect(lines.indexOf(`::add-mask::${BEARER}`)).toBeLessThan(refusal);
    expect(lines[refusal]).toBe(
      "keyway: broker unavailable: the broker answered a bearer token to a DPoP request: it did not bind the token to the job's key; " +
        'the token is not used nor printed (masked in GitHub Actions), and it was revoked at the broker',
    );
    expect(lines).toContain('keyway: audit_event_id=01UNBOUND');
    expect(revocations).toHaveLength(1);
    expect(new URLSearchParams(revocations[0]!.body).get('token')).toBe(BEARER);
    const proof = decodeJwt(revocations[0]!.dpop ?? '');
    expect(proof).toMatchObject({ htm: 'POST', htu: `${broker.base}/revoke` });
  }, 60_000);

  it('elsewhere, and the revocation refused: the token is in no output, and the error says it stays live', async () => {
    revocations.length = 0;
    revokeStatus = 400;
    const { result, ran } = await exchange({ CIRCLECI: 'true' });
    expect(result.code).toBe(5);
    expect(ran).toBe(false);
    expect(result.stdout).toBe('');
    expect(result.stderr).not.toContain(BEARER);
    expect(result.stderr).toContain('and it could not be revoked at the broker (the broker answered 400 to the revocation): it stays live until it expires');
    expect(revocations).toHaveLength(1);
  }, 60_000);
});
