/**
 * Where each UTF-16 unit of a policy regex's source stands: `top` (a literal or wildcard outside
 * every group and character class), `nested` (one inside a group or class), or `syntax` (part
 * of an escape, a group's brackets and name, a class's brackets). Reads only sources that
 * compiled with the `u` flag and passed `compileSafeRegex`'s refusals, whose grammar is strict:
 * every `\` starts a well-formed escape, groups and classes close, lookaround is gone.
 */
export type Place = 'top' | 'nested' | 'syntax';

export interface RegexAlternative {
  readonly text: string;
  /** Where each UTF-16 unit of `text` stands. */
  readonly places: readonly Place[];
}

export interface RegexSource {
  /** The top-level alternatives: the source split at each `|` that stands at the top. */
  readonly alternatives: readonly RegexAlternative[];
  /** An escape denotes `@` (`\x40`, `\u0040`, `\u{40}`). */
  readonly escapedAt: boolean;
}

export function readRegexSource(source: string): RegexSource {
  const places: Place[] = [];
  let depth = 0;
  let inClass = false;
  let escapedAt = false;
  const mark = (place: Place, count = 1) => {
    for (let n = 0; n < count; n++) places.push(place);
  };
  while (places.length < source.length) {
    const i = places.length;
    const char = source[i];
    if (char === '\\') {
      const length = escapeLength(source, i);
      escapedAt ||= escapeDenotesAt(source.slice(i, i + length));
      mark('syntax', length);
    } else if (inClass) {
      if (char === ']') inClass = false;
      mark(char === ']' ? 'syntax' : 'nested');
    } else if (char === '[') {
      inClass = true;
      mark('syntax');
    } else if (char === '(') {
      depth += 1;
      // `(?:` and `(?<name>`: lookaround and modifier groups were refused before.
      const named = /^\(\?<[^>]*>/.exec(source.slice(i));
      mark('syntax', named?.[0].length ?? (source[i + 1] === '?' ? 3 : 1));
    } else if (char === ')') {
      depth -= 1;
      mark('syntax');
    } else {
      mark(depth === 0 ? 'top' : 'nested');
    }
  }
  const alternatives: RegexAlternative[] = [];
  let start = 0;
  for (let i = 0; i <= source.length; i++) {
    if (i < source.length && !(places[i] === 'top' && source[i] === '|')) continue;
    alternatives.push({ text: source.slice(start, i), places: places.slice(start, i) });
    start = i + 1;
  }
  return { alternatives, escapedAt };
}

/**
 * The source with every group made non-capturing: `(a)` and `(?<name>a)` as `(?:a)`. A policy regex only tests a value,
 * and V8 saves a capturing group's positions on its backtracking stack each time a repetition around it runs, work the
 * estimate does not count: `.*(a()()…)*!` with 200 empty groups took 1 s on 1,023 `a`s and a `#`, 1 ms without capturing.
 * Nothing reads a capture: backreferences are refused. Reads the same strict grammar as readRegexSource.
 */
export function withoutCaptures(source: string): string {
  let plain = '';
  let inClass = false;
  let i = 0;
  while (i < source.length) {
    const char = source[i];
    let length = char === '\\' ? escapeLength(source, i) : 1;
    let text = source.slice(i, i + length);
    if (char === '[') inClass = true;
    else if (char === ']') inClass = false;
    else if (char === '(' && !inClass) {
      const capture = /^\((?:\?<[^>]*>)?(?!\?)/.exec(source.slice(i))?.[0];
      if (capture !== undefined) [length, text] = [capture.length, '(?:'];
    }
    plain += text;
    i += length;
  }
  return plain;
}

const SURROGATE_PAIR_ESCAPE = /^\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}$/i;

/**
 * Length of the escape starting at `i`: `\p{…}`, `\u{…}`, `\uHHHH`, `\xHH`, `\cX` or a single character; a leading
 * surrogate's `\uHHHH` with a trailing one's after it is one character under the `u` flag, as `\uD83D\uDE00` is `😀`. Read
 * as two, `(?:\uD83D\uDE00|😀)*` seemed to begin its alternatives apart and `\uD83D\uDE00*😀` to stop before the `😀`.
 */
function escapeLength(source: string, i: number): number {
  const letter = source[i + 1];
  if ((letter === 'p' || letter === 'P' || letter === 'u') && source[i + 2] === '{') return source.indexOf('}', i) - i + 1;
  if (letter === 'u') return SURROGATE_PAIR_ESCAPE.test(source.slice(i, i + 12)) ? 12 : 6;
  if (letter === 'x') return 4;
  if (letter === 'c') return 3;
  return 2;
}

function escapeDenotesAt(sequence: string): boolean {
  const hex = /^\\(?:x|u\{?)([0-9a-f]+)\}?$/i.exec(sequence)?.[1];
  return hex !== undefined && Number.parseInt(hex, 16) === 0x40;
}

/**
 * How many ways, at most, a backtracking engine tries a source against one value that does not match: along the pattern,
 * each way of reaching a term times that term's choices (a repetition's lengths, or the times it runs when more, as
 * `[0-9a-f]{40}` runs 40 times to end at one length; a group's alternatives), the ways that go on multiplying what follows;
 * summed over alternatives, but for those of which at most one gets past its first character. A repetition that can end
 * only before a character it cannot match still tries each of its lengths, but only one goes on. An unbounded repetition of
 * something that can itself match more than one way (`(a|ab)*`, `(\w|\d)+`) can split a value into its repetitions in
 * exponentially many ways, whatever its length: Infinity. Counted in steps of a one-character repetition without bound
 * over a value of Latin-1 characters, the cheapest V8 runs: an alternative tried, a step of a bounded repetition and one
 * over a class of several runs of characters cost more (ALTERNATIVE_WORK, BOUNDED_STEP_WORK, latin1Step). Priced twice,
 * the dearer counting: on a value of Latin-1 characters up to `longest` UTF-16 units long, and on one holding a character
 * beyond Latin-1 up to `longestWide`, which V8 keeps in two bytes a character and tests each class over its whole range
 * on (wideStep). Reads the same strict grammar as readRegexSource.
 */
export function backtrackingWork(source: string, longest: number, longestWide: number): number {
  // Each atom's runs read once: a pattern may write the same class many times.
  const known = new Map<string, readonly Run[]>();
  const runs = (atom: string): readonly Run[] => known.get(atom) ?? known.set(atom, runsOf(atom)).get(atom) ?? [];
  return Math.max(
    disjunction(source, { i: 0 }, { longest, step: latin1Step, runs }, 'end').work,
    disjunction(source, { i: 0 }, { longest: longestWide, step: (atom) => wideStep(atom, runs), runs }, 'end').work,
  );
}

/**
 * A value a regex may read: at most `longest` UTF-16 units, and what a step over one character of an atom costs on it;
 * with the runs of characters an atom names (runsOf).
 */
interface Reading {
  readonly longest: number;
  readonly step: (atom: string) => number;
  readonly runs: (atom: string) => readonly Run[];
}

/** Consecutive characters, from the first to the last. */
type Run = readonly [number, number];

/**
 * What a part of a pattern costs: the steps it takes (`work`), and the ways it can end, each of which the rest is tried
 * after; and whether it can match no character (`empty`).
 */
interface Cost {
  readonly work: number;
  readonly ways: number;
  readonly empty: boolean;
}

/**
 * What a step over a class of more than CLASS_INLINE_RUNS runs of characters costs, in steps of `.` over a one-byte value:
 * V8 tests a class of up to 16 ranges with comparisons and tables in the compiled code, and calls a function for one of
 * more. On `x?x?x?C*C*` over 1,023 of its characters and one it does not match, 17 to 127 separate characters took 5.1-7.6
 * times what `.` took at a load of 0.5-5 on two cores, up to 10.4 times at a load of 9-17; 16 of them 1.1-1.2 times. On a
 * two-byte value (`C*C*` over 255 of them), 17 to 245 separate characters past U+00FF 6.7-9.1 times, 8 or 16 of them 2.0.
 */
const CLASS_CALL_STEP = 12;
const CLASS_INLINE_RUNS = 16;

/**
 * What a step over a class of 2 to CLASS_INLINE_RUNS runs costs, in steps of `.`: the comparisons V8 writes for it. Measured
 * as CLASS_CALL_STEP is, `[a-zA-Z0-9._/-]` and `\W` took 1.9-2.2 times what `.` took at a load under 5 (up to 3.0 at 14-17),
 * `[0-9a-f]` and `[A-Za-z]` 1.6, `[a-z0-9-]` 1.0-1.1; a class of one run (`[a-z]`, `[^/]`) what `.` takes.
 */
const CLASS_BRANCH_STEP = 3;

/**
 * What a step over a class that names characters past U+FFFF costs on a two-byte value, in steps of `.` over a one-byte
 * value: a character there is a pair of surrogates, which V8 tests as alternatives, one for each set of trailing surrogates
 * some leading ones share (pairs), SURROGATE_PAIRS_PER_STEP of them a step, beyond SURROGATE_STEP. `C*C*` over 255
 * characters up to U+FFFF and one C does not match (`.`, `[^y]`, `\W`: 4.1-5.0 times what `.` took over 1,023 `x`s, at a
 * load of 3) or over 127 past it (5.8-7.3 times a character); over a class of 1, 16, 64 and 245 characters past U+FFFF,
 * each under its own leading surrogate, 2.1, 4.1, 12.7 and 30-36 times, on characters up to U+FFFF it names as well.
 */
const SURROGATE_STEP = 4;
const SURROGATE_PAIRS_PER_STEP = 6;

/**
 * What a step over a Unicode property (`\p{L}`, `[\p{L}\d]`) costs on a two-byte value, in steps of `.` over a one-byte
 * value: V8 tests its ranges, hundreds of them, past U+FFFF as alternatives of surrogate pairs. Measured as SURROGATE_STEP
 * is, `\p{L}`, `\p{Cn}`, `\p{Assigned}` and unions of up to seven properties took up to 4 times what `[^x]` took on the
 * same characters, at a load of 8-9, and wideStep counts 7.2 for `[^x]`. On a one-byte value a property costs what a class
 * of its ranges up to U+00FF does (latin1Step): `\p{L}` took 1.5 times what `.` took.
 */
const PROPERTY_WIDE_STEP = 32;

const LATIN1 = String.fromCharCode(...Array.from({ length: 0x100 }, (_, code) => code));

/**
 * What a step over one character of `atom` costs on a value of Latin-1 characters, which V8 keeps in one byte a character,
 * in steps of `.`: a class (`[…]`, `\W`, `\p{L}`) by the runs of consecutive characters up to U+00FF it names as
 * written, before a `^` (`[^/]` one, `[a-z0-9-]` three), which are what V8 tests on such a value. A literal, `.` and
 * an escape of one character cost one, and so do `\d`, `\D`, `\s`, `\S` and `\w`, which V8 tests with code of its own
 * as it does `.`: measured as CLASS_CALL_STEP is, 1.0-1.14 times `.`. `\W` has such code too, yet took 2.1-3.0 times.
 */
function latin1Step(atom: string): number {
  if (!/^(?:\[|\\[WpP])/.test(atom)) return 1;
  // Over consecutive characters each match of its repetition is a run.
  const written = new RegExp(`(?:${atom.startsWith('[^') ? `[${atom.slice(2).replace(/^\^/, '\\^')}` : atom})+`, 'gu');
  return runsStep(LATIN1.match(written)?.length ?? 0);
}

function runsStep(runs: number): number {
  return runs > CLASS_INLINE_RUNS ? CLASS_CALL_STEP : runs > 1 ? CLASS_BRANCH_STEP : 1;
}

/**
 * What a step over one character of `atom` costs on a value holding a character beyond Latin-1, which V8 keeps in two
 * bytes a character, in steps of `.` over a one-byte value: by the runs of characters up to U+FFFF it names (as
 * latin1Step counts those up to U+00FF), and its surrogate pairs past U+FFFF (SURROGATE_STEP); a Unicode property,
 * PROPERTY_WIDE_STEP. A character up to U+FFFF written alone costs one.
 */
function wideStep(atom: string, runs: (atom: string) => readonly Run[]): number {
  if (/\\[pP]\{/.test(atom)) return PROPERTY_WIDE_STEP;
  if (!/^(?:\[|\\[dDsSwW]|\.)/.test(atom) && (atom.codePointAt(0) ?? 0) <= 0xffff && !/^\\u(?:\{|d[89ab])/i.test(atom)) return 1;
  const { bmp, pairs } = classRuns(runs(atom));
  return runsStep(bmp) + (pairs === 0 ? 0 : SURROGATE_STEP + pairs / SURROGATE_PAIRS_PER_STEP);
}

/**
 * Where the characters a class, `.` or an escape names may begin or end a run, but for the characters it writes: at the
 * control escapes (`\0`, `[\b]`, `\t` to `\r`), the edges of `\d`, `\s`, `\w` and the line terminators `.` leaves out, the
 * surrogates and U+10000.
 */
const FIXED_EDGES = [
  ...[0, 1, 8, 9, 10, 11, 12, 13, 14, 0x20, 0x21, 0x30, 0x3a, 0x41, 0x5b, 0x5f, 0x60, 0x61, 0x7b],
  ...[0xa0, 0xa1, 0x1680, 0x1681, 0x2000, 0x200b, 0x2028, 0x202a, 0x202f, 0x2030, 0x205f, 0x2060, 0x3000, 0x3001, 0xfeff, 0xff00],
  ...[0xd800, 0xdc00, 0xe000, 0x10000, 0x110000],
];

/** Where the characters `atom` (not a property) names may begin or end a run: FIXED_EDGES, each it writes, and the next. */
function edgesOf(atom: string): number[] {
  const edges = new Set(FIXED_EDGES);
  const written = [...atom].map((char) => char.codePointAt(0) ?? 0);
  const escapes = /\\u\{([0-9a-f]+)\}|\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\u([0-9a-f]{4})|\\x([0-9a-f]{2})|\\c([a-z])/gi;
  for (const [, braced, lead, trail, unit, byte, control] of atom.matchAll(escapes)) {
    // `\uD83D\uDE00` is one character under the `u` flag.
    const pair = lead === undefined ? undefined : String.fromCharCode(Number.parseInt(lead, 16), Number.parseInt(trail ?? '', 16));
    const code = control === undefined ? Number.parseInt(braced ?? unit ?? byte ?? '', 16) : control.charCodeAt(0) % 32;
    written.push(pair?.codePointAt(0) ?? code);
  }
  for (const code of written) edges.add(code).add(code + 1);
  return [...edges].filter((code) => code <= 0x110000).sort((a, b) => a - b);
}

/** The runs of consecutive characters `atom` (a class, `.` or an escape, not a property) names, split at U+10000. */
function runsOf(atom: string): Run[] {
  const named = new RegExp(`^(?:${atom})$`, 'u');
  const sorted = edgesOf(atom);
  // Each stretch between two edges is named whole or not at all.
  const runs: [number, number][] = [];
  sorted.slice(0, -1).forEach((from, n) => {
    if (!named.test(String.fromCodePoint(from))) return;
    const last = runs.at(-1);
    const to = (sorted[n + 1] ?? 0) - 1;
    if (last !== undefined && last[1] === from - 1 && from !== 0x10000) last[1] = to;
    else runs.push([from, to]);
  });
  return runs;
}

/**
 * The runs of consecutive characters up to U+FFFF `atom` (not a property) names, and the alternatives of surrogate pairs V8
 * tests for those past it: the sets of trailing surrogates one or more leading surrogates share.
 */
function classRuns(runs: readonly Run[]): { bmp: number; pairs: number } {
  // Past U+FFFF, the trailing surrogates each leading one takes: all of them for a leading one a run goes past, which no
  // other run reaches; the others read at the ends of runs.
  const trailing = new Map<number, string>();
  const whole = '0-1023,';
  let past = false;
  for (const [from, to] of runs.filter(([from]) => from >= 0x10000)) {
    const [first, last] = [(from - 0x10000) >> 10, (to - 0x10000) >> 10];
    const [low, high] = [(from - 0x10000) & 0x3ff, (to - 0x10000) & 0x3ff];
    trailing.set(first, `${trailing.get(first) ?? ''}${low}-${first === last ? high : 0x3ff},`);
    if (first !== last) trailing.set(last, `0-${high},`);
    past ||= last > first + 1;
  }
  const pairs = new Set(trailing.values());
  if (past) pairs.add(whole);
  return { bmp: runs.filter(([from]) => from < 0x10000).length, pairs: pairs.size };
}

/**
 * The steps an alternative costs each time it is tried, beyond its atoms. V8 runs a repetition of one character as a tight
 * loop, but pushes a backtrack entry for each alternative it tries: `(a|a)` written 23 times, tried on 23 `a`s and a `!`
 * (17 million alternatives), took 340-550 ms where `x?x?x?.*.*y` (17 million steps of one character) took 27-32 ms, each
 * the first time the regex ran, before V8 compiles it; `(a|a){0,22}` on 22 `a`s and a `!`, 250-330 ms.
 */
const ALTERNATIVE_WORK = 16;

/**
 * What a step of a bounded repetition (`{0,126}`) costs, in steps of an unbounded one: V8 keeps a counter for it.
 * `a*a{0,126}a{0,126}` tried on 999 `a`s and a `-` (17 million steps) took 80-100 ms, each time, where `x?x?x?.*.*y`
 * (17 million steps) took 11-14 ms once compiled.
 */
const BOUNDED_STEP_WORK = 4;

/** A term of a sequence: an atom as written (`text`, from `from` in the source), repeated `min` to `max` times. */
interface Term {
  readonly text: string;
  readonly from: number;
  readonly min: number;
  readonly max: number;
}

/**
 * What follows a part of a pattern: the terms of its sequence from `next` on, then what follows that sequence (`outer`),
 * out to the pattern's end, where the value must end (`end`). In a repeated group what follows its body may be another
 * repetition of it, read as unknown (`open`).
 */
type Following = { readonly terms: readonly Term[]; readonly next: number; readonly outer: Following } | 'end' | 'open';

function disjunction(source: string, at: { i: number }, reading: Reading, following: Following): Cost {
  const firsts = [mandatoryFirst(source, at.i)];
  let { work, ways, empty } = sequence(source, at, reading, following);
  let most = ways;
  while (source[at.i] === '|') {
    at.i += 1;
    firsts.push(mandatoryFirst(source, at.i));
    const next = sequence(source, at, reading, following);
    work += next.work;
    ways += next.ways;
    most = Math.max(most, next.ways);
    empty ||= next.empty;
  }
  if (firsts.length === 1) return { work, ways, empty };
  // Alternatives that each begin with a character none of the others can begin with (`0|[1-9][0-9]*`): at most one gets
  // past its first, so they end in the ways of one.
  const exclusive = firsts.every((first) => first !== undefined) && disjoint(firsts as string[], reading.runs);
  return { work: work + firsts.length * ALTERNATIVE_WORK, ways: exclusive ? most : ways, empty };
}

/**
 * The character an alternative from `i` must begin with, as written (a character, an escape or a class it cannot skip), or
 * undefined: a group, an assertion (`^`, `$`, `\b`, `\B`), an optional first term, or none.
 */
function mandatoryFirst(source: string, i: number): string | undefined {
  if (i >= source.length || '(|)^$'.includes(source[i] ?? '') || /^\\[bB]/.test(source.slice(i))) return undefined;
  const at = { i };
  skipCharacter(source, at);
  return (repetitionAt(source, at.i)?.min ?? 1) >= 1 ? source.slice(i, at.i) : undefined;
}

/** Whether no character matches two of `atoms`, each one character (a character, an escape or a class): a property may. */
function disjoint(atoms: readonly string[], runs: (atom: string) => readonly Run[]): boolean {
  if (atoms.some((atom) => /\\[pP]\{/.test(atom))) return false;
  const named = atoms.flatMap((atom) => {
    const literal = /^[^\\[.]/u.test(atom) ? atom.codePointAt(0) : undefined;
    return literal === undefined ? runs(atom) : [[literal, literal] as const];
  });
  // The runs of one atom never meet: in order, one that begins before another ends is another atom's.
  let reached = -1;
  return named
    .sort(([a], [b]) => a - b)
    .every(([from, to]) => {
      const apart = from > reached;
      reached = Math.max(reached, to);
      return apart;
    });
}

/** The repetition written at `i` (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`, each maybe lazy): its length and bounds. */
function repetitionAt(source: string, i: number): { length: number; min: number; max: number } | undefined {
  const repeated = /^(?:([*+?])|\{(\d+)(?:(,)(\d*))?\})\??/.exec(source.slice(i));
  if (repeated === null) return undefined;
  const [written, sign, low, comma, high] = repeated;
  const min = sign === '+' ? 1 : sign !== undefined ? 0 : Number(low);
  const max =
    sign === '?' ? 1 : sign !== undefined || (comma !== undefined && high === '') ? Number.POSITIVE_INFINITY : Number(comma === undefined ? low : high);
  return { length: written.length, min, max };
}

function sequence(source: string, at: { i: number }, reading: Reading, outer: Following): Cost {
  const terms: Term[] = [];
  while (at.i < source.length && source[at.i] !== '|' && source[at.i] !== ')') {
    const from = at.i;
    skipAtom(source, at);
    const text = source.slice(from, at.i);
    const repetition = repetitionAt(source, at.i);
    at.i += repetition?.length ?? 0;
    terms.push({ text, from, min: repetition?.min ?? 1, max: repetition?.max ?? 1 });
  }
  // Each way of reaching a term tries the term in each of its own ways; only those that can go on multiply what follows.
  let reaching = 1;
  let work = 0;
  let empty = true;
  terms.forEach(({ text, from, min, max }, n) => {
    const after = { terms, next: n + 1, outer };
    // A group run at most once ends where what follows it begins; one repeated may end where it begins again.
    const atom = atomCost(source, { i: from }, reading, max <= 1 ? after : 'open');
    empty &&= min === 0 || atom.empty;
    if (min === 1 && max === 1) {
      work += reaching * atom.work;
      reaching *= atom.ways;
      return;
    }
    // A repetition runs as far as it can (up to `reach` times) before it gives repetitions back down to `min`: the lengths
    // it can end at are its ways on, but it takes `reach` steps even when they are few (`a{1000}` ends at one length, after 1000).
    // A group of several ways is entered once for each way of reaching each repetition before the last, one of one way once
    // a repetition: `(-rc\.[0-9]+)?` once, not once for each of its lengths, nor again for being skipped.
    const reach = Math.min(max, reading.longest);
    const group = text.startsWith('(');
    const tries = atom.ways > 1 ? repeatedWays(atom.ways, min, max) : Math.max(reach - min + 1, 1);
    const steps = atom.ways > 1 ? repeatedWays(atom.ways, 0, max - 1) : group ? reach : Math.max(tries, reach);
    const skipped = atom.ways > 1 ? undefined : stopsBefore(text, after);
    // V8 unrolls a group repeated at most once into its alternatives only if it cannot match no character; one that can
    // (`(?:[^y]*)?`) it runs as a loop that checks each turn moved on, where a repetition's steps cost what a bounded one's do:
    // `x{0,6}.*(?:[^y]+|)?y` took 23-29 ms on 1,023 `x`s and a `!`, `x{0,6}.*(?:[^y]+)?y` 7.3, at a load of 10.
    const counted = (max !== Number.POSITIVE_INFINITY && max > 1) || (group && atom.empty);
    work += reaching * steps * atom.work * (1 + (skipped ?? 0)) * (counted ? BOUNDED_STEP_WORK : 1);
    if (skipped === undefined) reaching *= tries;
  });
  return { work, ways: reaching, empty };
}

/**
 * Whether a repetition of `repeated`, one character (a character, an escape or a class, not a group), can end only where
 * what follows begins with a character it cannot match (`[^-]*-`, `\w+\.`, `[0-9]+(-rc)?$`, `(0|[1-9][0-9]*)\.`): any
 * other end fails on that character, so it adds no ways to the rest. What follows is read up to its first term that must
 * match (`min` at least 1), each optional term before it beginning with such a character too, out of the groups the
 * repetition ends (not out of a repeated one, which may begin again there); at the end of the whole pattern the value must
 * end, which no shorter end of the repetition does. Each other end still tries every optional term before it fails, a
 * step each: their count (`[0-9]*a?b?-`: two), or undefined if the repetition can end elsewhere. Uncounted,
 * `.*.{0,7}[0-9]*` and twenty optional letters before a `!` priced below the limit and took 0.2-0.3 s on 1,023 digits and a `#`.
 */
function stopsBefore(repeated: string, following: Following): number | undefined {
  if (repeated.startsWith('(')) return undefined;
  const matches = new RegExp(`^(?:${repeated})$`, 'u');
  let optional = 0;
  for (let place = following; ; place = place.outer) {
    if (place === 'end') return optional;
    if (place === 'open') return undefined;
    for (const { text, min } of place.terms.slice(place.next)) {
      const literal = firstLiteral(text);
      if (literal === undefined || matches.test(literal)) return undefined;
      if (min >= 1) return optional;
      optional += 1;
    }
  }
}

/**
 * The character a term must begin with, when it is one: a literal character or escaped symbol, or a group of one
 * alternative that begins with one (`(\.[0-9]+)`, `(?:-rc)`). Read by code points, as the `u` flag matches: `(😀)` begins
 * with `😀`, not with its first UTF-16 unit, which `😀*` does not match though it matches `😀`: read by units, `(😀*(😀))+`
 * seemed one way to split a value, and took 1.6 s on 26 `😀`s and a `!`, twice as long for each more.
 */
function firstLiteral(term: string): string | undefined {
  const literal = (text: string) => (/^[^.^$]$/u.test(text) ? text : /^\\([\^$\\.*+?()[\]{}|/-])$/.exec(text)?.[1]);
  if (!term.startsWith('(')) return literal(term);
  const body = term.slice(/^\((?:\?:|\?<[^>]*>)?/.exec(term)?.[0].length ?? 1, -1);
  if (readRegexSource(body).alternatives.length !== 1) return undefined;
  const first = /^(?:\\[\^$\\.*+?()[\]{}|/-]|[^\\[(.^$|])(?![*?]|\{0)/u.exec(body)?.[0];
  return first === undefined ? undefined : literal(first);
}

/** An atom of several ways repeated `min` to `max` times is tried in each of its ways at each repetition: Infinity unbounded. */
function repeatedWays(atom: number, min: number, max: number): number {
  if (max === Number.POSITIVE_INFINITY) return max;
  let ways = 0;
  for (let times = min; times <= max && ways < Number.POSITIVE_INFINITY; times++) ways += atom ** times;
  return ways;
}

/** What the atom at `at` (a character, an escape, a class or a group, before `following`) costs, stepping past it. */
function atomCost(source: string, at: { i: number }, reading: Reading, following: Following): Cost {
  const from = at.i;
  if (source[at.i] === '(') {
    at.i += /^\(\?<[^>]*>/.exec(source.slice(at.i))?.[0].length ?? (source[at.i + 1] === '?' ? 3 : 1);
    const cost = disjunction(source, at, reading, following);
    at.i += 1;
    return cost;
  }
  skipCharacter(source, at);
  return { work: reading.step(source.slice(from, at.i)), ways: 1, empty: false };
}

/** Steps past the atom at `at`: a character, an escape, a class, or a group and all it holds. */
function skipAtom(source: string, at: { i: number }): void {
  let depth = 0;
  do {
    const char = source[at.i];
    if (char === '(') depth += 1;
    else if (char === ')') depth -= 1;
    if (char === '(' || char === ')') at.i += 1;
    else skipCharacter(source, at);
  } while (depth > 0);
}

/** Steps past the character, escape or class at `at`. */
function skipCharacter(source: string, at: { i: number }): void {
  const char = source[at.i];
  if (char === '\\') {
    at.i += escapeLength(source, at.i);
  } else if (char === '[') {
    at.i += 1;
    while (source[at.i] !== ']') at.i += source[at.i] === '\\' ? escapeLength(source, at.i) : 1;
    at.i += 1;
  } else {
    at.i += (source.codePointAt(at.i) ?? 0) > 0xffff ? 2 : 1;
  }
}
