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
import { describe, expect, it } from 'vitest';
import { ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS } from '../../src/core/mint/verify-access-token.ts';
import { revocationList } from '../../src/core/revocation/revocation-list.ts';
import { sha256Hex } from '../../src/core/mint/sha256-hex.ts';

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

describe('SqliteReplayGuard.claimAll', () => {
  it('claims in one transaction: when one claim cannot be written, none of the others stands', async () => {
    const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-replay-all-')), 'keyway.db'));
    migrate(db);
    const guard = new SqliteReplayGuard(db);
    const now = 1_800_000_000_000;
    const claim = { key: sha256Hex('first'), expiresAt: now / 1000 + 60, auditEventId: '01AUDITFIRST', now };
    // audit_event_id is NOT NULL: the second insert fails after the first has been made.
    const unwritable = { ...claim, key: sha256Hex('second'), auditEventId: null as unknown as string };
    await expect(guard.claimAll([claim, unwritable])).rejects.toThrow(/NOT NULL/);
    expect(await guard.claim(claim)).toEqual({ claimed: true });
    db.close();
  });
});

describe('the revocation list over the SQLite store', () => {
  it('holds a revocation for as long as the token verifies: until exp and the clock skew verifyAccessToken tolerates', async () => {
    const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-revoked-')), 'keyway.db'));
    migrate(db);
    const guard = new SqliteReplayGuard(db);
    const list = revocationList(guard, (keys, now) => guard.holdsAll(keys, now));
    const exp = 1_800_000_000;
    await list.revoke({ jti: 'revoked-1', exp }, 'audit-1', (exp - 60) * 1000);
    // Ten seconds after exp verifyAccessToken still takes the token: the revocation must still hold.
    expect(await list.isRevoked('revoked-1', (exp + 10) * 1000)).toBe(true);
    expect(await list.isRevoked('revoked-1', (exp + ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS - 1) * 1000)).toBe(true);
    expect(await list.isRevoked('revoked-1', (exp + ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS + 1) * 1000)).toBe(false);
    db.close();
  });

  it('revokes tokens together and reads them together, each answered in its order', async () => {
    const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-revoked-many-')), 'keyway.db'));
    migrate(db);
    const guard = new SqliteReplayGuard(db);
    const list = revocationList(guard, (keys, now) => guard.holdsAll(keys, now));
    const exp = 1_800_000_000;
    await list.revokeAll(
      [
        { jti: 'many-1', exp, auditEventId: 'audit-1' },
        { jti: 'many-3', exp, auditEventId: 'audit-3' },
      ],
      (exp - 60) * 1000,
    );
    expect(await list.areRevoked(['many-1', 'many-2', 'many-3'], (exp - 30) * 1000)).toEqual([true, false, true]);
    expect(await list.areRevoked(['many-1', 'many-3'], (exp + ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS + 1) * 1000)).toEqual([false, false]);
    db.close();
  });
});
