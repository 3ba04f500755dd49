import type { JWTVerifyGetKey } from 'jose';
import type { UnvouchedKey } from '../mint/key-store.ts';
import type { AuditRecord } from './audit-event.ts';
import { indexMismatch } from './audit-index.ts';
import { duplicateMember } from './duplicate-member.ts';
import { chainHash, GENESIS_HASH } from './chain-hash.ts';
import type { Checkpoint } from './checkpoint.ts';
import { lowestMacsStart, RecordMacs, type RecordMacCheck, type RecordMacKey } from './record-mac.ts';
import { verifyCheckpoint, type VerifiedCheckpoint } from './verify-checkpoint.ts';
import { keyWithdrawal, signingKid, withdrawnKeyUse, type KeyWithdrawal } from './withdrawn-keys.ts';

export type ChainProblemKind =
  | 'edited'
  | 'index_mismatch'
  | 'derived_mismatch'
  | 'deleted'
  | 'reordered'
  | 'truncated'
  | 'checkpoint_invalid'
  | 'checkpoint_mismatch'
  | 'checkpoint_unvouched'
  | 'checkpoint_key_withdrawn'
  | 'key_unvouched'
  | 'kept_checkpoint_invalid'
  | 'kept_checkpoint_mismatch'
  | 'records_missing'
  | 'root_checkpoint_invalid'
  | 'root_chain_missing'
  | 'root_chain_unnamed'
  | 'root_checkpoints_rolled_back'
  | 'kept_root_checkpoint_invalid'
  | 'mac_missing'
  | 'mac_key_unknown'
  | 'mac_invalid';

export interface ChainProblem {
  readonly kind: ChainProblemKind;
  /** Where it shows: the first record (or checkpoint) that does not hold; none for a key that signed no kept checkpoint. */
  readonly seq?: number;
  readonly id?: string;
  /** The signing key, for the kinds about one. */
  readonly kid?: string;
  readonly message: string;
}

export interface ChainReport {
  readonly ok: boolean;
  readonly records: number;
  readonly first_seq?: number;
  readonly last_seq?: number;
  readonly head_hash?: string;
  /** Checkpoints whose signature verified. */
  readonly checkpoints: number;
  /** The checkpoint the oldest kept record's predecessor is anchored in, after pruning. */
  readonly anchor?: number;
  /**
   * The anchor was signed before keyway marked pruning anchors (it names no role): it shows the records before
   * it are gone, not that pruning removed them. The next upkeep round that prunes replaces it with a marked one.
   */
  readonly anchor_unmarked?: true;
  /** Checkpoints kept elsewhere (`--checkpoints`) whose signature verified, when some were given. */
  readonly kept_checkpoints?: number;
  /** The records' MACs, when they were checked (`macKeys`). */
  readonly macs?: MacReport;
  /** The signing keys the chain records as withdrawn (`signing_key_withdrawn`), up to its first problem: none signs after. */
  readonly withdrawn_keys?: readonly KeyWithdrawal[];
  /** The first problem, by position in the log. */
  readonly problem?: ChainProblem;
  /** Keys the store holds that nothing vouches for: each one fails the verification, whether or not it signed a kept checkpoint. */
  readonly unvouched_keys?: readonly UnvouchedKey[];
}

/**
 * What the MACs of the records read showed: how many verified, how many carry none at or before `after` (written before
 * keyway made MACs: only the chain and the checkpoints vouch for them), and `after`, the seq after which every record must
 * carry one: signed by the newest valid checkpoint (`signed`), or, without one that signs it, as the store remembers it
 * (audit_mac_start), moved before the first record that carries one.
 */
export interface MacReport {
  readonly valid: number;
  readonly without: number;
  readonly after: number;
  readonly signed: boolean;
}

/** A checkpoint kept elsewhere (signature verified), or a head a verified root checkpoint signs, which names no withdrawal. */
type KeptCheckpoint = Checkpoint & Pick<VerifiedCheckpoint, 'withdrawals'>;

