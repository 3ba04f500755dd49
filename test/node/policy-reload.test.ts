import { chmodSync, chownSync, lchownSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { nodeConfigFromEnv } from '../../src/config/node-config.ts';
import { jsonLogger, silentLogger, type Logger } from '../../src/core/log.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { ownPrimaryGroupIsPrivate } from '../../src/storage/private-group.ts';
import { HEALTH_READ_SCOPE } from '../../src/http/routes/health.ts';
import { auditorToken, operatorPolicy } from '../suites/audit-api-suite.ts';
import { exchangeForm, freshIssuer } from '../suites/exchange-suite.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { BROKER_ISSUER, testConfig, writeTree } from './node-harness.ts';
import { ALL_SECRETS, leaked, SECRET_FILES } from '../support/secret-files.ts';

const policy = (issuer: TestIssuer, repositoryId: string, extra = '') => `version: 1
${extra}issuer: { kind: github, url: "${issuer.url}" }
match:
  repository_owner_id: "1200934"
  repository_id: "${repositoryId}"
grant:
  audience: https://deploy.acme.dev
  scopes: [artifacts:read]
`;

/** Polls until `check` holds: file watching is asynchronous. Bounded: 10 s. */
async function eventually(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** File watchers this process holds open: how a broker's policy watch shows, with no wait for a change it might react to. */
const fileWatchers = (): number => process.getActiveResourcesInfo().filter((resource) => resource === 'FSEventWrap').length;

describe('reloading policies on the Node broker', () => {
  const running: NodeBroker[] = [];
  const watchersAtStart = fileWatchers();
  afterEach(async () => {
    await Promise.all(running.splice(0).map((broker) => broker.close()));
    // A closed watcher lets go of its handle a moment later; the next test counts from a settled state.
    await eventually(async () => fileWatchers() === watchersAtStart);
  });

  async function setup(watchPolicies: boolean, log: Logger = silentLogger) {
    const github = freshIssuer(inject('testIssuerBase'), 'reload');
    const people = freshIssuer(inject('testIssuerBase'), 'reload-ops');
    const root = writeTree({
      'policies/a.yaml': policy(github, '734201'),
      'policies/ops/olga.yaml': operatorPolicy(people, BROKER_ISSUER, 'olga@acme.dev', [HEALTH_READ_SCOPE, 'keys:read']),
    });
    const broker = await startNodeBroker(testConfig(root, { watchPolicies }), { log });
    running.push(broker);
    const client = { issuer: broker.config.issuer, request: (path: string, init?: RequestInit) => fetch(`${broker.url}${path}`, init) };
    const operator = await auditorToken(client, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
    const exchange = async (repositoryId: string) =>
      (
        await fetch(`${broker.url}/token`, {
          method: 'POST',
          body: exchangeForm(await github.sign(ciClaims(github.url, broker.config.issuer, { repository_id: repositoryId }))),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        })
      ).status;
    /** The health in detail, as an operator reads it. */
    const health = async () =>
      (await (await fetch(`${broker.url}/v1/health`, { headers: { authorization: `Bearer ${operator}` } })).json()) as Record<string, unknown>;
    const write = (path: string, text: string) => writeFileSync(join(root, 'policies', path), text);
    return { github, people, client, root, broker, exchange, health, write };
  }

  it('picks up a new policy when a file changes, without a restart', async () => {
    const before = fileWatchers();
    const { github, exchange, health, write } = await setup(true);
    expect(fileWatchers()).toBeGreaterThan(before);
    expect(await exchange('5')).toBe(400);
    write('b.yaml', policy(github, '5'));
    await eventually(async () => (await exchange('5')) === 200);
    expect(await exchange('734201')).toBe(200);
    expect(await health()).toMatchObject({ status: 'ok', policies: 3, policy_reload: { ok: true, policies: 3 } });
  });

  it('keeps the old set when the new one does not load: /healthz tells anyone it is degraded, /v1/health tells an operator why; a fix then loads', async () => {
    const { github, broker, exchange, health, write } = await setup(true);
    write('a.yaml', `${policy(github, '734201')}matchh: {}\n`);
    await eventually(async () => (await health())['policy_reload'] !== undefined);
    const report = await health();
    expect(report).toMatchObject({ status: 'degraded', policies: 2, policy_reload: { ok: false, policies: 2, problems: ['a.yaml:9:1 unknown field matchh'] } });
    const stranger = await fetch(`${broker.url}/healthz`);
    expect(stranger.status).toBe(200);
    expect(await stranger.json()).toEqual({ status: 'degraded' });
    expect(await exchange('734201')).toBe(200);

    write('a.yaml', policy(github, '5'));
    await eventually(async () => (await health())['policy_reload'] !== undefined && ((await health())['policy_reload'] as { ok: boolean }).ok);
    expect(await exchange('5')).toBe(200);
    expect(await exchange('734201')).toBe(400);
    expect(await (await fetch(`${broker.url}/healthz`)).json()).toEqual({ status: 'ok' });
  });

  it('logs a reload refused for a policy that is a link to a file of secrets, naming the link and its problem, quoting none of the file', async () => {
    const lines: string[] = [];
    const { root, broker, health } = await setup(false, jsonLogger({}, { write: (line) => lines.push(line) }));
    const home = writeTree(Object.fromEntries(Object.entries(SECRET_FILES).map(([name, file]) => [name, file.text])), join(root, 'policies', 'home'));
    for (const name of Object.keys(SECRET_FILES)) symlinkSync(join(home, name), join(root, 'policies', `linked${name}.yaml`));
    expect(broker.reloadPolicies()).toMatchObject({ ok: false });
    expect(leaked(lines.join('\n'), ALL_SECRETS)).toEqual([]);
    expect(leaked(JSON.stringify(await health()), ALL_SECRETS)).toEqual([]);
    const logged = lines.filter((line) => line.includes('policies not reloaded'));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('linked.env.yaml:1:1 expected Object, got text of');
    for (const name of Object.keys(SECRET_FILES)) expect(logged[0]).toContain(`linked${name}.yaml:`);
  });

  it('loads no policy through a link out of the policy directory, at start and on a reload, as keyway policy check refuses it', async () => {
    const { github, root, broker, exchange } = await setup(false);
    const elsewhere = writeTree({ 'team/planted.yaml': policy(github, '999999') });
    symlinkSync(join(elsewhere, 'team', 'planted.yaml'), join(root, 'policies', 'planted.yaml'));
    expect(broker.reloadPolicies()).toMatchObject({
      ok: false,
      policies: 2,
      problems: [expect.stringContaining('planted.yaml: a link out of the policy directory (to ')],
    });
    expect(await exchange('999999')).toBe(400);
    rmSync(join(root, 'policies', 'planted.yaml'));
    symlinkSync(join(elsewhere, 'team'), join(root, 'policies', 'team'));
    expect(broker.reloadPolicies()).toMatchObject({ ok: false, problems: [expect.stringContaining('team: a link out of the policy directory (to ')] });
    expect(await exchange('999999')).toBe(400);

    const other = writeTree({ 'policies/a.yaml': policy(github, '734201') });
    symlinkSync(join(elsewhere, 'team', 'planted.yaml'), join(other, 'policies', 'planted.yaml'));
    await expect(startNodeBroker(testConfig(other), { log: silentLogger })).rejects.toThrow(/planted\.yaml: a link out of the policy directory/);
  });

  it('answers /v1/health only to a keyway token for this broker with scope health:read', async () => {
    const { people, client, broker } = await setup(false);
    const anonymous = await fetch(`${broker.url}/v1/health`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: 'invalid_token' });
    const keysOnly = await fetch(`${broker.url}/v1/health`, {
      headers: { authorization: `Bearer ${await auditorToken(client, people, 'olga@acme.dev', 'keys:read')}` },
    });
    expect(keysOnly.status).toBe(403);
    expect(keysOnly.headers.get('www-authenticate')).toBe(`Bearer error="insufficient_scope", scope="${HEALTH_READ_SCOPE}"`);
    expect(await keysOnly.json()).not.toHaveProperty('policies');
    const forged = await fetch(`${broker.url}/v1/health`, {
      headers: { authorization: `Bearer ${await people.sign({ iss: broker.config.issuer, aud: broker.config.issuer, scope: HEALTH_READ_SCOPE })}` },
    });
    expect(forged.status).toBe(401);
  });

  it('reloads on demand (SIGHUP) when not watching; disabled: true is a kill switch that takes effect then', async () => {
    const before = fileWatchers();
    const { github, broker, exchange, write } = await setup(false);
    // Not watching is not a matter of time: the broker holds no watcher that a change could wake.
    expect(fileWatchers()).toBe(before);
    write('a.yaml', policy(github, '734201', 'disabled: true\n'));
    expect(await exchange('734201')).toBe(200);
    expect(broker.reloadPolicies()).toMatchObject({ ok: true, policies: 1 });
    expect(await exchange('734201')).toBe(400);
    expect(broker.policies().inactive.map((entry) => [entry.id, entry.why])).toEqual([['a', 'disabled: true']]);
  });

  it('loads no policy that every local user may write, nor any under a directory they may: refused at start and on a reload', async () => {
    const { github, root, broker, exchange, write } = await setup(false);
    // The directory opened to all, another local user puts a policy of theirs in it.
    chmodSync(join(root, 'policies', 'ops'), 0o777);
    write('ops/planted.yaml', policy(github, '999999'));
    expect(broker.reloadPolicies()).toMatchObject({ ok: false, policies: 2, problems: [expect.stringContaining('may be written by every local user')] });
    expect(await exchange('999999')).toBe(400);
    // Sticky too: only a file's owner may replace it there, but anyone may add one.
    chmodSync(join(root, 'policies', 'ops'), 0o1777);
    expect(broker.reloadPolicies()).toMatchObject({ ok: false, problems: [expect.stringContaining('(mode 1777)')] });
    chmodSync(join(root, 'policies', 'ops'), 0o755);
    expect(broker.reloadPolicies()).toMatchObject({ ok: true, policies: 3 });
    rmSync(join(root, 'policies', 'ops', 'planted.yaml'));

    const other = writeTree({ 'policies/a.yaml': policy(github, '734201') });
    chmodSync(join(other, 'policies', 'a.yaml'), 0o666);
    await expect(startNodeBroker(testConfig(other), { log: silentLogger })).rejects.toThrow(/a\.yaml: .* may be written by every local user \(mode 666\)/);
    chmodSync(join(other, 'policies', 'a.yaml'), 0o644);
    chmodSync(join(other, 'policies'), 0o777);
    await expect(startNodeBroker(testConfig(other), { log: silentLogger })).rejects.toThrow(/may be written by every local user \(mode 777\)/);
  });

  it("loads no policy from where another user's entry in a sticky directory (a squatted /tmp/policies, a link there) leads", async () => {
    const { github } = await setup(false);
    // Another user made the policy directory in a directory every local user may write, sticky as /tmp is: theirs to fill.
    const squatted = writeTree({ 'policies/a.yaml': policy(github, '734201') });
    chmodSync(squatted, 0o1777);
    chownSync(join(squatted, 'policies'), 65534, 65534);
    await expect(startNodeBroker(testConfig(squatted), { log: silentLogger })).rejects.toThrow(
      /policies is owned by another user \(uid 65534\) in .* which every local user may write \(mode 1777\)/,
    );
    // The broker's own directory, reached through a link another user made there: theirs to point elsewhere.
    const linked = writeTree({ 'mine/a.yaml': policy(github, '734201') });
    chmodSync(linked, 0o1777);
    symlinkSync(join(linked, 'mine'), join(linked, 'policies'));
    lchownSync(join(linked, 'policies'), 65534, 65534);
    await expect(startNodeBroker(testConfig(linked), { log: silentLogger })).rejects.toThrow(/policies is owned by another user \(uid 65534\)/);
    // Its own link, or the directory itself, in the sticky directory loads.
    lchownSync(join(linked, 'policies'), process.getuid?.() ?? 0, 0);
    running.push(await startNodeBroker(testConfig(linked), { log: silentLogger }));
  });

  it('loads no policy that its group may write, nor any under a directory it may: refused at start and on a reload', async (context) => {
    // A group other than the broker's own primary group: any gid as root, else one the user is also in.
    const own = process.getgid?.();
    const ops = process.getuid?.() === 0 ? 4242 : process.getgroups?.().find((gid) => gid !== own);
    if (ops === undefined) context.skip();
    const { github, root, broker, exchange, write } = await setup(false);
    const toOps = (path: string) => chownSync(path, process.getuid?.() ?? 0, ops ?? 0);
    // A checkout the whole ops group may write to: any member puts a policy of theirs in it.
    toOps(join(root, 'policies', 'ops'));
    chmodSync(join(root, 'policies', 'ops'), 0o775);
    write('ops/planted.yaml', policy(github, '999999'));
    toOps(join(root, 'policies', 'ops', 'planted.yaml'));
    const refused = broker.reloadPolicies();
    expect(refused).toMatchObject({
      ok: false,
      policies: 2,
      problems: [expect.stringMatching(/ops may be written by the members of group \d+ \(mode 775\)/)],
    });
    expect(await exchange('999999')).toBe(400);
    chmodSync(join(root, 'policies', 'ops'), 0o2775);
    expect(broker.reloadPolicies()).toMatchObject({ ok: false, problems: [expect.stringContaining('(mode 2775)')] });
    chmodSync(join(root, 'policies', 'ops'), 0o755);
    chmodSync(join(root, 'policies', 'ops', 'planted.yaml'), 0o664);
    expect(broker.reloadPolicies()).toMatchObject({
      ok: false,
      problems: [expect.stringMatching(/ops\/planted\.yaml: .*planted\.yaml may be written by .*group.*\(mode 664\)/)],
    });
    expect(await exchange('999999')).toBe(400);
    chmodSync(join(root, 'policies', 'ops', 'planted.yaml'), 0o644);
    expect(broker.reloadPolicies()).toMatchObject({ ok: true, policies: 3 });

    // A directory above the policies that its group may rename them in, not sticky.
    const above = writeTree({ 'policies/a.yaml': policy(github, '734201') });
    toOps(above);
    chmodSync(above, 0o770);
    await expect(startNodeBroker(testConfig(above), { log: silentLogger })).rejects.toThrow(/may be written by the members of group \d+ \(mode 770\)/);
  });

  it("loads policies that only the broker's own primary group may write: a checkout under umask 002 with a group per user", async (context) => {
    // On a host where the broker's primary group has other members, such a tree is refused (the test above's case).
    if (!ownPrimaryGroupIsPrivate()) context.skip();
    const { github } = await setup(false);
    const own = writeTree({ 'policies/ops/a.yaml': policy(github, '734201') });
    // writeTree's entries take the test's own gid, the broker's primary group.
    for (const path of [own, join(own, 'policies'), join(own, 'policies', 'ops')]) chmodSync(path, 0o775);
    chmodSync(join(own, 'policies', 'ops', 'a.yaml'), 0o664);
    running.push(await startNodeBroker(testConfig(own), { log: silentLogger }));
  });

  it('loads no policy file or directory another user owns, unless KEYWAY_POLICY_OWNERS trusts them', async (context) => {
    // Giving a file to another user takes root.
    if (process.getuid?.() !== 0) context.skip();
    const { github, root, broker, exchange, write } = await setup(false);
    // Closed to group and others, but hers: she may chmod it, or write the file, whenever she likes.
    write('ops/planted.yaml', policy(github, '999999'));
    chownSync(join(root, 'policies', 'ops', 'planted.yaml'), 65534, 65534);
    expect(broker.reloadPolicies()).toMatchObject({
      ok: false,
      problems: [expect.stringMatching(/ops\/planted\.yaml: .*planted\.yaml is owned by another user \(uid 65534\): /)],
    });
    expect(await exchange('999999')).toBe(400);
    chownSync(join(root, 'policies', 'ops', 'planted.yaml'), 0, 0);
    chownSync(join(root, 'policies', 'ops'), 65534, 65534);
    expect(broker.reloadPolicies()).toMatchObject({ ok: false, problems: [expect.stringMatching(/ops is owned by another user \(uid 65534\)/)] });
    expect(await exchange('999999')).toBe(400);

    const other = writeTree({ 'policies/a.yaml': policy(github, '734201') });
    for (const path of ['policies', 'policies/a.yaml']) chownSync(join(other, path), 65534, 65534);
    await expect(startNodeBroker(testConfig(other), { log: silentLogger })).rejects.toThrow(/policies is owned by another user \(uid 65534\)/);
    // The deploy user the operator names owns them: theirs to change, as intended.
    const { policyOwners } = nodeConfigFromEnv({ KEYWAY_POLICY_OWNERS: '1001, 65534' });
    running.push(await startNodeBroker(testConfig(other, { policyOwners }), { log: silentLogger }));
  });

  it('reads KEYWAY_POLICY_OWNERS as uids, and refuses a name or anything else there', () => {
    expect(nodeConfigFromEnv({}).policyOwners).toEqual([]);
    expect(nodeConfigFromEnv({ KEYWAY_POLICY_OWNERS: '0,1001, 4294967294' }).policyOwners).toEqual([0, 1001, 4294967294]);
    for (const value of ['deploy', '1001,', '-1', '4294967295', '1e3', '0x10'])
      expect(() => nodeConfigFromEnv({ KEYWAY_POLICY_OWNERS: value }), value).toThrow(/KEYWAY_POLICY_OWNERS must be uids/);
  });

  it('keeps serving when the directory itself goes away', async () => {
    const { root, broker, exchange } = await setup(false);
    rmSync(join(root, 'policies'), { recursive: true });
    expect(broker.reloadPolicies()).toMatchObject({ ok: false, policies: 2, problems: [expect.stringContaining('ENOENT')] });
    expect(await exchange('734201')).toBe(200);
  });
});
