import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { base64url, compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { Alert, StoredAlert } from '../../src/features/alerts/alert.ts';
import { alertRaiser, MAX_DELIVERIES_IN_FLIGHT } from '../../src/features/alerts/raise-alerts.ts';
import { deliverWebhook, type WebhookTarget } from '../../src/features/alerts/deliver-webhook.ts';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { policySetOf } from '../../src/core/policy/load-policies.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { PRESETS } from '../../src/core/verify/presets.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { auditEvent } from '../support/audit-event.ts';
import { readAlertSettings } from '../../src/features/alerts/alert-settings.ts';
import { readAuditSettings } from '../../src/core/audit/audit-settings.ts';
import { readLimitSettings } from '../../src/core/limits/limit-settings.ts';
import { silentLogger } from '../../src/core/log.ts';
import { INVISIBLE } from '../../src/core/inert-text.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import type { NodeBrokerConfig } from '../../src/config/node-config.ts';
import { readTrustedProxies } from '../../src/config/trusted-proxies.ts';
import { SqliteAlertStore } from '../../src/storage/sqlite-alert-store.ts';
import { openSqliteFile, openSqliteMemory, DATABASE_FILE } from '../../src/storage/sqlite-file.ts';
import { exchangeForm, freshIssuer, suitePolicies } from '../suites/exchange-suite.ts';
import { roomInClockWindow } from '../support/clock-window.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { BROKER_ISSUER, testConfig, writeTree } from './node-harness.ts';

/** A webhook receiver on 127.0.0.1 that keeps what it is sent, and fails or stalls when told to. */
async function startReceiver() {
  const received: { headers: Record<string, string>; body: string }[] = [];
  const behaviour = { failures: 0, hold: undefined as Promise<void> | undefined, failWith: (c: Context): Response => c.text('no', 500) };
  const app = new Hono();
  app.post('/hook', async (c) => {
    received.push({ headers: Object.fromEntries(c.req.raw.headers), body: await c.req.text() });
    if (behaviour.hold !== undefined) await behaviour.hold;
    if (behaviour.failures > 0) {
      behaviour.failures -= 1;
      return behaviour.failWith(c);
    }
    return c.text('ok');
  });
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    behaviour,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeAllConnections' in server) server.closeAllConnections();
      }),
  };
}

/**
 * POST /token (or `path`) from a chosen loopback address: 127.0.0.0/8 is all this machine's, so networks can differ for real.
 * `forwardedFor`: the client a trusted proxy at that address names (X-Forwarded-For).
 */
function postFrom(
  url: string,
  form: URLSearchParams,
  localAddress: string,
  path = '/token',
  forwardedFor?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const target = new URL(path, url);
    const request = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path,
        method: 'POST',
        localAddress,
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }) },
      },
      (response) => {
        let text = '';
        response.on('data', (chunk) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> }));
      },
    );
    request.on('error', reject);
    request.end(form.toString());
  });
}

/** GET an operator API with `authorization` (none when undefined) from a chosen loopback address. */
function operatorGetFrom(
  url: string,
  path: string,
  authorization: string | undefined,
  localAddress: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const target = new URL(path, url);
    const headers = authorization === undefined ? {} : { authorization };
    const request = httpRequest({ host: target.hostname, port: target.port, path, method: 'GET', localAddress, headers }, (response) => {
      let text = '';
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    request.on('error', reject);
    request.end();
  });
}

