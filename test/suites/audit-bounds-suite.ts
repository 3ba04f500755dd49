import { base64url } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { AUDIT_BOUNDS } from '../../src/core/audit/bound-audit-event.ts';
import { TOKEN_TYPE } from '../../src/core/exchange/token-exchange-request.ts';
import type { TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, freshIssuer, type BrokerHarness, type StartBroker } from './exchange-suite.ts';

/**
 * The most a record of a refused, unverified token may serialize to, in JSON characters:
 * detail (1,024), request id, client address and user agent (256 each), audience and scope
 * lists (2,048 each), the token's SHA-256 and claimed jti/iss/sub (64 + 3 × 256), and the
 * field names, ids and codes around them (under 500).
 */
const UNVERIFIED_RECORD_MAX = 8 * 1024;
/**
 * What such a record is held to in fact, since anyone can earn one: detail, audience and scope (512 each, as AUDIT_BOUNDS.unverified),
 * request id, client address and user agent (256 each), the token's SHA-256 and claimed jti/iss/sub (64 + 3 × 256), and the
 * field names, ids and codes around them (under 400); a /proxy record has upstream, method and path (256 + 256 + 512) instead of
 * the lists.
 */
const STRANGER_RECORD_MAX = 3.5 * 1024;
/** … and one whose token verified: its subject (256) and each recorded claim (2,048; here `aud` and `sub`), and the policy trace. */
const VERIFIED_RECORD_MAX = 16 * 1024;

/** As large as a subject token may be (16 KiB), filled with one claim or header parameter. */
const NEAR_LIMIT = 11_000;

/** A compact JWS whose signature is never reached: every refusal here comes before it is checked. */
function forged(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const part = (value: unknown) => base64url.encode(JSON.stringify(value));
  return `${part(header)}.${part(payload)}.${part('not a signature')}`;
}

/** Every string in the record serializes to at most the detail bound, and every list is cut to the entry bound (plus its `…N more`). */
function expectBoundedShape(value: unknown): void {
  if (typeof value === 'string') expect(JSON.stringify(value).length - 2).toBeLessThanOrEqual(AUDIT_BOUNDS.detail);
  else if (Array.isArray(value)) {
    expect(value.length).toBeLessThanOrEqual(AUDIT_BOUNDS.entries + 1);
    value.forEach(expectBoundedShape);
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, inner] of Object.entries(value)) {
      expectBoundedShape(key);
      expectBoundedShape(inner);
    }
  }
}

/** A record that names no verified identity: its detail, requested audience and scope, and proxied path cut to AUDIT_BOUNDS.unverified. */
function expectStrangersRecord(event: AuditEvent): void {
  expect(event).not.toHaveProperty('issuer');
  expect(JSON.stringify(event).length).toBeLessThanOrEqual(STRANGER_RECORD_MAX);
  for (const text of [event.detail, event.proxy?.path])
    if (text !== undefined) expect(JSON.stringify(text).length - 2).toBeLessThanOrEqual(AUDIT_BOUNDS.unverified);
  for (const list of [event.request.audience, event.request.scope])
    if (list !== undefined) expect(JSON.stringify(list).length).toBeLessThanOrEqual(AUDIT_BOUNDS.unverified);
}

