import { parseArgs } from 'node:util';
import { loadPolicies } from '../core/policy/load-policies.ts';
import { whoCan, WhoCanError, type WhoCanAnswer, type WhoCanLine } from '../core/policy/who-can.ts';
import { readPolicyDirectory } from '../storage/read-policy-directory.ts';
import { CliError, type Command } from './command.ts';
import { policyDirectory, policyLoadOptions } from './policy-directory.ts';
import { inertLines } from './terminal-text.ts';

const USAGE = `usage: keyway policy who-can [DIR] (--scope SCOPE [--audience AUD] | --audience AUD | --github-permission NAME:LEVEL) [--format text|json]

Who can get a scope, an audience or a GitHub permission, from the policies alone: every
enforcing allow policy that grants it, with the lines a token must meet (as policy explain
shows them), the deny guardrails that may refuse some of those tokens, and the untrusted
contexts (pull requests, forks, comment triggers, …; the write-from-untrusted lint rule's)
whose tokens reach it. A GitHub grant that pins no owner_id goes to the caller's own account,
which only a job of the App's GitHub deployment names: KEYWAY_GITHUB_API_URL's, api.github.com
without it, as the broker reads it.

options:
  --scope SCOPE                  one scope, e.g. deploy:write
  --audience AUD                 an audience of the keyway token, e.g. https://deploy.acme.dev
  --github-permission NAME:LEVEL a GitHub token permission, e.g. contents:write (write covers read)
  --format text|json
Exit status 0 with the answer; 2 for a scope, audience or permission no policy grants or that is
not well formed; 1 when the policies do not load.`;

const show = (value: unknown): string => JSON.stringify(value);

const renderLine = (line: WhoCanLine): string => `    ${line.claim === 'subject_audience' ? 'aud includes' : `${line.claim}:`} ${show(line.matcher)}`;

/** The answer for people: one block per policy. */
export function renderWhoCan(answer: WhoCanAnswer): string {
  const { scope, audience, github_permission: permission } = answer.question;
  const asked = [scope === undefined ? '' : `scope ${scope}`, audience === undefined ? '' : `audience ${audience}`, permission ?? '']
    .filter((part) => part !== '')
    .join(', ');
  const out = [`who can get ${asked}: ${answer.allow.length === 0 ? 'no enforcing policy grants it' : answer.allow.map((policy) => policy.id).join(', ')}`];
  for (const policy of answer.allow) {
    out.push('', `${policy.id}  (${policy.file}, ${policy.preset} ${policy.issuer})${policy.description === undefined ? '' : `  — ${policy.description}`}`);
    out.push('  a token must meet:', ...policy.conditions.map(renderLine));
    const { grant } = policy;
    if (grant.github !== undefined) {
      const permissions = Object.entries(grant.github.permissions).map(([name, level]) => `${name}:${level}`);
      out.push(`  grants a GitHub token on ${grant.github.owner}/{${grant.github.repositories.join(',')}}: ${permissions.join(' ')}`);
    }
    if (grant.audiences.length > 0) out.push(`  grants audience ${grant.audiences.join(' ')}, scope ${grant.scopes.join(' ') || '(none)'}`);
    out.push(
      policy.guardrails.length === 0
        ? '  deny guardrails: none cut into it'
        : `  deny guardrails that may refuse some of these tokens: ${policy.guardrails.map((guard) => guard.id).join(', ')}`,
    );
    for (const guard of policy.guardrails) out.push(`    ${guard.id}:`, ...guard.conditions.map((line) => `  ${renderLine(line)}`));
    for (const context of policy.untrusted) out.push(`  ! reachable from ${context.what} (${context.claim}: ${show(context.value)})`);
  }
  if (answer.audit_only.length > 0) out.push('', `mode: audit (would grant it, grant nothing today): ${answer.audit_only.join(', ')}`);
  return inertLines(out);
}

export const policyWhoCan: Command = {
  summary: 'which policies can grant a scope, audience or GitHub permission',
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: {
        scope: { type: 'string' },
        audience: { type: 'string' },
        'github-permission': { type: 'string' },
        format: { type: 'string', default: 'text' },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.format !== 'text' && values.format !== 'json') throw new CliError('--format is text or json');
    const dir = policyDirectory(positionals[0]);
    const options = policyLoadOptions();
    const policies = loadPolicies(readPolicyDirectory(dir), options);
    let answer: WhoCanAnswer;
    try {
      answer = whoCan(policies, {
        ...(values.scope === undefined ? {} : { scope: values.scope }),
        ...(values.audience === undefined ? {} : { audience: values.audience }),
        ...(values['github-permission'] === undefined ? {} : { githubPermission: values['github-permission'] }),
        deployment: options.githubDeployment,
      });
    } catch (error) {
      if (error instanceof WhoCanError) throw new CliError(error.message);
      throw error;
    }
    process.stdout.write(values.format === 'json' ? `${JSON.stringify(answer, null, 2)}\n` : renderWhoCan(answer));
    return 0;
  },
};
