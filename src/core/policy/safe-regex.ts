import { foldCase, splitsAtFirstAt, type CaseFold } from '../claims/case-fold.ts';
import { backtrackingWork, readRegexSource, withoutCaptures, type Place, type RegexAlternative } from './regex-source.ts';
import { KeywayError } from '../errors/keyway-error.ts';
import { atAfterSubjectRef } from '../claims/subject-refs.ts';

/**
 * Values longer than this a regex does not read, counted in UTF-16 units as `length` counts them (an emoji is 2): bounds
 * the cost of any pattern that slips through. What it answers for one is its caller's (`overLong`), never simply
 * "no match", which would let a long value past a deny policy or an allow's `not`.
 */
export const REGEX_MAX_INPUT = 1024;

/**
 * Values longer than this that hold a character beyond Latin-1 a regex does not read either. V8 keeps such a string in
 * two bytes a character and matches it on a slower path: the shape the estimate's limit is measured on, written
 * `ꞵ?ꞵ?ꞵ?.*.*`, took 41-55 ms on 1,023 `ꞵ`s where `x?x?x?.*.*` took 7-11 on 1,023 `x`s, and `ꞵ?ꞵ?ꞵ?\p{L}*\p{L}*` 118-156 ms. A quarter of the
 * length is a sixteenth of the work of two unbounded repetitions. A claim is read from the token's JSON, whose parser
 * keeps a value of Latin-1 characters in one byte each whatever else the token holds.
 */
export const REGEX_MAX_WIDE_INPUT = 256;

const WIDE = /[\u{100}-\u{10FFFF}]/u;

/** Whether a regex leaves `text` unread, answering `overLong` for it. */
function tooLongToRead(text: string): boolean {
  return text.length > REGEX_MAX_INPUT || (text.length > REGEX_MAX_WIDE_INPUT && WIDE.test(text));
}

/**
 * `regex`, run once on an empty value so that V8 compiles it to machine code before a claim reaches it. V8 runs
 * a regex's first execution on a value under 1,000 UTF-16 units (every value it reads that holds a character beyond Latin-1)
 * in its bytecode interpreter, and compiles it from the second on; the estimate's limit is measured on compiled code, and the
 * first value a regex meets after the policies load may be the pipeline's. `x{0,14}[^y]*[^y]*y`, priced just under the limit,
 * took 53-68 ms the first time on 998 `x`s and a `!`, 22-27 ms once run on an empty value; `ꞵ{0,14}[^y]*[^y]*y` on 255 `ꞵ`s
 * and a `!` 27-37 ms and 5, at a load of 2 on two cores.
 */
function warmedUp(regex: RegExp): RegExp {
  regex.test('');
  return regex;
}

export class UnsafeRegexError extends KeywayError {
  override readonly name = 'UnsafeRegexError';
  readonly code = 'regex_unsafe';
}

/**
 * The most ways a regex may try a value of REGEX_MAX_INPUT characters (backtrackingWork): two unbounded repetitions
 * (`acme/.*@refs/heads/.*`), with room for a few optional parts beside them. The value is the pipeline's to choose (its
 * branch), so a third unbounded repetition would make a request cost about 0.4 s of the thread that serves /token, a fourth minutes.
 */
export const MAX_BACKTRACKING_WORK = 16 * (REGEX_MAX_INPUT + 1) ** 2;

