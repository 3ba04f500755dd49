import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GroupCommitAuditStore } from '../../src/runtimes/node/group-commit-audit-store.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { writerThreadReplayGuard } from '../../src/runtimes/node/writer-thread-stores.ts';
import type { ReplayGuard } from '../../src/core/replay/replay-guard.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { SqliteReplayGuard } from '../../src/storage/sqlite-replay-guard.ts';
import { replayGuardContract } from '../suites/replay-guard-contract.ts';

const files = new WeakMap<ReplayGuard, string>();

replayGuardContract(
  'Node (SQLite file)',
  async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'keyway-replay-')), 'keyway.db');
    const db = openSqliteFile(path);
    migrate(db);
    const guard = new SqliteReplayGuard(db);
    files.set(guard, path);
    return guard;
  },
  async (guard) => new SqliteReplayGuard(openSqliteFile(files.get(guard) ?? '')),
);

/** A writer thread of its own over the file at `path` (another connection: what a second broker process has). */
function writerGuard(path: string): ReplayGuard {
  const db = openSqliteFile(path);
  migrate(db);
  const guard = writerThreadReplayGuard(new GroupCommitAuditStore(db, path));
  files.set(guard, path);
  return guard;
}

replayGuardContract(
  "Node (the broker's: claims group-committed on the audit writer thread)",
  async () => writerGuard(join(mkdtempSync(join(tmpdir(), 'keyway-replay-writer-')), 'keyway.db')),
  async (guard) => writerGuard(files.get(guard) ?? ''),
);
