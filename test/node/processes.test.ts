import { symlinkSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { HEALTH_READ_SCOPE } from '../../src/http/routes/health.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { DATABASE_FILE } from '../../src/runtimes/node/start-node-broker.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { auditorToken, operatorPolicy } from '../suites/audit-api-suite.ts';
import { exchangeForm, expectRefusal, freshIssuer, postToken, type BrokerClient, type BrokerHarness } from '../suites/exchange-suite.ts';
import { runProcess, spawnBroker, writeTree, type ProcessResult } from './node-harness.ts';
import { ALL_SECRETS, leaked, SECRET_FILES } from '../support/secret-files.ts';

function run(args: string[], env: Record<string, string>): Promise<ProcessResult> {
  return runProcess(process.execPath, args, { env: { ...process.env, ...env } });
}

/** A broker process on `url`, its audit records read from the SQLite file in its data dir. */
function processBroker(url: string, dataDir: string): BrokerClient & Pick<BrokerHarness, 'auditEvent'> {
  return {
    issuer: url,
    request: (path, init) => fetch(`${url}${path}`, init),
    auditEvent: async (id) => {
      const db = openSqliteFile(join(dataDir, DATABASE_FILE));
      try {
        return await new SqliteAuditStore(db).get(id);
      } finally {
        db.close();
      }
    },
  };
}

describe('processes a newcomer runs', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });

  /** `npm start` on PORT=0: the broker binds a free port and says which in its `keyway listening` line. */
  async function startBroker(env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
    const { url, issuer, child } = await spawnBroker(env, (spawned) => children.push(spawned));
    // Without KEYWAY_ISSUER, the issuer is the URL bound.
    if (env['KEYWAY_ISSUER'] === undefined) expect(issuer).toBe(url);
    return { url, child };
  }

  it('quickstart: KEYWAY_DEV=1 npm start, `keyway dev token`, and a first granted exchange', async () => {
    const dataDir = writeTree({});
    const { url } = await startBroker({ KEYWAY_DEV: '1', KEYWAY_DATA_DIR: dataDir });
    const port = new URL(url).port;
    const minted = await run(['src/cli/main.ts', 'dev', 'token'], { KEYWAY_DATA_DIR: dataDir, PORT: port });
    expect(minted.code).toBe(0);
    const token = minted.stdout.trim();
    const response = await fetch(`${url}/token`, {
      method: 'POST',
      body: exchangeForm(token),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const body = (await response.json()) as Record<string, unknown>;
    expect(response.status).toBe(200);
    expect(body['scope']).toBe('artifacts:read deploy:staging');

    const otherRepo = await run(['src/cli/main.ts', 'dev', 'token', '--repository', 'evil/api', '--repository-id', '666'], {
      KEYWAY_DATA_DIR: dataDir,
      PORT: port,
    });
    expect(otherRepo.code, otherRepo.stderr).toBe(0);
    const broker = processBroker(url, dataDir);
    await expectRefusal(broker, await postToken(broker, exchangeForm(otherRepo.stdout.trim())), { error: 'invalid_request', reason: 'no_policy_matched' });
  });

  it('without KEYWAY_DEV the development issuer does not exist, and its tokens are refused', async () => {
    const dataDir = writeTree({});
    const { url } = await startBroker({ KEYWAY_DATA_DIR: dataDir });
    expect(await (await fetch(`${url}/dev-issuer/.well-known/openid-configuration`)).json()).toEqual({ error: 'not_found' });
    const minted = await run(['src/cli/main.ts', 'dev', 'token'], { KEYWAY_DATA_DIR: dataDir, PORT: new URL(url).port });
    expect(minted.code, minted.stderr).toBe(0);
    const broker = processBroker(url, dataDir);
    const refused = await postToken(broker, exchangeForm(minted.stdout.trim()));
    const event = await expectRefusal(broker, refused, { error: 'invalid_request', reason: 'issuer_untrusted' });
    expect(event.subject_token?.claimed_iss).toBe(`${url}/dev-issuer`);
  });

  it('refuses KEYWAY_DEV=1 with a public issuer URL', async () => {
    const result = await run(['src/runtimes/node/main.ts'], { KEYWAY_DEV: '1', KEYWAY_ISSUER: 'https://keyway.example.com', KEYWAY_DATA_DIR: writeTree({}) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/KEYWAY_DEV=1 only runs with a loopback http KEYWAY_ISSUER/);
  });

  const UPSTREAM_SECRET = 'Jr4nWq8zTs2Xk6Lm0Pv';
  it.each([
    ["a YAML error on the secret's line", `"${UPSTREAM_SECRET}`, /KEYWAY_PROXY_UPSTREAMS:7:1 YAML: a character is missing here/],
    // The yaml package only warns of an unknown tag, and its warning quotes the line.
    ['an unknown tag before the secret', `!raw ${UPSTREAM_SECRET}`, /upstream api: its sealed secret does not open: not a sealed secret/],
  ])("stops start-up on upstream declarations it cannot use (%s), naming the line and the problem, quoting no upstream's secret", async (_, sealed, reason) => {
    const declarations = `upstreams:\n  api:\n    url: https://api.example\n    auth:\n      kind: static\n      sealed: ${sealed}\n`;
    const result = await run(['src/runtimes/node/main.ts'], { KEYWAY_PROXY_UPSTREAMS: declarations, KEYWAY_DATA_DIR: writeTree({}), PORT: '0' });
    expect(leaked(`${result.stdout}${result.stderr}`, [UPSTREAM_SECRET])).toEqual([]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(reason);
  });

  it('stops start-up on a broken policy, naming file, line and reason', async () => {
    const root = writeTree({
      'policies/ok.yaml': 'version: 1\nissuer: github\nmatch: { repository_id: "1" }\ngrant: { audience: x }\n',
      'policies/team/bad.yaml': 'version: 1\nissuer: github\nmatch: { repository_id: "1" }\ngrant: { audience: x, scope: [a] }\n',
    });
    const result = await run(['src/runtimes/node/main.ts'], { KEYWAY_POLICIES: `${root}/policies`, KEYWAY_DATA_DIR: `${root}/data`, PORT: '0' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('team/bad.yaml:4:23 unknown field grant.scope');
  });

  it('stops start-up on a policy that is a link to a file of secrets, naming the link and its problem, quoting none of the file', async () => {
    const root = writeTree({
      'policies/ok.yaml': 'version: 1\nissuer: github\nmatch: { repository_id: "1" }\ngrant: { audience: x }\n',
      ...Object.fromEntries(Object.entries(SECRET_FILES).map(([name, file]) => [`home/${name}`, file.text])),
    });
    for (const name of Object.keys(SECRET_FILES)) symlinkSync(join(root, 'home', name), join(root, 'policies', `linked${name}.yaml`));
    const result = await run(['src/runtimes/node/main.ts'], { KEYWAY_POLICIES: `${root}/policies`, KEYWAY_DATA_DIR: `${root}/data`, PORT: '0' });
    expect(leaked(`${result.stdout}${result.stderr}`, ALL_SECRETS)).toEqual([]);
    expect(result.code).toBe(1);
    // Refused as links out of the policy directory, before anything of them is read.
    for (const name of Object.keys(SECRET_FILES)) {
      expect(result.stderr).toContain(`linked${name}.yaml: a link out of the policy directory (to ${join(root, 'home', name)})`);
    }
  });

  it('npm start reloads its policies on SIGHUP, and keeps the old set when the new one is broken', async () => {
    const good = 'version: 1\nissuer: github\nmatch: { repository_id: "1" }\ngrant: { audience: x }\n';
    // A public issuer name, not the URL bound: the operator's policy names it as its audience before the broker starts.
    const issuer = 'https://keyway.test';
    const people = freshIssuer(inject('testIssuerBase'), 'processes-ops');
    const root = writeTree({ 'policies/a.yaml': good, 'policies/ops/olga.yaml': operatorPolicy(people, issuer, 'olga@acme.dev', [HEALTH_READ_SCOPE]) });
    const { url, child } = await startBroker({
      KEYWAY_POLICIES: `${root}/policies`,
      KEYWAY_DATA_DIR: `${root}/data`,
      KEYWAY_WATCH_POLICIES: '0',
      KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
      KEYWAY_ISSUER: issuer,
    });
    const operator = await auditorToken({ issuer, request: (path, init) => fetch(`${url}${path}`, init) }, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
    const health = async () =>
      (await (await fetch(`${url}/v1/health`, { headers: { authorization: `Bearer ${operator}` } })).json()) as Record<string, unknown>;
    const publicHealth = async () => (await (await fetch(`${url}/healthz`)).json()) as Record<string, unknown>;
    expect(await health()).toEqual({ status: 'ok', policies: 2, inactive_policies: 0 });

    writeTree({ 'policies/b.yaml': good.replace('"1"', '"2"') }, root);
    child.kill('SIGHUP');
    await expect.poll(health, { timeout: 5000 }).toMatchObject({ policies: 3, policy_reload: { ok: true } });
    expect(await publicHealth()).toEqual({ status: 'ok' });

    writeTree({ 'policies/c.yaml': 'version: 1\nissuer: github\nmatch: { ref: refs/heads/main }\ngrant: { audience: x }\n' }, root);
    child.kill('SIGHUP');
    await expect.poll(health, { timeout: 5000 }).toMatchObject({
      status: 'degraded',
      policies: 3,
      policy_reload: { ok: false, problems: [expect.stringMatching(/^c.yaml:3:1 .*\(unpinned-tenant\)$/)] },
    });
    expect(await publicHealth()).toEqual({ status: 'degraded' });
  });

  it('the CLI prints usage for --help and exits 2 on a bad option', async () => {
    expect(await run(['src/cli/main.ts', 'dev', 'token', '--help'], {})).toMatchObject({ code: 0, stdout: expect.stringContaining('usage: keyway dev token') });
    expect(await run(['src/cli/main.ts', 'dev', 'token', '--nope'], {})).toMatchObject({ code: 2, stderr: expect.stringContaining('--nope') });
    expect(await run(['src/cli/main.ts', 'frobnicate'], {})).toMatchObject({ code: 2, stderr: expect.stringContaining('usage: keyway') });
    // A name every object has is no command either.
    for (const inherited of ['constructor', 'toString', '__proto__']) {
      expect(await run(['src/cli/main.ts', inherited], {})).toMatchObject({ code: 2, stderr: expect.stringContaining('usage: keyway') });
    }
  });
});
