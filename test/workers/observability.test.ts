import { describe, expect, inject, it } from 'vitest';
import { jsonLogger } from '../../src/core/log.ts';
import { exchangeForm, freshIssuer, postToken, suitePolicies } from '../suites/exchange-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { startWorkersHarness } from './workers-harness.ts';

/** On Workers the counters are the structured log lines (Workers Logs / Logpush count them); there is no /metrics. */
describe('observability on Workers (workerd)', () => {
  it('logs one JSON line per exchange with decision, reason, timings and request id, a line per JWKS fetch, and never a token', async () => {
    const github = freshIssuer(inject('testIssuerBase'), 'obs-w-gh');
    const lines: string[] = [];
    const broker = await startWorkersHarness(suitePolicies(github, freshIssuer(inject('testIssuerBase'), 'obs-w-oidc')), {
      log: jsonLogger({ runtime: 'workers' }, { write: (line) => lines.push(line) }),
    });
    const good = (overrides: Record<string, unknown> = {}) => github.sign(ciClaims(github.url, broker.issuer, overrides));
    const subjectTokens = [await good(), await good(), await good({ ref: 'refs/heads/feature' })];
    const results = [];
    for (const token of subjectTokens) results.push(await postToken(broker, exchangeForm(token)));
    expect(results.map((result) => result.status)).toEqual([200, 200, 400]);

    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const exchanges = records.filter((record) => record['message'] === 'token exchange');
    expect(exchanges.map((record) => [record['decision'], record['reason'], record['audit_event_id'], record['request_id']])).toEqual(
      results.map((result) => [
        result.status === 200 ? 'granted' : 'denied',
        result.status === 200 ? 'granted' : 'no_policy_matched',
        result.body['audit_event_id'],
        result.headers.get('x-request-id'),
      ]),
    );
    for (const record of exchanges) {
      expect(record).toMatchObject({ runtime: 'workers', issuer: github.url, duration_ms: expect.any(Number), audit_ms: expect.any(Number) });
    }
    expect(records.filter((record) => record['message'] === 'jwks fetch')).toEqual([expect.objectContaining({ issuer: github.url, outcome: 'ok' })]);

    const logged = lines.join('\n');
    const issued = results.flatMap((result) => (typeof result.body['access_token'] === 'string' ? [result.body['access_token']] : []));
    expect(issued).toHaveLength(2);
    for (const token of [...subjectTokens, ...issued]) {
      for (const part of token.split('.').filter((segment) => segment.length > 20)) expect(logged).not.toContain(part);
    }
    expect((await broker.request('/metrics')).status).toBe(404);
  });
});
