import type { CaseFold } from '../../claims/case-fold.ts';
import { compileMatcher } from '../compile-matcher.ts';
import { globIncludes } from '../glob.ts';
import type { Matcher } from '../schema.ts';

/**
 * True when every claim value `inner` accepts, `outer` accepts too. Sound but not complete:
 * a true answer is a proof; false means "not shown", e.g. between two different regexes.
 */
const isList = (matcher: Matcher): matcher is readonly Matcher[] => Array.isArray(matcher);

export function matcherIncludes(outer: Matcher, inner: Matcher, fold: CaseFold): boolean {
  if (isList(inner)) return inner.every((entry) => matcherIncludes(outer, entry, fold));
  // An exact value is included exactly when the outer matcher accepts it.
  if (typeof inner !== 'object') return compileMatcher(outer, fold, false).test(inner);
  if (isList(outer)) return outer.some((entry) => matcherIncludes(entry, inner, fold));
  if (typeof outer !== 'object') return false;
  if ('exists' in inner) return 'exists' in outer && outer.exists === inner.exists;
  // Globs, regexes and `not` all require the claim to be present.
  if ('exists' in outer) return outer.exists;
  if ('glob' in inner) return 'glob' in outer && globIncludes(outer.glob, inner.glob, fold);
  if ('regex' in inner) return 'regex' in outer && outer.regex === inner.regex;
  return 'not' in outer && matcherIncludes(inner.not, outer.not, fold);
}

export type Widening = 'same' | 'wider' | 'narrower' | 'changed';

/** How a line's matcher moved: wider accepts everything the old one did and more. */
export function compareMatchers(before: Matcher, after: Matcher, fold: CaseFold): Widening {
  const grew = matcherIncludes(after, before, fold);
  const shrank = matcherIncludes(before, after, fold);
  if (grew && shrank) return 'same';
  if (grew) return 'wider';
  if (shrank) return 'narrower';
  return 'changed';
}
