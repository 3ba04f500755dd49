import { describe, expect, it } from 'vitest';
import { lintPolicies } from '../../src/core/policy/lint/lint-policies.ts';
import { compilePolicyFiles, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import { cpuMsSince } from './cpu-time.ts';

const OPTIONS: PolicyLoadOptions = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: false };

/** 128 alternatives of a class each, every class a character no other regex of the set names, 511 characters: some milliseconds to estimate. */
const alternatives = (n: number): string => Array.from({ length: 128 }, (_, k) => `[${String.fromCodePoint(0x100 + ((n * 128 + k) % 0xd000))}]`).join('|');

// Each regex is estimated as its policy compiles (compileSafeRegex), a few milliseconds for a long one. The lint compiled and
// estimated each again to probe whether it accepts every value: some 45% of a load of regex-heavy policies. On Node only, in
// CPU time.
describe('linting a compiled policy set of long regexes', () => {
  it('probes each regex as its line compiled it, compiling none again: a sliver of what compiling them took', () => {
    /** 20 files of two such regexes each, from the `from`th on. */
    const files = (from: number) =>
      Array.from({ length: 20 }, (_, n) => ({
        path: `p${n}.yaml`,
        text: `version: 1\nissuer: github\nmatch:\n  repository_owner_id: "1200934"\n  repository_id: "${n}"\n  environment:\n    - { regex: "${alternatives(from + 2 * n)}" }\n    - { regex: "${alternatives(from + 2 * n + 1)}" }\ngrant: { audience: https://a.example, scopes: [artifacts:read] }\n`,
      }));
    // Once first, on other regexes, so that neither the compile nor the lint is timed while V8 compiles its code.
    lintPolicies(compilePolicyFiles(files(1000), OPTIONS));
    let started = process.cpuUsage();
    const compilation = compilePolicyFiles(files(0), OPTIONS);
    const compiling = cpuMsSince(started);
    expect(compilation.problems).toEqual([]);
    started = process.cpuUsage();
    const findings = lintPolicies(compilation);
    const linting = cpuMsSince(started);
    expect(findings.filter((finding) => finding.rule === 'matches-everything')).toEqual([]);
    // 1 ms against a compile of 170-180; compiled again, 120-145 against 220-250.
    expect(linting).toBeLessThan(compiling / 10);
  });
});
