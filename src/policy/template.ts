import { canonicalText, claimReader, type ClaimReader } from './claim-value.ts';

/**
 * `grant.subject` and `grant.claims` values: literal text with `{claim}` placeholders, where
 * `claim` is read like a match key (a name, or a JSON Pointer starting with `/`). `{{` and
 * `}}` stand for literal braces.
 */
export interface Template {
  readonly source: string;
  /** The claim keys the template reads. */
  readonly claims: readonly string[];
  /** The rendered text, or the key of the first claim that is absent or not a scalar. */
  render(claims: Readonly<Record<string, unknown>>): { ok: true; value: string } | { ok: false; missing: string };
}

export class TemplateSyntaxError extends Error {
  override readonly name = 'TemplateSyntaxError';
}

type Part = { readonly text: string } | { readonly key: string; readonly read: ClaimReader };

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
  return {
    source,
    claims,
    render(values) {
      let value = '';
      for (const part of parts) {
        if ('text' in part) {
          value += part.text;
          continue;
        }
        const text = canonicalText(part.read(values));
        if (text === undefined) return { ok: false, missing: part.key };
        value += text;
      }
      return { ok: true, value };
    },
  };
}
