import type { Checkpoint } from '../core/audit/checkpoint.ts';
import { verifyAuditLog, type AuditLogSource, type ChainProblemKind, type ChainReport } from '../core/audit/verify-chain.ts';
import { verifyShardedAuditLog, type ShardedLogSource, type ShardedReport } from '../core/audit/verify-shards.ts';
import { CliError, type Command } from './command.ts';
import { openAuditSource, parseAuditArgs, SOURCE_USAGE } from './audit-source.ts';
import { readExportedAuditLog } from './exported-audit-log.ts';
import { readKeptCheckpoints } from './kept-checkpoints.ts';
import { readKeptRoots } from './kept-roots.ts';
import { readPinnedKeys } from './pinned-keys.ts';
import { inertLines } from './terminal-text.ts';
import { masterKeyFileOption } from './master-key-option.ts';
import { MASTER_KEY_FILE } from '../storage/master-key-file.ts';

const USAGE = `usage: keyway audit verify [source | --backup FILE] [--keys FILE] [--checkpoints FILE | --roots FILE]
                           [--macs [--master-key-file FILE]] [--json]

Re-computes the audit log's hash chain from the first kept record to the head, checks every
checkpoint's signature with the broker's keys and that the chain passes through it, holds the
index columns queries and stats read (decision, reason, issuer, subject, policy, …) to each
hashed record, and reports the first record that was edited, deleted or re-ordered. With
--checkpoints, it holds the log to checkpoints kept elsewhere too: each must be signed by the
broker's keys, the log must match every one up to its head, and one beyond the head says how
many records are missing. Exit code 0: intact; 1: tampered, incomplete (or unreadable).

A Workers broker keeps its log in shards, each its own chain (GET /v1/audit/shards lists them):
with --url, every chain is verified on its own and held to the heads its root checkpoints signed;
the first break is named by its shard and record. With --backup, the same from an export saved
from a Workers broker's GET /v1/backup: every shard's chain and the root checkpoints in it (an
export that holds records without one is refused). A chain the newest root checkpoint does not
name fails, unless it is a shard added since whose records are all dated after it. With --roots,
the log is held to root checkpoints kept apart from it too: each must be signed by the broker's
keys and every chain must pass through the heads it signed, and the log fails when its newest
root checkpoint is older than the newest kept one (rolled back, or its newest roots taken out).

Which keys count as the broker's: with --url, those its /v1/audit/keys publishes; with
--data-dir, those the master key attests (KEYWAY_MASTER_KEY, or the data directory's master key
file), never a key only the database vouches for; with --backup, the export's keys that
KEYWAY_MASTER_KEY (the Worker's) attests. A key in the database nothing vouches for (a
key removed before keyway attested keys, or one planted there) fails the verification unless
--keys pins it. A checkpoint signed with a key the log records as withdrawn (signing_key_withdrawn)
fails when it is dated more than 75 s after the withdrawal, or more than 75 s before it while it
signs its record.

With --macs, every record is also held to the MAC the broker wrote beside it under a key derived
from its master key, bound to the record's chain, seq and hash: a record without one after where
MACs start (signed by the newest checkpoint and, in a sharded log, by the root checkpoints; else
as the store remembers its upgrade), with one
under a master key not given, or with one the master key did not make fails. It needs the master
key as the broker reads it (KEYWAY_MASTER_KEY and KEYWAY_MASTER_KEY_PREVIOUS, or the data
directory's master key file; or --master-key-file), and a source that carries the MACs: --data-dir
or --backup, not --url. The key is never printed.

${SOURCE_USAGE}
  --backup FILE             an export saved from a Workers broker's GET /v1/backup, instead of a source
  --keys FILE               a JWKS saved earlier from GET /v1/audit/keys: these keys count as the
                            broker's too, and with --data-dir or --backup they need no master key
  --checkpoints FILE        checkpoints kept elsewhere: what GET /v1/audit/checkpoints (or …/latest)
                            answered, one answer or several one after another
  --roots FILE              root checkpoints kept elsewhere (a sharded log): what GET /v1/audit/root-checkpoints
                            (or …/latest) answered, one answer or several one after another
  --macs                    check every record's MAC with the master key too
  --master-key-file FILE    the broker's master key, from a file (e.g. the ${MASTER_KEY_FILE} you kept apart), in place of
                            KEYWAY_MASTER_KEY and the data directory's: it vouches for the keys too`;

export const auditVerify: Command = {
  summary: 'check the audit log against its hash chain and signed checkpoints',
  usage: USAGE,
  async run(args) {
    const { values, params } = parseAuditArgs(args, {
      keys: { type: 'string' },
      checkpoints: { type: 'string' },
      roots: { type: 'string' },
      backup: { type: 'string' },
      macs: { type: 'boolean', default: false },
      'master-key-file': { type: 'string' },
    });
    if (params.size > 0) throw new CliError('verify checks the whole log: filters do not apply');
    const pinned = typeof values['keys'] === 'string' ? readPinnedKeys(values['keys']) : undefined;
    const kept = {
      ...(typeof values['checkpoints'] === 'string' ? { checkpoints: readKeptCheckpoints(values['checkpoints']) } : {}),
      ...(typeof values['roots'] === 'string' ? { roots: readKeptRoots(values['roots']) } : {}),
    };
    const json = values['json'] === true;
    const keyFile = values['master-key-file'];
    const master = { macs: values['macs'] === true, ...(typeof keyFile === 'string' ? { given: masterKeyFileOption(keyFile) } : {}) };
    const backup = values['backup'];
    if (typeof backup === 'string') {
      if (values['url'] !== undefined || values['data-dir'] !== undefined || values['token'] !== undefined)
        throw new CliError('--backup is the source: give it without --url, --token or --data-dir');
      return verify(await readExportedAuditLog(backup, pinned, master), kept, json);
    }
    const source = await openAuditSource(values);
    try {
      return await verify(await source.verification(pinned, master), kept, json);
    } finally {
      source.close();
    }
  },
};

