import type { CaseFold } from '../../claims/case-fold.ts';
import { atAfterSubjectRef } from '../../claims/subject-refs.ts';
import { compileMatcher, type CompiledMatcher } from '../compile-matcher.ts';
import { globIncludes } from '../glob.ts';
import type { Matcher } from '../schema.ts';

/**
 * True when every claim value `inner` accepts, `outer` accepts too. Sound but not complete:
 * a true answer is a proof; false means "not shown", e.g. between two different regexes.
 *
 * `subjectRefKeys` as compileMatcher takes them: a value with an `@` after the one such a field's names end at is read one
 * way on an allow policy's line and another on a deny's, so no pattern is shown to include it, nor one glob another when
 * either writes `@`, unless they are the same.
 */
const isList = (matcher: Matcher): matcher is readonly Matcher[] => Array.isArray(matcher);

export function matcherIncludes(outer: Matcher, inner: Matcher, fold: CaseFold, subjectRefKeys?: readonly string[]): boolean {
  return includes(outer, inner, fold, subjectRefKeys, new Map());
}

/**
 * matcherIncludes, each outer matcher compiled once (`compiled`) however many exact values the inner one lists: compiling a
 * regex estimates how it backtracks, and a pull request's review compares a line of thousands of values with the base's.
 */
function includes(
  outer: Matcher,
  inner: Matcher,
  fold: CaseFold,
  subjectRefKeys: readonly string[] | undefined,
  compiled: Map<Matcher, CompiledMatcher>,
): boolean {
  const within = (outer: Matcher, inner: Matcher): boolean => includes(outer, inner, fold, subjectRefKeys, compiled);
  if (isList(inner)) return inner.every((entry) => within(outer, entry));
  // An exact value is included exactly when the outer matcher accepts it.
  if (typeof inner !== 'object') {
    if (subjectRefKeys !== undefined && typeof outer === 'object' && atAfterSubjectRef(String(inner), subjectRefKeys)) {
      return isList(outer) && outer.some((entry) => within(entry, inner));
    }
    const matcher = compiled.get(outer) ?? compileMatcher(outer, fold, false);
    compiled.set(outer, matcher);
    return matcher.test(inner);
  }
  if (isList(outer)) return outer.some((entry) => within(entry, inner));
  if (typeof outer !== 'object') return false;
  if ('exists' in inner) return 'exists' in outer && outer.exists === inner.exists;
  // Globs, regexes and `not` all require the claim to be present.
  if ('exists' in outer) return outer.exists;
  if ('glob' in inner) {
    if (!('glob' in outer)) return false;
    const pinned = subjectRefKeys !== undefined && (outer.glob.includes('@') || inner.glob.includes('@'));
    return pinned ? outer.glob === inner.glob : globIncludes(outer.glob, inner.glob, fold);
  }
  if ('regex' in inner) return 'regex' in outer && outer.regex === inner.regex;
  return 'not' in outer && within(inner.not, outer.not);
}

export type Widening = 'same' | 'wider' | 'narrower' | 'changed';

/** How a line's matcher moved: wider accepts everything the old one did and more. */
export function compareMatchers(before: Matcher, after: Matcher, fold: CaseFold, subjectRefKeys?: readonly string[]): Widening {
  const grew = matcherIncludes(after, before, fold, subjectRefKeys);
  const shrank = matcherIncludes(before, after, fold, subjectRefKeys);
  if (grew && shrank) return 'same';
  if (grew) return 'wider';
  if (shrank) return 'narrower';
  return 'changed';
}
