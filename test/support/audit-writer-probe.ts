// A GroupCommitAuditStore on a fresh file, K appends G ms apart; prints the outcomes, the reported
// WAL checkpoint failures and whether the store is writable, as one JSON line.
// Run as: node test/support/audit-writer-probe.ts [K] [G] (PROBE_DIR: where its temp directory goes)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GroupCommitAuditStore } from '../../src/runtimes/node/group-commit-audit-store.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { DATABASE_FILE, openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { auditEvent as event } from './audit-event.ts';

const [k = '5', g = '0'] = process.argv.slice(2);
const dir = mkdtempSync(join(process.env['PROBE_DIR'] ?? tmpdir(), 'kw-probe-'));
const path = join(dir, DATABASE_FILE);
const db = openSqliteFile(path);
migrate(db);
const failures: string[] = [];
const store = new GroupCommitAuditStore(db, path, { onWalCheckpointFailure: (error) => failures.push(error) });
const keep = setInterval(() => {}, 1000);
const outcomes: string[] = [];
for (let i = 0; i < Number(k); i += 1) {
  outcomes.push(
    await store.append(event()).then(
      () => 'committed',
      (error: Error) => {
        if (process.env['PROBE_VERBOSE']) console.error(error);
        return error.message;
      },
    ),
  );
  if (Number(g) > 0) await new Promise((resolve) => setTimeout(resolve, Number(g)));
}
await new Promise((resolve) => setTimeout(resolve, 300));
const counts: Record<string, number> = {};
for (const outcome of outcomes) counts[outcome] = (counts[outcome] ?? 0) + 1;
console.log(JSON.stringify({ outcomes: counts, failures, writable: store.writable() }));
await store.close();
db.close();
rmSync(dir, { recursive: true, force: true });
clearInterval(keep);
