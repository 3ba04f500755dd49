import { afterEach, describe, expect, it } from 'vitest';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, freshIssuer, suitePolicies, type BrokerHarness, type StartBroker } from './exchange-suite.ts';

/**
 * The /token rate limits through the real broker: 429 with a truthful Retry-After, the
 * per-subject limit keyed on the verified identity only, the per-client and global limits
 * before verification, and one audit record per run of refusals. Runs on Node and in workerd.
 */
export function limitsSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`rate limits on ${runtime}`, () => {
    const running: BrokerHarness[] = [];
    afterEach(async () => {
      await Promise.all(running.splice(0).map((broker) => broker.close()));
    });

    /** A broker with `settings`, on a clock the test moves. */
    async function setup(settings: Record<string, string>) {
      const github = freshIssuer(issuerBase(), 'limits-gh');
      const clock = { now: Date.now() };
      const broker = await start(suitePolicies(github, freshIssuer(issuerBase(), 'limits-oidc')), { settings, now: () => clock.now });
      running.push(broker);
      return { github, clock, broker, good: (overrides: Record<string, unknown> = {}) => github.sign(ciClaims(github.url, broker.issuer, overrides)) };
    }

    /** On Workers the client address is CF-Connecting-IP; on Node it is the socket's (127.0.0.1), and the header is ignored. */
    async function post(broker: BrokerHarness, body: URLSearchParams | string) {
      const response = await broker.request('/token', {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': '127.0.0.1' },
      });
      return { status: response.status, retryAfter: response.headers.get('retry-after'), cacheControl: response.headers.get('cache-control'), body: (await response.json()) as Record<string, unknown> };
    }

    it('answers 429 with Retry-After once an identity spent its burst, audits the first refusal of a run only, and lets it through when the bucket refilled', async () => {
      // Two a minute: a token every 30 s, two saved up.
      const { broker, clock, good } = await setup({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '2', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '2' });
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);

      const first = await post(broker, exchangeForm(await good()));
      expect(first.status).toBe(429);
      expect(first.retryAfter).toBe('30');
      expect(first.cacheControl).toBe('no-store');
      expect(first.body).toMatchObject({ error: 'temporarily_unavailable', error_description: expect.stringContaining('subject rate limit') });
      expect(first.body).not.toHaveProperty('access_token');
      const record = await broker.auditEvent(first.body['audit_event_id'] as string);
      expect(record).toMatchObject({ decision: 'denied', reason: 'rate_limited', subject: 'repo:acme/api:environment:production' });
      expect(record).not.toHaveProperty('issued');

      // The rest of the run is counted, not written.
      const second = await post(broker, exchangeForm(await good()));
      expect(second.status).toBe(429);
      expect(second.body).not.toHaveProperty('audit_event_id');
      clock.now += 29_000;
      const almost = await post(broker, exchangeForm(await good()));
      expect(almost).toMatchObject({ status: 429, retryAfter: '1' });

      clock.now += 1_000;
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      const again = await post(broker, exchangeForm(await good()));
      expect(again).toMatchObject({ status: 429, retryAfter: '30' });
      expect((await broker.auditEvent(again.body['audit_event_id'] as string))?.reason).toBe('rate_limited');
    });

    it('keys the per-subject limit on the verified identity: a forged sub cannot drain its bucket, another identity has its own', async () => {
      const { broker, github, good } = await setup({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '2' });
      const forger = freshIssuer(issuerBase(), 'limits-forger');
      // The victim's exact iss and sub, signed with keys that are not the issuer's; then with alg none.
      for (let attempt = 0; attempt < 6; attempt += 1) {
        const forged = await post(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.issuer), { key: 'foreign' })));
        expect(forged.status).toBe(400);
        expect((await broker.auditEvent(forged.body['audit_event_id'] as string))?.reason).toBe('signature_invalid');
        const unsigned = await post(broker, exchangeForm(`${btoa(JSON.stringify({ alg: 'none' })).replace(/=+$/, '')}.${btoa(JSON.stringify(ciClaims(github.url, broker.issuer))).replace(/=+$/, '')}.`));
        expect(unsigned.status).toBe(400);
        // Another issuer entirely, claiming the victim's iss.
        expect((await post(broker, exchangeForm(await forger.sign(ciClaims(github.url, broker.issuer))))).status).toBe(400);
      }
      // A real identity of the same issuer spends its own bucket…
      const attacker = { sub: 'repo:evil/tool:ref:refs/heads/main', repository: 'evil/tool', repository_id: '666' };
      expect((await post(broker, exchangeForm(await good(attacker)))).status).toBe(400);
      expect((await post(broker, exchangeForm(await good(attacker)))).status).toBe(400);
      const drained = await post(broker, exchangeForm(await good(attacker)));
      expect(drained.status).toBe(429);
      expect((await broker.auditEvent(drained.body['audit_event_id'] as string))?.subject).toBe(attacker.sub);
      // …and the victim's is untouched.
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      expect((await post(broker, exchangeForm(await good()))).status).toBe(429);
    });

    it('sheds a client\'s flood before the body is read or a signature checked', async () => {
      const { broker, clock, good } = await setup({ KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_CLIENT_BURST: '3' });
      for (let attempt = 0; attempt < 3; attempt += 1) expect((await post(broker, exchangeForm('garbage'))).status).toBe(400);
      const limited = await post(broker, 'not even a form');
      expect(limited).toMatchObject({ status: 429, retryAfter: '60' });
      expect(limited.body['error_description']).toContain('client rate limit');
      const record = await broker.auditEvent(limited.body['audit_event_id'] as string);
      expect(record).toMatchObject({ decision: 'denied', reason: 'rate_limited' });
      expect(record).not.toHaveProperty('subject_token');
      // Even a good token waits: the limit sits before verification.
      const good429 = await post(broker, exchangeForm(await good()));
      expect(good429).toMatchObject({ status: 429, retryAfter: '60' });
      expect(good429.body).not.toHaveProperty('audit_event_id');
      clock.now += 60_000;
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
    });

    it('holds every caller to the global limit', async () => {
      const { broker, good } = await setup({ KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: '3', KEYWAY_RATE_LIMIT_GLOBAL_BURST: '2' });
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      expect((await post(broker, exchangeForm('garbage'))).status).toBe(400);
      const limited = await post(broker, exchangeForm(await good()));
      expect(limited).toMatchObject({ status: 429, retryAfter: '20' });
      expect(limited.body['error_description']).toContain('global rate limit');
      expect((await broker.auditEvent(limited.body['audit_event_id'] as string))?.reason).toBe('rate_limited');
    });
  });
}
