import { foldCase, type CaseFold } from '../claims/case-fold.ts';
import { claimTexts, isPresent } from '../claims/claim-value.ts';
import { compileGlob, globLiveStates } from './glob.ts';
import { compileSafeRegex, REGEX_MAX_INPUT, type RegexTest } from './safe-regex.ts';
import type { Matcher } from './schema.ts';

export interface CompiledMatcher {
  /** True when the claim value (undefined when absent) satisfies the matcher. */
  test(value: unknown): boolean;
  /**
   * For exact matchers (a value or a list of values): the texts that can match, folded as the
   * claim folds (`foldCase`). The policy index uses these to find candidates by lookup.
   */
  readonly exact?: readonly string[];
  /** True when only a present claim can satisfy it (everything but `exists: false`, or a list holding one). */
  readonly requiresPresence: boolean;
  /**
   * Its regexes' backtracking work (compileSafeRegex) and its globs' (globWork) summed: what testing a value none of them matches
   * can cost, for a list tries each. Zero for values, which cost a lookup.
   */
  readonly work: number;
  /** Each regex it writes outside `not` (its own, or its list's), as compiled: the lint reads them rather than compile them again. */
  readonly regexes: ReadonlyMap<string, RegexTest>;
}

/**
 * What a step of a glob's simulation costs, in the backtracking work a regex's is priced in: 16-28 ns a live state against
 * 0.8 ns a way of a regex at the limit (`x{0,14}[^y]*[^y]*y` on 998 `x`s and a `!`), measured on 1,024-character values.
 */
export const GLOB_STEP_WORK = 32;

/**
 * A glob's work on a value of REGEX_MAX_INPUT characters: each live state it may keep (globLiveStates) stepped at each. Priced as a
 * regex is, so a repository's own policy of 200 globs `*a*a…*-i` (1.2 s an exchange on a 1,000-character branch) does not load.
 */
function globWork(pattern: string): number {
  return globLiveStates(pattern) * REGEX_MAX_INPUT * GLOB_STEP_WORK;
}

const NO_REGEXES: ReadonlyMap<string, RegexTest> = new Map();

function isList(matcher: Matcher): matcher is readonly Matcher[] {
  return Array.isArray(matcher);
}

function textMatcher(accepts: (text: string) => boolean): (value: unknown) => boolean {
  return (value) => claimTexts(value).some(accepts);
}

/**
 * Turns a matcher as written into a predicate. An array claim matches when any element does;
 * a missing claim matches nothing except `exists: false`.
 *
 * `overLong` is what a regex says of a value too long for it to read (REGEX_MAX_INPUT): the answer that keeps the line from
 * letting a token through, so true on a deny policy's line and false on an allow's, flipped under `not`. Answered "no match"
 * everywhere, a branch named past the limit would slip by a deny policy's regex and an allow's `not: { regex: … }`.
 *
 * `subjectRefKeys`: the claim is a `sub` whose fields a tenant chooses, these keys' values joining names to a git ref. Where the
 * line's answer keeps tokens out (`overLong` false), a glob's wildcards never take the `@` that ends their names when the
 * pattern writes an `@` after them; where it lets them in (a deny's line, an allow's `not`), they may, since a free-text field
 * (a workflow's name) can write such a key and its `@` anywhere. A regex answers `overLong` for a value it cannot align.
 */
export function compileMatcher(matcher: Matcher, fold: CaseFold, overLong: boolean, subjectRefKeys?: readonly string[]): CompiledMatcher {
  if (typeof matcher !== 'object') {
    const expected = foldCase(String(matcher), fold);
    return { test: textMatcher((text) => foldCase(text, fold) === expected), exact: [expected], requiresPresence: true, work: 0, regexes: NO_REGEXES };
  }
  if (isList(matcher)) {
    const entries = matcher.map((entry: Matcher) => compileMatcher(entry, fold, overLong, subjectRefKeys));
    const exact = entries.every((entry) => entry.exact !== undefined) ? entries.flatMap((entry) => entry.exact ?? []) : undefined;
    // Its values are one lookup rather than a pass: a review compares each value of a line with another line, and a line may
    // list thousands (15,000 against as many took 27 s of the thread that serves /token).
    const values = new Set(entries.flatMap((entry) => entry.exact ?? []));
    const others = entries.filter((entry) => entry.exact === undefined);
    return {
      test: (value) => claimTexts(value).some((text) => values.has(foldCase(text, fold))) || others.some((entry) => entry.test(value)),
      requiresPresence: entries.every((entry) => entry.requiresPresence),
      work: entries.reduce((sum, entry) => sum + entry.work, 0),
      regexes: new Map(entries.flatMap((entry) => [...entry.regexes])),
      ...(exact === undefined ? {} : { exact }),
    };
  }
  if ('glob' in matcher) {
    return {
      test: textMatcher(compileGlob(matcher.glob, fold, overLong ? undefined : subjectRefKeys)),
      requiresPresence: true,
      work: globWork(matcher.glob),
      regexes: NO_REGEXES,
    };
  }
  if ('regex' in matcher) {
    const regex = compileSafeRegex(matcher.regex, fold, overLong, subjectRefKeys);
    return { test: textMatcher(regex), requiresPresence: true, work: regex.work, regexes: new Map([[matcher.regex, regex]]) };
  }
  if ('not' in matcher) {
    const inner = compileMatcher(matcher.not, fold, !overLong, subjectRefKeys);
    return { test: (value) => isPresent(value) && !inner.test(value), requiresPresence: true, work: inner.work, regexes: NO_REGEXES };
  }
  const wanted = matcher.exists;
  return { test: (value) => isPresent(value) === wanted, requiresPresence: wanted, work: 0, regexes: NO_REGEXES };
}
