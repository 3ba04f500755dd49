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
  return (text) => simulate(tokens, caseInsensitive ? text.toLowerCase() : text);
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

/** Input to the NFA: a character of a value (a string), or a token of another glob. */
type GlobInput = string | GlobToken;

/**
 * Runs the pattern's NFA over a sequence of inputs, tracking only the live states (usually
 * one or two). For a value every input is a character; for `globIncludes` the input is another
 * glob, each of whose tokens must be absorbed whole by one pattern token: a literal by an equal
 * literal, `?` or a star; `?` by `?` or a star; `*` by a star; `**` by `**` alone (`/` never by
 * `?` or `*`).
 */
function simulate(tokens: readonly GlobToken[], input: Iterable<GlobInput>): boolean {
  // seen[state] === step marks a state already live at this step: no Set per character.
  const seen = new Int32Array(tokens.length + 1).fill(-1);
  let step = 0;
  let live = closure(tokens, [0], seen, step);
  for (const item of input) {
    step += 1;
    const char = typeof item === 'string' ? item : item.kind === 'literal' ? item.char : undefined;
    const slashFree = char === undefined ? typeof item !== 'string' && item.kind !== 'any' : char !== '/';
    const single = char !== undefined || (typeof item !== 'string' && item.kind === 'one');
    const next: number[] = [];
    for (const state of live) {
      const token = tokens[state];
      if (token === undefined) continue;
      let to = -1;
      if (token.kind === 'literal') to = char !== undefined && token.char === char ? state + 1 : -1;
      else if (token.kind === 'one') to = slashFree && single ? state + 1 : -1;
      else if (token.kind === 'segment') to = slashFree ? state : -1;
      else to = state;
      if (to >= 0 && seen[to] !== step) {
        seen[to] = step;
        next.push(to);
      }
    }
    if (next.length === 0) return false;
    live = closure(tokens, next, seen, step);
  }
  return live.includes(tokens.length);
}

/**
 * True when every value `inner` matches, `outer` matches too. Sound: a true answer is a proof.
 * Not complete: a few inclusions that need one star to span several (`a*` in `*`, `*b` in `**`)
 * are proven, but exotic ones may answer false, which callers read as "not known to be wider".
 */
export function globIncludes(outer: string, inner: string, caseInsensitive: boolean): boolean {
  return simulate(tokenize(outer, caseInsensitive), tokenize(inner, caseInsensitive));
}

/** Star tokens may match nothing: from a star state, the state after it is live too. */
function closure(tokens: readonly GlobToken[], live: number[], seen: Int32Array, step: number): number[] {
  for (const state of live) seen[state] = step;
  for (let i = 0; i < live.length; i++) {
    const state = live[i] as number;
    const kind = tokens[state]?.kind;
    if ((kind === 'segment' || kind === 'any') && seen[state + 1] !== step) {
      seen[state + 1] = step;
      live.push(state + 1);
    }
  }
  return live;
}

/** True when the glob matches every value (`*` alone on single-segment values, `**` everywhere). */
export function globMatchesEverything(pattern: string): boolean {
  return /^\*+$/.test(pattern);
}
