import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { DATABASE_FILE, startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { exchangeForm, freshIssuer } from '../suites/exchange-suite.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { OWN_URL_ISSUER, testConfig, writeTree } from './node-harness.ts';

/**
 * A broker whose policies trust the broker itself as an issuer (as proxy set-ups do for keyway tokens at /proxy): its
 * access tokens still never become subject tokens at /token, so a revoked one cannot be swapped for a fresh one there.
 */
describe('a keyway access token presented as a subject token at /token', () => {
  let broker: NodeBroker;
  let ci: TestIssuer;
  let root: string;

  const post = async (path: string, form: URLSearchParams) => {
    const response = await fetch(`${broker.url}${path}`, { method: 'POST', body: form });
    return { status: response.status, body: (await response.json().catch(() => ({}))) as Record<string, unknown> };
  };

  beforeAll(async () => {
    ci = freshIssuer(inject('testIssuerBase'), 'revoked-subject');
    root = writeTree({ 'policies/README': 'written once the broker knows its own URL' });
    broker = await startNodeBroker(testConfig(root, { issuer: OWN_URL_ISSUER }), { log: silentLogger });
    const self = broker.config.issuer;
    writeFileSync(
      join(root, 'policies', 'ci.yaml'),
      `version: 1\nissuer: { kind: github, url: "${ci.url}" }\nmatch: { repository_id: "734201" }\ngrant: { audience: "${self}" }\n`,
    );
    writeFileSync(
      join(root, 'policies', 'self.yaml'),
      `version: 1\nissuer: { kind: oidc, url: "${self}", extra_algorithms: [ES256] }\nmatch: { client_id: ci }\ngrant: { audience: https://deploy.acme.dev }\n`,
    );
    const reloaded = broker.reloadPolicies();
    expect(reloaded, JSON.stringify(reloaded)).toMatchObject({ ok: true });
  });
  afterAll(() => broker?.close());

  it('is refused (typ at+jwt is not an identity token) even by a policy trusting the broker, before and after its revocation', async () => {
    const first = await post('/token', exchangeForm(await ci.sign(ciClaims(ci.url, broker.config.issuer)), { audience: broker.config.issuer }));
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const keywayToken = first.body['access_token'] as string;
    const reader = openSqliteFile(join(root, 'data', DATABASE_FILE));
    try {
      for (const revokeFirst of [false, true]) {
        if (revokeFirst) expect((await post('/revoke', new URLSearchParams({ token: keywayToken }))).status).toBe(200);
        const refused = await post('/token', exchangeForm(keywayToken, { audience: 'https://deploy.acme.dev' }));
        expect(refused.status).toBe(400);
        expect(refused.body['error']).toBe('invalid_request');
        expect(refused.body).not.toHaveProperty('access_token');
        const event = await new SqliteAuditStore(reader).get(refused.body['audit_event_id'] as string);
        expect(event).toMatchObject({ decision: 'denied', reason: 'claims_invalid', detail: 'header typ at+jwt marks an access token, not an identity token' });
      }
    } finally {
      reader.close();
    }
  });
});
