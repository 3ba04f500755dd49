import { describe, expect, it } from 'vitest';
import { diffPolicies } from '../../src/core/policy/diff/diff-policies.ts';
import { compareMatchers } from '../../src/core/policy/diff/matcher-inclusion.ts';
import { compilePolicyFiles } from '../../src/core/policy/load-policies.ts';
import { cpuMsSince } from './cpu-time.ts';

/** 100 alternatives of a class each and `prod-[0-9]+`: a few milliseconds to estimate as it compiles, and it accepts `prod-1`. */
const REGEX = `${Array.from({ length: 100 }, (_, k) => `[${String.fromCodePoint(0x100 + k)}]`).join('|')}|prod-[0-9]+`;

// A pull request's review diffs each edited line against the base's. Whether a base line's regex takes every value the proposed
// line lists was asked of the regex compiled anew for each value: a fork listing 9,000 values a base regex of 171 characters
// accepts cost 3.2 s of the thread that serves /token. On Node only, in CPU time.
describe('comparing a line of many values with one of a regex', () => {
  it('compiles the regex once, however many values the other line lists', () => {
    const compare = (values: number): number => {
      const listed = Array.from({ length: values }, (_, i) => `prod-${i}`);
      const started = process.cpuUsage();
      expect(compareMatchers({ regex: REGEX }, listed, 'exact')).toBe('narrower');
      return cpuMsSince(started);
    };
    compare(1);
    const one = Math.max(compare(1), compare(1), compare(1));
    // 1,000 values: 4-6 ms against one's 5-7; compiled for each, 840 ms.
    expect(compare(1000)).toBeLessThan(10 * one);
  });
});

// Every line of a policy both sides hold is compared, edited or not, each value of one line with the other line. A value was
// compared with each of the other line's in turn: two lines of 15,000 values, 109 KB within POLICY_REVIEW_LIMITS, took 27 s.
describe('comparing a line of many values with one of as many', () => {
  it('looks each value up in the other line, however many it lists: ten times the values cost about ten times the time', () => {
    const compare = (values: number): number => {
      const listed = Array.from({ length: values }, (_, i) => `Env-${i}`);
      const started = process.cpuUsage();
      expect(compareMatchers(listed, [...listed].reverse(), 'whole')).toBe('same');
      return cpuMsSince(started);
    };
    compare(500);
    const some = Math.max(compare(500), compare(500), compare(500));
    // 5,000 values: 20-30 ms against 500's 3-7; compared one after another, 5.8 s against 60-70 ms.
    expect(compare(5000)).toBeLessThan(30 * Math.max(some, 1));
  });
});

// Grants are compared too, each scope and audience of one side with the other side's: two grants of 10,000 of each (120 KB) took 660 ms, of 15,000 scopes alone 450.
describe('comparing grants of many scopes and audiences', () => {
  it('looks each up in the other grant: twenty times as many cost about twenty times the time, not four hundred', () => {
    const grant = (n: number, of: string): string => `[${Array.from({ length: n }, (_, i) => `${of}${i}`).join(', ')}]`;
    const compilation = (n: number, last: string) =>
      compilePolicyFiles(
        [
          {
            path: 'p.yaml',
            text: `version: 1\nissuer: github\nmatch: { repository_id: "1" }\ngrant:\n  audience: ${grant(n, 'a')}\n  scopes: ${grant(n, 's')}\n  ttl: ${last}\n`,
          },
        ],
        { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: false },
      );
    const compare = (n: number): number => {
      const [before, after] = [compilation(n, '5m'), compilation(n, '10m')];
      const started = process.cpuUsage();
      expect(diffPolicies(before, after).map((diff) => diff.status)).toEqual(['widened']);
      return cpuMsSince(started);
    };
    compare(500);
    const some = Math.max(compare(500), compare(500), compare(500));
    // 10,000 of each: 9-10 ms against 500's under one; searched one by one, 630-660 ms against 4-5.
    expect(compare(10_000)).toBeLessThan(50 * Math.max(some, 1));
  });
});

