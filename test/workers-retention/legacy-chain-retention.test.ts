import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { LEGACY_CHAIN } from '../../src/core/audit/sharded-audit-log.ts';
import { keywayState } from '../../src/runtimes/workers/keyway-state.ts';
import { createWorkerBroker, scheduledAuditUpkeep } from '../../src/runtimes/workers/worker-broker.ts';
import { auditEvent } from '../support/audit-event.ts';
import { ownStateNamespace, workerEnv } from '../workers/workers-harness.ts';

/** This project's bindings set KEYWAY_AUDIT_RETENTION_DAYS to 1 (vitest.config.ts): the Durable Objects read it from there. */
describe('the sealed legacy audit chain under a retention set after its last alarm (workerd)', () => {
  it('is pruned by its own alarm, which opening the shards arms again: an alarm that ran while retention was 0 set none', async () => {
    expect(workerEnv.KEYWAY_AUDIT_RETENTION_DAYS).toBe('1');
    const states = ownStateNamespace();
    const env = { ...workerEnv, STATE: states, AUDIT: ownStateNamespace(workerEnv.AUDIT), KEYWAY_AUDIT_SHARDS: '2' };
    const legacy = keywayState(states);
    // Records the single-chain KeywayState wrote, two days ago: past the one-day window.
    const written = new Date(Date.now() - 2 * 86_400_000).toISOString();
    for (let index = 0; index < 3; index += 1) await legacy.append(auditEvent({ time: written, subject: `legacy-${index}` }), LEGACY_CHAIN);
    // Its last alarm ran while retention was 0: it pruned nothing and set no next one.
    await runInDurableObject(legacy, (_instance, state) => state.storage.deleteAlarm());

    // The Worker starts with the shards (sealing this chain), and the Cron round passes the sealed chain over.
    const broker = await createWorkerBroker(env, [], { log: silentLogger });
    await scheduledAuditUpkeep(env, Date.now(), silentLogger);
    expect((await broker.audit.api.chains()).find((chain) => chain.shard === 'legacy')).toMatchObject({ head: { seq: 3 } });

    expect(await runDurableObjectAlarm(legacy)).toBe(true);
    const [left] = await runInDurableObject(legacy, (_instance, state) =>
      state.storage.sql.exec<{ n: number }>('SELECT count(*) AS n FROM audit_events').toArray(),
    );
    expect(left?.n).toBe(0);
    // And the alarm keeps coming back while retention applies.
    expect(await runInDurableObject(legacy, (_instance, state) => state.storage.getAlarm())).not.toBeNull();
  });
});
