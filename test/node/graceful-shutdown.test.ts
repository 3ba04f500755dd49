import type { ChildProcess } from 'node:child_process';
import { get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { DATABASE_FILE } from '../../src/runtimes/node/start-node-broker.ts';
import { exchangeForm, freshIssuer } from '../suites/exchange-suite.ts';
import type { TestIssuer } from '../support/test-issuer.ts';
import { runProcess, spawnBroker, writeTree, type BrokerProcess, type Environment } from './node-harness.ts';

/** A plain OIDC issuer and one policy that grants its `svc-deploy` a token. */
function setup(): { issuer: TestIssuer; root: string } {
  const issuer = freshIssuer(inject('testIssuerBase'), 'shutdown');
  const policy = `version: 1\nissuer: "${issuer.url}"\nmatch:\n  sub: svc-deploy\ngrant:\n  audience: https://deploy.example\n  scopes: [deploy]\n`;
  return { issuer, root: writeTree({ 'policies/deploy.yaml': policy }) };
}

function brokerEnv(root: string, more: Environment = {}): Environment {
  return {
    KEYWAY_POLICIES: join(root, 'policies'),
    KEYWAY_DATA_DIR: join(root, 'data'),
    KEYWAY_WATCH_POLICIES: '0',
    KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
    // The load below is one subject from one address: the limits are not what is tested.
    KEYWAY_RATE_LIMIT_CLIENT_BURST: '100000',
    KEYWAY_RATE_LIMIT_SUBJECT_BURST: '100000',
    ...more,
  };
}

const subjectToken = (issuer: TestIssuer, broker: BrokerProcess) =>
  issuer.sign({ iss: issuer.url, aud: broker.issuer, sub: 'svc-deploy', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 300 });

const exchange = (broker: BrokerProcess, token: string) =>
  fetch(`${broker.url}/token`, { method: 'POST', body: exchangeForm(token), headers: { 'content-type': 'application/x-www-form-urlencoded' } });

/** The error code under a failed fetch: ECONNREFUSED once nothing listens, UND_ERR_SOCKET or ECONNRESET for a connection closed under it. */
function connectionError(error: unknown): string {
  const cause = error instanceof Error ? (error.cause as { code?: string } | undefined) : undefined;
  if (cause?.code === undefined) throw error;
  return cause.code;
}

/** Log lines the process wrote, parsed. */
function logLines(broker: BrokerProcess): Record<string, unknown>[] {
  return broker
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The records of the broker's audit log, read from its file once it has exited. */
function auditLog(root: string) {
  const db = openSqliteFile(join(root, 'data', DATABASE_FILE));
  return { store: new SqliteAuditStore(db), db };
}

/**
 * A POST /token whose headers promise the whole `body` but only its first `sent` bytes are sent; the rest is the
 * caller's to send or not. It resolves once the server has said `100 Continue`: the request is parsed and being served.
 */
function partialExchange(broker: BrokerProcess, body: string, sent: number): Promise<{ socket: Socket; answer: Promise<string> }> {
  const { hostname, port } = new URL(broker.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `POST /token HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n\r\n`,
      );
    });
    const answer = new Promise<string>((done) => socket.once('close', () => done(received.replace(CONTINUE, ''))));
    let received = '';
    socket.on('data', (chunk) => {
      received += chunk;
      if (received === CONTINUE) {
        socket.write(body.slice(0, sent));
        resolve({ socket, answer });
      }
    });
    socket.once('error', reject);
  });
}

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

/** GET on a connection of its own (so no answer can be a keep-alive connection closed under it): `status body`, or the connection error. */
function probe(broker: BrokerProcess, path: string): Promise<string> {
  return new Promise((resolve) => {
    const request = get(`${broker.url}${path}`, { agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve(`${response.statusCode} ${body}`));
    });
    request.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? String(error)));
  });
}

