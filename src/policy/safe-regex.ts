import safeRegex from 'safe-regex2';
import { foldCase, type CaseFold } from './case-fold.ts';

/** Values longer than this never match a regex: bounds the cost of any pattern that slips through. */
export const REGEX_MAX_INPUT = 1024;

export class UnsafeRegexError extends Error {
  override readonly name = 'UnsafeRegexError';
}

const BACKREFERENCE = /\\[1-9]|\\k</;
const LOOKAROUND = /\(\?<?[=!]/;
// `(?i:…)`, `(?-i:…)`, `(?ims-s:…)`: newer JavaScript engines accept them, older ones refuse them.
const MODIFIERS = /\(\?(?:[a-z]+(?:-[a-z]*)?|-[a-z]+):/i;

export type RegexTest = (text: string) => boolean;

/**
 * Compiles a policy regex as a whole-value match. Patterns that can backtrack catastrophically
 * are refused here, at load time: backreferences, lookaround, nested quantifiers (star height
 * above one, checked by safe-regex2) and more than 10 repetitions in one pattern. Inline
 * modifier groups are refused too: case is the claim's to fold (`fold`), never the pattern's,
 * or `(?i:main)` would let `refs/heads/MAIN` through, and on some runtimes only.
 *
 * The regex sees the value folded: under `whole` in lower case and matched without case;
 * under `before-@` with its names in lower case, matched exactly, so the ref stays exact and a
 * name written in capitals in such a regex never matches.
 */
export function compileSafeRegex(pattern: string, fold: CaseFold): RegexTest {
  if (BACKREFERENCE.test(pattern)) throw new UnsafeRegexError(`regex ${pattern} uses a backreference`);
  if (LOOKAROUND.test(pattern)) throw new UnsafeRegexError(`regex ${pattern} uses lookaround`);
  if (MODIFIERS.test(pattern)) {
    throw new UnsafeRegexError(`regex ${pattern} uses an inline modifier group such as (?i:…); case folding is the claim's, not the pattern's`);
  }
  let regex: RegExp;
  try {
    regex = new RegExp(`^(?:${pattern})$`, fold === 'whole' ? 'ui' : 'u');
  } catch (cause) {
    throw new UnsafeRegexError(`regex ${pattern} does not compile: ${(cause as Error).message}`, { cause });
  }
  if (!safeRegex(pattern, { limit: 10 })) {
    throw new UnsafeRegexError(`regex ${pattern} can backtrack catastrophically (nested or too many quantifiers)`);
  }
  return (text) => text.length <= REGEX_MAX_INPUT && regex.test(foldCase(text, fold));
}
