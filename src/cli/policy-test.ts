import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readPolicyDirectory, readPolicyTestFiles } from '../storage/read-policy-directory.ts';
import { loadPolicies } from '../core/policy/load-policies.ts';
import { runPolicyTests } from '../core/policy/testing/run-policy-tests.ts';
import type { Command } from './command.ts';
import { inertLines } from './terminal-text.ts';
import { policyDirectory, policyLoadOptions } from './policy-directory.ts';

const USAGE = `usage: keyway policy test [DIR] [--verbose]

Loads the policies under DIR (default: $KEYWAY_POLICIES, else policies/) as the broker would,
and runs every test file (*.test.yaml) beside them: each case gives claims (or a fixture of
the file, with overrides) and the decision the policies must reach. Prints each failure with
its file:line, then "N passed, N failed". Exits 1 when a case fails, a test file is invalid,
the policies do not load, or there is no test at all.

options:
  --verbose   also list the cases that pass`;

export const policyTest: Command = {
  summary: 'run the policy test cases (*.test.yaml) beside the policies',
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { verbose: { type: 'boolean', short: 'v', default: false } },
      allowPositionals: true,
      strict: true,
    });
    const dir = policyDirectory(positionals[0]);
    const options = policyLoadOptions();
    const policies = loadPolicies(readPolicyDirectory(dir), options);
    const { results, problems } = runPolicyTests(policies, readPolicyTestFiles(dir), options);

    // Inert: the files' author chose the names and values quoted (a pull request's, in CI), and none may start a line of its own.
    for (const problem of problems) process.stdout.write(inertLines([`${join(dir, problem.file)}:${problem.line}:${problem.column} error ${problem.message}`]));
    for (const result of results) {
      const where = `${join(dir, result.file)}:${result.line}:${result.column}`;
      if (result.failures.length > 0) {
        process.stdout.write(inertLines([`FAIL ${where} ${result.name}`, ...result.failures.map((failure) => `     ${failure}`)]));
      } else if (values.verbose) {
        process.stdout.write(inertLines([`PASS ${where} ${result.name}`]));
      }
    }
    const failed = results.filter((result) => result.failures.length > 0).length;
    process.stdout.write(
      `${results.length - failed} passed, ${failed} failed${problems.length > 0 ? `, ${problems.length} invalid test file problem${problems.length === 1 ? '' : 's'}` : ''}\n`,
    );
    if (results.length === 0 && problems.length === 0) process.stderr.write(`keyway policy test: no *.test.yaml cases under ${dir}\n`);
    return failed > 0 || problems.length > 0 || results.length === 0 ? 1 : 0;
  },
};
