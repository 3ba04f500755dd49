import { runInDurableObject } from 'cloudflare:test';
import { describe, expect, inject, it } from 'vitest';
import { auditShardOf } from '../../src/core/audit/audit-shards.ts';
import { replayKey } from '../../src/core/replay/replay-key.ts';
import { readAuditShards } from '../../src/runtimes/workers/audit-shard-state.ts';
import { replayShard } from '../../src/runtimes/workers/replay-guard-state.ts';
import { exchangeForm, freshIssuer, postToken } from '../suites/exchange-suite.ts';
import { replaySuite } from '../suites/replay-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { sharedAuditShardObjects, startWorkersHarness, workerEnv } from './workers-harness.ts';

replaySuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));

describe('single use across the Workers shards', () => {
  it('refuses a jti signed again for an identity of another audit shard: the claim is by issuer and jti, on one replay shard', async () => {
    const github = freshIssuer(inject('testIssuerBase'), 'single-shards');
    const broker = await startWorkersHarness({
      'deploy.yaml': `version: 1\nissuer: { kind: github, url: "${github.url}" }\nsingle_use: true\nmatch:\n  repository_id: "734201"\ngrant:\n  audience: https://deploy.acme.dev\n`,
    });
    const shards = readAuditShards(workerEnv);
    const claims = ciClaims(github.url, broker.issuer);
    const first = await postToken(broker, exchangeForm(await github.sign(claims)));
    expect(first.status).toBe(200);
    const granted = await broker.auditEvent(first.body['audit_event_id'] as string);
    const home = auditShardOf(granted as NonNullable<typeof granted>, shards);
    // Branch after branch until the identity's records go to another chain (and its subject limit to another bucket).
    const branch = Array.from({ length: 64 }, (_, n) => `repo:acme/api:ref:refs/heads/b${n}`).find(
      (sub) => auditShardOf({ ...(granted as NonNullable<typeof granted>), subject: sub }, shards) !== home,
    );
    expect(branch).toBeDefined();
    const again = await postToken(broker, exchangeForm(await github.sign({ ...claims, sub: branch, ref: 'refs/heads/b' })));
    expect(again.status, JSON.stringify(again.body)).toBe(400);
    expect(again.body).not.toHaveProperty('access_token');
    const refused = await broker.auditEvent(again.body['audit_event_id'] as string);
    expect(refused).toMatchObject({ reason: 'replayed', subject: branch });
    expect(auditShardOf(refused as NonNullable<typeof refused>, shards)).not.toBe(home);
    expect(refused?.detail).toContain(granted?.id);
  });
});

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

describe('single use on Workers across a policy change', () => {
  it("keeps a claim past the issuer's maximum age: a used token is replayed, not granted, by a deployment that raised max_token_age", async () => {
    const issuer = freshIssuer(inject('testIssuerBase'), 'single-age-w');
    const policy = (maxAge: string) =>
      `version: 1\nissuer: { kind: oidc, url: "${issuer.url}"${maxAge} }\nsingle_use: true\nmatch:\n  sub: svc-release\ngrant:\n  audience: https://release.acme.dev\n`;
    const issuedAt = Math.floor(Date.now() / 1000);
    let clock = issuedAt * 1000;
    const before = await startWorkersHarness({ 'release.yaml': policy('') }, { ownState: true, now: () => clock });
    // A GitLab job's token lives for the job's timeout, beyond the hour the preset accepts it for.
    const token = await issuer.sign({
      iss: issuer.url,
      aud: before.issuer,
      sub: 'svc-release',
      jti: crypto.randomUUID(),
      iat: issuedAt,
      exp: issuedAt + 3 * 3600,
    });
    clock += 5 * 60_000;
    const first = await postToken(before, exchangeForm(token));
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    clock += 60 * 60_000;
    expect(await before.auditEvent((await postToken(before, exchangeForm(token))).body['audit_event_id'] as string)).toMatchObject({
      reason: 'token_too_old',
    });
    // The deployment that lets late jobs exchange (docs/ci/gitlab.md): the token verifies again, its claim in the same shard must still stand.
    const after = await startWorkersHarness({ 'release.yaml': policy(', max_token_age: 3h') }, { ownState: true, now: () => clock });
    const again = await postToken(after, exchangeForm(token));
    expect(again.status, JSON.stringify(again.body)).toBe(400);
    expect(again.body).not.toHaveProperty('access_token');
    const refused = await after.auditEvent(again.body['audit_event_id'] as string);
    expect(refused).toMatchObject({ reason: 'replayed' });
    expect(refused?.detail).toContain(first.body['audit_event_id']);
  });
});
