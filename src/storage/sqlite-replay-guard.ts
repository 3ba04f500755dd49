import type { ReplayClaim, ReplayClaimResult, ReplayGuard } from '../core/replay/replay-guard.ts';
import type { SqlDatabase } from './sql-database.ts';

/**
 * Claims in the `replay_claims` table. The insert is the atomic step: of concurrent claims of
 * one key (on one connection, across connections to one file, or in one Durable Object), the
 * primary key lets exactly one row in. Each claim first prunes the claims that have expired,
 * which the index keeps proportional to what expired since the last claim.
 */
export class SqliteReplayGuard implements ReplayGuard {
  readonly #db: SqlDatabase;

  constructor(db: SqlDatabase) {
    this.#db = db;
  }

  async claim(claim: ReplayClaim): Promise<ReplayClaimResult> {
    return (await this.claimAll([claim]))[0] as ReplayClaimResult;
  }

  /** In one transaction: all are durable together, or none is. */
  async claimAll(claims: readonly ReplayClaim[]): Promise<ReplayClaimResult[]> {
    return this.#db.transaction(() => claims.map((claim) => this.#claim(claim)));
  }

  #claim(claim: ReplayClaim): ReplayClaimResult {
    this.#db.run('DELETE FROM replay_claims WHERE expires_at < ?', [Math.floor(claim.now / 1000)]);
    const inserted = this.#db.all<{ key: string }>(
      'INSERT INTO replay_claims (key, expires_at, claimed_at, audit_event_id) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING RETURNING key',
      [claim.key, claim.expiresAt, claim.now, claim.auditEventId],
    );
    if (inserted.length === 1) return { claimed: true } as const;
    const [held] = this.#db.all<{ audit_event_id: string; claimed_at: number }>('SELECT audit_event_id, claimed_at FROM replay_claims WHERE key = ?', [
      claim.key,
    ]);
    if (held === undefined) throw new Error('replay claim neither inserted nor found');
    return { claimed: false, heldBy: { auditEventId: held.audit_event_id, claimedAt: held.claimed_at } } as const;
  }

  /** Whether a claim of the key stands (has not expired by `now`, in ms): a read, for the revocation list. */
  async holds(key: string, now: number): Promise<boolean> {
    return this.#holds(key, now);
  }

  /** The same of each key, in their order. */
  async holdsAll(keys: readonly string[], now: number): Promise<boolean[]> {
    return keys.map((key) => this.#holds(key, now));
  }

  #holds(key: string, now: number): boolean {
    return this.#db.all('SELECT 1 FROM replay_claims WHERE key = ? AND expires_at >= ?', [key, Math.floor(now / 1000)]).length > 0;
  }
}
