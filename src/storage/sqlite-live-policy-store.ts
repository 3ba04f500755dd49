import type { PolicyFile } from '../core/policy/load-policies.ts';
import type { PolicyReloadStatus } from '../core/policy/policy-reload-status.ts';
import type { SqlDatabase } from './sql-database.ts';

/** A policy set that loaded and was made live, as stored. */
export interface StoredPolicySet {
  /** 1, 2, 3, … one per switch. */
  readonly version: number;
  readonly source: string;
  readonly switchedAt: number;
  readonly files: readonly PolicyFile[];
}

/**
 * The live policy set pushed to the policy repository, and the outcome of the last attempt to
 * switch it, in one row each. Synchronous like the SqlDatabase under it: the Node broker saves
 * inside its switch, the KeywayState Durable Object inside its RPC.
 */
export class SqliteLivePolicyStore {
  readonly #db: SqlDatabase;

  constructor(db: SqlDatabase) {
    this.#db = db;
  }

  version(): number {
    return this.#db.all<{ version: number }>('SELECT version FROM live_policy_set WHERE slot = 1')[0]?.version ?? 0;
  }

  current(): StoredPolicySet | undefined {
    const [row] = this.#db.all<{ version: number; source: string; switched_at: number; files: string }>(
      'SELECT version, source, switched_at, files FROM live_policy_set WHERE slot = 1',
    );
    return row === undefined
      ? undefined
      : { version: row.version, source: row.source, switchedAt: row.switched_at, files: JSON.parse(row.files) as PolicyFile[] };
  }

  /** Stores `files` as the live set; returns its version. */
  save(files: readonly PolicyFile[], source: string, now: number): number {
    return this.#db.transaction(() => {
      const version = this.version() + 1;
      this.#db.run(
        'INSERT INTO live_policy_set (slot, version, source, switched_at, files) VALUES (1, ?, ?, ?, ?) ON CONFLICT (slot) DO UPDATE SET version = excluded.version, source = excluded.source, switched_at = excluded.switched_at, files = excluded.files',
        [version, source, now, JSON.stringify(files)],
      );
      return version;
    });
  }

  lastSwitch(): PolicyReloadStatus | undefined {
    const [row] = this.#db.all<{ status: string }>('SELECT status FROM live_policy_switch WHERE slot = 1');
    return row === undefined ? undefined : (JSON.parse(row.status) as PolicyReloadStatus);
  }

  recordSwitch(status: PolicyReloadStatus): void {
    this.#db.run('INSERT INTO live_policy_switch (slot, status) VALUES (1, ?) ON CONFLICT (slot) DO UPDATE SET status = excluded.status', [
      JSON.stringify(status),
    ]);
  }
}
