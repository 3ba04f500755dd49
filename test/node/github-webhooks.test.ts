import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { silentLogger, type LogFields, type Logger } from '../../src/core/log.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { WEBHOOK_BODY_BYTES } from '../../src/http/routes/github-webhooks.ts';
import { readBrokerSettings } from '../../src/config/broker-settings.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { DATABASE_FILE, openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { exchangeForm, expectRefusal, freshIssuer, postToken } from '../suites/exchange-suite.ts';
import { githubWebhookSuite, policyRepositoryOnFakeGitHub } from '../suites/github-webhook-suite.ts';
import { deliveryRequest } from '../support/github-webhook-delivery.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { BROKER_ISSUER, startNodeHarness, testConfig, writeTree } from './node-harness.ts';

githubWebhookSuite(
  'Node',
  startNodeHarness,
  () => inject('testIssuerBase'),
  () => inject('fakeGitHubBase'),
);

/** A broker configured with the policy repository on the fake GitHub, its directory holding the repository's initial policies. */
async function policyRepositoryBroker(label: string) {
  const ci = freshIssuer(inject('testIssuerBase'), label);
  const repo = await policyRepositoryOnFakeGitHub(inject('fakeGitHubBase'), ci.url);
  const root = writeTree(Object.fromEntries(Object.entries(repo.initialPolicies).map(([path, text]) => [`policies/${path}`, text])));
  const { github, githubWebhooks } = readBrokerSettings({ ...repo.settings, KEYWAY_ISSUER: BROKER_ISSUER });
  const config = testConfig(root, { ...(github === undefined ? {} : { github }), ...(githubWebhooks === undefined ? {} : { githubWebhooks }) });
  const exchange = async (url: string, environment: string) =>
    postToken(
      { issuer: BROKER_ISSUER, request: (path, init) => fetch(`${url}${path}`, init) },
      exchangeForm(await ci.sign(ciClaims(ci.url, BROKER_ISSUER, { environment }))),
    );
  return { repo, config, exchange };
}

/** Live sets written into a stopped broker's database by someone without the master key. */
const PLANTED = [
  {
    planted: 'a set rewritten in the database (the attestation of the set it replaced kept)',
    tamper: 'UPDATE live_policy_set SET files = ?',
    why: 'is not vouched for by the master key',
  },
  {
    planted: 'a set without an attestation (stored by an earlier keyway, or planted)',
    tamper: 'UPDATE live_policy_set SET files = ?, attestation = NULL',
    why: 'has no attestation',
  },
];

describe('the live policy set on Node', () => {
  it('survives a restart: the set pushed last serves again, not the policy directory', async () => {
    const { repo, config, exchange } = await policyRepositoryBroker('restart');

    const first = await startNodeBroker(config, { log: silentLogger });
    try {
      const { init } = await deliveryRequest(await repo.commit('restart-qa', 'qa'));
      expect((await fetch(`${first.url}/webhooks/github`, init)).status).toBe(200);
      expect((await exchange(first.url, 'qa')).status).toBe(200);
    } finally {
      await first.close();
    }
    const second = await startNodeBroker(config, { log: silentLogger });
    try {
      expect((await exchange(second.url, 'qa')).status).toBe(200);
      expect((await exchange(second.url, 'production')).status).toBe(400);
      // A reload (SIGHUP, a file change) reloads the pushed set too, not the directory.
      expect(second.reloadPolicies()).toMatchObject({ ok: true });
      expect((await exchange(second.url, 'qa')).status).toBe(200);
    } finally {
      await second.close();
    }
  });

  // Whoever can write the data directory (or a backup) but not the master key must not choose what is allowed.
  it.each(PLANTED)(
    'is not served at start when it is $planted: the policy directory serves, health is degraded, the log says why; the next push serves',
    async ({ tamper, why }) => {
      const { repo, config, exchange } = await policyRepositoryBroker('planted');
      const first = await startNodeBroker(config, { log: silentLogger });
      try {
        const { init } = await deliveryRequest(await repo.commit('planted-qa', 'qa'));
        expect((await fetch(`${first.url}/webhooks/github`, init)).status).toBe(200);
        expect((await exchange(first.url, 'qa')).status).toBe(200);
      } finally {
        await first.close();
      }
      // The broker is stopped: the stored set now allows staging, which neither the pushed set nor the directory allows.
      const db = openSqliteFile(join(config.dataDir, DATABASE_FILE));
      const [row] = db.all<{ files: string }>('SELECT files FROM live_policy_set');
      db.run(tamper, [row!.files.replaceAll('environment: qa', 'environment: staging')]);
      db.close();

      const errors: { message: string; fields: LogFields | undefined }[] = [];
      const log: Logger = { ...silentLogger, error: (message, fields) => errors.push({ message, fields }) };
      const second = await startNodeBroker(config, { log });
      const audit = openSqliteFile(join(config.dataDir, DATABASE_FILE));
      try {
        const reader = { auditEvent: (id: string) => new SqliteAuditStore(audit).get(id) };
        await expectRefusal(reader, await exchange(second.url, 'staging'), { error: 'invalid_request', reason: 'no_policy_matched' });
        await expectRefusal(reader, await exchange(second.url, 'qa'), { error: 'invalid_request', reason: 'no_policy_matched' });
        expect((await exchange(second.url, 'production')).status).toBe(200);
        expect(await (await fetch(`${second.url}/healthz`)).json()).toEqual({ status: 'degraded' });
        expect(errors).toContainEqual({
          message: 'stored live policy set not served: the master key does not vouch for it',
          fields: expect.objectContaining({ problems: [expect.stringContaining(why)] }),
        });
        // A reload does not bring it back, nor clear the refusal.
        expect(second.reloadPolicies()).toMatchObject({ ok: false, source: 'stored live policy set' });
        expect((await exchange(second.url, 'staging')).status).toBe(400);

        const { init } = await deliveryRequest(await repo.commit('planted-replaced', 'qa'));
        expect((await fetch(`${second.url}/webhooks/github`, init)).status).toBe(200);
        expect((await exchange(second.url, 'qa')).status).toBe(200);
        expect(await (await fetch(`${second.url}/healthz`)).json()).toEqual({ status: 'ok' });
      } finally {
        audit.close();
        await second.close();
      }
    },
  );
});