/** `n` globs, then `last`'s. */
const globs = (n: number, prefix: string, last: readonly string[] = []) => [
  ...Array.from({ length: n }, (_, i) => ({ glob: `${prefix}${i}-*` })),
  ...last.map((glob) => ({ glob })),
];

// Each glob of one line was tried against each of the other's, until one includes it: lines of 5,000 globs each, 99 KB within
// POLICY_REVIEW_LIMITS, took 85 s of a review; 64 files of lines of 100, 1 s. Each policy tries at most 20,000: one file's large
// edit no longer spends the tries of another's.
describe('comparing lines of many globs', () => {
  it('tries at most 20,000 entries of lists, then cannot tell: lines of 1,000 globs cost about what lines of 150 do', () => {
    const compare = (n: number): number => {
      const started = process.cpuUsage();
      expect(compareMatchers(globs(n, 'e'), globs(n, 'f', ['e*']), 'whole')).toBe('changed');
      return cpuMsSince(started);
    };
    // Within the tries, shown: the proposed line takes every value of the base's, and more.
    expect(compareMatchers(globs(100, 'e'), globs(100, 'f', ['e*']), 'whole')).toBe('wider');
    compare(150);
    const some = Math.max(compare(150), compare(150), compare(150));
    // 1,000: 40-60 ms, as 150's; each against each, 3 s.
    expect(compare(1000)).toBeLessThan(5 * some);
  });

  it('tries as many for each policy, not for the whole diff: files of lines of 1,000 globs cost about what files of 140 do', () => {
    const compilation = (n: number, prefix: string, last: readonly string[]) =>
      compilePolicyFiles(
        Array.from({ length: 8 }, (_, k) => ({
          path: `p${k}.yaml`,
          text: `version: 1\nissuer: github\nmatch:\n  repository_id: "1"\n  environment: ${JSON.stringify(globs(n, `${prefix}${k}-`, last))}\ngrant: { audience: https://a.example }\n`,
        })),
        { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: false },
      );
    const diff = (n: number, status: string): number => {
      const [before, after] = [compilation(n, 'e', []), compilation(n, 'f', ['e*'])];
      const started = process.cpuUsage();
      expect(diffPolicies(before, after).map((diff) => diff.status)).toEqual(Array.from({ length: 8 }, () => status));
      return cpuMsSince(started);
    };
    // 140 globs against 141: 19,880 tries, each policy's shown.
    diff(140, 'widened');
    const some = Math.max(diff(140, 'widened'), diff(140, 'widened'), diff(140, 'widened'));
    // 1,000: 90-130 ms, against 140's 50-60: each policy stops at its own tries.
    expect(diff(1000, 'changed')).toBeLessThan(5 * some);
  });
});

/** `n` globs that keep hundreds of states live on an `aaa…` value, then `**`, which takes each of `values(n)` after trying them. */
const starry = (n: number) => [...Array.from({ length: n }, (_, i) => ({ glob: `${'*a'.repeat(250)}*-${i}` })), { glob: '**' }];
const values = (n: number) => Array.from({ length: n }, (_, i) => ({ glob: `${'a'.repeat(500)}-${i}b` }));

// A try of two globs costs as much as their lengths multiplied when one keeps many states live: `*a*a*a…` against `aaa…b`, 512
// characters each, took 3.5-8 ms a try, so two lines of 141 of them a side (74 KB) spent 70-160 s of a review within the tries.
describe('comparing lines of globs that keep many states live', () => {
  it('takes at most 2,000,000 steps of the globs for each policy, then cannot tell: lines of 16 such globs cost about what one does', () => {
    const compare = (n: number, widening: string): number => {
      const started = process.cpuUsage();
      expect(compareMatchers(starry(n), values(n), 'whole')).toBe(widening);
      return cpuMsSince(started);
    };
    // Within the steps, shown: the base's `**` takes every glob of the proposed line.
    compare(1, 'narrower');
    const one = Math.max(compare(1, 'narrower'), compare(1, 'narrower'), compare(1, 'narrower'));
    // 16 a side: 50-90 ms against one's 5-11; every pair tried, 1 s (60 a side, 14 s).
    expect(compare(16, 'changed')).toBeLessThan(20 * Math.max(one, 1));
  });
});
