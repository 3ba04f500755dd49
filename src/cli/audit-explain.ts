import { inertLines } from './terminal-text.ts';
import { explainAuditEvent } from '../core/policy/explain-audit-event.ts';
import { loadPolicies, PolicyLoadError } from '../core/policy/load-policies.ts';
import { readPolicyDirectory } from '../storage/read-policy-directory.ts';
import { openAuditSource, parseAuditArgs, SOURCE_USAGE } from './audit-source.ts';
import { CliError, type Command } from './command.ts';
import { policyDirectory, policyLoadOptions } from './policy-directory.ts';
import { renderExplanation } from './policy-explain.ts';

const USAGE = `usage: keyway audit explain EVENT_ID [source] [--policies DIR] [--json]

Explains a recorded decision: runs the policy explanation (as keyway policy explain does) against
the claims and request the audit record kept, with the policy directory given. The record names
the version of the policy set that decided; the answer says whether DIR is that set. When it is
not (the policies changed since), the explanation shows what DIR decides for the recorded claims:
to replay that moment, check out the policy directory as it was and pass it with --policies.

${SOURCE_USAGE}
  --policies DIR            the policy directory to explain with (default KEYWAY_POLICIES or policies/)
  --json                    the explanation as JSON (the shape of GET /v1/audit/events/ID/explanation)`;

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

export const auditExplain: Command = {
  summary: 'explain a recorded decision with the policy set of that moment',
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseAuditArgs(args, { policies: { type: 'string' } }, true);
    const [id, ...extra] = positionals;
    if (id === undefined || extra.length > 0) throw new CliError('give exactly one EVENT_ID');
    if (!ULID.test(id)) throw new CliError(`${id} is not an audit event id (a ULID)`);
    const options = policyLoadOptions();
    const dir = policyDirectory(typeof values['policies'] === 'string' ? values['policies'] : undefined);
    let policies;
    try {
      policies = loadPolicies(readPolicyDirectory(dir), options);
    } catch (error) {
      if (error instanceof PolicyLoadError) throw new CliError(`the policies in ${dir} do not load:\n${error.message}`, 1);
      throw error;
    }
    const source = await openAuditSource(values);
    let event;
    try {
      event = await source.event(id);
    } finally {
      source.close();
    }
    if (event === undefined) throw new CliError(`no audit event has id ${id}`, 1);
    const explanation = explainAuditEvent(event, policies, options.brokerIssuer);
    if (values['json'] === true) {
      process.stdout.write(`${JSON.stringify(explanation, null, 2)}\n`);
      return 0;
    }
    const { audit_event: recorded } = explanation;
    process.stdout.write(inertLines([`event ${recorded.id} at ${recorded.time}: ${recorded.decision} (${recorded.reason})`]));
    if (!explanation.evaluated) {
      process.stdout.write(inertLines([`note: ${explanation.note}`]));
      return 0;
    }
    const { policy_set: set } = explanation;
    process.stdout.write(inertLines([`policy set: decided by ${set.decided ?? '(not recorded)'}, explained with ${set.explained} (${dir})`]));
    process.stdout.write(renderExplanation(explanation, [explanation.note]));
    return 0;
  },
};
