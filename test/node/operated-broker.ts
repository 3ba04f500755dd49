import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, inject } from 'vitest';
import type { Logger } from '../../src/core/log.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { exchangeForm } from '../suites/exchange-suite.ts';
import { TestIssuer } from '../support/test-issuer.ts';
import { OWN_URL_ISSUER, testConfig, writeTree } from './node-harness.ts';

/** A logger that keeps every line, so a test can grep what the broker logged. */
export function recordingLogger(): Logger & { text(): string } {
  const lines: string[] = [];
  const write = (level: string) => (message: string, fields?: object) => void lines.push(JSON.stringify({ level, message, ...fields }));
  return { info: write('info'), warn: write('warn'), error: write('error'), text: () => lines.join('\n') };
}

export interface OperatedBroker {
  readonly broker: NodeBroker;
  readonly log: ReturnType<typeof recordingLogger>;
  /** A keyway token for the broker itself, exchanged for one of `sub`'s tokens from the people's issuer. */
  readonly tokenFor: (sub: string, scope: string) => Promise<string>;
}

/**
 * A broker whose operators, people of a test issuer, may hold the scopes `operators` lists (olga@acme.dev: every scope a
 * test asks for; rita@acme.dev: keys:read only), in tokens of `ttl`; `clock` is the broker's and dates the people's tokens.
 */
export async function operatedBroker(options: { readonly olga: string; readonly ttl?: string; readonly clock?: () => number }): Promise<OperatedBroker> {
  const clock = options.clock ?? Date.now;
  const people = new TestIssuer(inject('testIssuerBase'), `ops-${crypto.randomUUID().slice(0, 8)}`);
  const root = writeTree({});
  mkdirSync(join(root, 'policies'));
  const log = recordingLogger();
  const broker = await startNodeBroker(testConfig(root, { issuer: OWN_URL_ISSUER }), { log, now: clock });
  // The operators' tokens have the broker itself as audience, whose port is known once it listens.
  const issuerUrl = broker.config.issuer;
  const ttl = options.ttl === undefined ? '' : `, ttl: ${options.ttl}`;
  const operator = (sub: string, scopes: string) =>
    `version: 1\nissuer: "${people.url}"\nmatch: { sub: ${sub} }\ngrant: { audience: ${issuerUrl}, scopes: [${scopes}]${ttl} }\n`;
  writeTree({ 'policies/ops/olga.yaml': operator('olga@acme.dev', options.olga) }, root);
  writeTree({ 'policies/ops/rita.yaml': operator('rita@acme.dev', 'keys:read') }, root);
  expect(broker.reloadPolicies()).toMatchObject({ ok: true, policies: 2 });
  const tokenFor = async (sub: string, scope: string): Promise<string> => {
    const now = Math.floor(clock() / 1000);
    const subject = await people.sign({ iss: people.url, aud: issuerUrl, sub, iat: now, exp: now + 300, jti: crypto.randomUUID() });
    const response = await fetch(`${broker.url}/token`, {
      method: 'POST',
      body: exchangeForm(subject, { audience: issuerUrl, scope }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const body = (await response.json()) as { access_token?: string };
    expect(response.status, JSON.stringify(body)).toBe(200);
    return body.access_token ?? '';
  };
  return { broker, log, tokenFor };
}