/** Resolves once a new connection to the broker is refused: its listener has closed. */
async function listenerClosed(broker: BrokerProcess): Promise<void> {
  const { hostname, port } = new URL(broker.url);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(Number(port), hostname, () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(true));
    });
    if (refused) return;
    if (Date.now() > deadline) throw new Error('the listener did not close');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('SIGTERM on the Node broker', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });
  const start = (env: Environment) => spawnBroker(env, (child) => children.push(child));

  it('under load from 8 clients: every answer is a 200 whose record is in the log, the log verifies, and the process exits 0', async () => {
    const { issuer, root } = setup();
    const broker = await start(brokerEnv(root));
    const token = await subjectToken(issuer, broker);
    const granted: string[] = [];
    const otherAnswers: number[] = [];
    const connectionErrors: string[] = [];
    let signalledAt: number | undefined;
    const failuresBeforeSignal: string[] = [];
    const client = async (): Promise<void> => {
      for (let round = 0; round < 200; round += 1) {
        let response: Response;
        try {
          response = await exchange(broker, token);
        } catch (error) {
          const code = connectionError(error);
          if (signalledAt === undefined) failuresBeforeSignal.push(code);
          connectionErrors.push(code);
          return;
        }
        const body = (await response.json()) as { audit_event_id?: string };
        if (response.status === 200 && typeof body.audit_event_id === 'string') granted.push(body.audit_event_id);
        else otherAnswers.push(response.status);
        // The signal lands while the other clients' exchanges are under way.
        if (granted.length === 40 && signalledAt === undefined) {
          signalledAt = Date.now();
          broker.child.kill('SIGTERM');
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, client));
    expect(signalledAt).toBeDefined();
    expect(await broker.exited).toBe(0);
    expect(Date.now() - (signalledAt as number)).toBeLessThan(10_000);

    // Nothing but 200s were answered, and nothing failed before the signal; after it, each client's first failure ended it.
    expect(otherAnswers).toEqual([]);
    expect(failuresBeforeSignal).toEqual([]);
    expect(connectionErrors).toHaveLength(8);
    for (const code of connectionErrors) expect(['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET']).toContain(code);
    console.info(`shutdown under load: ${granted.length} granted, connection errors after SIGTERM: ${JSON.stringify(connectionErrors)}`);

    // Every 200 has its record; and the log holds no record of an exchange no client heard the answer to: none of the
    // connections that failed carried a request the broker had begun to serve.
    const { store, db } = auditLog(root);
    try {
      for (const id of granted) expect((await store.get(id))?.decision).toBe('granted');
      expect(db.all<{ n: number }>('SELECT count(*) AS n FROM audit_events')[0]?.n).toBe(granted.length);
      // The final checkpoint signs the head.
      expect((await store.latestCheckpoint())?.seq).toBe((await store.head()).seq);
    } finally {
      db.close();
    }
    const verified = await runProcess(process.execPath, ['src/cli/main.ts', 'audit', 'verify', '--data-dir', join(root, 'data')], { env: { ...process.env } });
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    expect(logLines(broker).map((line) => line['message'])).toEqual(expect.arrayContaining(['shutdown started', 'shutdown complete']));
  }, 60_000);

  it('an exchange under way when the listener closes is answered 200 with its record, then the process exits 0', async () => {
    const { issuer, root } = setup();
    const broker = await start(brokerEnv(root));
    const body = exchangeForm(await subjectToken(issuer, broker)).toString();
    const { socket, answer } = await partialExchange(broker, body, 10);
    broker.child.kill('SIGTERM');
    await listenerClosed(broker);
    expect(broker.child.exitCode).toBeNull();
    socket.write(body.slice(10));
    const raw = await answer;
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    expect(raw.toLowerCase()).toContain('connection: close');
    const { audit_event_id: id } = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { audit_event_id: string };
    expect(await broker.exited).toBe(0);
    const { store, db } = auditLog(root);
    try {
      expect((await store.get(id))?.decision).toBe('granted');
    } finally {
      db.close();
    }
  }, 30_000);

  it('with a drain delay, /readyz says not ready while the listener still serves, and only then is the listener closed', async () => {
    const { issuer, root } = setup();
    const broker = await start(brokerEnv(root, { KEYWAY_SHUTDOWN_DRAIN_SECONDS: '2' }));
    const token = await subjectToken(issuer, broker);
    expect(await probe(broker, '/readyz')).toBe('200 ok');

    broker.child.kill('SIGTERM');
    const seen: string[] = [];
    let servedWhileNotReady: number | undefined;
    for (let poll = 0; poll < 400 && seen.at(-1) !== 'ECONNREFUSED'; poll += 1) {
      const answer = await probe(broker, '/readyz');
      if (seen.at(-1) !== answer) seen.push(answer);
      // Not ready is advice to the load balancer: an exchange that still arrives is served.
      if (answer === '503 not ready' && servedWhileNotReady === undefined) servedWhileNotReady = (await exchange(broker, token)).status;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    // Ready until the signal lands, then not ready and never ready again, then nothing listens. A connection made as the
    // listener closed may be reset (it was never served), so that is allowed between the two.
    const notReady = seen.indexOf('503 not ready');
    expect(notReady, seen.join(' → ')).toBeGreaterThanOrEqual(0);
    expect(seen.slice(0, notReady).every((answer) => answer === '200 ok')).toBe(true);
    expect(seen.at(-1)).toBe('ECONNREFUSED');
    expect(
      seen.slice(notReady + 1, -1).every((answer) => answer === 'ECONNRESET'),
      seen.join(' → '),
    ).toBe(true);
    expect(servedWhileNotReady).toBe(200);
    expect(await broker.exited).toBe(0);
  }, 30_000);

  it('a shutdown that cannot finish in KEYWAY_SHUTDOWN_SECONDS exits 1 in bounded time, saying what still ran; a second SIGTERM starts nothing', async () => {
    const { root } = setup();
    const broker = await start(brokerEnv(root, { KEYWAY_SHUTDOWN_SECONDS: '2' }));
    // A request whose body never finishes (well inside the server's own 30 s request timeout).
    await partialExchange(broker, 'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange', 10);
    const signalled = Date.now();
    broker.child.kill('SIGTERM');
    await expect.poll(() => logLines(broker).some((line) => line['message'] === 'shutdown started'), { timeout: 5000 }).toBe(true);
    broker.child.kill('SIGTERM');
    expect(await broker.exited).toBe(1);
    const elapsed = Date.now() - signalled;
    expect(elapsed).toBeGreaterThanOrEqual(1900);
    expect(elapsed).toBeLessThan(6000);
    const lines = logLines(broker);
    expect(lines.filter((line) => line['message'] === 'shutdown started')).toHaveLength(1);
    expect(lines).toContainEqual(expect.objectContaining({ message: 'shutdown already under way', signal: 'SIGTERM', stage: 'closing_listener' }));
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'error',
        message: 'shutdown did not finish in time; exiting with work still running',
        shutdown_seconds: 2,
        stage: 'closing_listener',
        requests_in_flight: 1,
      }),
    );
  }, 30_000);
});
