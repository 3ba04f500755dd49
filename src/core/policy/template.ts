import { canonicalText, claimReader, type ClaimReader } from '../claims/claim-value.ts';
import { KeywayError } from '../errors/keyway-error.ts';
import { INVISIBLE } from '../inert-text.ts';
import { drawnAs, lookAlikesOf } from './template-look-alikes.ts';

/**
 * `grant.subject` and `grant.claims` values: literal text with `{claim}` placeholders, where
 * `claim` is read like a match key (a name, or a JSON Pointer starting with `/`). `{{` and
 * `}}` stand for literal braces.
 *
 * Every character of the literal text that is not a letter or digit is a delimiter of the
 * template (`:` in `repo:{repository}:environment:{environment}`), and no claim value may carry
 * one, nor a control or invisible character: an environment named `x:ref:refs/heads/main` would
 * otherwise render a subject that reads as another one to whatever splits or matches it
 * downstream. The value is refused, never escaped, so every subject keyway issues reads back
 * exactly as its template says. The same holds for what Unicode normalization makes of a value
 * (a full-width `：` is `:` under NFKC, `≠` holds `=` under NFD), and a value may not begin with
 * a mark, which joins the delimiter before it (`=` and U+0338 compose `≠` under NFC), nor hold a
 * mark on a character that is no letter or digit, where it shows as a character of its own (U+0338
 * on a space reads as `/`). Where a space delimits the template, any white space does (U+1680 is no
 * space in any normal form), and a delimiter's look-alikes are kept out as it is (U+2236 RATIO
 * reads as `:`, U+2AFD as `//`, template-look-alikes.ts).
 * Two placeholders need a delimiter between them, or one value could end where the other begins.
 */
export interface Template {
  readonly source: string;
  /** The claim keys the template reads. */
  readonly claims: readonly string[];
  /** Literal text and placeholders in order: what `cloud-subject-collision` compares. */
  readonly shape: readonly ({ readonly text: string } | { readonly placeholder: string })[];
  /** The characters no placed value may hold: the delimiters, as written and normalized, and their look-alikes. */
  readonly delimiters: ReadonlySet<string>;
  /** The rendered text, or why the first claim that cannot be placed cannot. */
  render(claims: Readonly<Record<string, unknown>>): { readonly ok: true; readonly value: string } | TemplateRefusal;
}

/** A claim the template cannot place: absent or not one value, or a value holding a character it must not. */
export type TemplateRefusal =
  | { readonly ok: false; readonly key: string; readonly problem: 'missing' }
  | { readonly ok: false; readonly key: string; readonly problem: 'unsafe'; readonly why: string };

export class TemplateSyntaxError extends KeywayError {
  override readonly name = 'TemplateSyntaxError';
  readonly code = 'template_syntax_invalid';
}

type Part = { readonly text: string } | { readonly key: string; readonly read: ClaimReader };

/** Half of a surrogate pair, alone: no character, and whatever decodes it next may turn it into U+FFFD. */
const UNPAIRED = /\p{Cs}/u;
/** Never a delimiter: letters, their combining marks, digits. */
const WORD = /[\p{L}\p{M}\p{N}]/u;
const MARK = /^\p{M}/u;
/** A mark on a character that is no letter or digit: on a space U+0338 draws a solidus of its own, read as `/`. */
const MARK_ON_NO_WORD = /([^\p{L}\p{M}\p{N}])(\p{M})/u;
/**
 * What splitting on white space splits at (Python's str.split(), Go's strings.Fields, JavaScript's /\s/): where a space
 * delimits a template, each of these does, since no normal form makes U+1680 OGHAM SPACE MARK a space.
 */
