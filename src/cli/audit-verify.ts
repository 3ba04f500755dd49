import { verifyAuditLog } from '../core/audit/verify-chain.ts';
import { CliError, type Command } from './command.ts';
import { openAuditSource, parseAuditArgs, SOURCE_USAGE } from './audit-source.ts';

const USAGE = `usage: keyway audit verify [source] [--json]

Re-computes the audit log's hash chain from the first kept record to the head, checks every
checkpoint's signature with the broker's keys and that the chain passes through it, holds the
index columns queries and stats read (decision, reason, issuer, subject, policy, …) to each
hashed record, and reports the first record that was edited, deleted or re-ordered. Exit code
0: intact; 1: tampered (or unreadable).

${SOURCE_USAGE}`;

export const auditVerify: Command = {
  summary: 'check the audit log against its hash chain and signed checkpoints',
  usage: USAGE,
  async run(args) {
    const { values, params } = parseAuditArgs(args, {});
    if (params.size > 0) throw new CliError('verify checks the whole log: filters do not apply');
    const source = openAuditSource(values);
    try {
      const report = await verifyAuditLog(await source.verification());
      if (values['json'] === true) {
        process.stdout.write(`${JSON.stringify(report)}\n`);
      } else if (report.ok) {
        const range = report.records === 0 ? 'no records' : `${report.records} records (seq ${report.first_seq}…${report.last_seq})`;
        const anchor = report.anchor === undefined ? '' : `, anchored after pruning at checkpoint ${report.anchor}`;
        process.stdout.write(
          `intact: ${range}, ${report.checkpoints} signed checkpoints${anchor}${report.head_hash === undefined ? '' : `; head ${report.head_hash}`}\n`,
        );
      } else {
        const { problem } = report;
        process.stdout.write(`TAMPERED (${problem?.kind}) at seq ${problem?.seq}: ${problem?.message}\n`);
      }
      return report.ok ? 0 : 1;
    } finally {
      source.close();
    }
  },
};
