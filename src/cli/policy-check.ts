import { parseArgs } from 'node:util';
import { readPolicyDirectory } from '../storage/read-policy-directory.ts';
import { compilePolicyFiles } from '../core/policy/load-policies.ts';
import { checkPolicies } from '../core/policy/lint/lint-policies.ts';
import type { Command } from './command.ts';
import { findingFormat, formatFindings, summarizeFindings } from './format-findings.ts';
import { policyDirectory, policyLoadOptions } from './policy-directory.ts';

const USAGE = `usage: keyway policy check [DIR] [--format text|json|github]

Validates and lints every policy file under DIR (default: $KEYWAY_POLICIES, else policies/),
with the broker's settings from the environment. Prints one finding per line,
file:line:col severity message [rule], and exits 1 when any finding is an error.

Each rule has an id; a policy silences one with a reason:
  lint: { ignore: { <rule>: "why it does not apply here" } }
The rules are listed in docs/policies/testing.md (Lint rules).

options:
  --format text     file:line:col severity message [rule] (default)
  --format json     a JSON array of findings, each with its rule's one-line why
  --format github   GitHub Actions workflow annotations (::error file=…,line=…::…)`;

export const policyCheck: Command = {
  summary: 'validate and lint trust policies',
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { format: { type: 'string', default: 'text' } },
      allowPositionals: true,
      strict: true,
    });
    const format = findingFormat(values.format);
    const dir = policyDirectory(positionals[0]);
    const files = readPolicyDirectory(dir);
    const findings = checkPolicies(compilePolicyFiles(files, policyLoadOptions()));
    process.stdout.write(formatFindings(findings, dir, format));
    process.stderr.write(`keyway policy check: ${files.length} policy file${files.length === 1 ? '' : 's'}, ${summarizeFindings(findings)}\n`);
    return findings.some((finding) => finding.severity === 'error') ? 1 : 0;
  },
};
