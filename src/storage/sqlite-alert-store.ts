import type { AlertDelivery, AlertDraft, StoredAlert } from '../features/alerts/alert.ts';
import { isOperatorRefusal, recordedCaller, type AlertObservation, type AlertStore, type ObserveOptions } from '../features/alerts/alert-store.ts';
import { grantingPolicies } from '../core/audit/granting-policies.ts';
import type { AuditEvent, ChainLink } from '../core/audit/audit-event.ts';
import { clientNetwork } from '../core/limits/network-of.ts';
import { RefusalCounts, refusalKey, type RefusalCounter } from '../features/alerts/refusal-counts.ts';
import type { SqlDatabase, SqlValue } from './sql-database.ts';
import { HOUSEKEEPING_SQL } from './sqlite-audit-usage.ts';

type AlertRow = { alert: string; delivery: AlertDelivery; attempts: number };

/** The facts of a record the rules see as a refusal from its client only (isOperatorRefusal), but that count. */
const NOTHING_ELSE: AlertObservation = {
  identityDenials: 0,
  addressDenials: 0,
  earlierPresentations: 0,
  earlierGrant: false,
  firstForPolicies: [],
  newNetwork: false,
};

function toAlert(row: AlertRow): StoredAlert {
  return { ...(JSON.parse(row.alert) as StoredAlert), delivery: row.delivery, attempts: row.attempts };
}

/**
 * Alert state over SqlDatabase, beside the audit log it reads. Refusals in the burst window are counted as they are
 * observed (RefusalCounter), not read back from the log: the log also holds refusals no rule runs on.
 */
export class SqliteAlertStore implements AlertStore {
  readonly #db: SqlDatabase;
  readonly #refusals: RefusalCounter;
  readonly #countsAddresses: boolean;

  /**
   * `refusals`: where the refused exchanges it observes are counted, by identity and, unless `countsAddresses` is false
   * (a Workers shard: the address's own shard counts them), by client address.
   */
  constructor(db: SqlDatabase, refusals: RefusalCounter = new RefusalCounts(), { countsAddresses = true }: { countsAddresses?: boolean } = {}) {
    this.#db = db;
    this.#refusals = refusals;
    this.#countsAddresses = countsAddresses;
  }

  async observe(event: AuditEvent, link: ChainLink, options: ObserveOptions): Promise<AlertObservation> {
    const count = (sql: string, params: SqlValue[]) => this.#db.all<{ n: number }>(sql, params)[0]?.n ?? 0;
    const issuer = event.issuer ?? event.subject_token?.claimed_iss;
    const subject = event.subject ?? event.subject_token?.claimed_sub;
    const sha256 = event.subject_token?.sha256;
    const granted = event.decision === 'granted';

    const time = Date.parse(event.time);
    const ip = event.request.client_ip;
    const addressDenials =
      (event.decision === 'denied' || event.decision === 'malformed') && ip !== undefined && this.#countsAddresses
        ? await this.#refusals.count(refusalKey.address(clientNetwork(ip)), time, options.windowStart)
        : 0;
    if (isOperatorRefusal(event)) return { ...NOTHING_ELSE, addressDenials };
    const caller = recordedCaller(event);
    const identityDenials =
      event.decision === 'denied' && subject !== undefined
        ? await this.#refusals.count(refusalKey.identity(issuer, subject, caller?.account), time, options.windowStart)
        : 0;
    // Housekeeping (an /audit sign-in with it, its revocation, its introspection) names the token but is no use of it.
    const [presented] =
      sha256 === undefined
        ? []
        : this.#db.all<{ n: number; granted: number | null }>(
            `SELECT count(*) AS n, max(decision = 'granted') AS granted FROM audit_events
              WHERE subject_sha256 = ? AND seq < ? AND reason NOT IN (${HOUSEKEEPING_SQL})`,
            [sha256, link.seq],
          );

    // Read first: in the steady state nothing is new, and a read costs no commit.
    const remember = (table: 'audit_first_seen' | 'audit_caller_networks', row: Readonly<Record<string, string>>) => {
      const columns = Object.keys(row);
      const values = Object.values(row);
      return (
        this.#db.all(`SELECT 1 FROM ${table} WHERE ${columns.map((column) => `${column} = ?`).join(' AND ')}`, values).length === 0 &&
        this.#db.run(`INSERT OR IGNORE INTO ${table} (${columns.join(', ')}, time) VALUES (${columns.map(() => '?').join(', ')}, ?)`, [...values, time])
          .changes > 0
      );
    };
    const firstForPolicies = grantingPolicies(event).filter((policy) => remember('audit_first_seen', { kind: 'policy', scope: '', value: policy }));
    const callerIs = 'issuer = ? AND account = ? AND subject = ?';
    const key = caller === undefined ? [] : [caller.issuer, caller.account, caller.subject];
    const newNetwork =
      granted &&
      caller !== undefined &&
      options.network !== undefined &&
      remember('audit_caller_networks', { issuer: caller.issuer, account: caller.account, subject: caller.subject, network: options.network }) &&
      count(`SELECT count(*) AS n FROM audit_caller_networks WHERE ${callerIs}`, key) > 1;

    // Remembered as grants are observed, not read back from the log: its index has no account, and one subject may have
    // any number of another account's grants to pass over.
    const grantedBy = event.policy?.granted_by;
    const [last] = caller === undefined ? [] : this.#db.all<{ policy_id: string }>(`SELECT policy_id FROM audit_caller_grants WHERE ${callerIs}`, key);
    if (granted && caller !== undefined && grantedBy !== undefined && last?.policy_id !== grantedBy) {
      this.#db.run('INSERT OR REPLACE INTO audit_caller_grants (issuer, account, subject, policy_id) VALUES (?, ?, ?, ?)', [...key, grantedBy]);
    }
    return {
      identityDenials,
      addressDenials,
      earlierPresentations: presented?.n ?? 0,
      earlierGrant: presented?.granted === 1,
      firstForPolicies,
      newNetwork,
      ...(event.decision !== 'denied' || last === undefined ? {} : { lastGrantedPolicy: last.policy_id }),
    };
  }

  async addAlerts(drafts: readonly AlertDraft[], delivery: AlertDelivery): Promise<StoredAlert[]> {
    return this.#db.transaction(() =>
      drafts.flatMap(({ dedupe, ...alert }) => {
        const { changes } = this.#db.run(
          'INSERT OR IGNORE INTO audit_alerts (id, time, rule, event_id, dedupe, delivery, attempts, alert) VALUES (?, ?, ?, ?, ?, ?, 0, ?)',
          [alert.id, Date.parse(alert.time), alert.rule, alert.event_id, dedupe ?? null, delivery, JSON.stringify(alert)],
        );
        return changes > 0 ? [{ ...alert, delivery, attempts: 0 }] : [];
      }),
    );
  }

  async setDelivery(id: string, delivery: AlertDelivery, attempts: number): Promise<void> {
    this.#db.run('UPDATE audit_alerts SET delivery = ?, attempts = ? WHERE id = ?', [delivery, attempts, id]);
  }

  async alerts(limit: number): Promise<StoredAlert[]> {
    return this.#db.all<AlertRow>('SELECT alert, delivery, attempts FROM audit_alerts ORDER BY time DESC, id DESC LIMIT ?', [limit]).map(toAlert);
  }

  async pruneAlerts(before: number, limit: number): Promise<number> {
    return this.#db.run('DELETE FROM audit_alerts WHERE id IN (SELECT id FROM audit_alerts WHERE time < ? ORDER BY time LIMIT ?)', [before, limit]).changes;
  }
}
