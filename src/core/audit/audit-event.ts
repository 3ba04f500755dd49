import type { Decision, Reason } from '../errors/reasons.ts';
import type { AuditIndex } from './audit-index.ts';
import type { AuditPage, AuditQuery, AuditStats, AuditStatsQuery } from './audit-query.ts';
import type { ChainHead, Checkpoint } from './checkpoint.ts';
import type { KeyWithdrawn } from '../mint/key-ring.ts';
import type { ClaimUsageRow, UsageQuery, UsageRow, UsageWindow } from './inventory.ts';
import type { RecordedRun, RunGrant } from './run-grants.ts';

/**
 * One record per decision. Never holds a raw token: the subject token is known by its
 * SHA-256 (not shaped as a signed JWT, by its length alone: presented-token.ts) and `jti`, the
 * issued token by its `jti`. Field names are snake_case because auditors read these records
 * directly (exports, queries).
 */
export interface AuditEvent {
  /** ULID: sortable by time. */
  readonly id: string;
  /** ISO 8601, milliseconds. */
  readonly time: string;
  readonly decision: Decision;
  readonly reason: Reason;
  /** Operator-facing detail of a refusal. */
  readonly detail?: string;
  readonly request: {
    readonly id: string;
    readonly client_ip?: string;
    readonly user_agent?: string;
    readonly audience?: readonly string[];
    readonly scope?: readonly string[];
    /** The grant, when it was not token exchange: the RFC 7523 JWT bearer grant, or client credentials with a client assertion. */
    readonly grant_type?: string;
  };
  readonly subject_token?: {
    /** Of a token shaped as a signed JWT; anything else is known by its `length` alone (presented-token.ts). */
    readonly sha256?: string;
    readonly length?: number;
    readonly jti?: string;
    /** `iss` and `sub` as the token claimed them, recorded whether or not it verified. */
    readonly claimed_iss?: string;
    readonly claimed_sub?: string;
  };
  /**
   * The actor of a delegated exchange (RFC 8693 `actor_token`): its hash, and once verified its issuer and subject, and
   * the run ids its claims name (`run`), by which the end of the actor's CI job finds the grant (run-grants.ts). At /proxy,
   * the actor the caller's keyway token names in its `act`: its issuer and subject, and no hash (it sent no token of its own).
   */
  readonly actor?: {
    /** As the subject token's: `sha256` of one shaped as a signed JWT, else `length`. */
    readonly sha256?: string;
    readonly length?: number;
    readonly issuer?: string;
    /** The kind of issuer (its preset: `github`, `gitlab`, `oidc`, …) that verified the actor token. */
    readonly issuer_kind?: string;
    readonly subject?: string;
    readonly run?: RecordedRun;
  };
  /** Set only when the subject token verified. */
  readonly issuer?: string;
  /**
   * The kind of issuer (its preset: `github`, `gitlab`, `oidc`, …) that verified the subject token, as the policies trusted
   * it then: whether the end of a GitHub Actions job may revoke the grant does not depend on whether they trust it still.
   */
  readonly issuer_kind?: string;
  readonly subject?: string;
  /** The verified claims policies look at (and the issuer preset's audit claims). */
  readonly claims?: Readonly<Record<string, unknown>>;
  readonly policy?: {
    readonly granted_by?: string;
    readonly candidates: readonly string[];
    readonly matched: readonly string[];
    readonly denied_by: readonly string[];
    readonly audit_mode: readonly { readonly policy: string; readonly would: 'grant' | 'deny' }[];
    /** The version of the central policy set that decided (`sha256:…` of its files); absent for a repository's own policy. */
    readonly set_version?: string;
  };
  readonly issued?: {
    readonly jti: string;
    readonly sub: string;
    readonly aud: readonly string[];
    readonly scope: readonly string[];
    /** Seconds since the epoch. */
    readonly exp: number;
    /** The RFC 7638 thumbprint of the DPoP key the token is bound to (`cnf.jkt`), when it is. */
    readonly cnf_jkt?: string;
  };
  /** A GitHub installation token issued (never the token: its SHA-256). */
  readonly github?: GitHubTokenRecord;
  /**
   * The GitHub installation tokens of a multi-owner exchange (requested_token_type …github-installation-token-map), one
   * per owner, in request order: one record for the one answer, so every token of it is audited or none is handed out.
   */
  readonly github_tokens?: readonly OwnerTokenRecord[];
  /**
   * A cloud token issued (`grant.cloud`): what joins this record to the cloud's own log
   * (CloudTrail, Cloud Audit Logs, Entra sign-in logs), which name the token's jti or sub.
   */
  readonly cloud?: {
    readonly provider: 'aws' | 'gcp' | 'azure';
    /** The IAM role ARN, service account or application client id asked for; absent for Google's federated identity used directly. */
    readonly identity?: string;
    /** AWS session tags the token carries (principal_tags), each within AWS's limits. */
    readonly session_tags?: Readonly<Record<string, string>>;
    readonly transitive_tag_keys?: readonly string[];
    /** The issued token's jti (also in `issued`). */
    readonly jti: string;
  };
  /**
   * The signing key a `signing_key_withdrawn` record is about: its kid and algorithm, and when it was withdrawn (ISO 8601;
   * absent for a key removed by upkeep, not withdrawn). What `audit verify` reads; records written before keyway wrote it
   * say the same in their `detail` alone.
   */
  readonly signing_key?: {
    readonly kid: string;
    readonly alg: string;
    readonly withdrawn_at?: string;
  };
  /**
   * A proxied request (`/proxy/{upstream}/…`, docs/proxy.md). The decision record, durable before the
   * upstream is called, holds what was asked and the rule that allowed it; the outcome record
   * (reason `proxy_completed` or an upstream failure) names it in `decision_id` and adds what came back. A GitHub token
   * minted only after the deadline answered the request has a record of its own naming it (`proxy_credential_late`).
   */
  readonly proxy?: {
    readonly upstream: string;
    readonly method: string;
    /**
     * The normalised path the rules saw and the upstream received (or, for a refused path, the path as sent). A GitHub App
     * upstream receives it addressed by the repository's id (`credential.repository_id`).
     */
    readonly path: string;
    readonly query_bytes?: number;
    /** The allow rule that took the request, as the policy wrote it. */
    readonly rule?: string;
    /**
     * A GitHub App upstream: the repository and permissions its installation token was minted for; on the outcome record
     * also what keyway minted, to join the upstream's own log: a GitHub token's SHA-256, a keyway JWT's jti. Never a credential.
     */
    readonly credential?: {
      readonly repository?: string;
      readonly permissions?: Readonly<Record<string, string>>;
      /** The account id the repository's owner was held to (the rule's `owner_id`, or the caller's own). */
      readonly owner_id?: string;
      /** The id of the repository the installation token holds: the upstream call is addressed by it (`/repositories/{id}/…`). */
      readonly repository_id?: number;
      readonly token_sha256?: string;
      /** When keyway revokes the installation token (its revocation schedule), ISO 8601. */
      readonly expires_at?: string;
      readonly jti?: string;
    };
    /** Outcome record only: the decision record it completes. */
    readonly decision_id?: string;
    readonly status?: number;
    readonly request_bytes?: number;
    readonly response_bytes?: number;
    readonly duration_ms?: number;
  };
}