const WHITE_SPACE = /\p{White_Space}/u;
/** Printable ASCII: none of it is invisible or a mark, and every normal form of such text is the text itself. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
const NORMAL_FORMS = ['NFC', 'NFD', 'NFKC', 'NFKD'] as const;

export function compileTemplate(source: string): Template {
  const parts: Part[] = [];
  let literal = '';
  for (let i = 0; i < source.length; i++) {
    const char = source[i];
    if ((char === '{' || char === '}') && source[i + 1] === char) {
      literal += char;
      i += 1;
    } else if (char === '{') {
      const end = source.indexOf('}', i);
      const key = end === -1 ? '' : source.slice(i + 1, end);
      if (key === '' || key.includes('{')) throw new TemplateSyntaxError(`template ${JSON.stringify(source)} has an unclosed or empty {placeholder}`);
      if (literal !== '') parts.push({ text: literal });
      literal = '';
      parts.push({ key, read: claimReader(key) });
      i = end;
    } else if (char === '}') {
      throw new TemplateSyntaxError(`template ${JSON.stringify(source)} has a lone }; write }} for a literal brace`);
    } else {
      literal += char;
    }
  }
  if (literal !== '') parts.push({ text: literal });
  const claims = parts.flatMap((part) => ('key' in part ? [part.key] : []));
  const delimitersOf = (text: string) => Array.from(text).filter((char) => !WORD.test(char));
  // A delimiter in every normal form: under NFKC the template's own full-width `：` is `:`.
  const ownDelimiters = new Set(
    parts.flatMap((part) =>
      'text' in part ? delimitersOf(part.text).flatMap((char) => [char, ...NORMAL_FORMS.flatMap((form) => delimitersOf(char.normalize(form)))]) : [],
    ),
  );
  /** A look-alike of a delimiter → the delimiter it passes for. */
  const lookAlikes = new Map([...ownDelimiters].flatMap((delimiter) => lookAlikesOf(delimiter).map((char) => [char, delimiter] as const)));
  for (const char of ownDelimiters) lookAlikes.delete(char);
  const delimiters: ReadonlySet<string> = new Set([...ownDelimiters, ...lookAlikes.keys()]);
  /** Delimiters drawn as a run (`"` as `''`): a value whose characters are drawn as that run, side by side, passes for one. */
  const runs = [...ownDelimiters].map((char) => [drawnAs(char), char] as const).filter(([drawn]) => Array.from(drawn).length > 1);
  const spaceDelimits = [...ownDelimiters].some((char) => WHITE_SPACE.test(char));
  let unparted: string | undefined;
  for (const part of parts) {
    if ('text' in part) {
      if (delimitersOf(part.text).length > 0) unparted = undefined;
      continue;
    }
    if (unparted !== undefined) {
      throw new TemplateSyntaxError(
        `template ${JSON.stringify(source)} has no delimiter between {${unparted}} and {${part.key}}: ` +
          'a value of one could end where the other begins; part them with a character that is not a letter or digit',
      );
    }
    unparted = part.key;
  }
  const holdsDelimiter = (char: string, how: string): string => {
    const like = lookAlikes.get(char);
    if (like === undefined) return `holds ${JSON.stringify(char)}${how}, a delimiter of the template`;
    const drawn = drawnAs(char);
    // A run: U+2AFD is drawn as `//`, not as the `/` it holds.
    const looks = drawn === drawnAs(like) ? '' : `${JSON.stringify(drawn)}, holding `;
    return `holds ${codePoint(char)}${how}, which looks like ${looks}${JSON.stringify(like)}, a delimiter of the template`;
  };
  const unsafe = (text: string): string | undefined => {
    // Most values (repository names, refs, environments): only their delimiters can be wrong.
    const ascii = PRINTABLE_ASCII.test(text);
    for (const char of text) {
      if (delimiters.has(char)) return holdsDelimiter(char, '');
      if (ascii) continue;
      if (INVISIBLE.test(char)) return `holds ${codePoint(char)}, a control or invisible character`;
      if (spaceDelimits && WHITE_SPACE.test(char)) return `holds ${codePoint(char)}, white space where the template is delimited by a space`;
      if (UNPAIRED.test(char)) return `holds ${codePoint(char)}, half of a surrogate pair`;
    }
    const drawn = runs.length === 0 ? '' : Array.from(text, drawnAs).join('');
    const run = runs.find(([characters]) => drawn.includes(characters));
    if (run !== undefined)
      return `holds characters drawn as ${JSON.stringify(run[0])}, which looks like ${JSON.stringify(run[1])}, a delimiter of the template`;
    if (ascii) return undefined;
    if (MARK.test(text)) return `begins with ${codePoint(text)}, a mark that joins the character before it`;
    const [, base, mark] = MARK_ON_NO_WORD.exec(text) ?? [];
    if (base !== undefined && mark !== undefined) {
      return `holds ${codePoint(mark)} after ${codePoint(base)}, a mark on no letter or digit, which shows as a character of its own`;
    }
    for (const form of NORMAL_FORMS) {
      const found = Array.from(text.normalize(form)).find((char) => delimiters.has(char));
      if (found !== undefined) return holdsDelimiter(found, ` once normalized (${form})`);
    }
    return undefined;
  };
  return {
    source,
    claims,
    shape: parts.map((part) => ('text' in part ? { text: part.text } : { placeholder: part.key })),
    delimiters,
    render(values) {
      let value = '';
      for (const part of parts) {
        if ('text' in part) {
          value += part.text;
          continue;
        }
        const text = canonicalText(part.read(values));
        if (text === undefined) return { ok: false, key: part.key, problem: 'missing' };
        const why = unsafe(text);
        if (why !== undefined) return { ok: false, key: part.key, problem: 'unsafe', why };
        value += text;
      }
      return { ok: true, value };
    },
  };
}

/** The first character of `text` as Unicode names it: `U+000A`. */
export function codePoint(text: string): string {
  return `U+${(text.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}