/**
 * Walks records in chain order and finds the first one that does not hold: an edited record
 * no longer matches its own hash, or an index column stored beside it (what queries, stats
 * and alerts read) no longer says what the hashed event says; a deleted one leaves a gap, or a
 * successor committing to a predecessor that is gone; a re-ordered one commits to a record
 * that comes later. Signed checkpoints pin `seq → hash`: a log rewritten (re-hashed) or cut
 * short after a checkpoint no longer matches it. Memory stays constant whatever the length of
 * the log.
 */
export class ChainVerifier {
  readonly #checkpoints: ReadonlyMap<number, VerifiedCheckpoint>;
  readonly #kept: ReadonlyMap<number, readonly KeptCheckpoint[]>;
  readonly #keptCount: number | undefined;
  #expected: string | undefined;
  #previousSeq = 0;
  #first: AuditRecord | undefined;
  #last: AuditRecord | undefined;
  #records = 0;
  #anchor: VerifiedCheckpoint | undefined;
  #problem: ChainProblem | undefined;
  /** A record whose predecessor was not the record before it: re-ordered if that predecessor turns up later. */
  #broken: { readonly record: AuditRecord; readonly wanted: string } | undefined;
  readonly #macs: { readonly check: RecordMacCheck; readonly signed: boolean } | undefined;
  #maced = 0;
  #unmaced = 0;
  readonly #withdrawals: KeyWithdrawal[] = [];

  /**
   * `kept`: checkpoints kept elsewhere (signatures verified), which the log must agree with and reach. `macs`: each record
   * held to the MAC stored beside it (`record.mac`), and whether a checkpoint signed where MACs start.
   */
  constructor(
    checkpoints: readonly VerifiedCheckpoint[],
    kept?: readonly KeptCheckpoint[],
    macs?: { readonly check: RecordMacCheck; readonly signed: boolean },
  ) {
    this.#checkpoints = new Map(checkpoints.map((checkpoint) => [checkpoint.seq, checkpoint]));
    this.#kept = Map.groupBy(kept ?? [], (checkpoint) => checkpoint.seq);
    this.#keptCount = kept?.length;
    this.#macs = macs;
  }

  /** False once the first problem is known: there is no need to read further. */
  get wantsMore(): boolean {
    return this.#problem === undefined;
  }

