import safeRegex from 'safe-regex2';

/** Values longer than this never match a regex: bounds the cost of any pattern that slips through. */
export const REGEX_MAX_INPUT = 1024;

export class UnsafeRegexError extends Error {
  override readonly name = 'UnsafeRegexError';
}

const BACKREFERENCE = /\\[1-9]|\\k</;
const LOOKAROUND = /\(\?<?[=!]/;

export type RegexTest = (text: string) => boolean;

/**
 * Compiles a policy regex as a whole-value match. Patterns that can backtrack catastrophically
 * are refused here, at load time: backreferences, lookaround, nested quantifiers (star height
 * above one, checked by safe-regex2) and more than 10 repetitions in one pattern.
 */
export function compileSafeRegex(pattern: string, caseInsensitive: boolean): RegexTest {
  if (BACKREFERENCE.test(pattern)) throw new UnsafeRegexError(`regex ${pattern} uses a backreference`);
  if (LOOKAROUND.test(pattern)) throw new UnsafeRegexError(`regex ${pattern} uses lookaround`);
  let regex: RegExp;
  try {
    regex = new RegExp(`^(?:${pattern})$`, caseInsensitive ? 'ui' : 'u');
  } catch (cause) {
    throw new UnsafeRegexError(`regex ${pattern} does not compile: ${(cause as Error).message}`, { cause });
  }
  if (!safeRegex(pattern, { limit: 10 })) {
    throw new UnsafeRegexError(`regex ${pattern} can backtrack catastrophically (nested or too many quantifiers)`);
  }
  return (text) => text.length <= REGEX_MAX_INPUT && regex.test(text);
}
