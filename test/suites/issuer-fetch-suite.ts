import { describe, expect, it } from 'vitest';
import { exchangeForm, freshIssuer, postToken, type StartBroker } from './exchange-suite.ts';

/** How the broker asks issuers for their keys when they fail. Runs on Node and inside workerd. */
export function issuerFetchSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`fetching issuer keys on ${runtime}`, () => {
    it('asks a failing issuer once per cooldown however many tokens arrive, and refuses each with 503 and a record', async () => {
      const failing = freshIssuer(issuerBase(), 'failing');
      await failing.settings({ down: true });
      const policy = `version: 1\nissuer: "${failing.url}"\nmatch: { sub: svc-f }\ngrant: { audience: https://f.example }\n`;
      const broker = await start({ 'failing/service.yaml': policy });
      try {
        for (let attempt = 0; attempt < 5; attempt += 1) {
          const now = Math.floor(Date.now() / 1000);
          const token = await failing.sign({ iss: failing.url, aud: broker.issuer, sub: 'svc-f', iat: now, exp: now + 300 });
          const result = await postToken(broker, exchangeForm(token));
          expect(result.status).toBe(503);
          expect(result.body['error']).toBe('temporarily_unavailable');
          expect(result.body).not.toHaveProperty('access_token');
          expect(await broker.auditEvent(result.body['audit_event_id'] as string)).toMatchObject({ decision: 'error', reason: 'issuer_unavailable' });
        }
        expect(await failing.hits()).toMatchObject({ discovery: 1, jwks: 0 });
      } finally {
        await broker.close();
      }
    });
  });
}
