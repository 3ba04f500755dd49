import { AUDIT_USAGE_MIGRATION, AUDIT_USAGE_REBUILD } from './sqlite-audit-usage.ts';
import { ConfigError } from '../core/settings/read-settings.ts';
import type { SqlDatabase } from './sql-database.ts';

/** Schema changes, in order. Never edit a published one: append a new one. */
/** The schema version from which the live policy set carries an attestation: a set in an older database has none. */
export const LIVE_POLICY_ATTESTATION_SCHEMA = 9;

/**
 * A claim of the record as `claimText` reads it: a string as it is, a number as JavaScript's String writes it. SQLite
 * writes the real 1.0 as '1.0' where JavaScript writes '1': a whole number within the safe integers is written as its
 * digits, any other as the record's own text of it (its JCS text, which is JavaScript's).
 */
function claimTextSql(name: string, of = '$.claims'): string {
  const path = `'${of}.${name}'`;
  const value = `json_extract(event, ${path})`;
  const whole = `abs(${value}) <= 9007199254740991 AND ${value} = CAST(${value} AS INTEGER)`;
  return `CASE
      WHEN json_type(event, ${path}) = 'text' THEN ${value}
      WHEN json_type(event, ${path}) IN ('integer', 'real') THEN CASE WHEN ${whole} THEN CAST(CAST(${value} AS INTEGER) AS TEXT) ELSE event -> ${path} END
    END`;
}

/**
 * A verified record's account as accountOf spells it (migration 25): the first tenant claim of its issuer's kind as the
 * presets named them at that migration, as claimText reads it, else its subject.
 */
const CALLER_ACCOUNT_SQL = (() => {
  const tenant = `CASE json_extract(event, '$.issuer_kind')
      ${Object.entries({
        github: 'repository_owner_id',
        dev: 'repository_owner_id',
        forgejo: 'repository_owner_id',
        gitlab: 'project_id',
        circleci: 'oidc.circleci.com/org-id',
        buildkite: 'organization_id',
        bitbucket: 'workspaceUuid',
        'azure-devops': 'org_id',
        google: 'sub',
        kubernetes: '/kubernetes.io/namespace',
        terraform: 'terraform_organization_id',
      })
        .map(([kind, claim]) => `WHEN '${kind}' THEN ${claimTextSql(`"${claim}"`)}`)
        .join('\n      ')}
    END`;
  return `coalesce('tenant ' || ${tenant}, 'subject ' || subject)`;
})();

