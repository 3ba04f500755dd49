import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { jsonLogger } from '../../src/core/log.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { auditorToken, operatorPolicy } from '../suites/audit-api-suite.ts';
import { TestIssuer } from '../support/test-issuer.ts';
import { OWN_URL_ISSUER, runKeyway, testConfig, writeTree } from './node-harness.ts';

/** A few CLI processes each, on a machine other tests load. */
const CLI_RUNS_TIMEOUT_MS = 60_000;

/** `keyway tokens revoke`: an operator ends a token by the jti the audit log names, through a real broker. */
describe('keyway tokens revoke --url (a Node broker, the CLI as a process)', () => {
  let broker: NodeBroker;
  let people: TestIssuer;
  const lines: string[] = [];

  beforeAll(async () => {
    people = new TestIssuer(inject('testIssuerBase'), `revoke-cli-${crypto.randomUUID().slice(0, 8)}`);
    const root = writeTree({});
    mkdirSync(join(root, 'policies'));
    broker = await startNodeBroker(testConfig(root, { issuer: OWN_URL_ISSUER }), { log: jsonLogger({}, { write: (line) => lines.push(line) }) });
    // The operators' tokens have the broker itself as audience, whose port is known once it listens.
    writeTree(
      {
        'policies/ops/olga.yaml': operatorPolicy(people, broker.config.issuer, 'olga@acme.dev', ['tokens:revoke', 'tokens:introspect']),
        'policies/ops/rita.yaml': operatorPolicy(people, broker.config.issuer, 'rita@acme.dev', ['tokens:introspect']),
      },
      root,
    );
    expect(broker.reloadPolicies()).toMatchObject({ ok: true, policies: 2 });
  });
  afterAll(() => broker?.close());

  const tokenFor = (sub: string, scope: string): Promise<string> =>
    auditorToken({ issuer: broker.config.issuer, request: (path, init) => fetch(`${broker.url}${path}`, init) }, people, sub, scope);
  const active = async (token: string): Promise<unknown> => {
    const response = await fetch(`${broker.url}/introspect`, {
      method: 'POST',
      body: new URLSearchParams({ token }),
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${await tokenFor('rita@acme.dev', 'tokens:introspect')}` },
    });
    return ((await response.json()) as { active?: unknown }).active;
  };
  const revoke = async (args: string[], token?: string) =>
    runKeyway(['tokens', 'revoke', '--url', broker.url, ...args], token === undefined ? {} : { KEYWAY_TOKEN: token });

  it(
    'revokes a token by its jti, says so with its grant and record, then says it was already revoked',
    async () => {
      const leaked = await tokenFor('rita@acme.dev', 'tokens:introspect');
      const { jti } = decodeJwt(leaked) as { jti: string };
      const olga = await tokenFor('olga@acme.dev', 'tokens:revoke');
      const revoked = await revoke([jti], olga);
      expect(revoked.code, revoked.stderr).toBe(0);
      expect(revoked.stdout).toMatch(new RegExp(`^revoked keyway token ${jti} \\(granted in \\w+, it would have expired at \\S+Z\\); recorded as \\w+\\n$`));
      expect(await active(leaked)).toBe(false);
      expect(lines.some((line) => line.includes('token revocation by jti') && line.includes('olga@acme.dev'))).toBe(true);

      const again = await revoke(['--json', jti], olga);
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ jti, status: 'already_revoked' });
      expect((await revoke([jti], olga)).stdout).toBe(`keyway token ${jti} was already revoked\n`);
    },
    CLI_RUNS_TIMEOUT_MS,
  );

  it('takes an operator whose JSON body ends before it is whole as a body it cannot read, not as a fault: no error logged', async () => {
    const olga = await tokenFor('olga@acme.dev', 'tokens:revoke');
    const { hostname, port } = new URL(broker.url);
    const socket = connect(Number(port), hostname);
    await once(socket, 'connect');
    // What it reads back is Node's own 400 to a chunked body cut short, whatever keyway answers: only the log tells.
    socket.resume();
    const closed = once(socket, 'close');
    socket.write(
      `POST /v1/tokens/revoke HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${olga}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"jti`,
    );
    setTimeout(() => socket.end(), 100);
    await closed;
    // Its answer (to nobody) was given by the time a later request on another connection is.
    await fetch(`${broker.url}/livez`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(lines.filter((line) => (JSON.parse(line) as { level: string }).level === 'error')).toEqual([]);
  });

  it(
    "refuses a jti no grant issued (exit 1, the broker's error), a caller without tokens:revoke, and bad usage (exit 2)",
    async () => {
      const olga = await tokenFor('olga@acme.dev', 'tokens:revoke');
      expect(await revoke([crypto.randomUUID()], olga)).toMatchObject({ code: 1, stderr: expect.stringContaining('/v1/tokens/revoke answered 404 not_found') });
      const token = await tokenFor('rita@acme.dev', 'tokens:introspect');
      const jti = decodeJwt(token).jti as string;
      expect(await revoke([jti], token)).toMatchObject({ code: 1, stderr: expect.stringContaining('403 insufficient_scope') });
      expect((await revoke([jti])).code).toBe(2);
      expect((await revoke([], olga)).code).toBe(2);
      expect((await runKeyway(['tokens', 'revoke', '--url', 'http://keyway.example', jti], { KEYWAY_TOKEN: olga })).stderr).toContain('--url must be https');
      expect(await active(token)).toBe(true);
    },
    CLI_RUNS_TIMEOUT_MS,
  );
});
