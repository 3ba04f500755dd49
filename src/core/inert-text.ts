/**
 * Characters a reader cannot see, or that change how the text around them reads: controls (ESC, BEL, a line feed that
 * starts a line of its own), format characters (bidi overrides that reverse `repo:acme/prod` into `repo:acme/dorp`,
 * zero-width ones that make two subjects differ unseen), line and paragraph separators, and whatever else Unicode says
 * to draw as nothing (variation selectors, fillers such as U+3164).
 */
export const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;
const EVERY_INVISIBLE = new RegExp(INVISIBLE.source, 'gu');

/**
 * Text as people should read it, not as a terminal or a browser acts on it: every INVISIBLE character written as a
 * visible `\uXXXX` escape (one per UTF-16 unit, as JSON and JavaScript write it, so U+E0001 is `\udb40\udc01`). The CLI
 * and the /audit page show what callers chose (a claimed sub, claim values, a user agent) through it.
 */
export function inert(text: string): string {
  return text.replace(EVERY_INVISIBLE, (char) =>
    Array.from({ length: char.length }, (_, unit) => `\\u${char.charCodeAt(unit).toString(16).padStart(4, '0')}`).join(''),
  );
}
