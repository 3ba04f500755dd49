import { describe, expect, it } from 'vitest';
import { compileSafeRegex, REGEX_MAX_WIDE_INPUT } from '../../src/core/policy/safe-regex.ts';
import { cpuMsSince } from './cpu-time.ts';

// On Node only, in CPU time: performance.now() in workerd moves only on I/O, so a unit test there cannot time a regex.
describe('a policy regex', () => {
  // V8 runs a regex's first execution on a value under 1,000 UTF-16 units, as every wide value is, in its bytecode interpreter,
  // several times slower than the compiled code the limit is measured on: the first value a regex meets may be the pipeline's.
  // Whole, and split at its `@` (a workflow ref's names and ref, each half its own regex).
  it.each([
    ['exact', ''],
    ['before-@', 'acme/w@'],
  ] as const)('reads the first value it meets on compiled code, as fast as the next (%s)', (fold, names) => {
    const crafted = `${names}${'ꞵ'.repeat(REGEX_MAX_WIDE_INPUT - 1 - names.length)}!`;
    const timed = (run: () => boolean) => {
      const started = process.cpuUsage();
      expect(run()).toBe(false);
      return cpuMsSince(started);
    };
    // Priced just under the limit; each its own source, which V8 compiles afresh.
    const ratios = ['q', 'v', 'w', 'y', 'z'].map((end) => {
      const test = compileSafeRegex(`${names}ꞵ{0,14}[^${end}]*[^${end}]*${end}`, fold, false);
      const first = timed(() => test(crafted));
      return first / timed(() => test(crafted));
    });
    // Interpreted, the median first run took 4.7-7.4 times as long as the next; compiled first, 1.0-1.1 times (load 7-10).
    expect(ratios.sort((a, b) => a - b)[2]).toBeLessThan(3);
  });
});