const MIGRATIONS: readonly { readonly id: number; readonly sql: string }[] = [
  {
    id: 1,
    sql: `
      CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('next', 'current', 'retired')),
        created_at INTEGER NOT NULL,
        public_jwk TEXT NOT NULL,
        private_jwk TEXT NOT NULL
      );
      CREATE TABLE audit_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        time INTEGER NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT NOT NULL,
        issuer TEXT,
        subject TEXT,
        policy_id TEXT,
        event TEXT NOT NULL
      );
      CREATE INDEX audit_events_time ON audit_events (time);
    `,
  },
  // Issue 4: the hash chain, checkpoints, query indexes and alert state.
  {
    id: 2,
    sql: `
      ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
      ALTER TABLE audit_events ADD COLUMN hash TEXT;
      ALTER TABLE audit_events ADD COLUMN repository TEXT;
      ALTER TABLE audit_events ADD COLUMN client_ip TEXT;
      ALTER TABLE audit_events ADD COLUMN subject_sha256 TEXT;
      ALTER TABLE audit_events ADD COLUMN subject_jti TEXT;
      ALTER TABLE audit_events ADD COLUMN issued_jti TEXT;
      UPDATE audit_events SET
        issuer = coalesce(issuer, json_extract(event, '$.subject_token.claimed_iss')),
        subject = coalesce(subject, json_extract(event, '$.subject_token.claimed_sub')),
        repository = coalesce(json_extract(event, '$.claims.repository'), json_extract(event, '$.claims.project_path')),
        client_ip = json_extract(event, '$.request.client_ip'),
        subject_sha256 = json_extract(event, '$.subject_token.sha256'),
        subject_jti = json_extract(event, '$.subject_token.jti'),
        issued_jti = json_extract(event, '$.issued.jti');
      -- Few distinct decisions, reasons and issuers: a newest-first page finds them by scanning seq.
      CREATE INDEX audit_events_subject ON audit_events (subject);
      CREATE INDEX audit_events_repository ON audit_events (repository);
      CREATE INDEX audit_events_policy ON audit_events (policy_id);
      CREATE INDEX audit_events_client_ip ON audit_events (client_ip);
      CREATE INDEX audit_events_subject_sha256 ON audit_events (subject_sha256);
      CREATE INDEX audit_events_subject_jti ON audit_events (subject_jti);
      CREATE INDEX audit_events_issued_jti ON audit_events (issued_jti);
      CREATE TABLE audit_checkpoints (
        seq INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        time INTEGER NOT NULL,
        jws TEXT NOT NULL
      );
      CREATE TABLE audit_alerts (
        id TEXT PRIMARY KEY,
        time INTEGER NOT NULL,
        rule TEXT NOT NULL,
        event_id TEXT NOT NULL,
        dedupe TEXT UNIQUE,
        delivery TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        alert TEXT NOT NULL
      );
      CREATE INDEX audit_alerts_time ON audit_alerts (time);
      CREATE TABLE audit_first_seen (
        kind TEXT NOT NULL,
        scope TEXT NOT NULL,
        value TEXT NOT NULL,
        time INTEGER NOT NULL,
        PRIMARY KEY (kind, scope, value)
      ) WITHOUT ROWID;
    `,
  },
  {
    // Single-use subject tokens (src/core/replay/): one row per claimed token, kept until the token expires.
    id: 3,
    sql: `
      CREATE TABLE replay_claims (
        key TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL,
        claimed_at INTEGER NOT NULL,
        audit_event_id TEXT NOT NULL
      );
      CREATE INDEX replay_claims_expires_at ON replay_claims (expires_at);
    `,
  },
  {
    // Issue 6: GitHub installation tokens awaiting revocation when their policy TTL passes (src/features/github/app/).
    // The token is sealed (SecretBox, purpose github-token, context the id); rows go once revoked.
    id: 4,
    sql: `
      CREATE TABLE github_token_revocations (
        id TEXT PRIMARY KEY,
        sealed_token TEXT NOT NULL,
        token_sha256 TEXT NOT NULL,
        api_url TEXT NOT NULL,
        installation_id INTEGER NOT NULL,
        revoke_at INTEGER NOT NULL,
        github_expires_at INTEGER NOT NULL,
        repository_id TEXT,
        run_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL
      );
      CREATE INDEX github_token_revocations_next ON github_token_revocations (next_attempt_at);
      CREATE INDEX github_token_revocations_run ON github_token_revocations (repository_id, run_id);
    `,
  },
  {
    // Issue 6, GitHub webhooks: deliveries seen (de-duplication) and the live policy set pushed to the policy repository.
    id: 5,
    sql: `
      CREATE TABLE github_deliveries (
        id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        received_at INTEGER NOT NULL
      );
      CREATE INDEX github_deliveries_received_at ON github_deliveries (received_at);
      CREATE TABLE live_policy_set (
        slot INTEGER PRIMARY KEY CHECK (slot = 1),
        version INTEGER NOT NULL,
        source TEXT NOT NULL,
        switched_at INTEGER NOT NULL,
        files TEXT NOT NULL
      );
      CREATE TABLE live_policy_switch (
        slot INTEGER PRIMARY KEY CHECK (slot = 1),
        status TEXT NOT NULL
      );
    `,
  },
  {
    // Issue 8: the key life cycle. Keys get their transition times and a `removed` state (public
    // part kept for old audit checkpoints, private part gone); private parts are sealed with
    // SecretBox (one in the clear is refused until `keyway keys seal` seals it). At most one next
    // and one current key, whatever races.
    id: 6,
    sql: `
      CREATE TABLE signing_keys_v6 (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('next', 'current', 'retired', 'removed')),
        created_at INTEGER NOT NULL,
        activates_at INTEGER,
        activated_at INTEGER,
        retired_at INTEGER,
        removed_at INTEGER,
        public_jwk TEXT NOT NULL,
        private_jwk TEXT
      );
      INSERT INTO signing_keys_v6 (kid, alg, state, created_at, activated_at, public_jwk, private_jwk)
        SELECT kid, alg, state, created_at, CASE WHEN state = 'current' THEN created_at END, public_jwk, private_jwk FROM signing_keys;
      DROP TABLE signing_keys;
      ALTER TABLE signing_keys_v6 RENAME TO signing_keys;
      CREATE UNIQUE INDEX signing_keys_one_per_state ON signing_keys (state) WHERE state IN ('next', 'current');
    `,
  },
  {
    // Issue 12 review: a webhook delivery is claimed, then marked handled; a claim that never
    // finished (its handler died) can be taken over by a redelivery. Deliveries so far were handled.
    id: 7,
    sql: `
      ALTER TABLE github_deliveries ADD COLUMN handled_at INTEGER;
      UPDATE github_deliveries SET handled_at = received_at;
    `,
  },
  {
    // Issue 12 follow-up: each signing key's attestation (SecretBox.attest over its kid, alg and
    // public JWK), kept when the private part is removed. Keys made before get one when the broker
    // next opens them with their private part; a removed key without one is never published.
    id: 8,
    sql: 'ALTER TABLE signing_keys ADD COLUMN attestation TEXT;',
  },
  {
    // Operations review: the live policy set's attestation (SecretBox.attest over its version and
    // files). A set stored before has none and is not served: the next push replaces it.
    id: LIVE_POLICY_ATTESTATION_SCHEMA,
    sql: 'ALTER TABLE live_policy_set ADD COLUMN attestation TEXT;',
  },
  {
    // Issue 16: an RS256 key ring beside the ES256 one, for clouds that take only RSA (Entra). At
    // most one next and one current key of each algorithm, whatever races.
    id: 10,
    sql: `
      DROP INDEX signing_keys_one_per_state;
      CREATE UNIQUE INDEX signing_keys_one_per_state ON signing_keys (alg, state) WHERE state IN ('next', 'current');
    `,
  },
  // Issue 22: the usage roll-up the inventory and the unused-access analysis read (sqlite-audit-usage.ts).
  { id: 11, sql: AUDIT_USAGE_MIGRATION },
  // Review of issue 22: a refused token that did not verify had its claimed iss and sub counted as an identity's (sqlite-audit-usage.ts).
  { id: 12, sql: AUDIT_USAGE_REBUILD },
  {
    // A GitHub token is revoked when its own job completes, not any job of its run: the job's check
    // run (`check_run_id` claim), NULL for a token whose OIDC token had none (older GHES) or one
    // scheduled before this migration, which any completed job of its run revokes, as before. And
    // when its run's attempt completes (`run_attempt` claim): a re-run's tokens outlive the attempt before.
    id: 13,
    sql: `
      ALTER TABLE github_token_revocations ADD COLUMN check_run_id TEXT;
      ALTER TABLE github_token_revocations ADD COLUMN run_attempt INTEGER;
    `,
  },
  {
    // The keyway tokens granted to a CI run, by its ids (src/core/audit/run-grants.ts): written with the grant's record, in
    // its transaction, read by the end of a job or run (revoke-ended-work-tokens.ts), dropped once the token no longer
    // verifies. Before, those grants were looked for in the newest 10,000 records of the repository, by its name: a job
    // could bury its first token under later grants, and a repository renamed mid-run was searched under its new name.
    // The grants already recorded whose tokens still verify (a day is the longest TTL) are indexed here, so none is missed
    // across the upgrade; the claims are kept as recorded, strings or numbers as text, as claimText reads them.
    id: 14,
    sql: `
      CREATE TABLE audit_run_grants (
        repository_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        audit_event_id TEXT NOT NULL,
        check_run_id TEXT,
        run_attempt TEXT,
        jti TEXT NOT NULL,
        exp INTEGER NOT NULL,
        PRIMARY KEY (repository_id, run_id, audit_event_id)
      ) WITHOUT ROWID;
      CREATE INDEX audit_run_grants_exp ON audit_run_grants (exp);
      INSERT INTO audit_run_grants (repository_id, run_id, audit_event_id, check_run_id, run_attempt, jti, exp)
        SELECT json_extract(event, '$.claims.repository_id'), json_extract(event, '$.claims.run_id'), id,
               CASE WHEN json_type(event, '$.claims.check_run_id') IN ('text', 'integer', 'real') THEN json_extract(event, '$.claims.check_run_id') END,
               CASE WHEN json_type(event, '$.claims.run_attempt') IN ('text', 'integer', 'real') THEN json_extract(event, '$.claims.run_attempt') END,
               json_extract(event, '$.issued.jti'), json_extract(event, '$.issued.exp')
          FROM audit_events
         WHERE time >= (unixepoch() - 2 * 86400) * 1000 AND decision = 'granted' AND reason = 'granted'
           AND json_type(event, '$.issued.jti') = 'text' AND json_type(event, '$.issued.exp') IN ('integer', 'real')
           AND json_extract(event, '$.issued.exp') + 30 > unixepoch()
           AND json_type(event, '$.claims.repository_id') IN ('text', 'integer', 'real')
           AND json_type(event, '$.claims.run_id') IN ('text', 'integer', 'real');
    `,
  },
  {
    // The end of a GitHub Actions job revokes only the grants to tokens of a GitHub Actions issuer: the index of grants by
    // run keeps each grant's verified issuer, so a token of another issuer whose claims carry the same repository_id and
    // run_id is not taken by it. The rows already indexed take it from their record (NULL where the record is gone: no
    // job's end takes those). And their claims are read again as claimText reads them, as the appends since 14 write
    // them: migration 14 wrote a claim recorded as the number 1.0 as '1.0', where an append writes '1'.
    id: 15,
    sql: `
      ALTER TABLE audit_run_grants ADD COLUMN issuer TEXT;
      UPDATE audit_run_grants
         SET issuer = CASE WHEN json_type(event, '$.issuer') = 'text' THEN json_extract(event, '$.issuer') END,
             repository_id = ${claimTextSql('repository_id')},
             run_id = ${claimTextSql('run_id')},
             check_run_id = ${claimTextSql('check_run_id')},
             run_attempt = ${claimTextSql('run_attempt')}
        FROM audit_events
       WHERE audit_events.id = audit_run_grants.audit_event_id;
    `,
  },
  {
    // A GitHub token of a delegated exchange is revoked when its actor's job (or run) ends too, not only its subject's:
    // the actor token's job beside the subject's, in the token's one row, so it is revoked once whichever ends first.
    // NULL for a token without an actor, an actor of an issuer that is not GitHub's, or one scheduled before this
    // migration (it ends with its subject's job only, or at its TTL).
    id: 16,
    sql: `
      ALTER TABLE github_token_revocations ADD COLUMN actor_repository_id TEXT;
      ALTER TABLE github_token_revocations ADD COLUMN actor_run_id TEXT;
      ALTER TABLE github_token_revocations ADD COLUMN actor_check_run_id TEXT;
      ALTER TABLE github_token_revocations ADD COLUMN actor_run_attempt INTEGER;
      CREATE INDEX github_token_revocations_actor_run ON github_token_revocations (actor_repository_id, actor_run_id);
    `,
  },
  {
    // Each record carries a MAC only the master key's holder makes (src/core/audit/record-mac.ts): the hash chain needs no
    // key, so a record appended to the tail after the last checkpoint would otherwise be signed by the next one as the
    // broker's own. The records written before have none, and are accepted without one up to where the log ends now
    // (the anchor's seq, pruned to none), never after.
    id: 17,
    sql: `
      ALTER TABLE audit_events ADD COLUMN mac TEXT;
      CREATE TABLE audit_mac_start (
        slot INTEGER PRIMARY KEY CHECK (slot = 1),
        macs_after INTEGER NOT NULL
      );
      INSERT INTO audit_mac_start (slot, macs_after)
        SELECT 1, max(coalesce((SELECT max(seq) FROM audit_events), 0), coalesce((SELECT max(seq) FROM audit_checkpoints), 0));
    `,
  },
  {
    // A delegated grant whose subject, of an issuer other than GitHub Actions (a Forgejo instance, an operator's own OIDC
    // issuer), names the same repository_id and run_id as its GitHub Actions actor kept the subject's row alone: the index
    // was keyed by run and record, so the actor's row collided with it and the actor's job's end did not revoke the token.
    // The index is keyed by the row's role too (run-grants.ts). The rows already there take theirs from their record (an
    // actor's when the record's subject names another run or none; a subject's when the record is gone), and the actor
    // rows those collisions kept out are added from the records of the grants still indexed.
    id: 18,
    sql: `
      CREATE TABLE audit_run_grants_v18 (
        repository_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        audit_event_id TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('subject', 'actor')),
        issuer TEXT,
        check_run_id TEXT,
        run_attempt TEXT,
        jti TEXT NOT NULL,
        exp INTEGER NOT NULL,
        PRIMARY KEY (repository_id, run_id, audit_event_id, role)
      ) WITHOUT ROWID;
      INSERT INTO audit_run_grants_v18 (repository_id, run_id, audit_event_id, role, issuer, check_run_id, run_attempt, jti, exp)
        SELECT grants.repository_id, grants.run_id, grants.audit_event_id,
               CASE WHEN audit_events.id IS NULL OR (${claimTextSql('repository_id')} = grants.repository_id AND ${claimTextSql('run_id')} = grants.run_id)
                    THEN 'subject' ELSE 'actor' END,
               grants.issuer, grants.check_run_id, grants.run_attempt, grants.jti, grants.exp
          FROM audit_run_grants AS grants LEFT JOIN audit_events ON audit_events.id = grants.audit_event_id;
      INSERT INTO audit_run_grants_v18 (repository_id, run_id, audit_event_id, role, issuer, check_run_id, run_attempt, jti, exp)
        SELECT grants.repository_id, grants.run_id, grants.audit_event_id, 'actor',
               CASE WHEN json_type(event, '$.actor.issuer') = 'text' THEN json_extract(event, '$.actor.issuer') END,
               ${claimTextSql('check_run_id', '$.actor.run')}, ${claimTextSql('run_attempt', '$.actor.run')}, grants.jti, grants.exp
          FROM audit_run_grants AS grants JOIN audit_events ON audit_events.id = grants.audit_event_id
         WHERE ${claimTextSql('repository_id')} = grants.repository_id AND ${claimTextSql('run_id')} = grants.run_id
           AND ${claimTextSql('repository_id', '$.actor.run')} = grants.repository_id AND ${claimTextSql('run_id', '$.actor.run')} = grants.run_id
           AND CASE WHEN json_type(event, '$.actor.issuer') = 'text' THEN json_extract(event, '$.actor.issuer') END IS NOT grants.issuer;
      DROP TABLE audit_run_grants;
      ALTER TABLE audit_run_grants_v18 RENAME TO audit_run_grants;
      CREATE INDEX audit_run_grants_exp ON audit_run_grants (exp);
    `,
  },
  {
    // The end of a GitHub Actions job revoked a grant only while the policies still trusted its issuer as a GitHub Actions
    // one: it looked the recorded issuer up in today's set, so removing that trust (an incident, a policy dropped) left the
    // job's tokens live to their TTL. Each row keeps the kind of issuer that verified its token (the record's
    // `issuer_kind`, `actor.issuer_kind`), and that is what the job's end reads. The records before this one do not say:
    // their rows stay NULL and are read as before, by the issuer's kind in the policies now, until their tokens expire.
    id: 19,
    sql: `ALTER TABLE audit_run_grants ADD COLUMN issuer_kind TEXT;`,
  },
  {
    // The end of a job or run claims the GitHub tokens it makes due by a mark of their own, not by their next attempt
    // being later than its clock: a job's and its run's deliveries handled at once, each on its own clock (two isolates,
    // two processes), both counted a token when the second's clock was behind the first's. Rows made due before this
    // migration have none, and are not claimed again: their next attempt is already due.
    id: 20,
    sql: `
      ALTER TABLE github_token_revocations ADD COLUMN ended_by_work INTEGER NOT NULL DEFAULT 0 CHECK (ended_by_work IN (0, 1));
    `,
  },
  // A proxied request counted in the roll-up once per record: its outcome (and a token minted after its deadline) as
  // another grant, or an upstream failure as a refusal. It is counted once, by its decision record (sqlite-audit-usage.ts).
  { id: 21, sql: AUDIT_USAGE_REBUILD },
  // The roll-up counted housekeeping (an /audit sign-in, a revocation, an introspection) as its operator's grants. Its
  // groups keep the reason, and only housekeeping records have these: dropping their rows leaves what a rebuild would.
  { id: 22, sql: "DELETE FROM audit_usage WHERE reason IN ('audit_page_signed_in', 'token_revoked', 'token_introspected');" },
  // A GitHub token's holder hands it back to POST /revoke, which finds its row by the token's SHA-256 (anyone can send one).
  { id: 23, sql: 'CREATE INDEX github_token_revocations_token ON github_token_revocations (token_sha256);' },
  // An operator withdraws a signing key whose private part leaked (`keyway keys withdraw`): removed at once, and marked so
  // an auditor tells it from a key upkeep removed once its tokens had expired. Keys removed before were not withdrawn.
  { id: 24, sql: 'ALTER TABLE signing_keys ADD COLUMN withdrawn_at INTEGER;' },
  {
    // The alert rules keep a caller's history by its account (recordedCaller: issuer, account, subject), not by its issuer
    // and `sub`, which two accounts share under a customised GitHub `sub` or an issuer whose `sub` is not unique per
    // tenant. The policy that last granted each caller is taken from its records, its account spelled as accountOf spells
    // it from the first tenant claim of the record's issuer kind as the presets named them then. The networks each issuer
    // and `sub` were granted from carry over to every account granted under it: none of them is new to any of those after
    // the upgrade, as none was before it.
    id: 25,
    sql: `
      CREATE TABLE audit_caller_networks (
        issuer TEXT NOT NULL,
        account TEXT NOT NULL,
        subject TEXT NOT NULL,
        network TEXT NOT NULL,
        time INTEGER NOT NULL,
        PRIMARY KEY (issuer, account, subject, network)
      ) WITHOUT ROWID;
      CREATE TABLE audit_caller_grants (
        issuer TEXT NOT NULL,
        account TEXT NOT NULL,
        subject TEXT NOT NULL,
        policy_id TEXT NOT NULL,
        PRIMARY KEY (issuer, account, subject)
      ) WITHOUT ROWID;
      INSERT INTO audit_caller_grants (issuer, account, subject, policy_id)
        SELECT issuer, account, subject, policy_id FROM (
          SELECT issuer, ${CALLER_ACCOUNT_SQL} AS account, subject, policy_id, max(seq) FROM audit_events
            WHERE decision = 'granted' AND json_type(event, '$.issuer') IS NOT NULL AND subject IS NOT NULL
            GROUP BY 1, 2, 3
        ) WHERE policy_id IS NOT NULL;
      INSERT OR IGNORE INTO audit_caller_networks (issuer, account, subject, network, time)
        SELECT callers.issuer, callers.account, callers.subject, seen.value, seen.time FROM (
          SELECT DISTINCT issuer, ${CALLER_ACCOUNT_SQL} AS account, subject FROM audit_events
            WHERE decision = 'granted' AND json_type(event, '$.issuer') IS NOT NULL AND subject IS NOT NULL
        -- CROSS JOIN keeps the callers outside, each looking its networks up by key. Left to the planner, each network row
        -- scanned the log's callers again: a minute for 5,000 records and as many networks, growing with their product.
        ) AS callers CROSS JOIN audit_first_seen AS seen ON seen.kind = 'network' AND seen.scope = callers.issuer || '#' || callers.subject;
      DELETE FROM audit_first_seen WHERE kind = 'network';
    `,
  },
];