/** An audit event while its request is decided: the exchange, the proxy and revocation fill it in as they go. */
export type AuditEventDraft = { -readonly [K in keyof AuditEvent]: AuditEvent[K] };

/** What the audit record keeps of a GitHub installation token issued (never the token: its SHA-256). */
export interface GitHubTokenRecord {
  readonly installation_id: number;
  /** The GitHub App of the pool that minted it. */
  readonly app_id?: string;
  readonly owner: string;
  readonly repositories: readonly string[];
  readonly permissions: Readonly<Record<string, string>>;
  /** Organization permissions, kept apart from the repository ones; absent when none. */
  readonly organization_permissions?: Readonly<Record<string, string>>;
  /** When keyway revokes it (the policy TTL), ISO 8601. */
  readonly expires_at: string;
  /** When GitHub would expire it on its own, ISO 8601. */
  readonly github_expires_at: string;
  readonly token_sha256: string;
}

/** A token of a multi-owner exchange, and the policy that granted it (`policy.granted_by` names the first owner's). */
export interface OwnerTokenRecord extends GitHubTokenRecord {
  readonly granted_by: string;
}

/** Where a record sits in the hash chain (see chain-hash.ts). */
export interface ChainLink {
  /** 1, 2, 3, … in append order; never reused, also across pruning. */
  readonly seq: number;
  readonly prev_hash: string;
  readonly hash: string;
}

/** An event once durable, with its link in the chain: what the alert rules are told of. */
export interface AppendedRecord {
  readonly event: AuditEvent;
  readonly link: ChainLink;
}

