/**
 * Glob matching as the policy spec defines it: `*` is any run of characters without `/`,
 * `**` any run at all, `?` one character other than `/`; everything else is literal and the
 * whole value must match. Runs as an NFA simulation, so time is bounded by
 * value length × pattern length whatever the pattern (no backtracking).
 */
type GlobToken = { readonly kind: 'literal'; readonly char: string } | { readonly kind: 'one' | 'segment' | 'any' };

export type GlobTest = (text: string) => boolean;

export function compileGlob(pattern: string, caseInsensitive: boolean): GlobTest {
  const tokens = tokenize(pattern, caseInsensitive);
  return (text) => run(tokens, caseInsensitive ? text.toLowerCase() : text);
}

function tokenize(pattern: string, caseInsensitive: boolean): GlobToken[] {
  const source = caseInsensitive ? pattern.toLowerCase() : pattern;
  const chars = Array.from(source);
  const tokens: GlobToken[] = [];
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i] as string;
    if (char === '*') {
      const any = chars[i + 1] === '*';
      if (any) i += 1;
      const kind = any ? 'any' : 'segment';
      const previous = tokens.at(-1);
      // `***` and `**` next to `*` mean the same as one `**`.
      if (previous !== undefined && previous.kind !== 'literal' && previous.kind !== 'one') {
        if (kind === 'any') tokens[tokens.length - 1] = { kind: 'any' };
        continue;
      }
      tokens.push({ kind });
    } else if (char === '?') {
      tokens.push({ kind: 'one' });
    } else {
      tokens.push({ kind: 'literal', char });
    }
  }
  return tokens;
}

function run(tokens: readonly GlobToken[], text: string): boolean {
  return simulate(tokens, Array.from(text, (char): GlobToken => ({ kind: 'literal', char })));
}

/**
 * Runs the pattern's NFA over a sequence of input tokens. For text every input token is a
 * literal character; for `globIncludes` the input is another glob, each of whose tokens must
 * be absorbed whole by one pattern token: a literal by an equal literal, `?` or a star;
 * `?` by `?` or a star; `*` by a star; `**` by `**` alone (`/` never by `?` or `*`).
 */
function simulate(tokens: readonly GlobToken[], input: readonly GlobToken[]): boolean {
  let states = closure(tokens, new Set([0]));
  for (const item of input) {
    const next = new Set<number>();
    const slashFree = item.kind !== 'any' && !(item.kind === 'literal' && item.char === '/');
    for (const state of states) {
      const token = tokens[state];
      if (token === undefined) continue;
      switch (token.kind) {
        case 'literal':
          if (item.kind === 'literal' && token.char === item.char) next.add(state + 1);
          break;
        case 'one':
          if (slashFree && (item.kind === 'literal' || item.kind === 'one')) next.add(state + 1);
          break;
        case 'segment':
          if (slashFree) next.add(state);
          break;
        case 'any':
          next.add(state);
          break;
      }
    }
    if (next.size === 0) return false;
    states = closure(tokens, next);
  }
  return states.has(tokens.length);
}

/**
 * True when every value `inner` matches, `outer` matches too. Sound: a true answer is a proof.
 * Not complete: a few inclusions that need one star to span several (`a*` in `*`, `*b` in `**`)
 * are proven, but exotic ones may answer false, which callers read as "not known to be wider".
 */
export function globIncludes(outer: string, inner: string, caseInsensitive: boolean): boolean {
  return simulate(tokenize(outer, caseInsensitive), tokenize(inner, caseInsensitive));
}

/** Star tokens may match nothing: from a star state, the state after it is reachable too. */
function closure(tokens: readonly GlobToken[], states: Set<number>): Set<number> {
  for (const state of states) {
    const kind = tokens[state]?.kind;
    if (kind === 'segment' || kind === 'any') states.add(state + 1);
  }
  return states;
}

/** True when the glob matches every value (`*` alone on single-segment values, `**` everywhere). */
export function globMatchesEverything(pattern: string): boolean {
  return /^\*+$/.test(pattern);
}
