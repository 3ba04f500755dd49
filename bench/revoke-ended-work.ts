// `npm run bench:revoke-ended-work`: how long the end of a job takes to revoke the keyway tokens granted to it (the
// `workflow_job` webhook's work, revokeEndedWorkTokens), for BENCH_TOKENS tokens of one job, on the Node stores: a real
// SQLite file, the audit writer thread with its group commit, the revocations on the same writer. GitHub gives a webhook
// delivery 10 s; the figure printed is what a job of that many tokens leaves of it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { revocationList } from '../src/core/revocation/revocation-list.ts';
import { resolveIssuer } from '../src/core/verify/trusted-issuer.ts';
import { tokenId } from '../src/core/mint/token-id.ts';
import { revokeEndedWorkTokens } from '../src/features/github/webhooks/revoke-ended-work-tokens.ts';
import { GroupCommitAuditStore } from '../src/runtimes/node/group-commit-audit-store.ts';
import { writerThreadReplayGuard } from '../src/runtimes/node/writer-thread-stores.ts';
import { migrate } from '../src/storage/migrate.ts';
import { openSqliteFile } from '../src/storage/sqlite-file.ts';
import { SqliteReplayGuard } from '../src/storage/sqlite-replay-guard.ts';
import { auditEvent } from '../test/support/audit-event.ts';
import { envNumber } from './env-number.ts';

const TOKENS = envNumber('BENCH_TOKENS', 2000);
const GITHUB_ACTIONS = resolveIssuer('github', { allowHttpLoopback: false });

const dir = mkdtempSync(join(tmpdir(), 'keyway-bench-revoke-ended-work-'));
const db = openSqliteFile(join(dir, 'keyway.db'));
migrate(db);
let commits = 0;
const audit = new GroupCommitAuditStore(db, join(dir, 'keyway.db'), { onCommit: () => (commits += 1) });
const reads = new SqliteReplayGuard(db);
const revocations = revocationList(writerThreadReplayGuard(audit), (keys, at) => reads.holdsAll(keys, at));

// The writer thread does not keep a process alive (a broker's server does): this does, until the end.
const alive = setInterval(() => {}, 60_000);
try {
  const now = Date.now();
  await Promise.all(
    Array.from({ length: TOKENS }, () =>
      audit.append(
        auditEvent({
          decision: 'granted',
          reason: 'granted',
          issuer: GITHUB_ACTIONS.url,
          claims: { repository: 'acme/busy', repository_id: '700', run_id: '70', check_run_id: '71', run_attempt: '1' },
          issued: { jti: tokenId(now), sub: 'ci', aud: ['https://deploy.acme.dev'], scope: [], exp: Math.floor(now / 1000) + 3600 },
        }),
      ),
    ),
  );
  const committedBefore = commits;
  const started = performance.now();
  const { revoked } = await revokeEndedWorkTokens(
    {
      issuer: 'https://keyway.acme.dev',
      issuers: () => ({ issuer: (url) => (url === GITHUB_ACTIONS.url ? GITHUB_ACTIONS : undefined) }),
      audit,
      revocations,
      now: () => Date.now(),
    },
    { deployment: 'github.com', repositoryId: '700', runId: '70', job: { id: '71', checkRunId: '71' }, runAttempt: 1, deliveryId: 'bench' },
  );
  const ms = performance.now() - started;
  console.log(
    `revoked ${revoked} keyway tokens of one job in ${ms.toFixed(0)} ms (${((ms * 1000) / Math.max(1, revoked)).toFixed(0)} µs per token), ` +
      `their records in ${commits - committedBefore} audit commits`,
  );
} finally {
  clearInterval(alive);
  await audit.close();
  db.close();
}
