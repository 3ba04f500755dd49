import { DurableObject } from 'cloudflare:workers';
import type { AuditEvent, AuditStore } from '../audit/audit-event.ts';
import { migrate } from '../storage/migrate.ts';
import { SqliteAuditStore } from '../storage/sqlite-audit-store.ts';
import { SqliteKeyStore } from '../storage/sqlite-key-store.ts';
import type { KeyStore, StoredSigningKey } from '../tokens/key-store.ts';
import { durableObjectSql } from './durable-object-sql.ts';
import type { WorkerEnv } from './worker-broker.ts';

/**
 * The broker's state on Workers: one SQLite-backed Durable Object running the same stores as
 * the Node SQLite file. A Durable Object is single-threaded and strongly consistent, so every
 * append is ordered and committed before its RPC returns.
 */
export class KeywayState extends DurableObject<WorkerEnv> implements AuditStore, KeyStore {
  readonly #audit: SqliteAuditStore;
  readonly #keys: SqliteKeyStore;

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    const db = durableObjectSql(ctx.storage);
    migrate(db);
    this.#audit = new SqliteAuditStore(db);
    this.#keys = new SqliteKeyStore(db);
  }

  append(event: AuditEvent): Promise<void> {
    return this.#audit.append(event);
  }

  get(id: string): Promise<AuditEvent | undefined> {
    return this.#audit.get(id);
  }

  listKeys(): Promise<StoredSigningKey[]> {
    return this.#keys.listKeys();
  }

  initializeKeys(candidate: StoredSigningKey): Promise<StoredSigningKey[]> {
    return this.#keys.initializeKeys(candidate);
  }
}

/** The one instance every isolate talks to. */
export function keywayState(namespace: DurableObjectNamespace<KeywayState>, name = 'keyway'): DurableObjectStub<KeywayState> {
  return namespace.get(namespace.idFromName(name));
}

/**
 * The Worker-side AuditStore and KeyStore: RPC to the state object. A stub is an I/O object
 * of the request that made it, so each call makes its own.
 */
export function stateStores(stub: () => DurableObjectStub<KeywayState>): { audit: AuditStore; keys: KeyStore } {
  return {
    audit: { append: (event) => stub().append(event), get: (id) => stub().get(id) },
    keys: { listKeys: () => stub().listKeys(), initializeKeys: (candidate) => stub().initializeKeys(candidate) },
  };
}