/**
 * A signed-looking delivery promising a body of WEBHOOK_BODY_BYTES, `sent` bytes of it sent, never finished: the
 * connection, open until destroyed.
 */
async function unfinishedDelivery(port: number, sent: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.on('error', () => undefined);
  socket.write(
    'POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n' +
      `X-Hub-Signature-256: sha256=${'0'.repeat(64)}\r\nContent-Length: ${WEBHOOK_BODY_BYTES}\r\n\r\n`,
  );
  if (sent > 0) await new Promise((resolve) => socket.write(Buffer.alloc(sent, 0x20), resolve));
  return socket;
}

/** A delivery signed with another secret: 401 while its body fits in the room, 503 once the bodies held fill it. */
async function forgedDelivery(url: string): Promise<Response> {
  return fetch(`${url}/webhooks/github`, (await deliveryRequest({ event: 'ping', payload: { zen: 'forged' }, secret: 'forger' })).init);
}

/** Sends forged deliveries until one is answered `status`: the broker has read (503), or given back (401), the bodies held. */
async function forgedDeliveryUntil(url: string, status: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await forgedDelivery(url)).status !== status) {
    if (Date.now() > deadline) throw new Error(`a forged delivery was never ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A broker serving the policy repository's webhook, and what a test of the bodies it holds does with it. */
interface BodiesHeld {
  readonly broker: NodeBroker;
  readonly repo: Awaited<ReturnType<typeof policyRepositoryBroker>>['repo'];
  /** Opens an unfinished delivery that has sent `sent` bytes of the 4 MiB it promised, held until `release`. */
  hold(sent: number): Promise<void>;
  /** Closes every delivery held. */
  release(): void;
}

/** Runs `test` with a broker (`label` names its repository) logging to `log`; the deliveries held and the broker are closed after. */
async function withBodiesHeld(label: string, log: Logger, test: (held: BodiesHeld) => Promise<void>): Promise<void> {
  const { repo, config } = await policyRepositoryBroker(label);
  const broker = await startNodeBroker(config, { log });
  const port = Number(new URL(broker.url).port);
  const sockets: Socket[] = [];
  const release = () => {
    for (const socket of sockets) socket.destroy();
  };
  try {
    await test({ broker, repo, hold: async (sent) => void sockets.push(await unfinishedDelivery(port, sent)), release });
  } finally {
    release();
    await broker.close();
  }
}

describe('the webhook on Node', () => {
  it("holds at most one client's share of webhook bodies at once: past it a delivery is 503, unread, until the bodies held end", async () => {
    const warnings: { message: string; fields: LogFields | undefined }[] = [];
    const log = { ...silentLogger, warn: (message: string, fields?: LogFields) => void warnings.push({ message, fields }) };
    await withBodiesHeld('bodies-held', log, async ({ broker, repo, hold, release }) => {
      // Two 4 MiB bodies promised, all but their last byte sent, never finished: this client's whole share of 8 MiB.
      for (let i = 0; i < 2; i += 1) await hold(WEBHOOK_BODY_BYTES - 1);
      const forged = () => forgedDelivery(broker.url);
      const forgedUntil = (status: number) => forgedDeliveryUntil(broker.url, status);
      await forgedUntil(503);
      const delivery = async (label: string) => fetch(`${broker.url}/webhooks/github`, (await deliveryRequest(await repo.commit(label, 'qa'))).init);
      for (let i = 0; i < 2; i += 1) {
        const refused = await delivery('held-qa');
        expect([refused.status, refused.headers.get('retry-after'), await refused.json()]).toEqual([
          503,
          '5',
          { error: 'temporarily_unavailable', error_description: 'too many webhook bodies are being received at once: redeliver later' },
        ]);
      }
      // Counted each time (the forged delivery's refusal and the two), logged once for the run.
      expect(await (await fetch(`${broker.url}/metrics`)).text()).toContain('keyway_rate_limited_total{limit="webhook_bodies",endpoint="webhook"} 3');
      expect(warnings.filter(({ message }) => message.startsWith('webhook deliveries refused'))).toEqual([
        { message: 'webhook deliveries refused: the bodies being received fill the room', fields: { client_ip: '127.0.0.1' } },
      ]);
      // A body small enough for the 2 bytes left is let in between refusals: still one warning, not one a pair.
      const tiny = async () =>
        fetch(`${broker.url}/webhooks/github`, (await deliveryRequest({ event: 'ping', payload: null, body: 'x', secret: 'forger' })).init);
      for (let i = 0; i < 3; i += 1) expect([(await tiny()).status, (await forged()).status]).toEqual([401, 503]);
      expect(warnings.filter(({ message }) => message.startsWith('webhook deliveries refused'))).toHaveLength(1);
      release();
      // Their shares given back once the broker saw them close: a forged delivery fits again.
      await forgedUntil(401);
      const handled = await delivery('held-after');
      expect([handled.status, ((await handled.json()) as { status: string }).status]).toEqual([200, 'handled']);
    });
  });

  it('holds what a body sent, not what it promised: connections that declare 4 MiB bodies and send none of them lock no delivery out', async () => {
    await withBodiesHeld('bodies-promised', silentLogger, async ({ broker, repo, hold }) => {
      // Promised, 8 MiB: this client's whole share, were promises held.
      for (let i = 0; i < 2; i += 1) await hold(0);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const handled = await fetch(`${broker.url}/webhooks/github`, (await deliveryRequest(await repo.commit('promised-qa', 'qa'))).init);
      expect([handled.status, ((await handled.json()) as { status: string }).status]).toEqual([200, 'handled']);
    });
  });

  it('counts a chunked delivery as its bytes arrive: 503 once it outgrows the room, handled when there is room', async () => {
    await withBodiesHeld('bodies-chunked', silentLogger, async ({ broker, repo, hold, release }) => {
      const chunked = async (label: string) => {
        const { init } = await deliveryRequest(await repo.commit(label, 'qa'));
        const body = new Blob([init.body as string]).stream();
        return fetch(`${broker.url}/webhooks/github`, { ...init, body, duplex: 'half' } as RequestInit);
      };
      for (let i = 0; i < 2; i += 1) await hold(WEBHOOK_BODY_BYTES - 1);
      await forgedDeliveryUntil(broker.url, 503);
      const refused = await chunked('chunked-refused');
      expect([refused.status, ((await refused.json()) as { error: string }).error]).toEqual([503, 'temporarily_unavailable']);
      release();
      await forgedDeliveryUntil(broker.url, 401);
      const handled = await chunked('chunked-handled');
      expect([handled.status, ((await handled.json()) as { status: string }).status]).toEqual([200, 'handled']);
    });
  });

  it('answers a signed-looking delivery whose chunked body the sender left unfinished as unsigned, logging no error', async () => {
    const { config } = await policyRepositoryBroker('left-mid-body');
    const errors: { message: string; fields: LogFields | undefined }[] = [];
    const broker = await startNodeBroker(config, { log: { ...silentLogger, error: (message, fields) => errors.push({ message, fields }) } });
    try {
      const socket = connect(Number(new URL(broker.url).port), '127.0.0.1');
      await once(socket, 'connect');
      socket.on('error', () => undefined);
      socket.write(
        'POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n' +
          `X-Hub-Signature-256: sha256=${'0'.repeat(64)}\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"ref"`,
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      socket.destroy();
      // Its answer (to nobody) was given by the time a later request on another connection is.
      await fetch(`${broker.url}/livez`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(errors).toEqual([]);
    } finally {
      await broker.close();
    }
  });
});
