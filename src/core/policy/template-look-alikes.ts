/**
 * The characters Unicode's confusables data (UTS #39, confusables.txt of Unicode 17, as new as the Unicode Node's ICU
 * knows: a value may hold any character it knows) gives as look-alikes of one ASCII punctuation character: those whose
 * prototype is that character alone, leaving out the ones a normal form already turns into it (a full-width `：` is `:`
 * under NFKC, which the template rule catches as such). U+0020 has none here: where a space delimits, every character
 * Unicode calls white space does. A template's delimiter keeps its look-alikes out of a value as it keeps itself out:
 * `repo:{repository}:ref:{ref}` with a ref holding U+2236 RATIO would read to a reviewer as a subject with another field.
 * Letters and digits among them count too (U+02D0, Lisu U+A4FD, Katakana U+30CE, the Arabic-Indic zero U+0660), since
 * the reader cannot tell them from the delimiter either.
 */
const LOOK_ALIKES: Readonly<Record<string, string>> = {
  '!': '\u01C3\u2D51',
  '&': '\uA778',
  "'": '\u00B4\u02B9\u02BB\u02BC\u02BD\u02BE\u02C8\u02CA\u02CB\u02F4\u0374\u0384\u055A\u055D\u05D9\u05F3\u07F4\u07F5\u144A\u16CC\u1FBD\u1FBF\u1FEF\u1FFD\u1FFE\u2018\u2019\u201B\u2032\u2035\uA78C\uFF40\u{16F51}\u{16F52}',
  '(': '\u2768\u2772\u3014\uFD3E\uFF3B',
  ')': '\u2769\u2773\u3015\uFD3F\uFF3D',
  '*': '\u066D\u204E\u2217\u{1031F}',
  '+': '\u16ED\u2795\u{1029B}\u{1E6E9}',
  ',': '\u00B8\u060D\u066B\u201A\uA4F9',
  '-': '\u02D7\u06D4\u2010\u2011\u2012\u2013\u2043\u2212\u2796\u2CBA\u2CBB\uFE58',
  '.': '\u0660\u06F0\u0701\u0702\uA4F8\uA60E\u{10A50}\u{1D16D}',
  '/': '\u1735\u2041\u2044\u2215\u2571\u27CB\u29F8\u2CC6\u2CC7\u2F03\u3033\u30CE\u31D3\u4E3F\u{1D23A}',
  ':': '\u02D0\u02F8\u0589\u05C3\u0703\u0704\u0903\u0A83\u16EC\u1803\u1809\u205A\u2236\uA4FD\uA789\uFE30\u{11DD9}',
  '<': '\u02C2\u1438\u16B2\u2039\u276E\u{1D236}',
  '=': '\u1400\u2E40\u30A0\uA4FF',
  '>': '\u02C3\u1433\u203A\u276F\u{16F3F}\u{1D237}',
  '?': '\u0241\u0294\u097D\u13AE\uA6EB',
  '\\': '\u2216\u27CD\u29F5\u29F9\u2F02\u31D4\u4E36\u{1D20F}\u{1D23B}',
  '^': '\u02C4\u02C6',
  _: '\u07FA',
  '{': '\u2774\u{1D114}',
  '}': '\u2775',
  '~': '\u02DC\u1FC0\u2053\u223C',
};

/** Look-alike → the ASCII character it passes for. */
const PROTOTYPES = new Map(Object.entries(LOOK_ALIKES).flatMap(([prototype, chars]) => Array.from(chars, (char) => [char, prototype] as const)));

/** Every character that passes for `char`, or that `char` passes for, or that passes for the same: `char` itself excluded. */
export function lookAlikesOf(char: string): string[] {
  const prototype = PROTOTYPES.get(char) ?? char;
  return [prototype, ...Array.from(LOOK_ALIKES[prototype] ?? '')].filter((other) => other !== char);
}
