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

/** Length of the escape starting at `i`: `\p{…}`, `\u{…}`, `\uHHHH`, `\xHH`, `\cX` or a single character. */
function escapeLength(source: string, i: number): number {
  const letter = source[i + 1];
  if ((letter === 'p' || letter === 'P' || letter === 'u') && source[i + 2] === '{') return source.indexOf('}', i) - i + 1;
  if (letter === 'u') return 6;
  if (letter === 'x') return 4;
  if (letter === 'c') return 3;
  return 2;
}

function escapeDenotesAt(sequence: string): boolean {
  const hex = /^\\(?:x|u\{?)([0-9a-f]+)\}?$/i.exec(sequence)?.[1];
  return hex !== undefined && Number.parseInt(hex, 16) === 0x40;
}

/**
 * How many ways, at most, a backtracking engine tries a source against one value of at most `longest` characters that does
 * not match: the product of the choices along the pattern (a repetition's lengths, a group's alternatives), summed over
 * alternatives. An unbounded repetition of something that can itself match more than one way (`(a|ab)*`, `(\w|\d)+`) can
 * split a value into its repetitions in exponentially many ways, whatever `longest`: Infinity. Reads the same strict
 * grammar as readRegexSource.
 */
export function backtrackingWork(source: string, longest: number): number {
  const at = { i: 0 };
  return disjunction(source, at, longest);
}

function disjunction(source: string, at: { i: number }, longest: number): number {
  let work = sequence(source, at, longest);
  while (source[at.i] === '|') {
    at.i += 1;
    work += sequence(source, at, longest);
  }
  return work;
}

function sequence(source: string, at: { i: number }, longest: number): number {
  const terms: { readonly text: string; readonly ways: number; readonly min: number; readonly max: number }[] = [];
  while (at.i < source.length && source[at.i] !== '|' && source[at.i] !== ')') {
    const from = at.i;
    const ways = atomWays(source, at, longest);
    const text = source.slice(from, at.i);
    const repeated = /^(?:([*+?])|\{(\d+)(?:(,)(\d*))?\})\??/.exec(source.slice(at.i));
    if (repeated === null) {
      terms.push({ text, ways, min: 1, max: 1 });
      continue;
    }
    at.i += repeated[0].length;
    const [, sign, low, comma, high] = repeated;
    const min = sign === '+' ? 1 : sign !== undefined ? 0 : Number(low);
    const max =
      sign === '?' ? 1 : sign !== undefined || (comma !== undefined && high === '') ? Number.POSITIVE_INFINITY : Number(comma === undefined ? low : high);
    terms.push({ text, ways, min, max });
  }
  let work = 1;
  terms.forEach((term, n) => {
    if (term.ways > 1) work *= term.min === 1 && term.max === 1 ? term.ways : repeatedWays(term.ways, term.min, term.max);
    else if (!stopsBefore(term.text, terms[n + 1])) work *= Math.max(Math.min(term.max, longest) - term.min + 1, 1);
  });
  return work;
}

/**
 * Whether a repetition of `repeated`, one character (a character, an escape or a class, not a group), can end only before
 * the next term, a character it cannot match (`[^-]*-`, `\w+\.`): any other end fails at once on that character, so it adds
 * no ways to the rest.
 */
function stopsBefore(repeated: string, next: { readonly text: string; readonly min: number } | undefined): boolean {
  if (next === undefined || next.min < 1 || repeated.startsWith('(')) return false;
  const literal = next.text.length === 1 && !'.^$'.includes(next.text) ? next.text : /^\\([\^$\\.*+?()[\]{}|/-])$/.exec(next.text)?.[1];
  return literal !== undefined && !new RegExp(`^(?:${repeated})$`, 'u').test(literal);
}

/** An atom of several ways repeated `min` to `max` times is tried in each of its ways at each repetition: Infinity unbounded. */
function repeatedWays(atom: number, min: number, max: number): number {
  if (max === Number.POSITIVE_INFINITY) return max;
  let ways = 0;
  for (let times = min; times <= max && ways < Number.POSITIVE_INFINITY; times++) ways += atom ** times;
  return ways;
}

/** The ways the atom at `at` (a character, an escape, a class or a group) matches, stepping past it. */
function atomWays(source: string, at: { i: number }, longest: number): number {
  const char = source[at.i];
  if (char === '\\') {
    at.i += escapeLength(source, at.i);
    return 1;
  }
  if (char === '[') {
    at.i += 1;
    while (source[at.i] !== ']') at.i += source[at.i] === '\\' ? escapeLength(source, at.i) : 1;
    at.i += 1;
    return 1;
  }
  if (char === '(') {
    at.i += /^\(\?<[^>]*>/.exec(source.slice(at.i))?.[0].length ?? (source[at.i + 1] === '?' ? 3 : 1);
    const ways = disjunction(source, at, longest);
    at.i += 1;
    return ways;
  }
  at.i += (source.codePointAt(at.i) ?? 0) > 0xffff ? 2 : 1;
  return 1;
}