/** The schema this code writes: the id of its last migration. */
export const SCHEMA_VERSION = Math.max(...MIGRATIONS.map((migration) => migration.id));

/**
 * A database a newer keyway migrated: it may hold tables, columns or rows this code would
 * misread or overwrite, so it is refused before anything is written. Roll back by restoring the
 * backup taken before the upgrade, or run the newer release.
 */
export class SchemaTooNewError extends ConfigError {
  override readonly name: string = 'SchemaTooNewError';
  override readonly code: string = 'schema_too_new';
  readonly found: number;

  constructor(found: number) {
    super(
      `the database has schema version ${found}, newer than the ${SCHEMA_VERSION} this keyway knows: a newer release wrote it. ` +
        'Run that release, or restore the backup taken before the upgrade (docs/operations/backup-and-upgrade.md); keyway never opens it half-understood',
    );
    this.found = found;
  }
}

const KNOWN = new Set(MIGRATIONS.map((migration) => migration.id));

/**
 * The schema version of a database, read without writing: the highest migration applied, 0 when
 * it has none (a new file, or one keyway never wrote). Throws SchemaTooNewError if a migration
 * applied is one this code does not know.
 */
export function checkSchema(db: SqlDatabase): number {
  if (db.all("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'keyway_schema'").length === 0) return 0;
  const applied = db.all<{ id: number }>('SELECT id FROM keyway_schema ORDER BY id').map((row) => row.id);
  const unknown = applied.filter((id) => !KNOWN.has(id));
  if (unknown.length > 0) throw new SchemaTooNewError(Math.max(...unknown));
  return applied.at(-1) ?? 0;
}

/**
 * Brings the database to `version` (SCHEMA_VERSION unless told): each missing migration, in order, in its own
 * transaction with its row in keyway_schema, so a crash leaves the schema before or after it,
 * never half. Forward only; a database a newer keyway wrote is refused before anything is written.
 * The applied check is made again inside each transaction: two processes opening the same file
 * (the broker and `keyway keys rotate`) apply a migration once.
 */
export function migrate(db: SqlDatabase, version: number = SCHEMA_VERSION): void {
  if (checkSchema(db) >= version) return;
  db.exec('CREATE TABLE IF NOT EXISTS keyway_schema (id INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  for (const migration of MIGRATIONS.filter(({ id }) => id <= version)) {
    db.transaction(() => {
      if (db.all('SELECT id FROM keyway_schema WHERE id = ?', [migration.id]).length > 0) return;
      db.exec(migration.sql);
      db.run('INSERT INTO keyway_schema (id, applied_at) VALUES (?, ?)', [migration.id, Date.now()]);
    });
  }
}
