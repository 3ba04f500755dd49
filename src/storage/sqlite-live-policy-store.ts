import { LIVE_POLICY_ATTESTATION_PURPOSE, livePolicyAttestationText } from '../core/policy/live-policy-attestation.ts';
import type { PolicyFile } from '../core/policy/load-policies.ts';
import type { PolicyReloadStatus } from '../core/policy/policy-reload-status.ts';
import type { SecretBox } from '../core/secrets/secret-box.ts';
import type { SqlDatabase } from './sql-database.ts';

/** A policy set that loaded and was made live, as stored. */
export interface StoredPolicySet {
  /** 1, 2, 3, … one per switch. */
  readonly version: number;
  readonly source: string;
  readonly switchedAt: number;
  readonly files: readonly PolicyFile[];
}

/** The live_policy_set row as stored (and as a state export carries it). */
export type LivePolicyRow = {
  readonly version: number;
  readonly source: string;
  readonly switched_at: number;
  readonly files: string;
  readonly attestation?: string | null;
};

/** A set about to be saved, attested under the master key for the version it will have. */
export interface AttestedPolicySet {
  readonly version: number;
  readonly attestation: string;
}

/**
 * Whether the master key vouches for a stored live set: its attestation (SecretBox.attest over
 * its version and files) checks, made by the current master key or a previous one (`stale`). A
 * set without one (stored by a keyway from before attestations, or planted) is not vouched for:
 * whoever could write the database or a backup without the master key could have put it there.
 */
export type LivePolicyCheck =
  | { readonly ok: true; readonly set: StoredPolicySet; readonly stale: boolean }
  | { readonly ok: false; readonly version: number; readonly switchedAt: number; readonly why: string; readonly unattested: boolean };

/**
 * Which save of the live set a row is: its version and when it was saved. The version alone repeats once a store is
 * recovered to an earlier point and pushed to again; the time it was saved does not. '' when none is stored.
 */
export function liveSetStamp(row: { readonly version: number; readonly switchedAt: number } | undefined): string {
  return row === undefined ? '' : `${row.version}@${row.switchedAt}`;
}

export async function checkLivePolicyRow(row: LivePolicyRow, box: SecretBox): Promise<LivePolicyCheck> {
  const unattested = row.attestation === null || row.attestation === undefined;
  const refused = (why: string): LivePolicyCheck => ({
    ok: false,
    version: row.version,
    switchedAt: row.switched_at,
    why: `live policy set version ${row.version} ${why}`,
    unattested,
  });
  if (unattested) return refused('has no attestation (stored before keyway attested it, or planted): the master key does not vouch for it');
  let files: PolicyFile[];
  try {
    files = JSON.parse(row.files) as PolicyFile[];
  } catch {
    return refused('is not JSON');
  }
  const check = await box.checkAttestation(row.attestation ?? '', livePolicyAttestationText(row.version, files), LIVE_POLICY_ATTESTATION_PURPOSE);
  if (!check.ok) return refused(`is not vouched for by the master key: ${check.why}`);
  return { ok: true, stale: check.stale, set: { version: row.version, source: row.source, switchedAt: row.switched_at, files } };
}

/**
 * The live policy set pushed to the policy repository, and the outcome of the last attempt to
 * switch it, in one row each. Synchronous like the SqlDatabase under it (the Node broker saves
 * inside its switch, the KeywayState Durable Object inside its RPC), but for the attestation:
 * a set is attested before it is saved, and read only through `vouched`.
 */
export class SqliteLivePolicyStore {
  readonly #db: SqlDatabase;

  constructor(db: SqlDatabase) {
    this.#db = db;
  }

  version(): number {
    return this.#db.all<{ version: number }>('SELECT version FROM live_policy_set WHERE slot = 1')[0]?.version ?? 0;
  }

  /** The stored set's `liveSetStamp`. */
  stamp(): string {
    const [row] = this.#db.all<{ version: number; switchedAt: number }>('SELECT version, switched_at AS switchedAt FROM live_policy_set WHERE slot = 1');
    return liveSetStamp(row);
  }

  /**
   * The stored set and whether the master key vouches for it; undefined when none is stored. One
   * attested by a previous master key is attested again under the current one.
   */
  async vouched(box: SecretBox): Promise<LivePolicyCheck | undefined> {
    const [row] = this.#db.all<LivePolicyRow>('SELECT version, source, switched_at, files, attestation FROM live_policy_set WHERE slot = 1');
    if (row === undefined) return undefined;
    const check = await checkLivePolicyRow(row, box);
    if (check.ok && check.stale) {
      const attestation = await box.attest(livePolicyAttestationText(row.version, check.set.files), LIVE_POLICY_ATTESTATION_PURPOSE);
      this.#db.run('UPDATE live_policy_set SET attestation = ? WHERE slot = 1 AND version = ? AND files = ?', [attestation, row.version, row.files]);
    }
    return check;
  }

  /** Attests `files` as the next version, for `save`. */
  async attest(files: readonly PolicyFile[], box: SecretBox): Promise<AttestedPolicySet> {
    const version = this.version() + 1;
    return { version, attestation: await box.attest(livePolicyAttestationText(version, files), LIVE_POLICY_ATTESTATION_PURPOSE) };
  }

  /** Stores `files` as the live set with the attestation `attest` made; throws if another set was saved meanwhile. */
  save(files: readonly PolicyFile[], source: string, now: number, attested: AttestedPolicySet): number {
    return this.#db.transaction(() => {
      if (this.version() !== attested.version - 1) throw new Error('another live policy set was saved while this one was attested: push again');
      this.#db.run(
        'INSERT INTO live_policy_set (slot, version, source, switched_at, files, attestation) VALUES (1, ?, ?, ?, ?, ?) ' +
          'ON CONFLICT (slot) DO UPDATE SET version = excluded.version, source = excluded.source, switched_at = excluded.switched_at, ' +
          'files = excluded.files, attestation = excluded.attestation',
        [attested.version, source, now, JSON.stringify(files), attested.attestation],
      );
      return attested.version;
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
