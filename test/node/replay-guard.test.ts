import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
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