  push(record: AuditRecord): void {
    if (this.#problem !== undefined) return;
    const { chain, event } = record;
    this.#records += 1;
    if (this.#broken !== undefined) {
      if (chain.hash === this.#broken.wanted) {
        const at = this.#broken.record;
        this.#problem = problem(
          'reordered',
          at,
          `record ${at.chain.seq} (${at.event.id}) is out of order: the record it follows in the chain sits at seq ${chain.seq}`,
        );
      }
      return;
    }
    this.#first ??= record;
    if (this.#expected === undefined) this.#expected = this.#startingHash(record);
    if (this.#problem !== undefined) return;

    const mismatch = record.index === undefined ? undefined : indexMismatch(event, record.index);
    const twice = record.text === undefined ? undefined : duplicateMember(record.text);
    if (chainHash(chain.prev_hash, event) !== chain.hash) {
      this.#problem = problem('edited', record, `record ${chain.seq} (${event.id}) was edited: its content no longer matches its hash`);
    } else if (twice !== undefined) {
      this.#problem = problem(
        'edited',
        record,
        `record ${chain.seq} (${event.id}) was edited: its stored text names ${JSON.stringify(twice)} twice, so queries read another value than the hash covers`,
      );
    } else if (mismatch !== undefined) {
      const { column, stored, derived } = mismatch;
      const holds = `its ${column} column holds ${JSON.stringify(stored) ?? 'nothing'}, the hashed record says ${JSON.stringify(derived)}`;
      this.#problem = problem('index_mismatch', record, `record ${chain.seq} (${event.id}) was edited in the index queries read: ${holds}`);
    } else if (chain.prev_hash !== this.#expected) {
      if (this.#previousSeq !== 0 && chain.seq > this.#previousSeq + 1) {
        this.#problem = problem(
          'deleted',
          record,
          `records ${this.#previousSeq + 1}…${chain.seq - 1} were deleted: record ${chain.seq} (${event.id}) follows record ${this.#previousSeq}`,
        );
      } else {
        this.#broken = { record, wanted: chain.prev_hash };
      }
    } else if (this.#previousSeq !== 0 && chain.seq !== this.#previousSeq + 1) {
      this.#problem = problem('edited', record, `record ${chain.seq} (${event.id}) was renumbered: it follows record ${this.#previousSeq} in the chain`);
    } else {
      const checkpoint = this.#checkpoints.get(chain.seq);
      const kept = this.#kept.get(chain.seq)?.find((copy) => copy.hash !== chain.hash);
      if (checkpoint !== undefined && checkpoint.hash !== chain.hash) {
        this.#problem = problem(
          'checkpoint_mismatch',
          record,
          `record ${chain.seq} (${event.id}) differs from the checkpoint signed at ${checkpoint.time}: the log was rewritten after it`,
        );
      } else if (kept !== undefined) {
        this.#problem = problem(
          'kept_checkpoint_mismatch',
          record,
          `record ${chain.seq} (${event.id}) differs from the kept checkpoint signed at ${kept.time}: the log is not the one the broker signed`,
        );
      } else {
        this.#holdToMac(record);
        const withdrawal = keyWithdrawal(record);
        if (withdrawal !== undefined) this.#withdrawals.push(withdrawal);
      }
    }
    this.#expected = chain.hash;
    this.#previousSeq = chain.seq;
    this.#last = record;
  }

  #holdToMac(record: AuditRecord): void {
    if (this.#macs === undefined) return;
    const mac = record.mac ?? null;
    const found = this.#macs.check.problem(record.chain, mac);
    if (found !== undefined) this.#problem = problem(found.kind, record, `record ${record.chain.seq} (${record.event.id}) ${found.why}`);
    else if (mac === null) this.#unmaced += 1;
    else this.#maced += 1;
  }

  #startingHash(first: AuditRecord): string {
    if (first.chain.seq === 1) return GENESIS_HASH;
    const anchor = this.#checkpoints.get(first.chain.seq - 1);
    if (anchor === undefined) {
      this.#problem = problem(
        'deleted',
        first,
        `records before seq ${first.chain.seq} were deleted: no checkpoint anchors record ${first.chain.seq} (${first.event.id})`,
      );
      return first.chain.prev_hash;
    }
    // Any head checkpoint would do as an anchor otherwise: whoever can write the store could delete the log up to one.
    if (anchor.role === 'head') {
      this.#problem = problem(
        'deleted',
        first,
        `records before seq ${first.chain.seq} were deleted: the checkpoint at seq ${anchor.seq} was signed as the log's head, not as the anchor pruning leaves`,
      );
      return first.chain.prev_hash;
    }
    this.#anchor = anchor;
    this.#holdToKept(anchor);
    return anchor.hash;
  }

  /**
   * The withdrawals the chain records, and those an anchor names whose records it no longer holds. Every anchor's count, not
   * only the one the kept records start after: whoever holds a withdrawn key can sign an anchor of their own that names it no
   * more, and an earlier anchor (kept elsewhere) that named it must still hold what follows to it. The earliest time a kid is
   * named with counts, then the anchor the records start after; a withdrawal the chain still records counts from that time
   * too when it is earlier than the record's: a record past the last checkpoint is the store's word (unless `--macs` checks
   * it), and one naming the key withdrawn later must not move on a withdrawal an anchor kept elsewhere names.
   */
  #knownWithdrawals(): KeyWithdrawal[] {
    const others = [...this.#checkpoints.values(), ...[...this.#kept.values()].flat()].filter((checkpoint) => checkpoint !== this.#anchor);
    const anchors = [...(this.#anchor === undefined ? [] : [this.#anchor]), ...others.sort((a, b) => a.seq - b.seq)];
    const named = new Map<string, KeyWithdrawal>();
    for (const { seq, withdrawals } of anchors)
      for (const { kid, time } of withdrawals ?? []) {
        const known = named.get(kid);
        if (known === undefined || Date.parse(time) < Date.parse(known.time)) named.set(kid, { kid, seq, time, pruned: true });
      }
    const recorded = this.#withdrawals.map((withdrawal) => {
      const anchored = named.get(withdrawal.kid);
      return anchored !== undefined && Date.parse(anchored.time) < Date.parse(withdrawal.time)
        ? { ...withdrawal, time: anchored.time, anchor: anchored.seq, recorded: withdrawal.time }
        : withdrawal;
    });
    const recordedKids = new Set(recorded.map(({ kid }) => kid));
    return [...[...named.values()].filter(({ kid }) => !recordedKids.has(kid)), ...recorded];
  }

  /**
   * A kept checkpoint at the anchor's seq must sign the anchor's hash: the records it covered are gone, and an anchor
   * signed over them after they were re-hashed (by a keyway before it checked, or by another copy of the log with the
   * same keys) would otherwise pass. Kept checkpoints before the anchor cannot be held to anything left.
   */
  #holdToKept(anchor: VerifiedCheckpoint): void {
    const kept = this.#kept.get(anchor.seq)?.find((copy) => copy.hash !== anchor.hash);
    if (kept === undefined || this.#problem !== undefined) return;
    const message = `the anchor at seq ${anchor.seq} differs from the kept checkpoint signed at ${kept.time}: the records before it were rewritten before they were pruned`;
    this.#problem = { kind: 'kept_checkpoint_mismatch', seq: anchor.seq, message };
  }

  /**
   * A chain with no records: empty since its genesis, or pruned to its anchor (which pruning leaves, and only it, at
   * the head's seq). A head checkpoint there signs records that were deleted.
   */
  #emptyChain(): void {
    const top = [...this.#checkpoints.values()].sort((a, b) => b.seq - a.seq)[0];
    if (top === undefined || this.#problem !== undefined) return;
    if (top.role === 'head') {
      this.#problem = {
        kind: 'deleted',
        seq: top.seq,
        message: `records up to seq ${top.seq} were deleted: the log holds none, and the checkpoint at seq ${top.seq} was signed as its head, not as the anchor pruning leaves`,
      };
      return;
    }
    this.#anchor = top;
    this.#holdToKept(top);
  }

  finish(): ChainReport {
    if (this.#problem === undefined && this.#broken !== undefined) {
      const { record } = this.#broken;
      this.#problem = problem(
        'deleted',
        record,
        `the chain breaks before record ${record.chain.seq} (${record.event.id}): the record it commits to is gone, deleted or rewritten with a new hash`,
      );
    }
    if (this.#records === 0) this.#emptyChain();
    const lastSeq = this.#last?.chain.seq ?? this.#anchor?.seq ?? 0;
    const beyond = [...this.#checkpoints.values()].filter((checkpoint) => checkpoint.seq > lastSeq).sort((a, b) => a.seq - b.seq)[0];
    if (this.#problem === undefined && beyond !== undefined && this.#records > 0) {
      this.#problem = {
        kind: 'truncated',
        seq: lastSeq + 1,
        message: `records after seq ${lastSeq} were deleted: a checkpoint signed at ${beyond.time} covers seq ${beyond.seq}`,
      };
    }
    const withdrawals = this.#knownWithdrawals();
    const reach = Math.max(0, ...this.#kept.keys());
    if (this.#problem === undefined && reach > lastSeq) {
      this.#problem = {
        kind: 'records_missing',
        seq: lastSeq + 1,
        message: `the log ends at ${lastSeq}; a kept checkpoint covers up to ${reach}: ${reach - lastSeq} records are missing`,
      };
    }
    return {
      ok: this.#problem === undefined,
      records: this.#records,
      ...(this.#first === undefined ? {} : { first_seq: this.#first.chain.seq }),
      ...(this.#last === undefined ? {} : { last_seq: this.#last.chain.seq, head_hash: this.#last.chain.hash }),
      checkpoints: this.#checkpoints.size,
      ...(this.#anchor === undefined ? {} : { anchor: this.#anchor.seq }),
      ...(this.#anchor !== undefined && this.#anchor.role === undefined ? { anchor_unmarked: true as const } : {}),
      ...(this.#keptCount === undefined ? {} : { kept_checkpoints: this.#keptCount }),
      ...(this.#macs === undefined
        ? {}
        : { macs: { valid: this.#maced, without: this.#unmaced, after: this.#macs.check.macsAfter(lastSeq), signed: this.#macs.signed } }),
      ...(withdrawals.length === 0 ? {} : { withdrawn_keys: withdrawals }),
      ...(this.#problem === undefined ? {} : { problem: this.#problem }),
    };
  }
}

function problem(kind: ChainProblemKind, record: AuditRecord, message: string): ChainProblem {
  return { kind, seq: record.chain.seq, id: record.event.id, message };
}

export interface AuditLogSource {
  /** Every record, in chain order (ascending `seq`). */
  readonly records: AsyncIterable<AuditRecord>;
  /** The stored checkpoints, as they are: their signatures are checked here. */
  readonly checkpoints: readonly Checkpoint[];
  /** The broker's public keys: only those the verifier trusts (vouched for by the master key, or pinned). */
  readonly keys: JWTVerifyGetKey;
  /** Keys the store holds beside them that nothing vouches for: whoever wrote the store could have planted them. */
  readonly unvouched?: readonly UnvouchedKey[];
  /** Checkpoints kept elsewhere (a witness's copies), as given: their signatures are checked here with `keys`. */
  readonly kept?: readonly Checkpoint[];
  /** Heads signed by root checkpoints already verified (verify-shards.ts): held to the log as kept checkpoints are. */
  readonly witnessed?: readonly Checkpoint[];
  /** Where MACs start in this chain as the root checkpoints already verified sign it (verify-shards.ts). */
  readonly witnessedMacsAfter?: number;
  /** The chain's name in a log of several (verify-shards.ts, a shard's restore): a checkpoint signed for another chain is not valid here. */
  readonly chain?: string;
  /**
   * Where a table derived from the records and read in their place (the usage roll-up the inventory reads) differs from
   * them, or undefined; asked once the chain holds. Only a store read directly (a data directory) has one to ask.
   */
  readonly derivedMismatch?: () => Promise<string | undefined>;
  /**
   * Where MACs start as the store remembers it (audit_mac_start), present when its records carry the MACs stored beside
   * them (`record.mac`): a data directory, an export of a Workers state. The API's export carries none.
   */
  readonly macsStart?: number;
  /**
   * The record MAC keys of the master key the verifier holds (`audit verify --macs`): each record is then held to its MAC,
   * and one without a MAC after where MACs start (the newest valid checkpoint's signed `macs_after`, else `macsStart`) fails.
   */
  readonly macKeys?: readonly RecordMacKey[];
}

/**
 * Verifies checkpoint signatures, then the chain against the ones that verify. The first problem
 * by `seq` wins; a key nothing vouches for fails the verification even when it signed nothing kept.
 */
export async function verifyAuditLog(source: AuditLogSource): Promise<ChainReport> {
  const unvouched = new Map((source.unvouched ?? []).map((key) => [key.kid, key.why]));
  const valid: VerifiedCheckpoint[] = [];
  let forged: ChainProblem | undefined;
  for (const stored of source.checkpoints) {
    const kid = signingKid(stored.jws);
    const why = kid === undefined ? undefined : unvouched.get(kid);
    if (kid !== undefined && why !== undefined) {
      forged ??= {
        kind: 'checkpoint_unvouched',
        seq: stored.seq,
        kid,
        message: `the checkpoint stored for seq ${stored.seq} is signed by key ${kid}, which nothing vouches for: it ${why}`,
      };
      continue;
    }
    try {
      valid.push(await verifyCheckpoint(stored.jws, source.keys, source.chain));
    } catch (error) {
      forged ??= {
        kind: 'checkpoint_invalid',
        seq: stored.seq,
        message: `the checkpoint stored for seq ${stored.seq} is not signed by the broker: ${(error as Error).message}`,
      };
    }
  }
  const kept: VerifiedCheckpoint[] = [];
  for (const copy of source.kept ?? []) {
    try {
      kept.push(await verifyCheckpoint(copy.jws, source.keys, source.chain));
    } catch (error) {
      forged ??= {
        kind: 'kept_checkpoint_invalid',
        seq: copy.seq,
        message: `the kept checkpoint for seq ${copy.seq} is not signed by a key the broker's keys include: ${(error as Error).message}`,
      };
    }
  }
  const witnessed = source.witnessed ?? [];
  const verifier = new ChainVerifier(
    valid,
    source.kept === undefined && witnessed.length === 0 ? undefined : [...kept, ...witnessed],
    source.macKeys === undefined ? undefined : macCheck(source, source.macKeys, [...valid, ...kept]),
  );
  for await (const record of source.records) {
    verifier.push(record);
    if (!verifier.wantsMore) break;
  }
  const found = verifier.finish();
  const report: ChainReport = unvouched.size === 0 ? found : { ...found, ok: false, unvouched_keys: source.unvouched };
  const withdrawn = withdrawnKeyProblem([...valid, ...kept], report.withdrawn_keys ?? []);
  const problem = firstBySeq([report.problem, forged, withdrawn]) ?? keyProblem(source.unvouched?.[0]);
  if (problem !== undefined) return { ...report, ok: false, problem };
  const derived = await source.derivedMismatch?.();
  return derived === undefined ? report : { ...report, ok: false, problem: { kind: 'derived_mismatch', message: `${derived}: it was edited` } };
}

/**
 * The MAC check of a chain, from where MACs start as upkeep and restore take it: the newest valid checkpoint's signed
 * `macs_after`, else the store's own (which whoever writes the store can move, and which counts only until one signs it).
 * `valid` holds the kept checkpoints too: deleting the store's would otherwise hand where MACs start back to the store.
 * A root checkpoint's (`witnessedMacsAfter`) counts beside it for the same reason: the lower of the two, since upkeep
 * only ever signs a start at or before the one it was held to, so the lower is the newer.
 */
function macCheck(source: AuditLogSource, keys: readonly RecordMacKey[], valid: readonly VerifiedCheckpoint[]) {
  if (source.macsStart === undefined) throw new TypeError("this audit log source does not carry the records' MACs");
  const newest = valid.reduce<VerifiedCheckpoint | undefined>(
    (top, checkpoint) => (top === undefined || checkpoint.seq > top.seq ? checkpoint : top),
    undefined,
  );
  const signed = lowestMacsStart([newest?.macsAfter, source.witnessedMacsAfter]);
  const macs = new RecordMacs(keys, source.chain === undefined ? {} : { chain: source.chain });
  return { check: macs.inOrder(signed ?? source.macsStart), signed: signed !== undefined };
}

/**
 * A checkpoint (the log's or a kept one) signed with a key after the chain recorded its withdrawal: signed by whoever
 * holds the leaked key (withdrawn-keys.ts).
 */
function withdrawnKeyProblem(checkpoints: readonly VerifiedCheckpoint[], withdrawals: readonly KeyWithdrawal[]): ChainProblem | undefined {
  const use = withdrawnKeyUse(checkpoints, withdrawals, true);
  if (use === undefined) return undefined;
  const { statement, kid, time, why } = use;
  return {
    kind: 'checkpoint_key_withdrawn',
    seq: statement.seq ?? 0,
    kid,
    message: `the checkpoint for seq ${statement.seq} is signed by key ${kid} at ${time}, ${why}`,
  };
}

/** The problem that shows first in the log (the lowest seq; the earlier given on a tie). */
function firstBySeq(problems: readonly (ChainProblem | undefined)[]): ChainProblem | undefined {
  return problems.reduce<ChainProblem | undefined>(
    (first, each) => (each !== undefined && (first === undefined || (each.seq ?? 0) < (first.seq ?? 0)) ? each : first),
    undefined,
  );
}

function keyProblem(key: UnvouchedKey | undefined): ChainProblem | undefined {
  if (key === undefined) return undefined;
  return { kind: 'key_unvouched', kid: key.kid, message: `the log's store holds signing key ${key.kid}, which nothing vouches for: it ${key.why}` };
}
