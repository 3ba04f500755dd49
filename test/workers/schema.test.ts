import { runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { KeywayState, keywayState } from '../../src/runtimes/workers/keyway-state.ts';
import { ReplayGuardState, replayShard } from '../../src/runtimes/workers/replay-guard-state.ts';
import type { WorkerEnv } from '../../src/runtimes/workers/worker-broker.ts';
import { SCHEMA_VERSION, SchemaTooNewError } from '../../src/storage/migrate.ts';

const workerEnv = env as unknown as WorkerEnv;

/** Every table's rows, as text: what "nothing was written" is checked against. */
function contents(storage: DurableObjectStorage): string {
  const tables = storage.sql
    .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY name")
    .toArray();
  return JSON.stringify(tables.map(({ name }) => [name, storage.sql.exec(`SELECT * FROM "${name}"`).toArray()]));
}

describe('Durable Object storage written by a newer keyway', () => {
  it('is migrated to the schema version the code knows when the object first opens it', async () => {
    const stub = keywayState(workerEnv.STATE, `schema-${crypto.randomUUID()}`);
    const applied = await runInDurableObject(stub, (_instance, state) =>
      state.storage.sql.exec<{ id: number }>('SELECT id FROM keyway_schema ORDER BY id').toArray(),
    );
    expect(applied.map((row) => row.id)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, index) => index + 1));
  });

  it('is refused by KeywayState and the replay shards, naming both versions, before anything is written', async () => {
    const state = keywayState(workerEnv.STATE, `schema-${crypto.randomUUID()}`);
    const shard = replayShard(workerEnv.REPLAY, 'a'.repeat(64), `schema-${crypto.randomUUID()}`);
    for (const [stub, open] of [
      [state, (durable: DurableObjectState) => new KeywayState(durable, workerEnv)],
      [shard, (durable: DurableObjectState) => new ReplayGuardState(durable, workerEnv)],
    ] as const) {
      await runInDurableObject(stub as DurableObjectStub, (_instance, durable) => {
        // A newer release's migration: one id this code does not know, and what it created.
        durable.storage.sql.exec('INSERT INTO keyway_schema (id, applied_at) VALUES (?, ?)', SCHEMA_VERSION + 1, Date.now());
        durable.storage.sql.exec('CREATE TABLE from_the_future (x TEXT)');
        const before = contents(durable.storage);
        // The object as it is constructed when it next wakes: the same storage, this code.
        let refused: unknown;
        try {
          open(durable);
        } catch (error) {
          refused = error;
        }
        expect(refused).toBeInstanceOf(SchemaTooNewError);
        expect((refused as SchemaTooNewError).code).toBe('schema_too_new');
        expect((refused as Error).message).toContain(`schema version ${SCHEMA_VERSION + 1}, newer than the ${SCHEMA_VERSION} this keyway knows`);
        expect(contents(durable.storage)).toBe(before);
      });
    }
  });
});
