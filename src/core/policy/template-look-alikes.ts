/**
 * The characters Unicode's confusables data (UTS #39, confusables.txt of Unicode 17, as new as the Unicode Node's ICU
 * knows: a value may hold any character it knows) gives as look-alikes of one ASCII punctuation character: those whose
 * prototype is that character alone, leaving out the ones a normal form already turns into it (a full-width `：` is `:`
 * under NFKC, which the template rule catches as such). ASCII's own grave accent is among them, drawn as `'`. U+0020 has
 * none here: where a space delimits, every character Unicode calls white space does. A template's delimiter keeps its
 * look-alikes out of a value as it keeps itself out: `repo:{repository}:ref:{ref}` with a ref holding U+2236 RATIO would
 * read to a reviewer as a subject with another field. Letters and digits among them count too (U+02D0, Lisu U+A4FD,
 * Katakana U+30CE, the Arabic-Indic zero U+0660), since the reader cannot tell them from the delimiter either.
 */
const LOOK_ALIKES: Readonly<Record<string, string>> = {
  '!': '\u01C3\u2D51',
  '&': '\uA778',
  "'": '`\u00B4\u02B9\u02BB\u02BC\u02BD\u02BE\u02C8\u02CA\u02CB\u02F4\u0374\u0384\u055A\u055D\u05D9\u05F3\u07F4\u07F5\u144A\u16CC\u1FBD\u1FBF\u1FEF\u1FFD\u1FFE\u2018\u2019\u201B\u2032\u2035\uA78C\uFF40\u{16F51}\u{16F52}',
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

/**
 * The characters the same data draws as a run of ASCII punctuation, marks on it or not (a prototype of two characters or
 * more, each ASCII punctuation or a mark): U+2AFD `⫽` is `//`, U+201C `“` and ASCII's `"` are `''`, U+2238 DOT MINUS is
 * `-` with a dot above. Each passes for every delimiter its run holds: `team/{x}` refuses `ops⫽admins`, which reads as a
 * path one level deeper. Left out, as above, are those a normal form already turns into their run (U+2025 `‥` is `..`
 * under NFKC).
 */
const RUN_LOOK_ALIKES: Readonly<Record<string, string>> = {
  '$\u20E0': '\u{1F10F}',
  "''": '"\u02BA\u02DD\u02EE\u02F6\u05F2\u05F4\u1CD3\u201C\u201D\u201F\u2033\u2036\u3003\uFF02',
  "'''": '\u2034\u2037',
  "''''": '\u2057',
  '((': '\u2E28',
  '))': '\u2E29',
  '+\u0302': '\u2A23',
  '+\u0303': '\u2A24',
  '+\u0307': '\u2214',
  '+\u030A': '\u2A22',
  '+\u0323': '\u2A25',
  '+\u0330': '\u2A26',
  '-.': '\uA4FE',
  '-\u0307': '\u2238\u2CB2\u2CB3\uFB29',
  '-\u0308': '\u2E1A',
  '-\u0313': '\u2A29',
  '-\u0323': '\u2A2A',
  '.,': '\uA4FB',
  '..': '\uA4FA',
  '//': '\u2AFD',
  '///': '\u2AFB',
  '/\u0304': '\u29F6',
  '<<': '\u226A',
  '<<<': '\u22D8',
  '=\u0302': '\u2259',
  '=\u0306': '\u225A',
  '=\u0307': '\u2250',
  '=\u0307\u0323': '\u2251',
  '=\u030A': '\u2257',
  '=\u036B': '\u225E',
  '=\u1AB2': '\u2B96',
  '=\u20F0': '\u2A6E',
  '><': '\u2AA5',
  '>>': '\u226B\u2A20',
  '>>>': '\u22D9',
  '\\\\': '\u244A\u2CF9',
  '~\u0307': '\u2A6A\u2E1E',
  '~\u0308': '\u2368',
  '~\u0323': '\u2E1F',
};

/** Look-alike → what it is drawn as: the ASCII character, or the run, it passes for. */
const DRAWN_AS = new Map(
  [...Object.entries(LOOK_ALIKES), ...Object.entries(RUN_LOOK_ALIKES)].flatMap(([drawn, chars]) => Array.from(chars, (char) => [char, drawn] as const)),
);
/** Every character either table names: the look-alikes, and the ASCII characters they pass for. */
const KNOWN = [...Object.keys(LOOK_ALIKES), ...DRAWN_AS.keys()];

/** What `char` is drawn as, by the tables above: itself unless it is a look-alike (`∶` is `:`, `⫽` is `//`). */
export function drawnAs(char: string): string {
  return DRAWN_AS.get(char) ?? char;
}

/**
 * Every character drawn as `char` is, or as a run holding that, `char` itself excluded: what passes for `char` (U+2215
 * and `⫽` for `/`), what `char` passes for (`:` for U+2236 RATIO), and what passes for the same (U+A789 for U+2236).
 */
export function lookAlikesOf(char: string): string[] {
  const drawn = drawnAs(char);
  return KNOWN.filter((other) => other !== char && drawnAs(other).includes(drawn));
}
