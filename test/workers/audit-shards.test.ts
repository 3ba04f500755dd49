import { createExecutionContext, createScheduledController, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from 'cloudflare:test';
import { createLocalJWKSet, decodeJwt, type JSONWebKeySet } from 'jose';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { inject } from 'vitest';
import type { AuditEvent, AuditStore } from '../../src/core/audit/audit-event.ts';
import { LEGACY_CHAIN, ShardedAuditLog } from '../../src/core/audit/sharded-audit-log.ts';
import { RecordMacs, recordMacKeys } from '../../src/core/audit/record-mac.ts';
import { readMasterKeys, type MasterKeys } from '../../src/core/secrets/master-keys.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { exportedAuditLog } from '../../src/storage/sharded-state-export.ts';
import { chainStore } from '../../src/runtimes/workers/audit-chain-object.ts';
import { auditShardOf } from '../../src/core/audit/audit-shards.ts';
import type { AuditRecordJson } from '../../src/core/audit/record-json.ts';
import { verifyRootCheckpoint, type RootCheckpoint } from '../../src/core/audit/root-checkpoint.ts';
import { verifyShardedAuditLog } from '../../src/core/audit/verify-shards.ts';
import { remoteAuditLog } from '../../src/cli/remote-audit-log.ts';
import { silentLogger, type LogFields, type Logger } from '../../src/core/log.ts';
import { auditShard, type AuditShardState } from '../../src/runtimes/workers/audit-shard-state.ts';
import { keywayState, stateStores, type KeywayState } from '../../src/runtimes/workers/keyway-state.ts';
import { durableObjectSql } from '../../src/runtimes/workers/durable-object-sql.ts';
import { checkpointSigner } from '../../src/core/audit/sign-checkpoint.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { appendForgedRecord } from '../support/forged-record.ts';
import { shardedAuditUpkeep } from '../../src/runtimes/workers/worker-audit-log.ts';
import { createWorkerBroker, type WorkerBroker } from '../../src/runtimes/workers/worker-broker.ts';
import worker from '../../src/runtimes/workers/main.ts';
import { auditorPolicies, auditorToken } from '../suites/audit-api-suite.ts';
import { pageCookie } from '../support/audit-page-sign-in.ts';
import { exchangeForm, freshIssuer } from '../suites/exchange-suite.ts';
import { auditEvent } from '../suites/store-contract.ts';
import type { TestIssuer } from '../support/test-issuer.ts';
import type { RateLimitState } from '../../src/runtimes/workers/rate-limit-state.ts';
import { failedAuditRound, ownStateNamespace, workerEnv } from './workers-harness.ts';

/** A deployment of its own: a KeywayState, audit shards and rate-limit buckets no other test reaches. */
interface Deployment {
  readonly states: DurableObjectNamespace<KeywayState>;
  readonly shards: DurableObjectNamespace<AuditShardState>;
  readonly limits: DurableObjectNamespace<RateLimitState>;
}

const fresh = (): Deployment => ({ states: ownStateNamespace(), shards: ownStateNamespace(workerEnv.AUDIT), limits: ownStateNamespace(workerEnv.LIMITS) });

describe('the sharded audit log on Workers (workerd)', () => {
  let service: TestIssuer;
  let people: TestIssuer;
  const policies = () => ({
    'shards/service.yaml': `version: 1\nissuer: "${service.url}"\nmatch: { sub: { glob: "svc-*" } }\ngrant: { audience: https://shards.example }\n`,
    ...auditorPolicies(people, workerEnv.KEYWAY_ISSUER),
    'auditors/carol.yaml': `version: 1\nissuer: "${people.url}"\nmatch: { sub: carol@acme.dev }\ngrant: { audience: ${workerEnv.KEYWAY_ISSUER}, scopes: [audit:read, policy:explain] }\n`,
  });

  async function start(deployment: Deployment, shards: number, settings: Record<string, string> = {}) {
    const env = {
      ...workerEnv,
      ...settings,
      STATE: deployment.states,
      AUDIT: deployment.shards,
      LIMITS: deployment.limits,
      KEYWAY_AUDIT_SHARDS: String(shards),
    };
    const files = Object.entries(policies()).map(([path, text]) => ({ path, text }));
    const broker: WorkerBroker = await createWorkerBroker(env, files, { log: silentLogger });
    const client = {
      issuer: workerEnv.KEYWAY_ISSUER,
      request: async (path: string, init?: RequestInit) => {
        const ctx = createExecutionContext();
        const response = await broker.app.fetch(new Request(`${workerEnv.KEYWAY_ISSUER}${path}`, init), env, ctx);
        // The alert rules run after the answer, in waitUntil: done before the next request.
        await waitOnExecutionContext(ctx);
        return response;
      },
    };
    const token = await auditorToken(client, people);
    const get = (path: string, bearer: string | null = token) =>
      client.request(path, bearer === null ? {} : { headers: { authorization: `Bearer ${bearer}` } });
    return {
      broker,
      client,
      token,
      get,
      /** An exchange of a token of the service issuer for `sub`; with the `foreign` key, one that does not verify. */
      exchange: async (sub: string, from?: string, key: 'published' | 'foreign' = 'published') => {
        const now = Math.floor(Date.now() / 1000);
        const claims = { iss: service.url, aud: workerEnv.KEYWAY_ISSUER, sub, iat: now, exp: now + 300, jti: crypto.randomUUID() };
        const subjectToken = await service.sign(claims, { key });
        const headers = { 'content-type': 'application/x-www-form-urlencoded', ...(from === undefined ? {} : { 'cf-connecting-ip': from }) };
        const response = await client.request('/token', { method: 'POST', body: exchangeForm(subjectToken), headers });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      },
      upkeep: (now = Date.now(), log: Logger = silentLogger) => shardedAuditUpkeep(broker.audit, { env, keys: broker.keys.ring, now, log }),
      /** The Worker's own `scheduled` handler, as the Cron Trigger calls it: key upkeep, then the audit round. */
      cron: (scheduledTime = Date.now()) => worker.scheduled(createScheduledController({ scheduledTime, cron: '*/5 * * * *' }), env),
      verify: async () => {
        const log = await remoteAuditLog((path, params, authorized = true) =>
          get(`${path}${params === undefined ? '' : `?${params}`}`, authorized ? token : null),
        );
        if (!('chains' in log)) throw new Error('a Workers deployment lists its shards');
        return verifyShardedAuditLog(log);
      },
      shardList: async () =>
        (
          (await (await get('/v1/audit/shards')).json()) as {
            shards: { shard: string; head: { seq: number; hash: string }; appends?: number; append_ms?: number }[];
          }
        ).shards,
    };
  }

  /** The shard an exchange by `sub` of the service issuer lands in. */
  const shardOfSubject = (sub: string, shards: number) => auditShardOf({ ...auditEvent(), issuer: service.url, subject: sub } as AuditEvent, shards);
  /** A subject (`svc-…`: the policy matches it; another prefix: it does not) whose exchanges land in `shard`. */
  const subjectIn = (shard: number, shards: number, label: string, prefix = 'svc-') => {
    for (let index = 0; ; index += 1) if (shardOfSubject(`${prefix}${label}-${index}`, shards) === shard) return `${prefix}${label}-${index}`;
  };
  const editRecord = (deployment: Deployment, shard: number, sql: string, params: unknown[]) =>
    runInDurableObject(auditShard(deployment.shards, shard), (_instance, state) => void state.storage.sql.exec(sql, ...params));

  beforeAll(() => {
    service = freshIssuer(inject('testIssuerBase'), 'shards-svc');
    people = freshIssuer(inject('testIssuerBase'), 'shards-people');
  });

  describe('1,000 exchanges across 16 shards', () => {
    const deployment = fresh();
    let broker: Awaited<ReturnType<typeof start>>;
    const ids: string[] = [];

    beforeAll(async () => {
      broker = await start(deployment, 16);
      for (let batch = 0; batch < 10; batch += 1) {
        const answers = await Promise.all(Array.from({ length: 100 }, (_, index) => broker.exchange(`svc-spread-${batch * 100 + index}`)));
        for (const answer of answers) {
          expect(answer.status).toBe(200);
          ids.push(answer.body['audit_event_id'] as string);
        }
      }
      await broker.upkeep();
    }, 120_000);

    it('spreads them with no shard above twice the mean, and each shard reports its appends and their time inside it', async () => {
      const shards = await broker.shardList();
      expect(shards.map(({ shard }) => shard)).toEqual(Array.from({ length: 16 }, (_, shard) => String(shard)));
      // The auditor's own exchange is in the log too.
      const total = shards.reduce((sum, { head }) => sum + head.seq, 0);
      expect(total).toBe(ids.length + 1);
      const mean = total / 16;
      for (const { head, appends, append_ms } of shards) {
        expect(head.seq).toBeGreaterThan(0);
        expect(head.seq).toBeLessThanOrEqual(2 * mean);
        expect(appends).toBe(head.seq);
        expect(append_ms).toBeGreaterThanOrEqual(0);
      }
    });

    it('signs a root checkpoint that covers every shard at its head', async () => {
      const latest = await broker.get('/v1/audit/root-checkpoints/latest', null);
      expect(latest.status).toBe(200);
      const jwks = (await (await broker.get('/v1/audit/keys', null)).json()) as JSONWebKeySet;
      const { jws } = (await latest.json()) as RootCheckpoint;
      const root = await verifyRootCheckpoint(jws, createLocalJWKSet(jwks));
      expect(decodeJwt(jws).iss).toBe(workerEnv.KEYWAY_ISSUER);
      const heads = Object.fromEntries((await broker.shardList()).map(({ shard, head }) => [shard, head]));
      expect(root.heads).toEqual(heads);
      expect(Object.keys(root.heads)).toHaveLength(16);
    });

    it('returns every record once, in time order, across pages of a query that spans the shards', async () => {
      const seen: string[] = [];
      const sizes: number[] = [];
      let cursor: string | undefined;
      do {
        const params = new URLSearchParams({ limit: '37', ...(cursor === undefined ? {} : { cursor }) });
        const page = (await (await broker.get(`/v1/audit/events?${params}`)).json()) as { events: AuditRecordJson[]; next_cursor?: string };
        seen.push(...page.events.map((event) => event.id));
        sizes.push(page.events.length);
        cursor = page.next_cursor;
      } while (cursor !== undefined);
      // Every page holds the limit, the last at most: a merge of the shards' pages takes no more than it was asked for.
      expect(sizes.slice(0, -1).filter((size) => size !== 37)).toEqual([]);
      expect(sizes.at(-1)).toBeLessThanOrEqual(37);
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen).toEqual([...seen].sort().reverse());
      expect(seen.filter((id) => ids.includes(id)).sort()).toEqual([...ids].sort());
      const stats = (await (await broker.get('/v1/audit/stats?since=1h&bucket=hour')).json()) as { totals: { granted: number } };
      expect(stats.totals.granted).toBe(seen.length);
    });

    it('verifies every shard against the root checkpoints, then names the shard and record of an edit in any one of them', async () => {
      expect(await broker.verify()).toMatchObject({ ok: true, root_checkpoints: 1 });
      for (let shard = 0; shard < 16; shard += 1) {
        const [row] = await runInDurableObject(auditShard(deployment.shards, shard), (_instance, state) =>
          state.storage.sql.exec<{ id: string; seq: number; event: string }>('SELECT id, seq, event FROM audit_events ORDER BY seq LIMIT 1').toArray(),
        );
        if (row === undefined) throw new Error(`shard ${shard} holds no record`);
        await editRecord(deployment, shard, 'UPDATE audit_events SET event = ? WHERE seq = ?', [row.event.replace('"granted"', '"denied"'), row.seq]);
        try {
          expect(await broker.verify()).toMatchObject({ ok: false, problem: { kind: 'edited', shard: String(shard), seq: row.seq, id: row.id } });
        } finally {
          await editRecord(deployment, shard, 'UPDATE audit_events SET event = ? WHERE seq = ?', [row.event, row.seq]);
        }
      }
      expect(await broker.verify()).toMatchObject({ ok: true });
    }, 120_000);
  });

  it('one shard unavailable: its exchanges get 503 and no token, the others keep working, and nothing is lost', async () => {
    const deployment = fresh();
    const broker = await start(deployment, 4);
    const down = subjectIn(2, 4, 'down');
    const up = subjectIn(1, 4, 'up');
    const before = await broker.exchange(down);
    expect(before.status).toBe(200);
    const explainer = await auditorToken(broker.client, people, 'carol@acme.dev', 'audit:read policy:explain');
    // Signed in while every shard is up: the sign-in's record goes to whichever its hash picks.
    const cookie = await pageCookie(broker.client, broker.token);
    // Shard 2 fails inside its own object, across real RPC. workerd, run --verbose by the pool, logs every Durable
    // Object call that throws, even one its caller handles: the append and the read below each print "uncaught
    // exception; source = Uncaught (in promise); stack = Error: no such table: audit_events". Expected: only a fake
    // stub outside the object would keep the log quiet, and it would prove less.
    await editRecord(deployment, 2, 'ALTER TABLE audit_events RENAME TO audit_events_away', []);
    try {
      const refused = await broker.exchange(down);
      expect(refused.status).toBe(503);
      expect(refused.body['error']).toBe('temporarily_unavailable');
      expect(refused.body).not.toHaveProperty('access_token');
      const granted = await broker.exchange(up);
      expect(granted.status).toBe(200);
      expect(granted.body['access_token']).toBeTypeOf('string');
      // Reading the whole log says which shard it cannot read, rather than answer without its records.
      const read = await broker.get('/v1/audit/events');
      expect(read.status).toBe(503);
      expect(await read.json()).toMatchObject({ error: 'temporarily_unavailable', error_description: expect.stringContaining('audit shard 2 cannot be read') });
      // So does reading that one chain on its own: its export.
      const chain = await broker.get('/v1/audit/export?shard=2');
      expect(chain.status).toBe(503);
      expect(await chain.json()).toMatchObject({
        error: 'temporarily_unavailable',
        error_description: expect.stringContaining('audit shard 2 cannot be read'),
      });
      // The /audit page says so too: a 503 page for the signed-in auditor, not a 500.
      for (const path of ['/audit', `/audit/events/${String(before.body['audit_event_id'])}`, '/audit/inventory']) {
        const page = await broker.client.request(path, { headers: { cookie } });
        expect(page.status, path).toBe(503);
        expect(page.headers.get('retry-after')).toBe('5');
        expect(await page.text()).toContain('audit shard 2 cannot be read');
      }
      // An explanation of one of its records too: a 503 to retry, not a 500.
      const id = String(before.body['audit_event_id']);
      for (const [path, init] of [
        [`/v1/audit/events/${id}/explanation`, {}],
        ['/v1/policy/explain', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ audit_event_id: id }) }],
      ] as const) {
        const explained = await broker.client.request(path, { ...init, headers: { ...init.headers, authorization: `Bearer ${explainer}` } });
        expect(explained.status, path).toBe(503);
        expect(explained.headers.get('retry-after'), path).toBe('5');
        expect(await explained.json(), path).toMatchObject({
          error: 'temporarily_unavailable',
          error_description: expect.stringContaining('audit shard 2 cannot be read'),
        });
      }
    } finally {
      await editRecord(deployment, 2, 'ALTER TABLE audit_events_away RENAME TO audit_events', []);
    }
    expect(await broker.broker.audit.log.get(before.body['audit_event_id'] as string)).toMatchObject({ subject: down, decision: 'granted' });
    await broker.upkeep();
    expect(await broker.verify()).toMatchObject({ ok: true });
  });

  it("remembers each shard's checkpoints from one Cron round to the next in the state object: one deleted from a shard fails the next round, which signs and prunes nothing", async () => {
    const deployment = fresh();
    const broker = await start(deployment, 2, { KEYWAY_AUDIT_RETENTION_DAYS: '30' });
    const errors: LogFields[] = [];
    const log: Logger = { ...silentLogger, error: (_message, fields = {}) => void errors.push(fields) };
    const shard = auditShard(deployment.shards, 0);
    const sub = subjectIn(0, 2, 'remembered');
    for (let index = 0; index < 3; index += 1) expect((await broker.exchange(sub)).status).toBe(200);
    await broker.upkeep(Date.now(), log);
    for (let index = 0; index < 2; index += 1) expect((await broker.exchange(sub)).status).toBe(200);
    await broker.upkeep(Date.now(), log);
    // A round with nothing new holds to the memory too, and passes.
    await broker.upkeep(Date.now(), log);
    expect(errors).toEqual([]);
    const signed = await shard.checkpoints(0, 100);
    const newest = signed.at(-1);
    if (newest === undefined || signed.length < 2) throw new Error('two rounds signed two checkpoints in shard 0');
    // Between two rounds, the newest checkpoint goes from the shard's rows: the one before it is the newest left.
    await editRecord(deployment, 0, 'DELETE FROM audit_checkpoints WHERE seq = ?', [newest.seq]);
    expect((await broker.exchange(sub)).status).toBe(200);
    const head = await shard.head();
    // Forty days on, every record is past the retention: a round that held would prune them all.
    await expect(broker.upkeep(Date.now() + 40 * 86_400_000, log)).rejects.toMatchObject(failedAuditRound(1, 2));
    expect(errors).toEqual([
      {
        failed: [
          {
            chain: '0',
            error: `CheckpointsRolledBackError: the newest checkpoint stored is at seq ${signed.at(-2)?.seq}, but this broker signed one at seq ${newest.seq}: checkpoints were deleted from the store`,
          },
        ],
      },
    ]);
    expect(await shard.checkpoints(0, 100)).toEqual(signed.slice(0, -1));
    expect(await shard.head()).toEqual(head);
    const [kept] = await runInDurableObject(shard, (_instance, state) =>
      state.storage.sql.exec<{ n: number }>('SELECT count(*) AS n FROM audit_events').toArray(),
    );
    expect(kept?.n).toBe(head.seq);
  });

  it('signs no checkpoint and no root checkpoint over a shard whose checkpointed record was deleted, not pruned: the round fails for that shard', async () => {
    const deployment = fresh();
    const broker = await start(deployment, 2);
    const errors: LogFields[] = [];
    const log: Logger = { ...silentLogger, error: (_message, fields = {}) => void errors.push(fields) };
    const shard = auditShard(deployment.shards, 0);
    const sub = subjectIn(0, 2, 'deleted');
    for (let index = 0; index < 3; index += 1) expect((await broker.exchange(sub)).status).toBe(200);
    const root = await broker.upkeep(Date.now(), log);
    const signed = await shard.checkpoints(0, 100);
    const newest = signed.at(-1);
    if (newest === undefined || root === undefined) throw new Error('the round signed a checkpoint in shard 0 and a root checkpoint');
    // Between two rounds, the head moves on, and the record the newest checkpoint signs goes from the shard's rows.
    for (let index = 0; index < 2; index += 1) expect((await broker.exchange(sub)).status).toBe(200);
    await editRecord(deployment, 0, 'DELETE FROM audit_events WHERE seq = ?', [newest.seq]);
    await expect(broker.upkeep(Date.now(), log)).rejects.toMatchObject(failedAuditRound(1, 2));
    expect(errors).toEqual([
      { failed: [{ chain: '0', error: `ChainConflictError: record ${newest.seq} is gone, and no anchor pruning signed stands for it: it was deleted` }] },
    ]);
    expect(await shard.checkpoints(0, 100)).toEqual(signed);
    expect(await broker.broker.audit.api.latestRoot()).toEqual(root);
  });

  it("ends the Cron invocation failed when upkeep fails for a shard, so Cloudflare's Cron history shows it: one error line names the chain, and no root checkpoint is signed", async () => {
    const deployment = fresh();
    const broker = await start(deployment, 2);
    for (let index = 0; index < 2; index += 1) expect((await broker.exchange(subjectIn(0, 2, 'cron-failed'))).status).toBe(200);
    const root = await broker.upkeep();
    if (root === undefined) throw new Error('the round signed a root checkpoint');
    // A record after shard 0's checkpoint that the broker did not append; and shard 1's head moves, so a round that passed would sign a root.
    const forged = await runInDurableObject(auditShard(deployment.shards, 0), (_instance, state) => appendForgedRecord(durableObjectSql(state.storage)));
    expect((await broker.exchange(subjectIn(1, 2, 'cron-failed'))).status).toBe(200);
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      await expect(broker.cron()).rejects.toMatchObject(failedAuditRound(1, 2));
      expect(logged.mock.calls.map(([line]) => JSON.parse(String(line)) as LogFields)).toEqual([
        expect.objectContaining({
          level: 'error',
          message: 'audit shard upkeep failed; no root checkpoint this round',
          failed: [
            {
              chain: '0',
              error: `ChainConflictError: record ${forged} carries no MAC, though the broker has MACed every record after 0: the broker did not append it`,
            },
          ],
        }),
      ]);
    } finally {
      logged.mockRestore();
    }
    expect(await broker.broker.audit.api.latestRoot()).toEqual(root);
  });

  it('prunes the root checkpoints past the retention with the records they signed, never the newest: an export does not carry every one ever signed', async () => {
    const deployment = fresh();
    const broker = await start(deployment, 2, { KEYWAY_AUDIT_RETENTION_DAYS: '1' });
    const day = 86_400_000;
    const started = Date.now();
    const rootTimes = async () =>
      ((await (await broker.get('/v1/audit/root-checkpoints', null)).json()) as { root_checkpoints: RootCheckpoint[] }).root_checkpoints.map((root) =>
        Date.parse(root.time),
      );
    // A Cron round every other day, each after an exchange: each signs a root checkpoint.
    for (let round = 0; round < 4; round += 1) {
      expect((await broker.exchange(`svc-retained-${round}`)).status).toBe(200);
      expect(await broker.upkeep(started + round * 2 * day)).toBeDefined();
    }
    // The newest only: the others were signed before the last round's window (a day) began.
    expect(await rootTimes()).toEqual([Math.floor((started + 6 * day) / 1000) * 1000]);
    // Long after, a round with nothing new signs none, and keeps the newest however old.
    expect(await broker.upkeep(started + 30 * day)).toBeUndefined();
    expect(await rootTimes()).toHaveLength(1);
    expect(await broker.verify()).toMatchObject({ ok: true, root_checkpoints: 1 });
    const exported = JSON.parse((await broker.broker.audit.backup.exportState()) as string) as { root_checkpoints: RootCheckpoint[] };
    expect(exported.root_checkpoints).toHaveLength(1);
  });

  it("prunes every shard's records past the retention in the Cron round, and the root checkpoints signed before the window: the log verifies from each shard's anchor", async () => {
    const deployment = fresh();
    const broker = await start(deployment, 2, { KEYWAY_AUDIT_RETENTION_DAYS: '1' });
    const day = 86_400_000;
    const started = Date.now();
    for (const sub of [subjectIn(0, 2, 'pruned'), subjectIn(1, 2, 'pruned')]) expect((await broker.exchange(sub)).status).toBe(200);
    const first = await broker.upkeep(started);
    expect((await broker.exchange(subjectIn(0, 2, 'pruned-later'))).status).toBe(200);
    // A day and a half on: every record, and the first root checkpoint, were dated before the window (a day) began.
    const second = await broker.upkeep(started + 1.5 * day);
    if (first === undefined || second === undefined) throw new Error('each round signed a root checkpoint over heads that moved');
    const roots = ((await (await broker.get('/v1/audit/root-checkpoints', null)).json()) as { root_checkpoints: RootCheckpoint[] }).root_checkpoints;
    expect(roots.map((root) => root.jws)).toEqual([second.jws]);
    for (const shard of [0, 1]) {
      const [left] = await runInDurableObject(auditShard(deployment.shards, shard), (_instance, state) =>
        state.storage.sql.exec<{ n: number }>('SELECT count(*) AS n FROM audit_events').toArray(),
      );
      expect(left?.n, `shard ${shard}`).toBe(0);
    }
    const report = await broker.verify();
    expect(report).toMatchObject({ ok: true, root_checkpoints: 1 });
    expect(report.chains.map(({ shard, records, anchor }) => ({ shard, records, anchored: anchor !== undefined }))).toEqual([
      { shard: '0', records: 0, anchored: true },
      { shard: '1', records: 0, anchored: true },
    ]);
  });

  it('prunes a shard up to its newest checkpoint under a record after it without a MAC, keeps that record, and fails the round for that shard, as on Node', async () => {
    const deployment = fresh();
    const broker = await start(deployment, 2, { KEYWAY_AUDIT_RETENTION_DAYS: '1' });
    const errors: LogFields[] = [];
    const log: Logger = { ...silentLogger, error: (_message, fields = {}) => void errors.push(fields) };
    const started = Date.now();
    const sub = subjectIn(0, 2, 'unsigned-tail');
    for (let index = 0; index < 2; index += 1) expect((await broker.exchange(sub)).status).toBe(200);
    expect(await broker.upkeep(started)).toBeDefined();
    const signed = (await auditShard(deployment.shards, 0).latestCheckpoint())?.seq ?? 0;
    expect(signed).toBeGreaterThanOrEqual(2);
    // A record after the checkpoint that the broker did not append, dated as the others: past the window a day and a half on.
    const forged = await runInDurableObject(auditShard(deployment.shards, 0), (_instance, state) => appendForgedRecord(durableObjectSql(state.storage)));
    expect(forged).toBe(signed + 1);
    await expect(broker.upkeep(started + 1.5 * 86_400_000, log)).rejects.toMatchObject(failedAuditRound(1, 2));
    const refused = `ChainConflictError: record ${forged} carries no MAC, though the broker has MACed every record after 0: the broker did not append it`;
    expect(errors).toEqual([{ failed: [{ chain: '0', error: refused }] }]);
    // Pruned up to the checkpoint (now the anchor), not past it: the record nothing vouches for stays for audit verify.
    const left = await runInDurableObject(auditShard(deployment.shards, 0), (_instance, state) =>
      state.storage.sql.exec<{ seq: number }>('SELECT seq FROM audit_events ORDER BY seq').toArray(),
    );
    expect(left).toEqual([{ seq: forged }]);
    expect((await auditShard(deployment.shards, 0).checkpoints(0, 10)).map((checkpoint) => checkpoint.seq)).toEqual([signed]);
  });

  it("refuses a cursor one shard's export cannot read with a 400, as the whole log's export does, not a 500", async () => {
    const broker = await start(fresh(), 2);
    expect((await broker.exchange(subjectIn(0, 2, 'cursor'))).status).toBe(200);
    // A shard's export pages by seq: a record id is a cursor of the whole log, not of one chain.
    for (const cursor of ['01KAQN6Q00B3GQ1D5M0XW8T9ZB', 'ABC', '1234567890123456']) {
      const response = await broker.get(`/v1/audit/export?shard=0&cursor=${cursor}`);
      expect(response.status, cursor).toBe(400);
      expect(await response.json()).toEqual({ error: 'invalid_request', error_description: 'cursor is not one this API returned' });
    }
    expect((await broker.get('/v1/audit/export?shard=0&cursor=0')).status).toBe(200);
  });

  it("holds every chain to a withdrawal no record of is left (pruned, or never written): each shard's anchor pruning signed names the withdrawn key", async () => {
    const deployment = fresh();
    const broker = await start(deployment, 2, { KEYWAY_AUDIT_RETENTION_DAYS: '1' });
    const day = 86_400_000;
    const started = Date.now();
    // What a leak gives away: the current ring, private key and all. The key is withdrawn in the store (no record is written
    // here: the chains hold none of it once pruned either), and this isolate signs with its replacement.
    const stolen = broker.broker.keys.ring;
    const kid = stolen.signing.kid;
    expect(await stateStores(() => keywayState(deployment.states)).keys.withdrawKey(kid, started)).toMatchObject({ status: 'withdrawn' });
    await broker.broker.keys.refresh(started);
    for (const sub of [subjectIn(0, 2, 'pruned'), subjectIn(1, 2, 'pruned')]) expect((await broker.exchange(sub)).status).toBe(200);
    // A day and a half on, every record is pruned: each shard is its anchor.
    await broker.upkeep(started + 1.5 * day);
    // Read from the export, as keyway audit verify --backup reads it: the auditor's token was signed with the withdrawn key.
    const verify = async () => {
      const text = (await broker.broker.audit.backup.exportState()) as string;
      const log = await exportedAuditLog(text, { box: await SecretBox.fromMasterKeys(readMasterKeys(workerEnv) as MasterKeys) });
      if (!('chains' in log)) throw new Error('a sharded export reads as a sharded log');
      return verifyShardedAuditLog(log);
    };
    expect((await verify()).chains.map(({ shard, records }) => ({ shard, records }))).toEqual([
      { shard: '0', records: 0 },
      { shard: '1', records: 0 },
    ]);
    // A record after it in shard 1, and the thief's checkpoint of it, signed with the withdrawn key long after the withdrawal.
    expect((await broker.exchange(subjectIn(1, 2, 'after'))).status).toBe(200);
    const shard = broker.broker.audit.log.chains.find(({ name }) => name === '1')?.store;
    if (shard === undefined) throw new Error('shard 1 is a chain of the log');
    await shard.addCheckpoint(
      await checkpointSigner(
        workerEnv.KEYWAY_ISSUER,
        () => stolen,
        () => started + 1.5 * day + 60_000,
        '1',
      )(await shard.head()),
    );

    expect(await verify()).toMatchObject({
      ok: false,
      problem: { kind: 'checkpoint_key_withdrawn', shard: '1', kid, message: expect.stringMatching(/named by the anchor at seq \d+\), past the 75 s/) },
    });
  });

  it('prunes the alerts raised before the retention window in the Cron round: a flood of them does not fill the state object', async () => {
    const deployment = fresh();
    const broker = await start(deployment, 2, { KEYWAY_AUDIT_RETENTION_DAYS: '1' });
    const started = Date.now();
    // The first grant by a policy raises first_policy_exchange, stored in the state object as every alert is.
    expect((await broker.exchange('svc-alerted')).status).toBe(200);
    const state = keywayState(deployment.states);
    expect((await state.alerts(500)).length).toBeGreaterThan(0);
    await broker.upkeep(started + 0.5 * 86_400_000);
    expect((await state.alerts(500)).length).toBeGreaterThan(0);
    // A day and a half on, the window (a day) starts after them.
    await broker.upkeep(started + 1.5 * 86_400_000);
    expect(await state.alerts(500)).toEqual([]);
  });

  it('dates a root checkpoint signed in the second of the newest one a second after it: the newest is always the last listed', async () => {
    const broker = await start(fresh(), 2);
    const now = Date.now();
    const signed: RootCheckpoint[] = [];
    for (let round = 0; round < 3; round += 1) {
      expect((await broker.exchange(`svc-same-second-${round}`)).status).toBe(200);
      const root = await broker.upkeep(now);
      if (root === undefined) throw new Error('a round after an exchange signs a root checkpoint');
      signed.push(root);
    }
    const second = Math.floor(now / 1000) * 1000;
    expect(signed.map((root) => Date.parse(root.time))).toEqual([second, second + 1000, second + 2000]);
    const listed = ((await (await broker.get('/v1/audit/root-checkpoints', null)).json()) as { root_checkpoints: RootCheckpoint[] }).root_checkpoints;
    expect(listed.map((root) => root.jws)).toEqual(signed.map((root) => root.jws));
    expect(((await (await broker.get('/v1/audit/root-checkpoints/latest', null)).json()) as RootCheckpoint).jws).toBe(signed[2]?.jws);
    expect(await broker.verify()).toMatchObject({ ok: true, root_checkpoints: 3 });
  });

  it("remembers each shard's newest checkpoint on its own: a round that held one shard keeps the others', and an older head never replaces a newer one (rounds may overlap)", async () => {
    const state = keywayState(fresh().states);
    const head = (seq: number) => ({ seq, hash: seq.toString(16).padStart(64, '0') });
    await state.rememberSignedHeads({ '0': head(5), '1': head(3) });
    await state.rememberSignedHeads({ '0': head(7) });
    await state.rememberSignedHeads({ '0': head(6), '1': head(2) });
    expect(await state.signedHeads()).toEqual({ '0': head(7), '1': head(3) });
  });

  it("names each checkpoint's shard in what it signs: one shard's log copied into an empty shard, its checkpoint with it, does not verify there", async () => {
    const deployment = fresh();
    const broker = await start(deployment, 4);
    const sub = subjectIn(0, 4, 'copied');
    for (let index = 0; index < 3; index += 1) expect((await broker.exchange(sub)).status).toBe(200);
    await broker.upkeep();
    const target = (await broker.shardList()).find(({ head }) => head.seq === 0)?.shard;
    if (target === undefined) throw new Error('one of four shards is still empty');
    const rows = (shard: number, table: string) =>
      runInDurableObject(auditShard(deployment.shards, shard), (_instance, state) =>
        state.storage.sql.exec<Record<string, SqlStorageValue>>(`SELECT * FROM ${table} ORDER BY seq`).toArray(),
      );
    // Whoever could write shard 0's rows into the empty shard brings its signed checkpoint along.
    for (const table of ['audit_events', 'audit_checkpoints']) {
      for (const row of await rows(0, table)) {
        const columns = Object.keys(row);
        await editRecord(
          deployment,
          Number(target),
          `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
          Object.values(row),
        );
      }
    }
    const [copied] = await rows(0, 'audit_checkpoints');
    expect(await broker.verify()).toMatchObject({
      ok: false,
      problem: {
        kind: 'checkpoint_invalid',
        shard: target,
        seq: copied?.['seq'],
        message: expect.stringContaining(`signed for chain 0, but this is chain ${target}`),
      },
    });
  });

  it("holds the records a previous master key MACed after a shard's last checkpoint to KEYWAY_MASTER_KEY_PREVIOUS: the round signs them", async () => {
    const deployment = fresh();
    const broker = await start(deployment, 2);
    const errors: LogFields[] = [];
    const log: Logger = { ...silentLogger, error: (_message, fields = {}) => void errors.push(fields) };
    const sub = subjectIn(0, 2, 'rotated');
    for (let index = 0; index < 3; index += 1) expect((await broker.exchange(sub)).status).toBe(200);
    // Appended before the master key changed: MACed under the one KEYWAY_MASTER_KEY_PREVIOUS now names.
    const [previous] = (readMasterKeys(workerEnv) as MasterKeys).previous;
    if (previous === undefined) throw new Error('the workers project sets KEYWAY_MASTER_KEY_PREVIOUS');
    const macs = new RecordMacs(recordMacKeys({ current: previous, previous: [] }), { chain: '0' });
    const shard = auditShard(deployment.shards, 0);
    const head = await shard.head();
    expect(await shard.checkpoints(0, 10)).toEqual([]);
    const records = await runInDurableObject(shard, (_instance, state) =>
      state.storage.sql.exec<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_events ORDER BY seq').toArray(),
    );
    for (const { seq, hash } of records) await editRecord(deployment, 0, 'UPDATE audit_events SET mac = ? WHERE seq = ?', [macs.make({ seq, hash }), seq]);
    expect(await broker.upkeep(Date.now(), log)).toBeDefined();
    expect(errors).toEqual([]);
    expect((await shard.checkpoints(0, 10)).map(({ seq }) => seq)).toEqual([head.seq]);
  });

  it("binds each record's MAC to its shard: one shard's records copied into an empty shard, without its checkpoints, are not signed there by upkeep", async () => {
    const deployment = fresh();
    const broker = await start(deployment, 4);
    const errors: LogFields[] = [];
    const log: Logger = { ...silentLogger, error: (_message, fields = {}) => void errors.push(fields) };
    const sub = subjectIn(0, 4, 'moved');
    for (let index = 0; index < 3; index += 1) expect((await broker.exchange(sub)).status).toBe(200);
    const target = (await broker.shardList()).find(({ head }) => head.seq === 0)?.shard;
    if (target === undefined) throw new Error('one of four shards is still empty');
    // No round has signed shard 0 yet: its records, MACs and all, copied into the empty shard chain there as they did in shard 0.
    const records = await runInDurableObject(auditShard(deployment.shards, 0), (_instance, state) =>
      state.storage.sql.exec<Record<string, SqlStorageValue>>('SELECT * FROM audit_events ORDER BY seq').toArray(),
    );
    for (const row of records) {
      const columns = Object.keys(row);
      await editRecord(
        deployment,
        Number(target),
        `INSERT INTO audit_events (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
        Object.values(row),
      );
    }
    await expect(broker.upkeep(Date.now(), log)).rejects.toMatchObject(failedAuditRound(1, 4));
    expect(errors).toEqual([
      { failed: [{ chain: target, error: 'ChainConflictError: record 1 carries a MAC the master key did not make: the broker did not append it' }] },
    ]);
    expect(await auditShard(deployment.shards, Number(target)).checkpoints(0, 10)).toEqual([]);
    expect(await auditShard(deployment.shards, 0).checkpoints(0, 10)).toHaveLength(1);
  });

  it("signs where each shard's MACs start beside its head in the root checkpoint: a shard whose checkpoints were deleted, start raised and MACs stripped fails verify --macs", async () => {
    const deployment = fresh();
    const broker = await start(deployment, 2);
    for (const shard of [0, 1]) {
      const sub = subjectIn(shard, 2, 'mac-start');
      for (let index = 0; index < 3; index += 1) expect((await broker.exchange(sub)).status).toBe(200);
    }
    const root = await broker.upkeep();
    const [checkpoint] = await auditShard(deployment.shards, 0).checkpoints(0, 10);
    if (root === undefined || checkpoint === undefined) throw new Error('the round signed a checkpoint in shard 0 and a root checkpoint');
    // Each shard's, as its newest checkpoint signs it, in the signed payload.
    expect(decodeJwt(checkpoint.jws)['macs_after']).toBe(0);
    expect(decodeJwt(root.jws)).toMatchObject({ heads: root.heads, macs_after: { '0': 0, '1': 0 } });
    expect(root.macs_after).toEqual({ '0': 0, '1': 0 });

    // Whoever writes shard 0's storage: its checkpoints deleted, its own start raised past its records, every MAC taken out.
    // Its chain still passes through the head the root signed; only where MACs start, as the root signs it, tells.
    for (const sql of ['DELETE FROM audit_checkpoints', 'UPDATE audit_mac_start SET macs_after = 1000', 'UPDATE audit_events SET mac = NULL'])
      await editRecord(deployment, 0, sql, []);
    const master = readMasterKeys(workerEnv) as MasterKeys;
    const text = (await broker.broker.audit.backup.exportState()) as string;
    // The export as keyway audit verify --backup reads it, each time anew (its records are read once); with --macs, every
    // chain's records held to their MACs.
    const exported = async (macKeys?: ReturnType<typeof recordMacKeys>) => {
      const log = await exportedAuditLog(text, { box: await SecretBox.fromMasterKeys(master) });
      if (!('chains' in log)) throw new Error('a sharded export reads as a sharded log');
      return macKeys === undefined ? log : { ...log, chains: log.chains.map(({ name, source }) => ({ name, source: { ...source, macKeys } })) };
    };
    expect(await verifyShardedAuditLog(await exported())).toMatchObject({ ok: true });
    const withMacs = await verifyShardedAuditLog(await exported(recordMacKeys(master)));
    expect(withMacs).toMatchObject({
      ok: false,
      problem: { kind: 'mac_missing', shard: '0', seq: 1, message: expect.stringContaining('though the broker has MACed every record after 0') },
    });
  });

  it('grows the shard count: the chains stay verifiable and the root checkpoint covers the new shards; a lower count is refused', async () => {
    const deployment = fresh();
    const four = await start(deployment, 4);
    for (let index = 0; index < 20; index += 1) expect((await four.exchange(`svc-grow-${index}`)).status).toBe(200);
    // The Cron round's time, a few seconds before the count grows: the added shards' records are all later than its root.
    await four.upkeep(Date.now() - 5000);
    const eight = await start(deployment, 8);
    for (let index = 20; index < 40; index += 1) expect((await eight.exchange(`svc-grow-${index}`)).status).toBe(200);
    // Before the next round, the newest root names shards 0…3: the added ones, in no root yet, pass as shards added since.
    const between = await eight.verify();
    expect(between).toMatchObject({ ok: true, root_checkpoints: 1, latest_root: { chains: 4 } });
    expect(between.chains.filter((chain) => chain.unnamed === true).map((chain) => chain.shard)).toEqual(['4', '5', '6', '7']);
    await eight.upkeep();
    expect(await eight.verify()).toMatchObject({ ok: true, root_checkpoints: 2, latest_root: { chains: 8 } });
    const grown = await eight.shardList();
    expect(grown.filter(({ shard }) => Number(shard) >= 4).some(({ head }) => head.seq > 0)).toBe(true);

    await expect(start(deployment, 4)).rejects.toThrow(/KEYWAY_AUDIT_SHARDS is 4, but the audit log has 8 shards: fewer would orphan the records/);
    // Still refused after the refusal: the recorded count did not move.
    await expect(start(deployment, 7)).rejects.toThrow(/has 8 shards/);
  });

  it('alert rules across identities count across shards: an address refused for identities in three shards, a policy granting in two', async () => {
    const deployment = fresh();
    const settings = { KEYWAY_ALERT_RULES: 'denial_burst_address,first_policy_exchange,denial_burst_identity', KEYWAY_ALERT_BURST_THRESHOLD: '3' };
    const broker = await start(deployment, 16, settings);
    // Subjects the policy (svc-*) does not match, each in a shard of its own, all from one address.
    const refused = [3, 7, 11].map((shard) => subjectIn(shard, 16, 'spray', 'other-'));
    expect(new Set(refused.map((sub) => shardOfSubject(sub, 16))).size).toBe(3);
    for (const sub of refused) expect((await broker.exchange(sub, '203.0.113.9')).status).toBe(400);
    for (const shard of [1, 2]) expect((await broker.exchange(subjectIn(shard, 16, 'first'), '198.51.100.7')).status).toBe(200);
    const { alerts } = (await (await broker.get('/v1/audit/alerts')).json()) as { alerts: { rule: string; details: Record<string, unknown> }[] };
    expect(alerts.filter((alert) => alert.rule === 'denial_burst_address')).toEqual([
      expect.objectContaining({ details: expect.objectContaining({ client_ip: '203.0.113.9', denials: 3 }) }),
    ]);
    expect(alerts.filter((alert) => alert.rule === 'first_policy_exchange' && alert.details['policy'] === 'shards/service')).toHaveLength(1);
    expect(alerts.filter((alert) => alert.rule === 'denial_burst_identity')).toEqual([]);
  });

  it("counts an IPv6 client's refusals by its /64 across shards, as the per-client rate limit counts it, and names the network in the alert", async () => {
    const broker = await start(fresh(), 16, { KEYWAY_ALERT_RULES: 'denial_burst_address', KEYWAY_ALERT_BURST_THRESHOLD: '3' });
    // Identities in three shards, each refused from an address of its own, all of one host's /64; and one from the next /64.
    const refused = [3, 7, 11].map((shard) => subjectIn(shard, 16, 'v6-spray', 'other-'));
    expect((await broker.exchange(refused[0]!, '2001:db8:1:2::a')).status).toBe(400);
    expect((await broker.exchange(refused[1]!, '2001:db8:1:2:ffff::b')).status).toBe(400);
    expect((await broker.exchange(refused[0]!, '2001:db8:1:3::a')).status).toBe(400);
    expect((await broker.exchange(refused[2]!, '2001:db8:1:2:1:2:3:4')).status).toBe(400);
    const { alerts } = (await (await broker.get('/v1/audit/alerts')).json()) as {
      alerts: { rule: string; summary: string; details: Record<string, unknown> }[];
    };
    expect(alerts.filter((alert) => alert.rule === 'denial_burst_address')).toEqual([
      expect.objectContaining({
        summary: '3 refusals from 2001:db8:1:2::/64 within 300s',
        details: expect.objectContaining({ client_network: '2001:db8:1:2::/64', client_ip: '2001:db8:1:2:1:2:3:4', denials: 3 }),
      }),
    ]);
  });

  it("raises unverified_limit_reached once per window for each shard whose budget is spent, naming it: a decoy shard's flood does not take another's alert", async () => {
    const window = 3600;
    const settings = {
      KEYWAY_ALERT_RULES: 'unverified_limit_reached',
      KEYWAY_ALERT_BURST_WINDOW_SECONDS: String(window),
      KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '1',
      KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1',
    };
    // The windows are aligned to the clock: every flood must fall in one, so a test started in the last 20 s of one waits for the next.
    const leftInWindow = window * 1000 - (Date.now() % (window * 1000));
    if (leftInWindow < 20_000) await new Promise((resolve) => setTimeout(resolve, leftInWindow + 100));
    const broker = await start(fresh(), 16, settings);
    const [decoy, target] = [3, 7].map((shard) => subjectIn(shard, 16, 'flooded', 'other-')) as [string, string];
    // Each shard's budget of one record: its first forgery is recorded, its second is the first past the budget.
    const flood = async (sub: string) => {
      expect((await broker.exchange(sub, '203.0.113.5', 'foreign')).status).toBe(400);
      for (const _ of [1, 2, 3]) expect((await broker.exchange(sub, '203.0.113.5', 'foreign')).status).toBe(429);
    };
    await flood(decoy);
    await flood(target);
    const { alerts } = (await (await broker.get('/v1/audit/alerts')).json()) as {
      alerts: { rule: string; summary: string; details: Record<string, unknown> }[];
    };
    const raised = alerts.filter((alert) => alert.rule === 'unverified_limit_reached');
    expect(raised.map((alert) => alert.details['shard']).sort()).toEqual(['3', '7']);
    for (const alert of raised) {
      expect(alert.summary).toContain(`budget of audit shard ${alert.details['shard']}:`);
      expect(alert.details).toMatchObject({ refused_as: 'signature_invalid', client_ip: '203.0.113.5', window_seconds: window });
    }
  }, 60_000);

  it("counts an IPv6 address's refusals apart from a longer address it is a prefix of (1::2:3:4:5:6 and 1::2:3:4:5:6:7)", async () => {
    const shard = auditShard(fresh().shards, 0);
    const now = Date.now();
    for (let i = 0; i < 9; i += 1) await shard.countAddressRefusal('1::2:3:4:5:6:7', now, now - 60_000);
    expect(await shard.countAddressRefusal('1::2:3:4:5:6', now, now - 60_000)).toBe(1);
    expect(await shard.countAddressRefusal('1::2:3:4:5:6:7', now, now - 60_000)).toBe(10);
  });

  it("drops the refusal counts of every address once older than the window, those of addresses never seen again and an older keyway's included", async () => {
    const shard = auditShard(fresh().shards, 0);
    const start = Date.now() - 3_600_000;
    await runInDurableObject(shard, (_, state) =>
      state.storage.put({ 'alert:address:2001:db8::1/000001700000': 4, 'alert:address:2001:db8::2/000001700001': 1 }),
    );
    for (let host = 0; host < 40; host += 1) expect(await shard.countAddressRefusal(`2001:db8::${host.toString(16)}:1`, start, start - 60_000)).toBe(1);
    const later = start + 61_000;
    expect(await shard.countAddressRefusal('2001:db8::ffff:1', later, later - 60_000)).toBe(1);
    expect(await shard.countAddressRefusal('2001:db8::ffff:1', later, later - 60_000)).toBe(2);
    const keys = await runInDurableObject(shard, async (_, state) => [...(await state.storage.list({ prefix: 'alert:' })).keys()]);
    const key = encodeURIComponent('address 2001:db8::ffff:1');
    expect(keys.filter((stored) => !stored.startsWith('alert:policy:')).sort()).toEqual([
      `alert:refusals-at:${String(Math.floor(later / 1000)).padStart(12, '0')}/${key}`,
      `alert:refusals:${key}/${String(Math.floor(later / 1000)).padStart(12, '0')}`,
    ]);
  });

  it('migrates a single-chain state object: its chain is sealed with a final checkpoint and stays readable and verifiable as the legacy chain', async () => {
    const deployment = fresh();
    const legacy = keywayState(deployment.states);
    // Records as the single-chain KeywayState wrote them, before the shards.
    const written = [];
    for (let index = 0; index < 5; index += 1) {
      const event = auditEvent({ issuer: 'https://legacy.example', subject: `legacy-${index}` });
      await legacy.append(event, LEGACY_CHAIN);
      written.push(event.id);
    }
    const broker = await start(deployment, 4);
    const chains = await broker.shardList();
    expect(chains[0]).toMatchObject({ shard: 'legacy', head: { seq: 5 } });
    expect(await legacy.latestCheckpoint()).toMatchObject({ seq: 5, hash: chains[0]?.head.hash });
    // workerd logs this refused call too ("uncaught exception; … the single audit chain of before the shards is sealed"), as above.
    await expect(legacy.append(auditEvent(), LEGACY_CHAIN)).rejects.toThrow(/sealed/);
    await expect(legacy.appendAll([auditEvent()], LEGACY_CHAIN)).rejects.toThrow(/sealed/);

    const granted = await broker.exchange('svc-after-migration');
    expect(granted.status).toBe(200);
    const found = (await (await broker.get('/v1/audit/events?limit=500')).json()) as { events: AuditRecordJson[] };
    const ids = found.events.map((event) => event.id);
    for (const id of [...written, granted.body['audit_event_id']]) expect(ids).toContain(id);

    await broker.upkeep();
    const report = await broker.verify();
    expect(report).toMatchObject({ ok: true, latest_root: { chains: 5 } });
    expect(report.chains.find((chain) => chain.shard === 'legacy')).toMatchObject({ ok: true, records: 5, checkpoints: 1 });
    // A second start neither seals again nor signs another final checkpoint.
    await start(deployment, 4);
    expect(await legacy.checkpoints(0, 10)).toHaveLength(1);
  });

  /** The MAC a record written into the storage carries, as SQL: none, or another record's. */
  const forgedMacs: [string, (forged: number) => string][] = [
    ['carries no MAC', () => 'NULL'],
    ['carries the MAC of the record before it', (forged) => `(SELECT mac FROM audit_events WHERE seq = ${forged - 1})`],
  ];

  it.each(forgedMacs)('signs no final checkpoint over a legacy chain whose record after its last checkpoint %s, and serves on', async (_, mac) => {
    const deployment = fresh();
    const legacy = keywayState(deployment.states);
    await KeyRing.open(stateStores(() => legacy).keys, Date.now());
    for (let index = 0; index < 2; index += 1) await legacy.append(auditEvent({ subject: `legacy-${index}` }), LEGACY_CHAIN);
    // The single-chain KeywayState's last upkeep (its round due a checkpoint interval on) signed these two; one more
    // record, and one the broker did not append.
    vi.setSystemTime(Date.now() + 61_000);
    try {
      expect(await runDurableObjectAlarm(legacy)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
    expect(await legacy.latestCheckpoint()).toMatchObject({ seq: 2 });
    await legacy.append(auditEvent({ subject: 'legacy-2' }), LEGACY_CHAIN);
    await runInDurableObject(legacy, (_instance, state) => {
      const forged = appendForgedRecord(durableObjectSql(state.storage));
      state.storage.sql.exec(`UPDATE audit_events SET mac = ${mac(forged)} WHERE seq = ?`, forged);
    });

    const broker = await start(deployment, 2);
    expect((await broker.shardList())[0]).toMatchObject({ shard: 'legacy', head: { seq: 4 } });
    expect(await legacy.latestCheckpoint()).toMatchObject({ seq: 2 });
    await expect(legacy.append(auditEvent(), LEGACY_CHAIN)).rejects.toThrow(/sealed/);
    expect((await broker.exchange('svc-beside-the-forgery')).status).toBe(200);
    // Every opening tries again, and signs nothing again.
    await start(deployment, 2);
    expect(await legacy.checkpoints(0, 10)).toHaveLength(1);
  });

  it("appends records made together to each one's own shard, one call to each shard, and answers their links in order", async () => {
    const namespace = fresh().shards;
    const calls: number[] = [];
    const shards = Array.from({ length: 4 }, (_, index): AuditStore => {
      const store = chainStore(() => auditShard(namespace, index), String(index));
      return {
        ...store,
        appendAll: (events) => {
          calls.push(events.length);
          return store.appendAll(events);
        },
      };
    });
    const log = new ShardedAuditLog(shards);
    const events = Array.from({ length: 40 }, () => auditEvent());
    const links = await log.appendAll(events);
    expect(calls.length).toBeLessThanOrEqual(4);
    expect(calls.reduce((sum, count) => sum + count, 0)).toBe(40);
    for (const [index, event] of events.entries()) {
      expect(await (shards[log.shardOf(event)] as AuditStore).record(event.id)).toMatchObject({ event, chain: links[index] });
    }
  });
});
