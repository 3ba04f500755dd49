import { inertLines } from './terminal-text.ts';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { decodeJwt } from 'jose';
import { parse as parseYaml } from 'yaml';
import { resolveIssuer, IssuerReferenceError } from '../core/verify/trusted-issuer.ts';
import { readPolicyDirectory } from '../storage/read-policy-directory.ts';
import { explainClaims, type Explanation, type ExplainedLine } from '../core/policy/explain.ts';
import { loadPolicies, type PolicyLoadOptions } from '../core/policy/load-policies.ts';
import { CliError, type Command } from './command.ts';
import { policyDirectory, policyLoadOptions } from './policy-directory.ts';

const USAGE = `usage: keyway policy explain [DIR] (--claims FILE|- | --token JWT|-) [options]

Shows what the broker decides for a token with these claims, and why: for every policy of the
token's issuer, each line with ✓ or ✗ and the token's actual value, the deny guardrails that
fired, and the final decision with its grant. Uses the same decision code as the broker.

A --token is decoded WITHOUT verifying its signature, issuer keys or lifetime: explain tells you
what the policies do with these claims, not whether the token is genuine.

options:
  --claims FILE     the claims as a JSON or YAML object (- reads standard input)
  --token JWT       a CI token, decoded without verification (- reads standard input)
  --issuer ISSUER   set iss: a preset name (github, gitlab, dev) or an issuer URL
  --audience AUD    a requested audience (repeatable), as in the /token request
  --scope "A B"     the requested scopes, as in the /token request
  --format text|json
Claims without aud get the broker's own issuer URL (KEYWAY_ISSUER), the default subject_audience.
Exit status 0 whatever the decision; 1 when the policies do not load.`;

function readInput(source: string): string {
  return source === '-' ? readFileSync(0, 'utf8') : source;
}

function readClaims(values: { claims?: string | undefined; token?: string | undefined }): { claims: Record<string, unknown>; notes: string[] } {
  if ((values.claims === undefined) === (values.token === undefined)) throw new CliError('give exactly one of --claims FILE and --token JWT');
  if (values.token !== undefined) {
    let claims: Record<string, unknown>;
    try {
      claims = decodeJwt(readInput(values.token).trim());
    } catch (error) {
      throw new CliError(`--token is not a JWT: ${(error as Error).message}`);
    }
    return {
      claims,
      notes: [
        'the token was decoded WITHOUT verifying its signature, issuer keys or lifetime: this shows what the policies decide for its claims, not whether it is genuine',
      ],
    };
  }
  const path = values.claims as string;
  let parsed: unknown;
  try {
    parsed = parseYaml(path === '-' ? readFileSync(0, 'utf8') : readFileSync(path, 'utf8'));
  } catch (error) {
    throw new CliError(`--claims ${path}: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CliError(`--claims ${path} must hold an object of claims`);
  return { claims: parsed as Record<string, unknown>, notes: [] };
}

function issuerUrl(reference: string, options: PolicyLoadOptions): string {
  try {
    return resolveIssuer(reference, options).url;
  } catch (error) {
    if (error instanceof IssuerReferenceError) throw new CliError(`--issuer: ${error.message}`);
    throw error;
  }
}

export const policyExplain: Command = {
  summary: 'explain the decision for a token or a set of claims',
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: {
        claims: { type: 'string' },
        token: { type: 'string' },
        issuer: { type: 'string' },
        audience: { type: 'string', multiple: true, default: [] },
        scope: { type: 'string' },
        format: { type: 'string', default: 'text' },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.format !== 'text' && values.format !== 'json') throw new CliError('--format is text or json');
    const dir = policyDirectory(positionals[0]);
    const options = policyLoadOptions();
    const { claims, notes } = readClaims(values);
    if (values.issuer !== undefined) claims['iss'] = issuerUrl(values.issuer, options);
    if (claims['aud'] === undefined) {
      claims['aud'] = options.brokerIssuer;
      notes.push(`the claims carry no aud; taking the broker's own issuer URL ${options.brokerIssuer}`);
    }
    const scopes = values.scope?.split(' ').filter((scope) => scope !== '');
    const request = { audiences: values.audience, scopes: scopes === undefined || scopes.length === 0 ? undefined : scopes };

    const explanation = explainClaims(loadPolicies(readPolicyDirectory(dir), options), claims, request);
    process.stdout.write(values.format === 'json' ? `${JSON.stringify({ notes, ...explanation }, null, 2)}\n` : renderExplanation(explanation, notes));
    return 0;
  },
};

const show = (value: unknown): string => JSON.stringify(value);

function renderLine(line: ExplainedLine): string {
  const actual = 'actual' in line ? show(line.actual) : '(absent)';
  const label = line.claim === 'subject_audience' ? 'aud includes' : `${line.claim}:`;
  return `    ${line.held ? '✓' : '✗'} ${label} ${show(line.matcher)}  — token has ${line.claim === 'subject_audience' ? 'aud ' : ''}${actual}`;
}

/** The explanation for people: one block per policy, then the decision. */
export function renderExplanation(explanation: Explanation, notes: readonly string[]): string {
  const out: string[] = notes.map((note) => `note: ${note}`);
  out.push(`issuer: ${explanation.issuer ?? '(none)'}${explanation.preset === undefined ? '' : ` (${explanation.preset})`}`);
  const { audience, scope } = explanation.request;
  out.push(
    `request: audience ${audience.length === 0 ? "(the policy's first)" : audience.join(' ')}, scope ${scope === null ? '(all the policy grants)' : scope.join(' ')}`,
  );
  for (const policy of explanation.policies) {
    out.push('');
    out.push(
      `${policy.matched ? '✓' : '✗'} ${policy.id}  ${policy.effect}${policy.mode === 'audit' ? ' (mode: audit, not enforced)' : ''}${policy.description === undefined ? '' : `  — ${policy.description}`}`,
    );
    out.push(...policy.lines.map(renderLine));
    if (policy.grant !== undefined) out.push(policy.grant.ok ? '    grant: covers this request' : `    grant: ${policy.grant.reason}: ${policy.grant.detail}`);
  }
  if (explanation.inactive.length > 0) out.push('', `inactive: ${explanation.inactive.map((entry) => `${entry.id} (${entry.why})`).join(', ')}`);
  const { closest } = explanation;
  out.push('');
  if (closest !== null) {
    const failed = closest.failed_claims.length === 0 ? 'every line held' : `failed: ${closest.failed_claims.join(', ')}`;
    out.push(`closest allow policy: ${closest.policy} (${failed})`);
  }
  out.push(`deny guardrails fired: ${explanation.denied_by.length === 0 ? 'none' : explanation.denied_by.join(', ')}`);
  const { decision } = explanation;
  if (decision.granted) {
    out.push(
      `decision: GRANTED by ${decision.policy}`,
      `  audience  ${decision.audience.join(' ')}`,
      `  scope     ${decision.scope.join(' ')}`,
      `  ttl       ${decision.ttl_seconds}s`,
      `  subject   ${decision.subject}`,
      ...(Object.keys(decision.claims).length === 0 ? [] : [`  claims    ${show(decision.claims)}`]),
    );
  } else {
    out.push(`decision: DENIED (${decision.reason}): ${decision.detail}`);
  }
  return inertLines(out);
}
