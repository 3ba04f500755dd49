import { createExecutionContext, runInDurableObject } from 'cloudflare:test';
import { base64url, decodeJwt } from 'jose';
import { silentLogger } from '../../src/core/log.ts';
import { describe, expect, inject, it } from 'vitest';
import { ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS } from '../../src/core/mint/verify-access-token.ts';
import { revocationKey } from '../../src/core/revocation/revocation-list.ts';
import { REVOCATION_PREFIX, replayShard, revocationShards, type ReplayGuardState } from '../../src/runtimes/workers/replay-guard-state.ts';
import { createWorkerBroker } from '../../src/runtimes/workers/worker-broker.ts';
import { exchangeForm, freshIssuer, postToken } from '../suites/exchange-suite.ts';
import { revocationSuite } from '../suites/revocation-suite.ts';
import { ownStateNamespace, startWorkersHarness, watchedNamespace, workerEnv } from './workers-harness.ts';

revocationSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));

describe('revocations on Workers', () => {
  it("are kept in the key's own revocation shard until the token's exp and the clock skew tolerated beyond it, not in one global object", async () => {
    const ci = freshIssuer(inject('testIssuerBase'), 'revocation-shard');
    await ci.rotate({ alg: 'ES256' });
    const broker = await startWorkersHarness(
      {
        'svc.yaml': `version: 1\nissuer: { kind: oidc, url: "${ci.url}", extra_algorithms: [ES256] }\nmatch: { sub: svc-a }\ngrant: { audience: https://a.example }\n`,
      },
      { ownState: true },
    );
    const now = Math.floor(Date.now() / 1000);
    const subject = await ci.sign({ iss: ci.url, aud: broker.issuer, sub: 'svc-a', iat: now, exp: now + 300 }, { alg: 'ES256' });
    const token = (await postToken(broker, exchangeForm(subject))).body['access_token'] as string;
    const { jti, exp } = decodeJwt(token);
    const revoked = await broker.request('/revoke', {
      method: 'POST',
      body: new URLSearchParams({ token }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(revoked.status).toBe(200);
    const key = revocationKey(String(jti));
    const rows = await runInDurableObject(replayShard(workerEnv.REPLAY, key, REVOCATION_PREFIX), (_instance, state) =>
      state.storage.sql.exec<{ expires_at: number }>('SELECT expires_at FROM replay_claims WHERE key = ?', key).toArray(),
    );
    expect(rows).toEqual([{ expires_at: (exp as number) + ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS }]);
    // The single-use shard of the same number holds nothing of it.
    const replayRows = await runInDurableObject(replayShard(workerEnv.REPLAY, key), (_instance, state) =>
      state.storage.sql.exec('SELECT 1 FROM replay_claims WHERE key = ?', key).toArray(),
    );
    expect(replayRows).toEqual([]);
  });

  it('revokes many tokens together and reads them together across the revocation shards, each answered in its order', async () => {
    const list = revocationShards(workerEnv.REPLAY);
    const now = Date.now();
    const exp = Math.floor(now / 1000) + 600;
    const jtis = Array.from({ length: 64 }, () => crypto.randomUUID());
    const revoked = jtis.filter((_, index) => index % 3 !== 0);
    // Spread over the shards, as a job's many tokens are.
    expect(new Set(revoked.map((jti) => revocationKey(jti).slice(0, 1))).size).toBeGreaterThan(8);
    await list.revokeAll(
      revoked.map((jti) => ({ jti, exp, auditEventId: `01AUDIT${jti}` })),
      now,
    );
    expect(await list.areRevoked(jtis, now)).toEqual(jtis.map((_, index) => index % 3 !== 0));
    expect(await list.isRevoked(revoked[0] as string, now)).toBe(true);
  });

  it('are read for an operator token only once its signature verified: a flood of forged tokens naming one shard reaches no revocation shard', async () => {
    const ci = freshIssuer(inject('testIssuerBase'), 'revocation-forged');
    await ci.rotate({ alg: 'ES256' });
    const replay = watchedNamespace<DurableObjectNamespace<ReplayGuardState>>(workerEnv.REPLAY);
    const env = { ...workerEnv, REPLAY: replay.namespace, STATE: ownStateNamespace() };
    const policy = `version: 1\nissuer: { kind: oidc, url: "${ci.url}", extra_algorithms: [ES256] }\nmatch: { sub: svc-reader }\ngrant: { audience: ${env.KEYWAY_ISSUER}, scopes: [audit:read] }\n`;
    const broker = await createWorkerBroker(env, [{ path: 'reader.yaml', text: policy }], { log: silentLogger });
    const request = async (path: string, init?: RequestInit) =>
      broker.app.fetch(new Request(`${env.KEYWAY_ISSUER}${path}`, init), env, createExecutionContext());
    const now = Math.floor(Date.now() / 1000);
    const subject = await ci.sign({ iss: ci.url, aud: env.KEYWAY_ISSUER, sub: 'svc-reader', iat: now, exp: now + 300 }, { alg: 'ES256' });
    const reader = (await postToken({ issuer: env.KEYWAY_ISSUER, request }, exchangeForm(subject))).body['access_token'] as string;
    const events = (token: string) => request('/v1/audit/events?limit=1', { headers: { authorization: `Bearer ${token}` } });
    const revocationReads = () => replay.names.filter((name) => name.startsWith(`${REVOCATION_PREFIX}-`)).length;
    expect((await events(reader)).status).toBe(200);
    expect(revocationReads()).toBe(1);

    // Chosen jtis whose revocation keys all land in shard 0, under the reader's header and claims and its signature.
    const [header, , signature] = reader.split('.');
    const jtis: string[] = [];
    for (let candidate = 0; jtis.length < 20; candidate += 1) if (revocationKey(`aimed-${candidate}`).startsWith('0')) jtis.push(`aimed-${candidate}`);
    replay.names.length = 0;
    for (const jti of jtis) {
      const forged = `${header}.${base64url.encode(JSON.stringify({ ...decodeJwt(reader), jti }))}.${signature}`;
      const refused = await events(forged);
      expect([refused.status, await refused.json()]).toEqual([
        401,
        { error: 'invalid_token', error_description: 'the access token is not valid', audit_event_id: expect.any(String) },
      ]);
    }
    expect(revocationReads()).toBe(0);
  });
});