/** Checkpoints kept apart from the log: one chain's (`--checkpoints`), or a sharded log's root checkpoints (`--roots`). */
interface Kept {
  readonly checkpoints?: Checkpoint[];
  readonly roots?: string[];
}

async function verify(log: AuditLogSource | ShardedLogSource, kept: Kept, json: boolean): Promise<number> {
  if ('chains' in log) {
    if (kept.checkpoints !== undefined) throw new CliError("--checkpoints holds one chain's checkpoints: a sharded log is held to root checkpoints (--roots)");
    return reportShards(await verifyShardedAuditLog({ ...log, ...(kept.roots === undefined ? {} : { kept: kept.roots }) }), json);
  }
  if (kept.roots !== undefined)
    throw new CliError("--roots holds a sharded log's root checkpoints: this log is one chain (--checkpoints holds its kept checkpoints)");
  const report = await verifyAuditLog({ ...log, ...(kept.checkpoints === undefined ? {} : { kept: kept.checkpoints }) });
  if (json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else if (report.ok) {
    const range = report.records === 0 ? 'no records' : `${report.records} records (seq ${report.first_seq}…${report.last_seq})`;
    const agree = report.kept_checkpoints === undefined ? '' : `, ${report.kept_checkpoints} kept checkpoints agree`;
    process.stdout.write(
      inertLines([
        `intact: ${range}, ${report.checkpoints} signed checkpoints${anchored(report)}${agree}${report.head_hash === undefined ? '' : `; head ${report.head_hash}`}`,
        ...macLines(report),
      ]),
    );
  } else {
    // What the verdict quotes of the log (a record's id, a key's kid) is whatever its editor wrote there.
    const { problem } = report;
    process.stdout.write(
      inertLines([
        `${verdictOf(problem?.kind)} (${problem?.kind})${problem?.seq === undefined ? '' : ` at seq ${problem.seq}`}: ${problem?.message}`,
        ...(report.unvouched_keys ?? []).map((key) => `unvouched key ${key.kid}: it ${key.why}`),
      ]),
    );
  }
  return report.ok ? 0 : 1;
}

/**
 * INCOMPLETE: records are missing. UNVERIFIED: a MAC under a master key not given, which the master key given cannot tell
 * from a forged one (the broker's previous master key is missing, or the wrong key was given). TAMPERED: the rest.
 */
function verdictOf(kind: ChainProblemKind | undefined): string {
  if (kind === 'records_missing' || kind === 'root_checkpoints_rolled_back') return 'INCOMPLETE';
  return kind === 'mac_key_unknown' ? 'UNVERIFIED' : 'TAMPERED';
}

/** What the MACs showed, when they were checked (`--macs`). */
function macLines(report: ChainReport, indent = ''): string[] {
  const { macs } = report;
  if (macs === undefined) return [];
  const start = macs.signed ? 'as the newest checkpoint signs' : 'as the store says: no checkpoint signs it';
  const without =
    macs.without === 0
      ? ''
      : `; ${macs.without} records at or before it carry none, written before keyway made MACs: only the chain and the checkpoints vouch for them`;
  return [`${indent}MACs: ${macs.valid} records carry a valid MAC; every record after seq ${macs.after} must carry one (${start})${without}`];
}

/** A sharded log's verdict: one line per chain, then the first problem, naming its shard and record. */
/** Where a pruned chain starts, and a caveat when its anchor is one signed before anchors were marked (ChainReport.anchor_unmarked). */
function anchored(report: ChainReport): string {
  if (report.anchor === undefined) return '';
  const unmarked =
    report.anchor_unmarked === true ? ' (signed before anchors were marked: it shows the records before it are gone, not that pruning removed them)' : '';
  return `, anchored after pruning at checkpoint ${report.anchor}${unmarked}`;
}

function reportShards(report: ShardedReport, json: boolean): number {
  if (json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return report.ok ? 0 : 1;
  }
  const lines = report.chains.flatMap((chain) => {
    const range = chain.records === 0 ? 'no records' : `${chain.records} records (seq ${chain.first_seq}…${chain.last_seq})`;
    const unnamed = chain.unnamed === true ? ', in no root checkpoint yet (a shard added since the newest)' : '';
    return [
      `shard ${chain.shard}: ${chain.ok ? 'intact' : 'BROKEN'}: ${range}, ${chain.checkpoints} signed checkpoints${anchored(chain)}${unnamed}`,
      ...(chain.ok ? macLines(chain, '  ') : []),
    ];
  });
  const latest = report.latest_root === undefined ? 'none yet' : `the latest signed at ${report.latest_root.time} covers ${report.latest_root.chains} chains`;
  const kept = report.kept_root_checkpoints === undefined ? '' : ` and ${report.kept_root_checkpoints} kept`;
  lines.push(`${report.root_checkpoints} root checkpoints${kept} (${latest})`);
  const { problem } = report;
  if (problem === undefined) {
    process.stdout.write(inertLines([...lines, `intact: ${report.chains.length} chains`]));
    return 0;
  }
  const verdict = verdictOf(problem.kind);
  const where = `${problem.shard === undefined ? '' : ` in shard ${problem.shard}`}${problem.seq === undefined ? '' : ` at seq ${problem.seq}`}`;
  process.stdout.write(inertLines([...lines, `${verdict} (${problem.kind})${where}: ${problem.message}`]));
  return 1;
}