const BACKREFERENCE = /\\[1-9]|\\k</;
const LOOKAROUND = /\(\?<?[=!]/;
// `(?i:…)`, `(?-i:…)`, `(?ims-s:…)`: newer JavaScript engines accept them, older ones refuse them.
const MODIFIERS = /\(\?(?:[a-z]+(?:-[a-z]*)?|-[a-z]+):/i;

export type RegexTest = (text: string) => boolean;

/** A policy regex as compiled, with what testing a value can cost it: its backtracking work on the longest value it reads. */
export type PricedRegexTest = RegexTest & { readonly work: number };

/**
 * Compiles a policy regex as a whole-value match. Patterns that can backtrack catastrophically
 * are refused here, at load time: backreferences, lookaround, and any pattern backtrackingWork
 * prices above MAX_BACKTRACKING_WORK, nested quantifiers that can split a value in many ways
 * (`(a+)+`) among them; a group repeated at most once (`(-rc\.[0-9]+)?`) is not such a nesting.
 * Inline modifier groups are refused too: case is the claim's to fold (`fold`), never the pattern's,
 * or `(?i:main)` would let `refs/heads/MAIN` through, and on some runtimes only.
 *
 * The regex sees the value folded (`foldCase`): under `whole` its ASCII letters in lower case,
 * under `before-@` those of its names, and matches it exactly, so the ref stays exact. A capital
 * letter where the regex meets folded text could never match, and is refused.
 *
 * Under `before-@` and `split-@`, as for globs, the regex's first `@` is the value's first `@`: each top-level
 * alternative that writes an `@` outside groups and classes matches only with that `@` on the
 * value's first one, or `acme/api/.*@refs/heads/main` would match a branch named
 * `evil@refs/heads/main`. An alternative that writes no `@` pins no ref and may span it; one
 * that writes `@` only inside a group or class, as an escape, or under a quantifier could align
 * anywhere and is refused.
 *
 * Its groups are compiled without capturing (withoutCaptures): it only tests, and a capture in a
 * repetition costs what the estimate does not count.
 *
 * A value over REGEX_MAX_INPUT characters is not read, nor one over REGEX_MAX_WIDE_INPUT that holds a character beyond
 * Latin-1: the test answers `overLong` for it.
 *
 * With `subjectRefKeys` (a `sub` whose fields a tenant chooses), a regex that writes `@` does not read a value with an `@`
 * after the one that ends such a field's names (`atAfterSubjectRef`: a branch named `x@refs/heads/main`), and answers
 * `overLong` for it: which `@` its own stands for is not known, and `repo:acme/app:job_workflow_ref:acme/w/.*@refs/heads/main`
 * would take that branch for main.
 */
export function compileSafeRegex(pattern: string, fold: CaseFold, overLong: boolean, subjectRefKeys?: readonly string[]): PricedRegexTest {
  if (BACKREFERENCE.test(pattern)) throw new UnsafeRegexError(`regex ${pattern} uses a backreference`);
  if (LOOKAROUND.test(pattern)) throw new UnsafeRegexError(`regex ${pattern} uses lookaround`);
  if (MODIFIERS.test(pattern)) {
    throw new UnsafeRegexError(`regex ${pattern} uses an inline modifier group such as (?i:…); case folding is the claim's, not the pattern's`);
  }
  let regex: RegExp;
  let plain: string;
  try {
    // Compiled alone first: a `)` of its own would close the anchoring group, and `main)|(?:.*` match any value.
    new RegExp(pattern, 'u');
    plain = withoutCaptures(pattern);
    regex = new RegExp(`^(?:${plain})$`, 'u');
  } catch (cause) {
    throw new UnsafeRegexError(`regex ${pattern} does not compile: ${(cause as Error).message}`, { cause });
  }
  let work: number;
  try {
    work = splitsAtFirstAt(fold) ? alignedWork(pattern) : backtrackingWork(pattern, REGEX_MAX_INPUT, REGEX_MAX_WIDE_INPUT);
  } catch (cause) {
    // The estimate reads a group within a group by recursion: a few thousand levels exhaust the stack, where V8 compiles
    // them. A policy's regex, at most 512 characters, nests 255.
    if (!(cause instanceof RangeError)) throw cause;
    throw new UnsafeRegexError(`regex ${pattern} nests groups too deeply to estimate how it backtracks`, { cause });
  }
  if (work === Number.POSITIVE_INFINITY) {
    throw new UnsafeRegexError(
      `regex ${pattern} can backtrack catastrophically (a repeated group matches in more than one way, as (a|ab)* and (a+)+ do): repeat a character class ([ab]*, a+) instead`,
    );
  }
  if (work > MAX_BACKTRACKING_WORK) {
    throw new UnsafeRegexError(
      `regex ${pattern} can backtrack catastrophically (a value of ${REGEX_MAX_INPUT} characters, or of ${REGEX_MAX_WIDE_INPUT} holding one beyond Latin-1, can be tried in more ways than two unbounded repetitions try it: three over the same characters, as in .*-.*-.*, try every split, and so do many alternatives or bounded repetitions in a row): exclude the separator from the repetitions before it ([^-]*-[^-]*-.*), and write a class for alternatives of one character ([a-z0-9-] for (?:[a-z]|[a-z0-9-]))`,
    );
  }
  // Tested whole only where it is not split at its `@` (alignedAlternative warms up the halves it tests instead).
  if (!splitsAtFirstAt(fold)) warmedUp(regex);
  return Object.assign(regexTest(pattern, regex, plain, fold, overLong, subjectRefKeys), { work });
}

/** How a regex that loads reads a claim value: folded as `fold` says, split at its `@` under `before-@` and `split-@`. */
function regexTest(pattern: string, regex: RegExp, plain: string, fold: CaseFold, overLong: boolean, subjectRefKeys: readonly string[] | undefined): RegexTest {
  const source = readRegexSource(plain);
  if (fold === 'exact' && subjectRefKeys !== undefined) {
    if (source.escapedAt) throw new UnsafeRegexError(`regex ${pattern} writes @ as an escape; write @ itself, where a workflow ref's names end`);
    if (pattern.includes('@')) return (text) => (tooLongToRead(text) || atAfterSubjectRef(text, subjectRefKeys) ? overLong : regex.test(text));
  }
  if (fold === 'exact') return (text) => (tooLongToRead(text) ? overLong : regex.test(text));
  if (fold === 'whole') {
    for (const { text, places } of source.alternatives) refuseCapitals(pattern, text, places);
    return (text) => (tooLongToRead(text) ? overLong : regex.test(foldCase(text, fold)));
  }
  if (source.escapedAt) throw new UnsafeRegexError(`regex ${pattern} writes @ as an escape; write @ itself, where the names end and the ref begins`);
  const alternatives = source.alternatives.map((alternative) => alignedAlternative(pattern, alternative, fold === 'before-@'));
  return (text) => {
    if (tooLongToRead(text)) return overLong;
    const folded = foldCase(text, fold);
    return alternatives.some((test) => test(folded));
  };
}

/**
 * One top-level alternative of a `before-@` (or `split-@`) regex. Split at its first top-level `@`, the names
 * part must match the value up to its first `@` and the ref part the rest; each half is matched
 * with that `@` beside it, so `^`, `$` and `\b` next to the split mean what they meant whole.
 * `foldedNames`: the names are seen in lower case (`before-@`), so a capital letter written there is refused.
 */
function alignedAlternative(pattern: string, { text, places }: RegexAlternative, foldedNames: boolean): RegexTest {
  const at = topAt({ text, places });
  if (at === -1) {
    if (text.includes('@')) {
      throw new UnsafeRegexError(`regex ${pattern} writes @ only inside a group or class; write the names, then @ outside any group, then the ref`);
    }
    const whole = warmedUp(new RegExp(`^(?:${text})$`, 'u'));
    return (value) => whole.test(value);
  }
  if (/^[*+?{]/.test(text.slice(at + 1))) throw new UnsafeRegexError(`regex ${pattern} repeats the @ between the names and the ref; write it once`);
  if (foldedNames) refuseCapitals(pattern, text.slice(0, at), places);
  const names = warmedUp(new RegExp(`^(?:${text.slice(0, at)})@$`, 'u'));
  const ref = warmedUp(new RegExp(`^@(?:${text.slice(at + 1)})$`, 'u'));
  return (value) => {
    const split = value.indexOf('@');
    return split !== -1 && names.test(value.slice(0, split + 1)) && ref.test(value.slice(split));
  };
}

/** Where an alternative writes its first `@` outside groups and classes: -1 if nowhere. */
function topAt({ text, places }: RegexAlternative): number {
  return places.findIndex((place, i) => place === 'top' && text[i] === '@');
}

/**
 * The backtracking work of a `before-@` or `split-@` regex as it runs (alignedAlternative): each alternative on its own, and one split
 * at its `@` as two regexes, each over its side of the value. Estimated whole, a repetition in the names would multiply
 * the ref's, though the names' ways never reach it: `acme/.*@refs/heads/.*-[0-9a-f]{40}` costs its halves about 170
 * thousand steps, where the whole pattern's estimate counts 170 million.
 */
function alignedWork(pattern: string): number {
  let work = 0;
  for (const alternative of readRegexSource(pattern).alternatives) {
    const { text } = alternative;
    const at = topAt(alternative);
    const halves = at === -1 ? [text] : [text.slice(0, at + 1), text.slice(at)];
    for (const half of halves) work += backtrackingWork(half, REGEX_MAX_INPUT, REGEX_MAX_WIDE_INPUT);
  }
  return work;
}

/** A capital ASCII letter written as a literal (not in an escape or a group name) never meets folded text. */
function refuseCapitals(pattern: string, text: string, places: readonly Place[]): void {
  for (let i = 0; i < text.length; i++) {
    const char = text[i] ?? '';
    if (places[i] === 'syntax' || char < 'A' || char > 'Z') continue;
    throw new UnsafeRegexError(`regex ${pattern} meets names that compare without case, which it sees in lower case: ${char} would never match there`);
  }
}
