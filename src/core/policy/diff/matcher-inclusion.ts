import type { CaseFold } from '../../claims/case-fold.ts';
import { atAfterSubjectRef } from '../../claims/subject-refs.ts';
import { compileMatcher, type CompiledMatcher } from '../compile-matcher.ts';
import { globInclusion } from '../glob.ts';
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

/**
 * The most entries of lists a diff tries one policy's lines against the other side's, each an inclusion question of its own: a
 * line may write thousands of globs, each tried against each of the other line's (5,000 against as many took 85 s of the thread
 * that serves /token at every push of a pull request's review), and a file many such lines. Past it a question is not shown, as
 * between two different regexes: a diff of lines of lists of globs says `changed` of them rather than which way they moved.
 */
const MAX_INCLUSION_TRIES = 20_000;

/**
 * The most steps of glob simulation (live states × inputs) the questions sharing a budget take. A try costs as much as its two
 * globs' lengths multiplied when one keeps many states live: `*a*a*a…` against `aaa…b`, 512 characters each, took 3.5-8 ms a try,
 * so lines of 141 of them a side spent 70-160 s of the thread that serves /token within the tries. Tries of globs of 40 characters
 * take a few dozen steps each, so 20,000 of them stay well within it; past it a question is not shown, as past the tries.
 */
const MAX_INCLUSION_STEPS = 2_000_000;

/**
 * How many entries of lists (MAX_INCLUSION_TRIES) and steps of glob simulation (MAX_INCLUSION_STEPS) the questions sharing it
 * have spent; a new one for each policy a diff compares.
 */
export interface InclusionBudget {
  tries: number;
  steps: number;
}

/** A question past MAX_INCLUSION_TRIES or MAX_INCLUSION_STEPS. */
class TooManyTries extends Error {}

export function matcherIncludes(
  outer: Matcher,
  inner: Matcher,
  fold: CaseFold,
  subjectRefKeys?: readonly string[],
  budget: InclusionBudget = { tries: 0, steps: 0 },
): boolean {
  const spend = (steps: number): void => {
    budget.steps += steps;
    if (budget.steps > MAX_INCLUSION_STEPS) throw new TooManyTries();
  };
  try {
    return includes(outer, inner, { fold, subjectRefKeys, compiled: new Map(), globIncludes: globInclusion(fold, spend), budget });
  } catch (error) {
    if (!(error instanceof TooManyTries)) throw error;
    return false;
  }
}

/**
 * One inclusion question: each outer matcher compiled once (`compiled`) however many exact values the inner one lists (compiling
 * a regex estimates how it backtracks, and a pull request's review compares a line of thousands of values with the base's), each
 * glob tokenized once (`globIncludes`), and the entries of lists it tries and the steps its globs take counted in `budget`.
 */
interface Question {
  readonly fold: CaseFold;
  readonly subjectRefKeys: readonly string[] | undefined;
  readonly compiled: Map<Matcher, CompiledMatcher>;
  readonly globIncludes: (outer: string, inner: string) => boolean;
  readonly budget: InclusionBudget;
}

function includes(outer: Matcher, inner: Matcher, question: Question): boolean {
  const within = (outer: Matcher, inner: Matcher): boolean => includes(outer, inner, question);
  const anyOf = (entries: readonly Matcher[], inner: Matcher): boolean =>
    entries.some((entry) => {
      question.budget.tries += 1;
      if (question.budget.tries > MAX_INCLUSION_TRIES) throw new TooManyTries();
      return within(entry, inner);
    });
  const { fold, subjectRefKeys, compiled } = question;
  if (isList(inner)) return inner.every((entry) => within(outer, entry));
  // An exact value is included exactly when the outer matcher accepts it.
  if (typeof inner !== 'object') {
    if (subjectRefKeys !== undefined && typeof outer === 'object' && atAfterSubjectRef(String(inner), subjectRefKeys)) {
      return isList(outer) && anyOf(outer, inner);
    }
    const matcher = compiled.get(outer) ?? compileMatcher(outer, fold, false);
    compiled.set(outer, matcher);
    return matcher.test(inner);
  }
  if (isList(outer)) return anyOf(outer, inner);
  if (typeof outer !== 'object') return false;
  if ('exists' in inner) return 'exists' in outer && outer.exists === inner.exists;
  // Globs, regexes and `not` all require the claim to be present.
  if ('exists' in outer) return outer.exists;
  if ('glob' in inner) {
    if (!('glob' in outer)) return false;
    const pinned = subjectRefKeys !== undefined && (outer.glob.includes('@') || inner.glob.includes('@'));
    return pinned ? outer.glob === inner.glob : question.globIncludes(outer.glob, inner.glob);
  }
  if ('regex' in inner) return 'regex' in outer && outer.regex === inner.regex;
  return 'not' in outer && within(inner.not, outer.not);
}

export type Widening = 'same' | 'wider' | 'narrower' | 'changed';

/** How a line's matcher moved: wider accepts everything the old one did and more. */
export function compareMatchers(
  before: Matcher,
  after: Matcher,
  fold: CaseFold,
  subjectRefKeys?: readonly string[],
  budget: InclusionBudget = { tries: 0, steps: 0 },
): Widening {
  const grew = matcherIncludes(after, before, fold, subjectRefKeys, budget);
  const shrank = matcherIncludes(before, after, fold, subjectRefKeys, budget);
  if (grew && shrank) return 'same';
  if (grew) return 'wider';
  if (shrank) return 'narrower';
  return 'changed';
}
