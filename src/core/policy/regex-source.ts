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
