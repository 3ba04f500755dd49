import { asciiLowerCase, foldedLength, splitsAtFirstAt, type CaseFold } from '../claims/case-fold.ts';
import { subjectRefAts } from '../claims/subject-refs.ts';

/**
 * Glob matching as the policy spec defines it: `*` is any run of characters without `/`,
 * `**` any run at all, `?` one character other than `/`; everything else is literal and the
 * whole value must match. Runs as an NFA simulation, so time is bounded by
 * value length × pattern length whatever the pattern (no backtracking).
 *
 * Case folds by position in the value, as `case-fold.ts` defines it: a literal compares without
 * case only against a character of the value's folded part, so under `before-@` a pattern's
 * letters match the names without case and the ref exactly, wherever its wildcards fall.
 *
 * Under `before-@` (and `split-@`) the pattern's first `@` is the value's first `@`: wildcards before it never
 * match `@`. Git allows `@` in a ref, so otherwise `acme/api/**@refs/heads/main` would match
 * `acme/api/.github/workflows/d.yml@refs/heads/evil@refs/heads/main`, a branch anyone who can
 * push may create. A pattern that writes no `@` pins no ref, and its wildcards may span it.
 *
 * With `subjectRefKeys` (a `sub` whose fields a tenant chooses, `repo:acme/app:job_workflow_ref:acme/w/…@refs/heads/main`), the
 * `@` that ends such a field's names (`subjectRefAts`) is matched by an `@` the pattern writes, or by a wildcard no `@` of the
 * pattern follows: `repo:acme/app:job_workflow_ref:acme/w/**@refs/heads/main` does not take a branch named `x@refs/heads/main`.
 */
type GlobToken =
  /** `folds`: every value this pattern matches has this character in its folded part. */
  | { readonly kind: 'literal'; readonly char: string; readonly lower: string; readonly folds: boolean }
  /**
   * `atFree`: never matches `@` (a wildcard before the first `@` of a `before-@` pattern). `beforeAt`: the pattern writes an `@`
   * after it, so it never matches the `@` that ends a sub field's names (`subjectRefKeys`).
   */
  | { readonly kind: 'one' | 'segment' | 'any'; readonly atFree: boolean; readonly beforeAt: boolean };

export type GlobTest = (text: string) => boolean;

export function compileGlob(pattern: string, fold: CaseFold, subjectRefKeys?: readonly string[]): GlobTest {
  const tokens = tokenize(pattern, fold);
  const head = tokens.findIndex((token) => token.kind !== 'literal');
  const literals = head === -1 ? tokens.length : head;
  return (text) => matchesValue(tokens, literals, text, foldedLength(text, fold), subjectRefKeys === undefined ? [] : subjectRefAts(text, subjectRefKeys));
}

/**
 * The most live states simulate may step for each character of a value: one for each token after the pattern's literal head, and
 * the match. None for a pattern of literals alone, which compares its characters and never simulates.
 */
export function globLiveStates(pattern: string): number {
  const tokens = tokenize(pattern, 'exact');
  const head = tokens.findIndex((token) => token.kind !== 'literal');
  return head === -1 ? 0 : tokens.length - head + 1;
}

/**
 * The NFA over a value. Until the pattern's first wildcard it has one live state, the characters
 * matched so far: those `literals` are compared one by one, without a step of the simulation each
 * (a pattern like `acme/workflows/deploy.yml@refs/tags/v*` is mostly its head), and the rest of the
 * value is simulated from there.
 */
function matchesValue(tokens: readonly GlobToken[], literals: number, text: string, foldedUnits: number, refAts: readonly number[]): boolean {
  let units = 0;
  for (let state = 0; state < literals; state++) {
    const code = text.codePointAt(units);
    if (code === undefined) return false;
    const width = code > 0xffff ? 2 : 1;
    if (!literalMatches(tokens[state] as Extract<GlobToken, { kind: 'literal' }>, text.slice(units, units + width), units < foldedUnits)) return false;
    units += width;
  }
  const rest = units === 0 ? text : text.slice(units);
  return simulate(tokens, rest, foldedUnits - units, literals, units === 0 ? refAts : refAts.map((at) => at - units));
}

