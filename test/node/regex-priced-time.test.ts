import { describe, expect, it } from 'vitest';
import { compileSafeRegex, REGEX_MAX_INPUT, REGEX_MAX_WIDE_INPUT } from '../../src/core/policy/safe-regex.ts';
import { cpuMsSince } from './cpu-time.ts';

const ASTRAL = Array.from({ length: 245 }, (_, n) => String.fromCodePoint(0x10000 + 0x402 * n)).join('');

const median = (run: () => boolean): number => {
  const times: number[] = [];
  for (let n = 0; n < 5; n++) {
    const started = process.cpuUsage();
    expect(run()).toBe(false);
    times.push(cpuMsSince(started));
  }
  return times.sort((a, b) => a - b)[2] ?? Number.NaN;
};

// On Node only, in CPU time: performance.now() in workerd moves only on I/O, so a unit test there cannot time a regex.
describe('the dearest policy regex of a kind that loads', () => {
  // The estimate prices `x?x?x?.*.*` at half its limit: twice its time is what the limit stands for, on this machine now.
  const limitTime = () => {
    const shape = compileSafeRegex('x?x?x?.*.*', 'exact', false);
    return 2 * median(() => shape(`${'x'.repeat(REGEX_MAX_INPUT - 1)}\n`));
  };

  it.each([
    ['an optional group that can match no character', (k: number) => `x{0,${k}}.*(?:[^y]+|)?y`, `${'x'.repeat(REGEX_MAX_INPUT - 1)}!`],
    [
      'a class of 245 characters past U+FFFF, each under a leading surrogate of its own, on a two-byte value',
      (k: number) => `ꞵ{0,${k}}.*[^y${ASTRAL}]*y`,
      `${'ꞵ'.repeat(REGEX_MAX_WIDE_INPUT - 1)}!`,
    ],
  ] as const)('takes no longer than the limit stands for: %s', (_kind, pattern, crafted) => {
    // More optional characters before it, each a way more of reaching it, until the estimate refuses one.
    let dearest: ((text: string) => boolean) | undefined;
    for (let k = 0; k <= 14; k++) {
      try {
        dearest = compileSafeRegex(pattern(k), 'exact', false);
      } catch {
        break;
      }
    }
    if (dearest === undefined) throw new Error('none loads');
    const test = dearest;
    // Priced as V8 runs them, 0.7-0.8 at a load of 12; 3.3-3.7 and 2.0 while the estimate counted such a group or class as
    // it counts a repetition of `.` over a one-byte value.
    expect(median(() => test(crafted)) / limitTime()).toBeLessThan(1.5);
  });
});

describe('estimating a policy regex', () => {
  // A policy's regex is at most 512 characters; repository-owned policies are loaded while a request waits.
  it.each([
    ['255 nested groups', `${'('.repeat(255)}a${')'.repeat(255)}`],
    ['256 alternatives of one character', Array.from({ length: 256 }, (_, n) => String.fromCodePoint(0x100 + n)).join('|')],
    ['100 alternatives of one class each', Array.from({ length: 100 }, (_, n) => `[${String.fromCodePoint(0x100 + n)}]`).join('|')],
    ['85 optional classes', '[^ab]?'.repeat(85)],
    ['a class of 240 characters past U+FFFF', `[^${ASTRAL.slice(0, 480)}]*`],
  ])('takes milliseconds for 512 characters: %s', (_shape, pattern) => {
    expect(pattern.length).toBeLessThanOrEqual(512);
    const times: number[] = [];
    for (let n = 0; n < 3; n++) {
      const started = performance.now();
      try {
        compileSafeRegex(pattern, 'exact', false);
      } catch {
        // Refused or not, what it costs to tell.
      }
      times.push(performance.now() - started);
    }
    expect(times.sort((a, b) => a - b)[1]).toBeLessThan(100);
  });
});
