// `npm run bench:inventory`: the identity inventory and the unused-access analysis over an audit
// log of BENCH_RECORDS records (default one million), seeded directly into a SQLite file (a
// broker would take hours to write them), spread over 30 days, 90% granted. Prints how long
// each takes, read through the same store and code the API and the CLI use.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { auditIndex, AUDIT_INDEX_COLUMNS } from '../src/core/audit/audit-index.ts';
import type { AuditEvent } from '../src/core/audit/audit-event.ts';
import { buildInventory, type InventoryQuery } from '../src/core/audit/inventory.ts';
import { migrate } from '../src/storage/migrate.ts';
import { openSqliteFile } from '../src/storage/sqlite-file.ts';
import { SqliteAuditStore } from '../src/storage/sqlite-audit-store.ts';
import { refreshUsage, ROLLUP_BATCH } from '../src/storage/sqlite-audit-usage.ts';
import { envNumber } from './env-number.ts';

const RECORDS = envNumber('BENCH_RECORDS', 1_000_000);
const REPOSITORIES = envNumber('BENCH_REPOSITORIES', 500);
/** Records appended since the last roll-up, which the measured call rolls up or reads raw. */
const TAIL = envNumber('BENCH_TAIL', 10_000);
/** The whole analysis must take at most this long: "in seconds". */
const TARGET_SECONDS = 10;
const DAY = 86_400_000;
const GITHUB = 'https://token.actions.githubusercontent.com';

const dir = process.env['BENCH_DIR'] ?? mkdtempSync(join(tmpdir(), 'keyway-bench-inventory-'));
const db = openSqliteFile(join(dir, 'keyway.db'));
try {
  migrate(db);
  // Seeding only: a broker's appends are synchronous=FULL, but these records are made up and thrown away.
  db.exec('PRAGMA synchronous = OFF');
  const now = Date.now();
  const start = now - 30 * DAY;
  const insert = `INSERT INTO audit_events (seq, ${AUDIT_INDEX_COLUMNS.join(', ')}, prev_hash, hash, event)
    VALUES (${Array.from({ length: AUDIT_INDEX_COLUMNS.length + 4 }, () => '?').join(', ')})`;
  const BATCH = 10_000;
  const seed = (from: number, to: number) => {
    for (let first = from; first < to; first += BATCH) {
      db.transaction(() => {
        for (let seq = first + 1; seq <= Math.min(first + BATCH, to); seq += 1) {
          const repo = seq % REPOSITORIES;
          const policy = `team-${repo % 20}/deploy`;
          const granted = seq % 10 !== 0;
          const time = new Date(start + Math.floor(((seq - 1) / RECORDS) * 30 * DAY)).toISOString();
          const claims = {
            aud: 'https://keyway.example.com',
            repository: `acme/repo-${repo}`,
            repository_id: String(100_000 + repo),
            repository_owner_id: '1200934',
            ref: 'refs/heads/main',
            environment: seq % 3 === 0 ? 'staging' : 'production',
            event_name: 'push',
            run_id: String(seq),
            sha: seq.toString(16).padStart(40, '0'),
          };
          const event: AuditEvent = {
            id: `01BENCH${String(seq).padStart(19, '0')}`,
            time,
            decision: granted ? 'granted' : 'denied',
            reason: granted ? 'granted' : 'no_policy_matched',
            request: { id: `req-${seq}`, client_ip: '10.0.0.1', user_agent: 'keyway-action/1.0', scope: ['deploy:write'] },
            subject_token: { sha256: seq.toString(16).padStart(64, '0'), jti: `jti-${seq}` },
            issuer: GITHUB,
            subject: `repo:acme/repo-${repo}:environment:production`,
            claims,
            policy: { ...(granted ? { granted_by: policy } : {}), candidates: [policy], matched: granted ? [policy] : [], denied_by: [], audit_mode: [] },
            ...(granted
              ? {
                  issued: {
                    jti: `issued-${seq}`,
                    sub: `github:acme/repo-${repo}`,
                    aud: ['https://deploy.acme.dev'],
                    scope: ['deploy:write'],
                    exp: 2_000_000_000,
                  },
                }
              : {}),
          };
          const index = auditIndex(event);
          db.run(insert, [seq, ...AUDIT_INDEX_COLUMNS.map((column) => index[column]), 'x', 'x', JSON.stringify(event)]);
        }
      });
    }
  };
  // The roll-up is kept as the log grows: all but the newest TAIL records are rolled up when the inventory is asked for.
  const tail = Math.min(TAIL, RECORDS);
  const seeding = performance.now();
  seed(0, RECORDS - tail);
  console.log(`seeded ${RECORDS - tail} records over 30 days in ${((performance.now() - seeding) / 1000).toFixed(1)} s`);
  const rolling = performance.now();
  refreshUsage(db, { budgetMs: Number.POSITIVE_INFINITY });
  console.log(`rolled them up in ${((performance.now() - rolling) / 1000).toFixed(1)} s (once, in batches of ${ROLLUP_BATCH})`);
  seed(RECORDS - tail, RECORDS);

  const store = new SqliteAuditStore(db);
  const query: InventoryQuery = { since: now - 30 * DAY, until: now + 1, sort: 'last_seen', order: 'desc' };
  const began = performance.now();
  const inventory = buildInventory(await store.usage(query), query);
  const seconds = (performance.now() - began) / 1000;
  // What `keyway policy suggest` reads: the usage groups and the claims of every policy's grants (the analysis over them is in memory).
  const unusedBegan = performance.now();
  const [rows, claims] = [await store.usage(query), await store.claimUsage(query)];
  const unusedSeconds = (performance.now() - unusedBegan) / 1000;
  const verdict = (value: number) => (value <= TARGET_SECONDS ? 'MET' : 'MISSED');
  console.log(`| figure | value | target | verdict |`);
  console.log(
    `| inventory of ${RECORDS} records | ${seconds.toFixed(2)} s (${inventory.identities.length} identities) | ≤ ${TARGET_SECONDS} s | ${verdict(seconds)} |`,
  );
  console.log(
    `| unused access of ${RECORDS} records | ${unusedSeconds.toFixed(2)} s (${rows.length + claims.length} groups) | ≤ ${TARGET_SECONDS} s | ${verdict(unusedSeconds)} |`,
  );
} finally {
  db.close();
  if (process.env['BENCH_DIR'] === undefined) rmSync(dir, { recursive: true, force: true });
}