/** A record's size is bounded whatever the request and its token hold. Runs on Node and inside workerd. */
export function auditBoundsSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`bounded audit records on ${runtime}`, () => {
    let broker: BrokerHarness;
    let issuer: TestIssuer;
    const now = () => Math.floor(Date.now() / 1000);
    const claims = (overrides: Record<string, unknown> = {}) => ({
      iss: issuer.url,
      aud: broker.issuer,
      sub: 'svc-bounded',
      iat: now(),
      exp: now() + 300,
      ...overrides,
    });
    const rs256 = (payload: Record<string, unknown>) => forged({ alg: 'RS256', typ: 'JWT' }, payload);
    const invalidRequest = (reason: string) => ({ status: 400, error: 'invalid_request', reason });

    /** Posts a form with a 12 KB user agent and returns the answer and its record, after the checks every refusal must pass. */
    const refusedAndRecorded = async (
      form: URLSearchParams,
      expected: { status: number; error: string; reason: string },
      recordMax = UNVERIFIED_RECORD_MAX,
    ) => {
      const headers = { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': `agent/${'u'.repeat(NEAR_LIMIT)}` };
      const response = await broker.request('/token', { method: 'POST', body: form, headers });
      const body = (await response.json()) as Record<string, unknown>;
      expect(response.status).toBe(expected.status);
      expect(body['error']).toBe(expected.error);
      expect(body).not.toHaveProperty('access_token');
      expect((body['error_description'] as string).length).toBeLessThanOrEqual(AUDIT_BOUNDS.detail);
      const event = (await broker.auditEvent(body['audit_event_id'] as string)) as AuditEvent;
      expect(event.reason).toBe(expected.reason);
      expect(JSON.stringify(event).length).toBeLessThanOrEqual(recordMax);
      expectBoundedShape(event);
      expect(event.request.user_agent?.startsWith('agent/uuu')).toBe(true);
      if (recordMax === UNVERIFIED_RECORD_MAX) expectStrangersRecord(event);
      return { body, event };
    };

    /** Ten audiences of 2,048 characters and a 2,048-character scope of 400 distinct entries: as much as the request parser lets through. */
    const hugeTargets = {
      audience: Array.from({ length: 10 }, (_, index) => `${index}${'a'.repeat(2047)}`),
      scope: Array.from({ length: 400 }, (_, index) => `s${index}`)
        .join(' ')
        .slice(0, 2048)
        .replace(/ \S*$/, ''),
    };

    beforeAll(async () => {
      issuer = freshIssuer(issuerBase(), 'bounds');
      const policy = `version: 1\nissuer: "${issuer.url}"\nmatch: { sub: svc-bounded }\ngrant: { audience: https://bounded.example }\n`;
      broker = await start({ 'bounded/service.yaml': policy });
    });
    afterAll(() => broker.close());

    it('keeps a bounded record of an untrusted issuer named in 11 KB, with every audience, scope and the user agent cut', async () => {
      const iss = `https://${'i'.repeat(NEAR_LIMIT)}.example`;
      const { event } = await refusedAndRecorded(exchangeForm(rs256(claims({ iss })), hugeTargets), invalidRequest('issuer_untrusted'));
      expect(event.detail?.startsWith('iss "https://iii')).toBe(true);
      expect(event.detail?.endsWith('…')).toBe(true);
      expect(event.subject_token?.claimed_iss).toHaveLength(AUDIT_BOUNDS.text);
      expect(event.request.audience?.[0]).toHaveLength(AUDIT_BOUNDS.text);
      expect(event.request.scope?.slice(0, 3)).toEqual(['s0', 's1', 's2']);
      expect(event.request.scope?.at(-1)).toMatch(/^…\d+ more$/);
    });

    it('keeps a bounded record of an 11 KB alg, kid, sub and jti', async () => {
      const long = (letter: string) => letter.repeat(NEAR_LIMIT);
      await refusedAndRecorded(exchangeForm(forged({ alg: long('A'), typ: 'JWT' }, claims())), invalidRequest('algorithm_not_allowed'));
      await refusedAndRecorded(exchangeForm(await issuer.sign(claims(), { header: { kid: long('k') } })), invalidRequest('signature_invalid'));
      const half = NEAR_LIMIT / 2;
      const subAndJti = rs256(claims({ sub: long('s').slice(0, half), jti: long('j').slice(0, half) }));
      const { event } = await refusedAndRecorded(exchangeForm(subAndJti), invalidRequest('signature_invalid'));
      expect(event.subject_token).toMatchObject({ claimed_sub: `${'s'.repeat(AUDIT_BOUNDS.text - 1)}…`, jti: `${'j'.repeat(AUDIT_BOUNDS.text - 1)}…` });
    });

    it('keeps a bounded record of a verified token with a huge subject and audience list', async () => {
      const audience = [broker.issuer, ...Array.from({ length: 24 }, (_, index) => `https://${index}.${'d'.repeat(180)}.example`)];
      const token = await issuer.sign(claims({ sub: `svc-${'b'.repeat(4000)}`, aud: audience }));
      const { event } = await refusedAndRecorded(exchangeForm(token), invalidRequest('no_policy_matched'), VERIFIED_RECORD_MAX);
      expect(event.subject).toHaveLength(AUDIT_BOUNDS.text);
      expect(event.claims?.['aud']).toEqual(expect.arrayContaining([broker.issuer]));
      expect(JSON.stringify(event.claims?.['aud']).length).toBeLessThanOrEqual(AUDIT_BOUNDS.value);
    });

    it('keeps less of what a token that did not verify came with than of what a verified one did: detail, audience and scope cut to 512, not 2,048', async () => {
      // Scope entries long enough that their entry bound (16) is not what cuts them.
      const targets = { ...hugeTargets, scope: Array.from({ length: 8 }, (_, index) => `${index}${'s'.repeat(250)}`).join(' ') };
      const stranger = await refusedAndRecorded(exchangeForm(rs256(claims()), targets), invalidRequest('signature_invalid'));
      for (const list of ['audience', 'scope'] as const) expect(stranger.event.request[list]?.at(-1)).toMatch(/^…\d+ more$/);
      const verified = await refusedAndRecorded(
        exchangeForm(await issuer.sign(claims({ sub: 'svc-unknown' })), targets),
        invalidRequest('no_policy_matched'),
        VERIFIED_RECORD_MAX,
      );
      expect(verified.event.issuer).toBe(issuer.url);
      for (const list of ['audience', 'scope'] as const) {
        expect(JSON.stringify(verified.event.request[list]).length).toBeGreaterThan(AUDIT_BOUNDS.unverified);
        expect(JSON.stringify(verified.event.request[list]).length).toBeLessThanOrEqual(AUDIT_BOUNDS.value);
        expect(verified.event.request[list]?.length).toBeGreaterThan(stranger.event.request[list]?.length ?? 0);
      }
    });

    it('keeps a record of a /proxy request whose token did not verify as small: its path cut to 512', async () => {
      // Path and user agent within what Node reads of a request's head (16 KiB).
      const response = await broker.request(`/proxy/api/${'p'.repeat(4000)}`, {
        headers: { authorization: `Bearer ${rs256(claims())}`, 'user-agent': `agent/${'u'.repeat(4000)}` },
      });
      const body = (await response.json()) as Record<string, unknown>;
      expect(response.status).toBe(400);
      const event = (await broker.auditEvent(body['audit_event_id'] as string)) as AuditEvent;
      expect(event.reason).toBe('signature_invalid');
      expect(event.proxy?.path).toMatch(/^\/pppp.*…$/);
      expectStrangersRecord(event);
    });

    it('bounds an error description that echoes what the caller sent', async () => {
      const scope = 'p'.repeat(2000);
      const form = exchangeForm(rs256(claims()), { scope, requested_token_type: TOKEN_TYPE.githubInstallationToken });
      const { body } = await refusedAndRecorded(form, {
        status: 400,
        error: 'invalid_scope',
        reason: 'github_permission_not_granted',
      });
      expect(body['error_description']).toMatch(/^scope pppp/);
    });

    it('refuses a 100 KB claim before it is decoded, with a bounded record', async () => {
      const withIss = (length: number) => exchangeForm(rs256(claims({ iss: `https://${'i'.repeat(length)}.example` })));
      await refusedAndRecorded(withIss(100_000), { status: 413, error: 'invalid_request', reason: 'request_too_large' });
      await refusedAndRecorded(withIss(40_000), invalidRequest('malformed_request'));
    });
  });
}
