/** A regex's syntax characters: outside a class, each means itself only escaped. */
const SYNTAX = /[\^$\\.*+?()[\]{}|]/;
/** What a `u`-mode regex may escape to mean the character itself: its syntax characters and `/`. */
const IDENTITY_ESCAPE = /[\^$\\.*+?()[\]{}|/]/;
/** More values than a pin is worth listing: such a regex is judged as a pattern. */
const MAX_VALUES = 64;

/** One way through the regex so far: the text it wrote, and whether a `$` has closed it. */
interface Path {
  readonly text: string;
  readonly ended: boolean;
}

/**
 * The values a policy regex admits when it admits only values it writes out, as a list of exact values would: literal
 * characters and escaped syntax characters, in groups and alternatives (`deploy/(production|staging)`), with `^` and
 * `$` where they may stand. A policy regex matches the whole value (compileSafeRegex anchors it), so `deploy` admits
 * `deploy` alone, as `^deploy$` does. Undefined when it has a wildcard, a class, a quantifier or any other escape, or
 * more than MAX_VALUES values. Reads only patterns compileSafeRegex compiled.
 */
export function writtenRegexValues(pattern: string): string[] | undefined {
  let at = 0;
  const alternatives = (paths: readonly Path[]): Path[] | undefined => {
    const found: Path[] = [];
    for (;;) {
      const through = sequence(paths);
      if (through === undefined) return undefined;
      found.push(...through);
      if (pattern[at] !== '|') return found;
      at += 1;
    }
  };
  const sequence = (from: readonly Path[]): Path[] | undefined => {
    let paths = [...from];
    while (at < pattern.length && pattern[at] !== '|' && pattern[at] !== ')') {
      const char = pattern[at] ?? '';
      if (char === '(') {
        // `(?:` or `(?<name>`: lookaround and modifier groups never compiled.
        at = pattern[at + 1] === '?' ? (pattern[at + 2] === ':' ? at + 3 : pattern.indexOf('>', at) + 1) : at + 1;
        const inside = alternatives(paths);
        if (inside === undefined) return undefined;
        paths = inside;
        at += 1;
        continue;
      }
      let literal: string | undefined;
      if (char === '^') {
        // Only where nothing has been written yet: elsewhere no value passes this way.
        paths = paths.filter((path) => path.text === '');
      } else if (char === '$') {
        paths = paths.map((path) => ({ text: path.text, ended: true }));
      } else if (char === '\\' && IDENTITY_ESCAPE.test(pattern[at + 1] ?? '')) {
        literal = pattern[at + 1] ?? '';
        at += 1;
      } else if (SYNTAX.test(char)) {
        return undefined;
      } else {
        literal = char;
      }
      at += 1;
      if (literal !== undefined) paths = paths.filter((path) => !path.ended).map((path) => ({ text: path.text + literal, ended: false }));
      if (paths.length > MAX_VALUES) return undefined;
    }
    return paths;
  };
  const paths = alternatives([{ text: '', ended: false }]);
  if (paths === undefined) return undefined;
  const values = [...new Set(paths.map((path) => path.text))];
  return values.length > MAX_VALUES ? undefined : values;
}
