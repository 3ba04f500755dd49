import { describe, expect, it } from 'vitest';
import { compileTemplate } from '../../src/core/policy/template.ts';
import { drawnAs, lookAlikesOf } from '../../src/core/policy/template-look-alikes.ts';

/** The ASCII characters Unicode's confusables data gives look-alikes of. */
const DELIMITERS = Array.from("!&'()*+,-./:<=>?\\^_{}~");

const code = (char: string) => `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;

/** Why `template` does not place `value` as {x}, or undefined when it does. */
function refusal(template: string, value: string): string | undefined {
  const rendered = compileTemplate(template).render({ x: value });
  return rendered.ok ? undefined : rendered.problem === 'unsafe' ? rendered.why : rendered.problem;
}

/**
 * A reviewer reads a minted sub or claim by eye: `repo:acme/api:ref:refs/heads/main∶environment∶prod` (U+2236 RATIO)
 * reads as a subject with an environment field. NFKC turns U+FF1A, U+FE55 and U+FE13 into `:`, but no normal form turns
 * U+2236, U+A789, U+0589 or U+02D0 into one.
 */
describe("a claim value holding a look-alike of its template's delimiter", () => {
  it('is refused for each look-alike of ":" in a colon-delimited subject, naming the character and the delimiter', () => {
    for (const char of ['\u2236', '\uA789', '\u0589', '\u02D0', '\uA4FD', '\u02F8', '\u0903', '\u205A']) {
      expect(refusal('repo:acme:ref:{x}', `refs/heads/main${char}environment${char}prod`), code(char)).toBe(
        `holds ${code(char)}, which looks like ":", a delimiter of the template`,
      );
    }
    for (const char of ['\uFF1A', '\uFE55', '\uFE13']) {
      expect(refusal('repo:acme:ref:{x}', `main${char}prod`), code(char)).toBe('holds ":" once normalized (NFKC), a delimiter of the template');
    }
  });

  it("is refused for every look-alike of every ASCII delimiter Unicode's confusables data gives one", () => {
    for (const delimiter of DELIMITERS) {
      const template = `a${delimiter === '{' || delimiter === '}' ? delimiter.repeat(2) : delimiter}{x}`;
      const lookAlikes = lookAlikesOf(delimiter);
      expect(lookAlikes.length, delimiter).toBeGreaterThan(0);
      for (const char of lookAlikes) {
        const why = refusal(template, `b${char}c`);
        // A character drawn as a run (U+2AFD as "//") says so before the delimiter it holds.
        const looks = drawnAs(char) === delimiter ? '' : `${JSON.stringify(drawnAs(char))}, holding `;
        expect(why, `${delimiter} ${code(char)}`).toBe(
          `holds ${code(char)}, which looks like ${looks}${JSON.stringify(delimiter)}, a delimiter of the template`,
        );
      }
    }
  });

  it('is refused for the look-alikes Unicode 15 to 17 added', () => {
    // U+2CC7 is the small letter of U+2CC6, a look-alike of "/" since Unicode 14; U+11DD9 TOLONG SIKI SIGN SELA is a colon.
    const added: readonly [string, string][] = [
      ['/', '\u2CC7'],
      [':', '\u{11DD9}'],
      ['-', '\u2CBB'],
      ['+', '\u{1E6E9}'],
    ];
    for (const [delimiter, char] of added) {
      expect(refusal(`a${delimiter}{x}`, `b${char}c`), code(char)).toBe(
        `holds ${code(char)}, which looks like ${JSON.stringify(delimiter)}, a delimiter of the template`,
      );
    }
  });

  it('is refused for a character Unicode draws as a run of ASCII punctuation holding the delimiter, and for the grave accent', () => {
    // U+2AFD reads as a path one level deeper; `"` and U+201C are two apostrophes; U+2238 DOT MINUS is a hyphen with a dot above.
    const cases: readonly [string, string, string][] = [
      ['team/{x}', '\u2AFD', '"//", holding "/"'],
      ['team/{x}', '\u2AFB', '"///", holding "/"'],
      ['a.{x}', '\uA4FA', '"..", holding "."'],
      ['a-{x}', '\uA4FE', '"-.", holding "-"'],
      ['a.{x}', '\uA4FE', '"-.", holding "."'],
      ['a-{x}', '\u2238', '"-\u0307", holding "-"'],
      ['a<{x}', '\u226A', '"<<", holding "<"'],
      ['a\\{x}', '\u2CF9', String.raw`"\\\\", holding "\\"`],
      ["a'{x}", '"', `"''", holding "'"`],
      ["a'{x}", '\u201C', `"''", holding "'"`],
      ["a'{x}", '\u2034', `"'''", holding "'"`],
      ["a'{x}", '`', `"'"`],
      ['a"{x}', '\u201D', '"\\""'],
      ['a"{x}', '\u2057', `"''''", holding "\\""`],
      ['a`{x}', "'", '"`"'],
    ];
    for (const [template, char, looks] of cases) {
      expect(refusal(template, `b${char}c`), `${template} ${code(char)}`).toBe(`holds ${code(char)}, which looks like ${looks}, a delimiter of the template`);
    }
  });

  it('is refused for characters side by side drawn as a delimiter that Unicode draws as a run: two apostrophes where `"` delimits', () => {
    // `env="{x}"` with x = `prod''eu` reads as env="prod"eu": the value seems to end early, and something else to follow it.
    const looks = `drawn as "''", which looks like "\\"", a delimiter of the template`;
    expect(refusal('env="{x}"', "prod''eu")).toBe(`holds characters ${looks}`);
    // An apostrophe beside a look-alike of one is the same run.
    expect(refusal('env="{x}"', "prod'\u00B4")).toBe(`holds characters ${looks}`);
    expect(refusal('a\u2AFD{x}', 'ops//admins')).toBe('holds characters drawn as "//", which looks like "⫽", a delimiter of the template');
  });

  it('is refused for a mark on no letter or digit, which shows by itself: U+0338 on a space reads as "/"', () => {
    // A space, a no-break space or a blank braille cell under U+0338 (or U+0337) draws a solidus of its own: `ops/admins`.
    for (const base of [' ', '\u00A0', '\u2800', '.']) {
      for (const mark of ['\u0338', '\u0337']) {
        expect(refusal('team/{x}', `ops${base}${mark}admins`), `${code(base)} ${code(mark)}`).toBe(
          `holds ${code(mark)} after ${code(base)}, a mark on no letter or digit, which shows as a character of its own`,
        );
      }
    }
    // Marks on letters and digits are what they are for, stacked ones too.
    expect(refusal('team/{x}', 'cafe\u0301-1\u20E3 n\u0303\u0301')).toBeUndefined();
  });

  it('is refused once normalized: a compatibility character whose normal form holds a look-alike', () => {
    // ½ is 1⁄2 under NFKC, with U+2044 FRACTION SLASH, a look-alike of "/".
    expect(refusal('deploy/{x}', 'v\u00BD')).toBe('holds U+2044 once normalized (NFKC), which looks like "/", a delimiter of the template');
  });

  it('refuses the ASCII delimiter where the template delimits with a look-alike of it', () => {
    expect(refusal('team\u2236{x}', 'ops:admins')).toBe('holds U+003A, which looks like "∶", a delimiter of the template');
    expect(refusal('team\u2236{x}', 'ops\uA789admins')).toBe('holds U+A789, which looks like "∶", a delimiter of the template');
    // A look-alike outside the Basic Multilingual Plane (two UTF-16 code units) is one character too.
    expect(refusal('team\u{1D23A}{x}', 'ops/admins')).toBe('holds U+002F, which looks like "\u{1D23A}", a delimiter of the template');
  });

  it('refuses the look-alikes of what a delimiter of the template is once normalized: "：" is ":" under NFKC', () => {
    expect(refusal('repo\uFF1A{x}', 'main\u2236prod')).toBe('holds U+2236, which looks like ":", a delimiter of the template');
  });

  it('names a delimiter of the template as its own, not as a look-alike of another of its delimiters', () => {
    expect(refusal('team:ops\u2236{x}', 'a:b')).toBe('holds ":", a delimiter of the template');
    expect(refusal('team:ops\u2236{x}', 'a\u2236b')).toBe('holds "∶", a delimiter of the template');
  });

  it("holds every look-alike of each ASCII delimiter that Unicode 17's confusables data gives, none dropped", () => {
    // The table's own counts, written from confusables.txt (single characters and runs holding the delimiter): a character
    // dropped from it is a value let through unnoticed.
    const counts = Object.fromEntries(DELIMITERS.map((delimiter) => [delimiter, lookAlikesOf(delimiter).length]));
    expect(counts).toEqual({
      '!': 2,
      '&': 1,
      "'": 53,
      '(': 6,
      ')': 6,
      '*': 4,
      '+': 10,
      ',': 6,
      '-': 20,
      '.': 11,
      '/': 18,
      ':': 17,
      '<': 9,
      '=': 12,
      '>': 10,
      '?': 5,
      '\\': 11,
      '^': 2,
      _: 1,
      '{': 2,
      '}': 1,
      '~': 8,
    });
  });

  it('still places look-alikes of characters that do not delimit the template, and ASCII as written', () => {
    expect(refusal('repo:{x}', 'prod\u2215eu')).toBeUndefined();
    expect(refusal('team/{x}', 'ops\u2236eu')).toBeUndefined();
    expect(refusal('team-{x}', 'ops_eu.1')).toBeUndefined();
    // A run passes where none of its characters delimits, and one apostrophe is not drawn as the two of `"`.
    expect(refusal('repo:{x}', 'prod\u2AFDeu"1')).toBeUndefined();
    expect(refusal('a"{x}', "it's")).toBeUndefined();
    expect(compileTemplate('env:{x}').render({ x: 'prod-eu.1/ü' })).toEqual({ ok: true, value: 'env:prod-eu.1/ü' });
  });
});

describe('what a template itself may write', () => {
  it('refuses a placeholder holding {, and a lone }', () => {
    expect(() => compileTemplate('repo:{repo{sitory}')).toThrow(/unclosed or empty \{placeholder\}/);
    expect(() => compileTemplate('repo:{repository}}')).toThrow(/lone }/);
    expect(compileTemplate('repo:{repository}}}').render({ repository: 'acme' })).toEqual({ ok: true, value: 'repo:acme}' });
  });

  it('places an empty claim as empty, and refuses only a claim that is missing', () => {
    // Cloud subjects are written from claims that may be empty (cloud-trust.test.ts): empty is a value, absent is not.
    expect(compileTemplate('env:{x}').render({ x: '' })).toEqual({ ok: true, value: 'env:' });
    expect(compileTemplate('env:{x}').render({})).toEqual({ ok: false, key: 'x', problem: 'missing' });
  });

  it('takes any white space it is delimited by as a space: a tab as U+0020', () => {
    expect(refusal('team\t{x}', `ops\u1680admins`)).toBe('holds U+1680, white space where the template is delimited by a space');
  });
});
