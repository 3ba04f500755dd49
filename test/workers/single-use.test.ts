import { runInDurableObject } from 'cloudflare:test';
import { describe, expect, inject, it } from 'vitest';
import { replayKey } from '../../src/core/replay/replay-key.ts';
import { replayShard } from '../../src/runtimes/workers/replay-guard-state.ts';
import { exchangeForm, freshIssuer } from '../suites/exchange-suite.ts';
import { replaySuite } from '../suites/replay-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { sharedAuditShardObjects, startWorkersHarness, workerEnv } from './workers-harness.ts';

replaySuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));

describe('single use on Workers when storage fails', () => {
  async function setup() {
    const github = freshIssuer(inject('testIssuerBase'), 'single-w');
    const broker = await startWorkersHarness({
      'deploy.yaml': `version: 1\nissuer: { kind: github, url: "${github.url}" }\nsingle_use: true\nmatch:\n  repository_id: "734201"\ngrant:\n  audience: https://deploy.acme.dev\n`,
    });
    const claims = ciClaims(github.url, broker.issuer);
    const token = await github.sign(claims);
    const exchange = async () => {
      const response = await broker.request('/token', {
        method: 'POST',
        body: exchangeForm(token),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    // The shard that holds this token's claim.
    const { key } = replayKey(token, github.url, claims['jti']);
    return { exchange, broker, shard: replayShard(workerEnv.REPLAY, key) };
  }
  const sql = (statement: string) => (_instance: unknown, state: DurableObjectState) => void state.storage.sql.exec(statement);

  it('fails closed when the audit record of a claimed exchange cannot be written: no token, and the token stays used', async () => {
    const { exchange, broker } = await setup();
    // Every audit shard, so whichever this identity's is cannot write.
    const everyShard = (statement: string) => Promise.all(sharedAuditShardObjects().map((shard) => runInDurableObject(shard, sql(statement))));
    await everyShard('ALTER TABLE audit_events RENAME TO audit_events_away');
    try {
      const unrecorded = await exchange();
      expect(unrecorded.status).toBe(503);
      expect(unrecorded.body).not.toHaveProperty('access_token');
    } finally {
      await everyShard('ALTER TABLE audit_events_away RENAME TO audit_events');
    }
    const retry = await exchange();
    expect(retry.status).toBe(400);
    expect(await broker.auditEvent(retry.body['audit_event_id'] as string)).toMatchObject({ reason: 'replayed' });
  });

  it('answers 503 when single use cannot be checked, and grants the same token once it can', async () => {
    const { exchange, broker, shard } = await setup();
    await runInDurableObject(shard, sql('ALTER TABLE replay_claims RENAME TO replay_claims_away'));
    try {
      const unchecked = await exchange();
      expect(unchecked.status).toBe(503);
      expect(unchecked.body).not.toHaveProperty('access_token');
      expect(await broker.auditEvent(unchecked.body['audit_event_id'] as string)).toMatchObject({ decision: 'error', reason: 'replay_guard_unavailable' });
    } finally {
      await runInDurableObject(shard, sql('ALTER TABLE replay_claims_away RENAME TO replay_claims'));
    }
    expect((await exchange()).status).toBe(200);
  });
});
