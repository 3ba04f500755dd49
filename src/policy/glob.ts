/**
 * Glob matching as the policy spec defines it: `*` is any run of characters without `/`,
 * `**` any run at all, `?` one character other than `/`; everything else is literal and the
 * whole value must match. Runs as an NFA simulation, so time is bounded by
 * value length × pattern length whatever the pattern (no backtracking).
 */
type GlobToken = { readonly kind: 'literal'; readonly char: string } | { readonly kind: 'one' | 'segment' | 'any' };

export type GlobTest = (text: string) => boolean;

export function compileGlob(pattern: string, caseInsensitive: boolean): GlobTest {
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
  return (text) => run(tokens, caseInsensitive ? text.toLowerCase() : text);
}

function run(tokens: readonly GlobToken[], text: string): boolean {
  let states = closure(tokens, new Set([0]));
  for (const char of text) {
    const next = new Set<number>();
    for (const state of states) {
      const token = tokens[state];
      if (token === undefined) continue;
      switch (token.kind) {
        case 'literal':
          if (token.char === char) next.add(state + 1);
          break;
        case 'one':
          if (char !== '/') next.add(state + 1);
          break;
        case 'segment':
          if (char !== '/') next.add(state);
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