/** An event as the log holds it: the event, its link in the chain, and the index columns stored beside it. */
export interface AuditRecord {
  readonly event: AuditEvent;
  readonly chain: ChainLink;
  /** As stored, which is what queries read: `audit verify` holds it to the event. Absent where no store kept one. */
  readonly index?: AuditIndex;
  /** The event's text as stored, which SQL reads: `audit verify` holds it to name no member twice. Absent where no store kept one. */
  readonly text?: string;
  /**
   * The MAC stored beside it (record-mac.ts), null when it has none: what `audit verify --macs` holds it to. Absent where
   * the source carries none (the API's export).
   */
  readonly mac?: string | null;
}

/**
 * The record to prune up to, and the key withdrawals the hashed records up to it (`signing_key_withdrawn`) name: the anchor
 * pruning signs names them, since the key store, which whoever can write it may have edited, is then the only other word.
 */
export interface PruneCandidate extends ChainHead {
  readonly withdrawals: readonly KeyWithdrawn[];
}

/**
 * Where audit events go: an append-only hash chain with signed checkpoints, and the queries
 * auditors run over it. Written once over SqlDatabase; on Workers it runs inside KeywayState.
 */
export interface AuditStore {
  /** Appends the event as the new head of the chain. Resolves once durable; rejects means no token. */
  append(event: AuditEvent): Promise<ChainLink>;
  /**
   * Appends events in order, in as few commits as the store makes of them (one transaction; on Node the writer's group
   * commits), rather than one each. Resolves once every one is durable; rejects if one could not be appended, though
   * others may have been.
   */
  appendAll(events: readonly AuditEvent[]): Promise<ChainLink[]>;
  get(id: string): Promise<AuditEvent | undefined>;
  record(id: string): Promise<AuditRecord | undefined>;
  query(query: AuditQuery): Promise<AuditPage>;
  stats(query: AuditStatsQuery): Promise<AuditStats>;
  /** The window's records grouped by identity, policy, outcome and grant (inventory, unused access); groups of several shards add up. */
  usage(query: UsageQuery): Promise<UsageRow[]>;
  /** Per granting policy and claim of the window's grants, the least and greatest value (the unused-access analysis's pins). */
  claimUsage(window: UsageWindow): Promise<ClaimUsageRow[]>;
  /**
   * The keyway tokens granted to a CI run (its `repository_id` and `run_id` claims) that still verify at `at` (ms: their
   * `exp` and the clock skew tolerated beyond it), from the index the appends keep beside the log, whatever else the log holds.
   */
  grantsOfRun(repositoryId: string, runId: string, at: number): Promise<RunGrant[]>;
  /** The last record's link, or after pruning everything the anchor checkpoint, or the genesis. */
  head(): Promise<ChainHead>;
  /** Checkpoints with `seq` above `afterSeq`, oldest first. */
  checkpoints(afterSeq: number, limit: number): Promise<Checkpoint[]>;
  latestCheckpoint(): Promise<Checkpoint | undefined>;
  /** Stores a signed checkpoint; refuses one that does not match the record at its `seq`. */
  addCheckpoint(checkpoint: Checkpoint): Promise<void>;
  /** The last of the oldest kept records (at most `maxRecords`) dated before `before` (ms) in their hashed records: what to prune up to. */
  pruneCandidate(before: number, maxRecords: number): Promise<PruneCandidate | undefined>;
  /**
   * Throws a ChainConflictError unless the records after `from` up to `to` hold, from `from`'s hash to `to`'s (two signed
   * checkpoints, say): none missing, each linked to the one before and hashing to its own hash. Hashes every record between.
   */
  chainHolds(from: ChainHead, to: ChainHead): Promise<void>;
  /**
   * Throws a ChainConflictError unless every record after `afterSeq` up to `toSeq` carries the MAC the broker appends it
   * with (record-mac.ts), or none where it is at or before `macsAfter` (given: the one a checkpoint signed; absent, the
   * store's own, remembered when the migration that added MACs ran). Returns the `macsAfter` they were held to.
   */
  recordMacsHold(afterSeq: number, toSeq: number, macsAfter?: number): Promise<number>;
  /** Stores `anchor` and deletes every record up to and including its `seq`; returns how many. */
  prune(anchor: Checkpoint): Promise<number>;
}

/** What exchanges write and auditors read: one chain (an AuditStore), or on Workers the shards' chains merged. */
export type AuditLog = Pick<AuditStore, 'append' | 'appendAll' | 'get' | 'record' | 'query' | 'stats' | 'usage' | 'claimUsage' | 'grantsOfRun'> & {
  /** The chain `event` is appended to, where there are several (the Workers shards); absent: there is one. */
  shardOf?(event: AuditEvent): number;
};