async function eventually<T>(read: () => Promise<T> | T, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 8000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error('condition not reached within 8 s');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A token no issuer signed, naming `subject`, issued at `at` (ms): each use is a denial that needs no key. */
const unsigned = (subject: string, at: number): string => {
  const now = Math.floor(at / 1000);
  return `${base64url.encode(JSON.stringify({ alg: 'ES256', kid: 'k' }))}.${base64url.encode(
    JSON.stringify({ iss: 'https://nobody.example', sub: subject, aud: 'x', iat: now, exp: now + 60 }),
  )}.c2ln`;
};

describe('alerts on anomalies', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close().catch(() => {});
  });

  async function setup(env: Record<string, string> = {}, config: Partial<NodeBrokerConfig> = {}, now?: () => number) {
    const receiver = await startReceiver();
    cleanup.push(receiver.close);
    const github = freshIssuer(inject('testIssuerBase'), 'alert-gh');
    const files = suitePolicies(github, freshIssuer(inject('testIssuerBase'), 'alert-oidc'));
    const root = writeTree(Object.fromEntries(Object.entries(files).map(([path, text]) => [`policies/${path}`, text])));
    const alerts = readAlertSettings(
      {
        KEYWAY_ALERT_WEBHOOK_URL: receiver.url,
        KEYWAY_ALERT_BURST_THRESHOLD: '3',
        KEYWAY_ALERT_WEBHOOK_ATTEMPTS: '3',
        KEYWAY_ALERT_WEBHOOK_BACKOFF_MS: '20',
        ...env,
      },
      true,
    );
    let broker: NodeBroker;
    const start = async () => {
      broker = await startNodeBroker(testConfig(root, { alerts, ...config }), { log: silentLogger, ...(now === undefined ? {} : { now }) });
      cleanup.push(() => broker.close());
      return broker;
    };
    await start();
    const exchange = async (token: string, from = '127.0.0.1') => postFrom(broker.url, exchangeForm(token), from);
    /** An exchange a trusted proxy on 127.0.0.1 forwards for `client` (with `config.trustedProxies`). */
    const exchangeFor = async (token: string, client: string) => postFrom(broker.url, exchangeForm(token), '127.0.0.1', '/token', client);
    // Read from the file, not the API: signing in as an auditor is itself a first grant by a policy.
    const reader = openSqliteFile(join(root, 'data', DATABASE_FILE), { readonly: true });
    cleanup.push(async () => reader.close());
    const stored = (): Promise<StoredAlert[]> => new SqliteAlertStore(reader).alerts(500);
    const sent = (rule: string) => receiver.received.filter((delivery) => JSON.parse(delivery.body).rule === rule);
    /**
     * The rules an exchange raised. One event's alerts are stored together, so once any of them is
     * there, all of them are: a rule missing then was not raised, with no wait for it to show up.
     */
    const raisedBy = async (answer: { body: Record<string, unknown> }): Promise<string[]> => {
      const id = answer.body['audit_event_id'];
      const alerts = await eventually(stored, (list) => list.some((alert) => alert.event_id === id));
      return alerts
        .filter((alert) => alert.event_id === id)
        .map((alert) => alert.rule)
        .sort();
    };
    /** Waits until no stored alert is still being delivered: the receiver has then got every delivery there will be. */
    const deliveriesSettled = () => eventually(stored, (list) => list.every((alert) => alert.delivery !== 'pending'));
    return {
      receiver,
      github,
      root,
      start,
      broker: () => broker,
      exchange,
      exchangeFor,
      revokeFrom: (token: string, from: string) => postFrom(broker.url, new URLSearchParams({ token }), from, '/revoke'),
      operatorFrom: (authorization: string | undefined, from: string) => operatorGetFrom(broker.url, '/v1/audit/events', authorization, from),
      stored,
      sent,
      raisedBy,
      deliveriesSettled,
      sign: (overrides: Record<string, unknown> = {}) => signFor(github, overrides),
    };
  }

  const signFor = (github: TestIssuer, overrides: Record<string, unknown>) => github.sign(ciClaims(github.url, BROKER_ISSUER, overrides));

  it('sends a first-ever grant by a policy as JSON signed with the broker key, which receivers verify with its JWKS', async () => {
    const { exchange, sign, sent, broker, raisedBy, deliveriesSettled } = await setup();
    const granted = await exchange(await sign());
    expect(granted.status).toBe(200);
    const [delivery] = await eventually(
      () => sent('first_policy_exchange'),
      (list) => list.length > 0,
    );
    expect(delivery).toBeDefined();
    const body = JSON.parse(delivery?.body as string);
    expect(body).toMatchObject({
      type: 'keyway.alert',
      broker: BROKER_ISSUER,
      rule: 'first_policy_exchange',
      event_id: granted.body['audit_event_id'],
      details: { policy: 'deploy/production' },
    });
    expect(delivery?.headers['keyway-alert-id']).toBe(body.id);

    const [header, empty, signature] = String(delivery?.headers['keyway-signature']).split('.');
    expect(empty).toBe('');
    const jwks = (await (await fetch(`${broker().url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
    const verified = await compactVerify(`${header}.${base64url.encode(delivery?.body as string)}.${signature}`, createLocalJWKSet(jwks));
    expect(verified.protectedHeader).toMatchObject({ alg: 'ES256', typ: 'keyway-alert+json' });
    // Named by its kid: a receiver picks the key from a JWKS that holds more than one while keys rotate.
    expect(jwks.keys.map((key) => key.kid)).toContain(verified.protectedHeader.kid);
    expect(new TextDecoder().decode(verified.payload)).toBe(delivery?.body);
    const altered = String(delivery?.body).replace('first_policy_exchange', 'nothing_to_see');
    await expect(compactVerify(`${header}.${base64url.encode(altered)}.${signature}`, createLocalJWKSet(jwks))).rejects.toThrow();

    // A second grant by the policy, from a new network: its new_network alert would be stored together with a repeated first grant.
    const second = await exchange(await sign(), '127.0.1.9');
    expect(second.status).toBe(200);
    expect(await raisedBy(second)).toEqual(['new_network']);
    await deliveriesSettled();
    expect(sent('first_policy_exchange')).toHaveLength(1);
  });

  it('raises stale_grant once per unused policy and grant element, only once the log covers the period, and signs it like the others', async () => {
    const { exchange, sign, sent, stored, raisedBy, deliveriesSettled, root, start, broker } = await setup({ KEYWAY_ALERT_STALE_GRANT_DAYS: '1' });
    // A young log proves nothing unused: the first exchange raises only its first-grant alert.
    const first = await exchange(await sign());
    expect(first.status).toBe(200);
    expect(await raisedBy(first)).toEqual(['first_policy_exchange']);
    // The log now reaches back two days; the next grant asks for deploy:write on the first audience only.
    const file = openSqliteFile(join(root, 'data', DATABASE_FILE));
    const twoDaysAgo = Date.now() - 2 * 86_400_000;
    file.run("UPDATE audit_events SET time = ?, event = json_set(event, '$.time', ?) WHERE seq = 1", [twoDaysAgo, new Date(twoDaysAgo).toISOString()]);
    file.close();
    // A broker remembers when its log's oldest record will be old enough (test/node/stale-grant-check.test.ts): one started now reads it.
    await broker().close();
    await start();
    // The period is a day aligned to the clock (UTC midnight): the second and third look must fall in one, or the third raises again.
    await roomInClockWindow(86_400_000, 60_000);
    const second = await exchange(await sign(), '127.0.0.1');
    expect(second.status).toBe(200);
    // Unused in the last day: deploy/production's second audience (the grant gave its first), and generic/service altogether.
    expect(await raisedBy(second)).toEqual(['stale_grant', 'stale_grant']);
    const staleAlerts = async () => (await stored()).filter((alert) => alert.rule === 'stale_grant');
    expect((await staleAlerts()).map((alert) => `${alert.details['policy']} ${alert.details['element']} ${alert.details['value']}`).sort()).toEqual([
      'deploy/production audience https://artifacts.acme.dev',
      'generic/service policy generic/service',
    ]);
    expect((await staleAlerts())[0]?.summary).toMatch(/never granted in the 1 day from|granted nothing in the 1 day from/);
    // Delivered like every alert: signed JSON to the webhook.
    await deliveriesSettled();
    expect(sent('stale_grant')).toHaveLength(2);
    // Once per element per period: a restarted broker (its hourly throttle forgotten) looks again and raises none.
    await broker().close();
    await start();
    const third = await exchange(await sign(), '127.0.2.9');
    expect(third.status).toBe(200);
    expect(await raisedBy(third)).toEqual(['new_network']);
    await deliveriesSettled();
    expect(await staleAlerts()).toHaveLength(2);
    expect(sent('stale_grant')).toHaveLength(2);
  }, 100_000);

  it('raises a denial burst once per identity and once per address, at the threshold', async () => {
    const { exchange, sign, sent, raisedBy, deliveriesSettled } = await setup();
    // Two identities (I: production, K: staging) denied from three loopback addresses, so that each denial past a threshold
    // comes with a burst of the other kind reaching its threshold on the same event: that alert shows the event was evaluated.
    const staging = 'repo:acme/api:environment:staging';
    const deny = async (sub: string | undefined, from: string) => {
      const answer = await exchange(await sign({ ref: 'refs/heads/feature', ...(sub === undefined ? {} : { sub }) }), from);
      expect(answer.status).toBe(400);
      return answer;
    };
    await deny(undefined, '127.0.0.1');
    await deny(undefined, '127.0.0.1');
    expect(await raisedBy(await deny(undefined, '127.0.0.1'))).toEqual(['denial_burst_address', 'denial_burst_identity']);
    await deny(staging, '127.0.0.2');
    await deny(staging, '127.0.0.2');
    // I's fourth denial: 127.0.0.2 reaches the threshold, I does not raise again.
    expect(await raisedBy(await deny(undefined, '127.0.0.2'))).toEqual(['denial_burst_address']);
    // 127.0.0.1's fourth: K reaches the threshold, the address does not raise again.
    expect(await raisedBy(await deny(staging, '127.0.0.1'))).toEqual(['denial_burst_identity']);

    await deliveriesSettled();
    const details = (rule: string) => sent(rule).map((delivery) => JSON.parse(delivery.body).details as Record<string, unknown>);
    // Deliveries of different events may arrive in either order.
    const identities = details('denial_burst_identity');
    expect(identities).toHaveLength(2);
    expect(identities).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ identity: expect.stringContaining('repo:acme/api:environment:production'), denials: 3 }),
        expect.objectContaining({ identity: expect.stringContaining(staging), denials: 3 }),
      ]),
    );
    const addresses = details('denial_burst_address');
    expect(addresses).toHaveLength(2);
    expect(addresses).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ client_ip: '127.0.0.1', denials: 3 }),
        expect.objectContaining({ client_ip: '127.0.0.2', denials: 3 }),
      ]),
    );
  });

  it("counts an identity's denial burst per account: two owners' jobs of one shared workflow's sub neither add up to a burst nor hide one", async () => {
    const { exchange, sign, sent, raisedBy, deliveriesSettled } = await setup({ KEYWAY_ALERT_RULES: 'denial_burst_identity' });
    const sub = 'job_workflow_ref:acme/workflows/.github/workflows/deploy.yml@refs/tags/v1.4.0';
    const deny = async (owner: string) => {
      const answer = await exchange(await sign({ sub, ref: 'refs/heads/feature', repository_owner_id: owner }));
      expect(answer.status).toBe(400);
      return answer;
    };
    // Two of each account's: four refusals of the sub, none a burst (the deliveries below are the only two).
    for (const owner of ['1200934', '7700001', '1200934', '7700001']) await deny(owner);
    expect(await raisedBy(await deny('1200934'))).toEqual(['denial_burst_identity']);
    // The second account's third refusal is its own burst, though the sub's count is past the threshold.
    expect(await raisedBy(await deny('7700001'))).toEqual(['denial_burst_identity']);
    await deliveriesSettled();
    const bursts = sent('denial_burst_identity').map((delivery) => JSON.parse(delivery.body).details as Record<string, unknown>);
    expect(bursts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ account: 'tenant 1200934', denials: 3 }),
        expect.objectContaining({ account: 'tenant 7700001', denials: 3 }),
      ]),
    );
    expect(bursts).toHaveLength(2);
  });

  it("raises an address's denial burst for an IPv6 client spreading its refusals over its /64, as the per-client rate limit counts it, and names the network", async () => {
    const { exchangeFor, sign, sent, raisedBy, stored, deliveriesSettled } = await setup(
      { KEYWAY_ALERT_RULES: 'denial_burst_address' },
      { trustedProxies: readTrustedProxies({ KEYWAY_TRUSTED_PROXIES: '127.0.0.1' }) },
    );
    const deny = async (client: string) => {
      const answer = await exchangeFor(await sign({ ref: 'refs/heads/feature' }), client);
      expect(answer.status).toBe(400);
      return answer;
    };
    // A host holds a whole /64: an address of its own per request costs it nothing.
    await deny('2001:db8:1:2::a');
    await deny('2001:db8:1:2:ffff::b');
    // Another /64 of the same /48 is another client: it does not add to the count.
    await deny('2001:db8:1:3::a');
    const third = await deny('2001:db8:1:2:1:2:3:4');
    expect(await raisedBy(third)).toEqual(['denial_burst_address']);
    const [alert] = (await stored()).filter((raised) => raised.rule === 'denial_burst_address');
    expect(alert?.summary).toBe('3 refusals from 2001:db8:1:2::/64 within 300s');
    expect(alert?.details).toMatchObject({ client_network: '2001:db8:1:2::/64', client_ip: '2001:db8:1:2:1:2:3:4', denials: 3 });
    await deliveriesSettled();
    expect(sent('denial_burst_address').map((delivery) => JSON.parse(delivery.body).details.client_network)).toEqual(['2001:db8:1:2::/64']);
  });

  it("raises an address's denial burst on refused operator credentials (a brute force on the operator APIs), counted with its refused exchanges, and no identity's", async () => {
    const { exchange, sign, raisedBy, operatorFrom, stored } = await setup({ KEYWAY_ALERT_RULES: 'denial_burst_address,denial_burst_identity' });
    // Unsigned tokens that claim one operator of this broker: each is refused, recorded, and names that claimed identity.
    const forged = (jti: string) =>
      `${base64url.encode(JSON.stringify({ alg: 'none' }))}.${base64url.encode(JSON.stringify({ iss: BROKER_ISSUER, sub: 'alice', jti }))}.`;
    const refused = async (authorization: string | undefined) => {
      const answer = await operatorFrom(authorization, '127.0.0.6');
      expect(answer.status).toBe(401);
      expect(answer.body['audit_event_id']).toEqual(expect.any(String));
      return answer;
    };
    await refused(`Bearer ${forged('1')}`);
    await refused(undefined);
    const third = await refused(`Bearer ${forged('2')}`);
    expect(await raisedBy(third)).toEqual(['denial_burst_address']);
    const [alert] = (await stored()).filter((raised) => raised.rule === 'denial_burst_address');
    expect(alert?.summary).toBe('3 refusals from 127.0.0.6/32 within 300s');
    expect(alert?.details).toMatchObject({ client_ip: '127.0.0.6', denials: 3, last_reason: 'operator_token_invalid' });

    // From another client, a refused exchange and refused operator credentials make one burst, whichever comes last.
    const denied = await exchange(await sign({ ref: 'refs/heads/feature' }), '127.0.0.7');
    expect(denied.status).toBe(400);
    await operatorFrom(`Bearer ${forged('3')}`, '127.0.0.7');
    expect(await raisedBy(await operatorFrom(`Bearer ${forged('4')}`, '127.0.0.7'))).toEqual(['denial_burst_address']);
    // The claimed operator was refused four times: no identity burst, which counts exchanges.
    expect((await stored()).filter((raised) => raised.rule === 'denial_burst_identity')).toEqual([]);
  });

  it('sees a refused operator credential recorded as the first past its budget as that refusal still: no subject token replayed', async () => {
    const limits = readLimitSettings({ KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '2', KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1' });
    const { exchange, sign, raisedBy, operatorFrom } = await setup({ KEYWAY_ALERT_RULES: 'denial_burst_address,subject_token_replayed' }, { limits });
    // A CI token exchanged once, then sent as an operator credential: refused each time, the third past the unverified budget.
    const token = await sign();
    expect((await exchange(token)).status).toBe(200);
    for (const _ of [1, 2]) expect((await operatorFrom(`Bearer ${token}`, '127.0.0.8')).status).toBe(401);
    const limited = await operatorFrom(`Bearer ${token}`, '127.0.0.8');
    expect(limited.status).toBe(429);
    expect(await raisedBy(limited)).toEqual(['denial_burst_address']);
  });

  it('raises unverified_limit_reached on the first refusal recorded past the unverified budget, once per window', async () => {
    const limits = readLimitSettings({
      KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '2',
      KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '6',
    });
    const { exchange, sign, raisedBy, stored, sent, deliveriesSettled } = await setup(
      { KEYWAY_ALERT_BURST_THRESHOLD: '2', KEYWAY_ALERT_BURST_WINDOW_SECONDS: '3600' },
      { limits },
    );
    // The windows are aligned to the clock: both runs must fall in one, so a test started in the last 40 s of one waits for the next.
    await roomInClockWindow(3_600_000, 40_000);
    const { iss, sub } = JSON.parse(Buffer.from((await sign()).split('.')[1]!, 'base64url').toString()) as { iss: string; sub: string };
    const forged = (jti: string) => `${base64url.encode(JSON.stringify({ alg: 'none' }))}.${base64url.encode(JSON.stringify({ iss, sub, jti }))}.`;
    const raised = async () => (await stored()).filter((alert) => alert.rule === 'unverified_limit_reached');

    for (const jti of ['1', '2']) expect((await exchange(forged(jti))).status).toBe(400);
    const first = await exchange(forged('3'));
    expect(first.status).toBe(429);
    expect(await raisedBy(first)).toContain('unverified_limit_reached');
    const [alert] = await raised();
    expect(alert?.event_id).toBe(first.body['audit_event_id']);
    expect(alert?.details).toMatchObject({ refused_as: 'algorithm_not_allowed', client_ip: '127.0.0.1', window_seconds: 3600 });
    // The rest of the run is neither recorded nor alerted on.
    const unrecorded = await exchange(forged('4'));
    expect(unrecorded.status).toBe(429);
    expect(unrecorded.body['audit_event_id']).toBeUndefined();

    // A second run in the same window (the budget refills one in 10 s): its first refusal is recorded, no second alert.
    await new Promise((resolve) => setTimeout(resolve, 10_100));
    expect((await exchange(forged('5'))).status).toBe(400);
    const second = await exchange(forged('6'));
    expect(second.status).toBe(429);
    expect(second.body['audit_event_id']).toEqual(expect.any(String));
    // Alerts are raised in the order of their records: once a later record's are stored, the second run's would be.
    const other = { sub: 'another-identity', ref: 'refs/heads/feature' };
    expect((await exchange(await sign(other))).status).toBe(400);
    expect(await raisedBy(await exchange(await sign(other)))).toContain('denial_burst_identity');
    expect((await raised()).map((raised) => raised.event_id)).toEqual([first.body['audit_event_id']]);
    await deliveriesSettled();
    expect(sent('unverified_limit_reached')).toHaveLength(1);
  }, 100_000);

  it("raises an address's denial burst when refusals the rules do not run on (a holder's /revoke of a bad token) come between its exchanges", async () => {
    const { exchange, sign, raisedBy, revokeFrom, stored } = await setup({ KEYWAY_ALERT_RULES: 'denial_burst_address' });
    const deny = async () => {
      const answer = await exchange(await sign({ ref: 'refs/heads/feature' }), '127.0.0.3');
      expect(answer.status).toBe(400);
      return answer;
    };
    await deny();
    await deny();
    // Recorded as a refusal from the same address, but no alert rule runs on it: it must not carry the count past the threshold unseen.
    expect((await revokeFrom('not-a-token', '127.0.0.3')).status).toBe(200);
    expect(await raisedBy(await deny())).toEqual(['denial_burst_address']);
    expect((await stored()).filter((alert) => alert.rule === 'denial_burst_address')).toHaveLength(1);
  });

  it("raises an identity's denial burst when refusals the rules do not run on (a /revoke of a forged token naming it) come between its exchanges", async () => {
    const { exchange, sign, raisedBy, revokeFrom, stored } = await setup({ KEYWAY_ALERT_RULES: 'denial_burst_identity' });
    const deny = async () => {
      const answer = await exchange(await sign({ ref: 'refs/heads/feature' }));
      expect(answer.status).toBe(400);
      return answer;
    };
    const { iss, sub } = JSON.parse(Buffer.from((await sign()).split('.')[1]!, 'base64url').toString()) as { iss: string; sub: string };
    // Needs no key: an unsigned token that merely claims the identity is recorded as a denied record of it.
    const forged = `${base64url.encode(JSON.stringify({ alg: 'none' }))}.${base64url.encode(JSON.stringify({ iss, sub }))}.`;
    await deny();
    await deny();
    expect((await revokeFrom(forged, '127.0.0.4')).status).toBe(200);
    expect(await raisedBy(await deny())).toEqual(['denial_burst_identity']);
    expect((await stored()).filter((alert) => alert.rule === 'denial_burst_identity')).toHaveLength(1);
  });

  it("sends a stranger's claimed identity in an alert as one line of visible text: no line breaks, escapes or bidi overrides from the token", async () => {
    const { exchange, raisedBy, deliveriesSettled, sent, stored } = await setup({ KEYWAY_ALERT_RULES: 'denial_burst_identity' });
    // Needs no key: what an unsigned token claims is counted and named. Line breaks push "(claimed, from …)" out of a chat
    // message's first line, a right-to-left override shows it reversed, ESC sequences act in a terminal showing the alert.
    const sub = 'repo:acme/payments:ref:refs/heads/main (https://token.actions.githubusercontent.com) within 300s\n\n\n\u001b[8m\u202e';
    const now = Math.floor(Date.now() / 1000);
    const forged = `${base64url.encode(JSON.stringify({ alg: 'ES256', kid: 'k' }))}.${base64url.encode(
      JSON.stringify({ iss: 'https://nobody.example', sub, aud: 'x', iat: now, exp: now + 60 }),
    )}.c2ln`;
    await exchange(forged);
    await exchange(forged);
    expect(await raisedBy(await exchange(forged))).toEqual(['denial_burst_identity']);
    await deliveriesSettled();
    const [delivery] = sent('denial_burst_identity');
    const body = JSON.parse(String(delivery?.body)) as { summary: string; details: { identity: string } };
    const [alert] = await stored();
    for (const text of [body.summary, body.details.identity, alert?.summary]) {
      expect(text).toContain('(claimed, from https://nobody.example)');
      expect(text).toContain('\\u000a\\u000a\\u000a\\u001b[8m\\u202e');
      expect(text).not.toMatch(INVISIBLE);
    }
  });

  it("sends a replayed token's alert while a stranger's flood of denial bursts fills the deliveries a slow receiver holds", async () => {
    const { exchange, sign, receiver, stored, raisedBy } = await setup({
      KEYWAY_ALERT_RULES: 'denial_burst_identity,subject_token_replayed',
      KEYWAY_ALERT_BURST_THRESHOLD: '2',
      // Each delivery held up to ten 5 s attempts: the flood's keep their places however slowly this machine sends it.
      KEYWAY_ALERT_WEBHOOK_ATTEMPTS: '10',
    });
    let release = () => {};
    receiver.behaviour.hold = new Promise<void>((resolve) => {
      release = resolve;
    });
    cleanup.unshift(async () => release());
    // Needs no key: each made-up subject denied twice is a burst, and its alert a delivery the receiver holds.
    const now = Math.floor(Date.now() / 1000);
    const forged = (index: number) =>
      `${base64url.encode(JSON.stringify({ alg: 'ES256', kid: 'k' }))}.${base64url.encode(
        JSON.stringify({ iss: 'https://nobody.example', sub: `repo:stranger/flood-${index}`, aud: 'x', iat: now, exp: now + 60 }),
      )}.c2ln`;
    for (let index = 0; index <= MAX_DELIVERIES_IN_FLIGHT; index += 1) {
      await exchange(forged(index));
      await exchange(forged(index));
    }
    await eventually(stored, (list) => list.some((alert) => alert.rule === 'denial_burst_identity' && alert.delivery === 'failed'));
    await eventually(
      () => receiver.received.length,
      (held) => held >= MAX_DELIVERIES_IN_FLIGHT,
    );

    // A stolen token used again: the alert that matters must not be dropped because the flood came first.
    const token = await sign();
    expect((await exchange(token)).status).toBe(200);
    expect(await raisedBy(await exchange(token))).toEqual(['subject_token_replayed']);
    release();
    const settled = await eventually(stored, (list) => list.every((alert) => alert.delivery !== 'pending'));
    expect(settled.find((alert) => alert.rule === 'subject_token_replayed')).toMatchObject({ delivery: 'delivered' });
  });

  it("prunes stored alerts past the audit log's retention with its records: a stranger's alerts do not pile up for ever; those within it stay", async () => {
    let clock = Date.now();
    const { exchange, stored, raisedBy, broker, deliveriesSettled } = await setup(
      { KEYWAY_ALERT_RULES: 'denial_burst_identity' },
      { audit: readAuditSettings({ KEYWAY_AUDIT_RETENTION_DAYS: '1' }) },
      () => clock,
    );
    // Needs no key: a made-up subject denied up to the threshold is a stored alert, as many as the unverified budget allows.
    const burst = async (subject: string): Promise<unknown> => {
      const forged = unsigned(subject, clock);
      await exchange(forged);
      await exchange(forged);
      const third = await exchange(forged);
      expect(await raisedBy(third)).toEqual(['denial_burst_identity']);
      await deliveriesSettled();
      return third.body['audit_event_id'];
    };
    await burst('repo:stranger/flood');
    await burst('repo:stranger/flood-too');
    // Two days on, the records have left the retention window (a day), and so have the alerts about them, in one round; a
    // new one stays.
    clock += 2 * 86_400_000;
    const kept = await burst('repo:stranger/flood-again');
    await broker().auditUpkeep();
    expect((await stored()).map((alert) => alert.event_id)).toEqual([kept]);
  });

  it('keeps every stored alert when the audit log keeps every record (a retention of 0 days)', async () => {
    let clock = Date.now();
    const { exchange, stored, raisedBy, broker, deliveriesSettled } = await setup(
      { KEYWAY_ALERT_RULES: 'denial_burst_identity' },
      { audit: readAuditSettings({ KEYWAY_AUDIT_RETENTION_DAYS: '0' }) },
      () => clock,
    );
    const forged = unsigned('repo:stranger/flood', clock);
    await exchange(forged);
    await exchange(forged);
    expect(await raisedBy(await exchange(forged))).toEqual(['denial_burst_identity']);
    await deliveriesSettled();
    clock += 400 * 86_400_000;
    await broker().auditUpkeep();
    expect(await stored()).toHaveLength(1);
  });

  it('raises a replayed subject token and a grant from a new network', async () => {
    const { exchange, sign, sent, raisedBy } = await setup({ KEYWAY_ALERT_RULES: 'subject_token_replayed,new_network' });
    const token = await sign();
    expect((await exchange(token, '127.0.0.1')).status).toBe(200);
    const again = await exchange(token, '127.0.0.1');
    expect(again.status).toBe(200);
    // Same network: the replay is the only alert of this exchange.
    expect(await raisedBy(again)).toEqual(['subject_token_replayed']);
    const [replay] = await eventually(
      () => sent('subject_token_replayed'),
      (list) => list.length > 0,
    );
    expect(JSON.parse(replay?.body as string).details).toMatchObject({ presentations: 2, decision: 'granted' });

    expect((await exchange(await sign(), '127.0.1.9')).status).toBe(200);
    const [network] = await eventually(
      () => sent('new_network'),
      (list) => list.length > 0,
    );
    expect(JSON.parse(network?.body as string).details).toMatchObject({ client_ip: '127.0.1.9' });
    expect(sent('first_policy_exchange')).toHaveLength(0);
  });

  it('sees no replay in a token presented after a revocation that only named it: housekeeping is no use of it', async () => {
    const { exchange, sign, raisedBy, revokeFrom } = await setup({
      KEYWAY_ALERT_RULES: 'denial_burst_address,subject_token_replayed',
      KEYWAY_ALERT_BURST_THRESHOLD: '2',
    });
    const granted = await exchange(await sign());
    expect(granted.status).toBe(200);
    const keywayToken = granted.body['access_token'] as string;
    // Its holder revokes it: a `granted` record naming it by its hash.
    expect((await revokeFrom(keywayToken, '127.0.0.9')).status).toBe(200);
    expect((await exchange(await sign({ ref: 'refs/heads/feature' }), '127.0.0.9')).status).toBe(400);
    // Then presents it at /token (refused: an access token is no identity token), the second refusal from its address.
    const presented = await exchange(keywayToken, '127.0.0.9');
    expect(presented.status).toBe(400);
    expect(await raisedBy(presented)).toEqual(['denial_burst_address']);
  });

  it('raises an exchange by an identity whose granting policy is now disabled, then deleted', async () => {
    const { exchange, sign, sent, root, start, broker } = await setup({ KEYWAY_ALERT_RULES: 'retired_policy' });
    const [alice, bob] = ['repo:acme/api:environment:production:alice', 'repo:acme/api:environment:production:bob'];
    expect((await exchange(await sign({ sub: alice }))).status).toBe(200);
    expect((await exchange(await sign({ sub: bob }))).status).toBe(200);
    const file = join(root, 'policies', 'deploy', 'production.yaml');

    writeFileSync(file, `disabled: true\n${readFileSync(file, 'utf8')}`);
    await broker().close();
    expect((await start()).policies().inactive.map((policy) => policy.id)).toContain('deploy/production');
    expect((await exchange(await sign({ sub: alice }))).status).toBe(400);
    const [disabled] = await eventually(
      () => sent('retired_policy'),
      (list) => list.length > 0,
    );
    expect(JSON.parse(disabled?.body as string).details).toMatchObject({ policy: 'deploy/production', policy_state: 'disabled', reason: 'no_policy_matched' });

    rmSync(file);
    await broker().close();
    await start();
    expect((await exchange(await sign({ sub: bob }))).status).toBe(400);
    const deleted = await eventually(
      () => sent('retired_policy'),
      (list) => list.length > 1,
    );
    expect(JSON.parse(deleted[1]?.body as string).details).toMatchObject({ identity: expect.stringContaining(bob), policy_state: 'deleted' });
  });

  it('retries a failing receiver a bounded number of times, and never holds up the exchange', async () => {
    const { exchange, sign, stored, receiver } = await setup({ KEYWAY_ALERT_RULES: 'first_policy_exchange' });
    let release!: () => void;
    receiver.behaviour.hold = new Promise((resolve) => (release = resolve));
    receiver.behaviour.failures = 99;
    const answer = await exchange(await sign());
    expect(answer.status).toBe(200);
    // The receiver is still holding the first attempt, yet the token was issued.
    await eventually(
      () => receiver.received.length,
      (count) => count === 1,
    );
    expect(receiver.received).toHaveLength(1);
    receiver.behaviour.hold = undefined;
    release();
    const [alert] = await eventually(stored, (alerts) => alerts[0]?.delivery === 'failed');
    expect(alert).toMatchObject({ rule: 'first_policy_exchange', delivery: 'failed', attempts: 3 });
    expect(receiver.received).toHaveLength(3);
  });

  it('delivers after transient failures and says how many attempts it took', async () => {
    const { exchange, sign, stored, receiver } = await setup({ KEYWAY_ALERT_RULES: 'first_policy_exchange' });
    receiver.behaviour.failures = 2;
    expect((await exchange(await sign())).status).toBe(200);
    const [alert] = await eventually(stored, (alerts) => alerts[0]?.delivery === 'delivered');
    expect(alert).toMatchObject({ delivery: 'delivered', attempts: 3 });
  });
});

describe('the alert raiser and its webhook, over a real store', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close().catch(() => {});
  });

  const target = (url: string, overrides: Partial<WebhookTarget> = {}): WebhookTarget => ({
    url,
    attempts: 2,
    backoffMs: 10,
    timeoutMs: 5000,
    fetch,
    broker: BROKER_ISSUER,
    sign: async () => 'header..signature',
    ...overrides,
  });

  async function receiver() {
    const started = await startReceiver();
    cleanup.push(started.close);
    return started;
  }

  /** The rules of `env` over an audit log and alert store in one real database; `raise` appends an event and runs them on it. */
  function raiserOver(env: Record<string, string>, webhook: WebhookTarget | undefined) {
    const db = openSqliteMemory();
    migrate(db);
    cleanup.push(async () => db.close());
    const audit = new SqliteAuditStore(db);
    const store = new SqliteAlertStore(db);
    const raiser = alertRaiser({
      store,
      settings: readAlertSettings({ KEYWAY_ALERT_BURST_THRESHOLD: '3', ...env }, true),
      policies: () => policySetOf({ files: [], problems: [], brokerIssuer: BROKER_ISSUER }),
      webhook,
      now: Date.now,
      log: silentLogger,
    });
    return { raise: async (event: AuditEvent) => raiser(event, await audit.append(event)), alerts: () => store.alerts(500) };
  }

  const grantBy = (policy: string) =>
    auditEvent({
      decision: 'granted',
      reason: 'granted',
      issuer: 'https://ci.example',
      subject: `svc-${policy}`,
      policy: { granted_by: policy, candidates: [policy], matched: [policy], denied_by: [], audit_mode: [] },
    });

  it('sends every alert of a long run, one after another: a finished delivery gives its place in the queue back', async () => {
    const hook = await receiver();
    const { raise, alerts } = raiserOver({ KEYWAY_ALERT_RULES: 'first_policy_exchange' }, target(hook.url));
    const count = MAX_DELIVERIES_IN_FLIGHT + 3;
    for (let index = 0; index < count; index += 1) await raise(grantBy(`team/${index}`));
    const stored = await alerts();
    expect(stored).toHaveLength(count);
    expect(stored.filter((alert) => alert.delivery !== 'delivered')).toEqual([]);
    expect(hook.received).toHaveLength(count);
  });

  it('stores an alert as not to be sent when no webhook is set: never pending a delivery that will not come', async () => {
    const { raise, alerts } = raiserOver({ KEYWAY_ALERT_RULES: 'first_policy_exchange' }, undefined);
    await raise(grantBy('team/alone'));
    expect((await alerts()).map((alert) => alert.delivery)).toEqual(['none']);
  });

  it('counts a denial burst over the whole window, by the times the records carry', async () => {
    const { raise, alerts } = raiserOver({ KEYWAY_ALERT_RULES: 'denial_burst_identity', KEYWAY_ALERT_BURST_WINDOW_SECONDS: '300' }, undefined);
    const base = Date.parse('2026-12-01T12:00:00Z');
    const denials = [0, 120, 240].map((seconds) =>
      auditEvent({ time: new Date(base + seconds * 1000).toISOString(), issuer: 'https://ci.example', subject: 'repo:acme/api' }),
    );
    for (const event of denials) await raise(event);
    expect((await alerts()).map((alert) => [alert.rule, alert.event_id])).toEqual([['denial_burst_identity', denials[2]?.id]]);
  });

  const alert: Alert = { id: '01ALERT', time: new Date().toISOString(), rule: 'new_network', summary: 'a test', event_id: '01EVENT', details: {} };

  it('counts a redirect as a failed attempt, retried, and never followed: the alert is not delivered', async () => {
    const hook = await receiver();
    hook.behaviour.failures = 99;
    hook.behaviour.failWith = (c) => c.redirect('/elsewhere', 307);
    expect(await deliverWebhook(alert, target(hook.url))).toEqual({ delivered: false, attempts: 2 });
    expect(hook.received).toHaveLength(2);
  });

  it('gives up each attempt at a receiver that never answers after timeoutMs: the alert fails, no delivery hangs', async () => {
    const hook = await receiver();
    hook.behaviour.hold = new Promise(() => {});
    expect(await deliverWebhook(alert, target(hook.url, { timeoutMs: 200 }))).toEqual({ delivered: false, attempts: 2 });
    expect(hook.received).toHaveLength(2);
  });
});

describe('alert history by account across the upgrade to schema version 25', () => {
  it("carries each account's last granting policy over from its records, spelled as the store spells it for every kind of issuer, and the networks of its sub", async () => {
    const db = openSqliteMemory();
    migrate(db, 24);
    const audit = new SqliteAuditStore(db);
    const sub = 'job_workflow_ref:acme/workflows/.github/workflows/deploy.yml@refs/tags/v1.4.0';
    const gh = 'https://token.actions.githubusercontent.com';
    const callers: Record<string, Partial<AuditEvent>> = {
      owner1: { issuer: gh, issuer_kind: 'github', subject: sub, claims: { repository_owner_id: '1' } },
      owner2: { issuer: gh, issuer_kind: 'github', subject: sub, claims: { repository_owner_id: '2' } },
      kubernetes: {
        issuer: 'https://k8s.example',
        issuer_kind: 'kubernetes',
        subject: 'system:serviceaccount:ns:x',
        claims: { '/kubernetes.io/namespace': 'ns' },
      },
      circleci: {
        issuer: 'https://oidc.circleci.com/org/o',
        issuer_kind: 'circleci',
        subject: 'org/o/project/p/user/u',
        claims: { 'oidc.circleci.com/org-id': 'o' },
      },
      gitlab: { issuer: 'https://gitlab.com', issuer_kind: 'gitlab', subject: 'project_path:acme/api:ref_type:branch:ref:main', claims: { project_id: 42 } },
      oidc: { issuer: 'https://idp.example', issuer_kind: 'oidc', subject: 'svc', claims: {} },
      unkinded: { issuer: 'https://old.example', subject: 'svc', claims: { repository_owner_id: '9' } },
      // Every kind's tenant claim as the presets name it now: one the migration spells otherwise is a caller it loses.
      ...Object.fromEntries(
        [...PRESETS.values()].flatMap(({ name, tenantClaims: [claim] }) =>
          claim === undefined
            ? []
            : [[`kind-${name}`, { issuer: `https://${name}.example`, issuer_kind: name, subject: 's', claims: { [claim]: `t-${name}` } }]],
        ),
      ),
    };
    const grant = (caller: Partial<AuditEvent>, policy: string, ip = '203.0.113.1') =>
      auditEvent({
        ...caller,
        decision: 'granted',
        reason: 'granted',
        request: { id: 'r', client_ip: ip },
        policy: { granted_by: policy, candidates: [], matched: [], denied_by: [], audit_mode: [] },
      });
    for (const [name, caller] of Object.entries(callers)) await audit.append(grant(caller, `old-${name}`));
    await audit.append(grant(callers['owner1'] ?? {}, 'last-owner1'));
    // What the release before kept: the networks of an issuer and sub, whichever account was granted from them.
    db.run("INSERT INTO audit_first_seen (kind, scope, value, time) VALUES ('network', ?, '198.51.100.0/24', 1)", [`${gh}#${sub}`]);
    migrate(db);

    const alerts = new SqliteAlertStore(db);
    const observe = async (event: AuditEvent, network?: string) =>
      alerts.observe(event, await audit.append(event), { windowStart: 0, ...(network === undefined ? {} : { network }) });
    const lastGranted = async (name: string) => (await observe(auditEvent({ ...callers[name] }))).lastGrantedPolicy;
    expect(await lastGranted('owner1')).toBe('last-owner1');
    for (const name of Object.keys(callers).filter((name) => name !== 'owner1')) expect(await lastGranted(name)).toBe(`old-${name}`);
    expect(db.all("SELECT 1 FROM audit_first_seen WHERE kind = 'network'")).toEqual([]);
    // Each account granted under the sub knows its networks: the one seen is not new to it, another is.
    expect(await observe(grant(callers['owner2'] ?? {}, 'p', '198.51.100.7'), '198.51.100.0/24')).toMatchObject({ newNetwork: false });
    expect(await observe(grant(callers['owner2'] ?? {}, 'p', '192.0.2.7'), '192.0.2.0/24')).toMatchObject({ newNetwork: true });
    db.close();
  });

  it('carries the networks of thousands of callers over in a moment, each caller looking its own up', async () => {
    const db = openSqliteMemory();
    migrate(db, 24);
    const audit = new SqliteAuditStore(db);
    const gh = 'https://token.actions.githubusercontent.com';
    const callers = 2000;
    for (let n = 0; n < callers; n++) {
      const subject = `repo:acme/r${n}:ref:refs/heads/main`;
      await audit.append(
        auditEvent({
          issuer: gh,
          issuer_kind: 'github',
          subject,
          claims: { repository_owner_id: '1' },
          decision: 'granted',
          reason: 'granted',
          request: { id: 'r', client_ip: '203.0.113.1' },
          policy: { granted_by: 'p', candidates: [], matched: [], denied_by: [], audit_mode: [] },
        }),
      );
      db.run("INSERT INTO audit_first_seen (kind, scope, value, time) VALUES ('network', ?, '203.0.113.0/24', 1)", [`${gh}#${subject}`]);
    }
    const start = performance.now();
    migrate(db);
    // Well under a second; scanning every caller again for each network took some 12 s.
    expect(performance.now() - start).toBeLessThan(2000);
    expect(db.all<{ n: number }>('SELECT count(*) AS n FROM audit_caller_networks')).toEqual([{ n: callers }]);
    db.close();
  }, 60_000);
});
