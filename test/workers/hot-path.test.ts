import { createExecutionContext } from 'cloudflare:test';
import { describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { replayKey } from '../../src/core/replay/replay-key.ts';
import type { AuditShardState } from '../../src/runtimes/workers/audit-shard-state.ts';
import type { KeywayState } from '../../src/runtimes/workers/keyway-state.ts';
import type { RateLimitState } from '../../src/runtimes/workers/rate-limit-state.ts';
import type { ReplayGuardState } from '../../src/runtimes/workers/replay-guard-state.ts';
import { createWorkerBroker } from '../../src/runtimes/workers/worker-broker.ts';
import { exchangeForm, freshIssuer, postToken } from '../suites/exchange-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { ownStateNamespace, watchedNamespace, workerEnv } from './workers-harness.ts';

// Issue 15: what one exchange on Workers waits on. Nothing global but the audit append.
describe('the Workers exchange path', () => {
  it('waits on one replay-guard shard per single-use exchange, and reads no signing key from the state object', async () => {
    const github = freshIssuer(inject('testIssuerBase'), 'hot-path');
    const replay = watchedNamespace<DurableObjectNamespace<ReplayGuardState>>(workerEnv.REPLAY);
    const state = watchedNamespace<DurableObjectNamespace<KeywayState>>(ownStateNamespace());
    const limits = watchedNamespace<DurableObjectNamespace<RateLimitState>>(workerEnv.LIMITS);
    const audit = watchedNamespace<DurableObjectNamespace<AuditShardState>>(workerEnv.AUDIT);
    const env = { ...workerEnv, REPLAY: replay.namespace, STATE: state.namespace, LIMITS: limits.namespace, AUDIT: audit.namespace };
    const policy = `version: 1\nissuer: { kind: github, url: "${github.url}" }\nsingle_use: true\nmatch:\n  repository_id: "734201"\ngrant:\n  audience: https://deploy.acme.dev\n`;
    const broker = await createWorkerBroker(env, [{ path: 'deploy.yaml', text: policy }], { log: silentLogger });
    const client = {
      issuer: env.KEYWAY_ISSUER,
      request: async (path: string, init?: RequestInit) => {
        const sent = new Request(`${env.KEYWAY_ISSUER}${path}`, init);
        sent.headers.set('cf-connecting-ip', '203.0.113.9');
        return broker.app.fetch(sent, env, createExecutionContext());
      },
    };
    // The isolate read its key ring once, as it started.
    expect(state.calls.filter((method) => method === 'listKeys')).toHaveLength(1);
    state.calls.length = 0;

    let firstGrantQuestions = 0;
    for (let round = 0; round < 8; round += 1) {
      replay.names.length = 0;
      replay.calls.length = 0;
      limits.names.length = 0;
      audit.calls.length = 0;
      const claims = ciClaims(github.url, env.KEYWAY_ISSUER);
      const token = await github.sign(claims);
      const granted = await postToken(client, exchangeForm(token));
      expect(granted.status).toBe(200);
      expect(granted.body['access_token']).toBeTypeOf('string');
      // One claim in one shard: the one the token's key picks.
      expect(replay.calls).toEqual(['claim']);
      expect(replay.names).toEqual([`replay-${Number.parseInt(replayKey(token, github.url, claims['jti']).key.slice(0, 1), 16)}`]);
      // One object per rate limit: the client's, one global budget, the subject's.
      expect(limits.names).toHaveLength(3);
      expect(limits.names[1]).toMatch(/^global-60000-2000-budget-\d+$/);
      // One append, in the one audit shard the identity hashes to.
      expect(audit.calls.filter((method) => method === 'append')).toHaveLength(1);
      firstGrantQuestions += audit.calls.filter((method) => method === 'firstGrantBy').length;
      // The second exchange of the same token asks the same one shard, and is refused there.
      replay.names.length = 0;
      audit.calls.length = 0;
      const replayed = await postToken(client, exchangeForm(token));
      expect(audit.calls.filter((method) => method === 'append')).toHaveLength(1);
      expect(replayed.status).toBe(400);
      expect(replayed.body).toMatchObject({ error: 'invalid_request' });
      expect(replayed.body).not.toHaveProperty('access_token');
      expect(await broker.audit.log.get(replayed.body['audit_event_id'] as string)).toMatchObject({ reason: 'replayed' });
      expect(replay.names).toHaveLength(1);
    }
    // Every exchange was signed from the isolate's cached key ring.
    expect(state.calls.filter((method) => method === 'listKeys' || method === 'describeKeys')).toEqual([]);
    // The policy's first grant was asked of its shard once, not on each of the 8 grants.
    expect(firstGrantQuestions).toBe(1);
    // The audit log is in the shards: nothing was appended to the state object.
    expect(state.calls).not.toContain('append');
  });
});