function tokenize(pattern: string, fold: CaseFold): GlobToken[] {
  const chars = Array.from(pattern);
  // Under `before-@`, everything before the pattern's first `@` meets the value's folded part; under `split-@` nothing folds.
  const at = splitsAtFirstAt(fold) ? Math.max(chars.indexOf('@'), 0) : 0;
  const foldedPrefix = fold === 'whole' ? chars.length : fold === 'before-@' ? at : 0;
  const lastAt = chars.lastIndexOf('@');
  const tokens: GlobToken[] = [];
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i] as string;
    const atFree = i < at;
    const beforeAt = i < lastAt;
    if (char === '*') {
      const any = chars[i + 1] === '*';
      if (any) i += 1;
      const kind = any ? 'any' : 'segment';
      const previous = tokens.at(-1);
      // `***` and `**` next to `*` mean the same as one `**`.
      if (previous !== undefined && previous.kind !== 'literal' && previous.kind !== 'one') {
        if (kind === 'any') tokens[tokens.length - 1] = { kind: 'any', atFree, beforeAt };
        continue;
      }
      tokens.push({ kind, atFree, beforeAt });
    } else if (char === '?') {
      tokens.push({ kind: 'one', atFree, beforeAt });
    } else {
      tokens.push({ kind: 'literal', char, lower: asciiLowerCase(char), folds: i < foldedPrefix });
    }
  }
  return tokens;
}

/** Input to the NFA: a character of a value (a string), or a token of another glob. */
type GlobInput = string | GlobToken;

/**
 * Runs the pattern's NFA over a sequence of inputs from state `start`, tracking only the live
 * states (usually one or two). For a value every input is a character, the first `foldedUnits` UTF-16 units of
 * it folding case; for `globIncludes` the input is another glob, each of whose tokens must be
 * absorbed whole by one pattern token: a literal by an equal literal (equal without case when
 * either is surely in the folded part), `?` or a star; `?` by `?` or a star; `*` by a star;
 * `**` by `**` alone (`/` never by `?` or `*`; `@`, or a wildcard that may match it, never by
 * an `atFree` wildcard). A value's `refAts` (offsets into `input`) are matched by no `beforeAt` wildcard.
 *
 * `spend` is told of the live states each input steps, which may throw to stop the simulation: a step is cheap, but
 * `*a*a*a…` against `aaa…b` keeps hundreds of states live at each of hundreds of inputs.
 */
function simulate(
  tokens: readonly GlobToken[],
  input: Iterable<GlobInput>,
  foldedUnits: number,
  start = 0,
  refAts: readonly number[] = [],
  spend?: (steps: number) => void,
): boolean {
  // seen[state] === step marks a state already live at this step: no Set per character.
  const seen = new Int32Array(tokens.length + 1).fill(-1);
  let step = 0;
  let units = 0;
  let live = closure(tokens, [start], seen, step);
  for (const item of input) {
    step += 1;
    spend?.(live.length);
    const char = typeof item === 'string' ? item : item.kind === 'literal' ? item.char : undefined;
    const folds = typeof item === 'string' ? units < foldedUnits : item.kind === 'literal' && item.folds;
    const refAt = typeof item === 'string' && refAts.length > 0 && refAts.includes(units);
    if (typeof item === 'string') units += item.length;
    const slashFree = char === undefined ? typeof item !== 'string' && item.kind !== 'any' : char !== '/';
    const mayBeAt = char === undefined ? typeof item !== 'string' && item.kind !== 'literal' && !item.atFree : char === '@';
    const single = char !== undefined || (typeof item !== 'string' && item.kind === 'one');
    const next: number[] = [];
    for (const state of live) {
      const token = tokens[state];
      if (token === undefined) continue;
      let to = -1;
      if (token.kind === 'literal') to = char !== undefined && literalMatches(token, char, folds) ? state + 1 : -1;
      else if ((token.atFree && mayBeAt) || (refAt && token.beforeAt)) to = -1;
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
export function globIncludes(outer: string, inner: string, fold: CaseFold): boolean {
  return globInclusion(fold)(outer, inner);
}

/**
 * globIncludes for many pairs under one fold, each glob tokenized once however many others it is compared with: a policy diff
 * tries each glob of a line against each of another's, and tokenizing both at each try took four fifths of it. `spend` as
 * simulate takes it, for all the pairs.
 */
export function globInclusion(fold: CaseFold, spend?: (steps: number) => void): (outer: string, inner: string) => boolean {
  const tokenized = new Map<string, GlobToken[]>();
  const tokensOf = (pattern: string): GlobToken[] => {
    const tokens = tokenized.get(pattern) ?? tokenize(pattern, fold);
    tokenized.set(pattern, tokens);
    return tokens;
  };
  return (outer, inner) => simulate(tokensOf(outer), tokensOf(inner), 0, 0, [], spend);
}

function literalMatches(token: { readonly char: string; readonly lower: string; readonly folds: boolean }, char: string, folds: boolean): boolean {
  return token.char === char || ((token.folds || folds) && token.lower === asciiLowerCase(char));
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
