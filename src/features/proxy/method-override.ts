/**
 * What asks the upstream to route the request as another method or path than the one the rule
 * matched: refused outright, never stripped silently. Frameworks honour these (Rails and Rack,
 * Laravel, Symfony, express's method-override, IIS URL Rewrite, nginx's auth_request, Zend): with
 * keyway's credential attached, a rule for `POST …/comments` would otherwise carry a DELETE, or a
 * call to a path of the caller's choosing.
 */
const OVERRIDE_HEADERS = [
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-method',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
];

/** The override header the request carries, or undefined. CGI, PHP and WSGI read `_` as `-`, so `X_Original_URL` counts. */
export function refusedOverrideHeader(headers: Headers): string | undefined {
  for (const [name] of headers) {
    if (OVERRIDE_HEADERS.includes(name.toLowerCase().replaceAll('_', '-'))) return name;
  }
  return undefined;
}

/**
 * The name a framework would read a field as, for the comparison with `_method`: without case, as PHP
 * and Rack read it (leading spaces and brackets dropped, `.` and spaces made `_`, the part before the
 * next bracket), so `.method`, `_method[]`, `[_method]` and `_METHOD` are all `_method`.
 */
function fieldName(name: string): string {
  const php = name
    .toLowerCase()
    .replace(/^[\s[\]]+/, '')
    .replace(/[.\s]/g, '_');
  const bracket = php.search(/[[\]]/);
  return bracket === -1 ? php : php.slice(0, bracket);
}

/**
 * A name with a NUL (PHP cuts it there, a reader decoding another charset finds other characters) or an RFC 2047
 * encoded-word (`=?UTF-8?B?X21ldGhvZA==?=`, which commons-fileupload and Tomcat decode) may be `_method` to a framework:
 * taken as one.
 */
const isMethodField = (name: string): boolean => name.includes('\0') || /=\?.*\?=/s.test(name) || fieldName(name) === '_method';

/** Whether a query string or form body names `_method`, fields split at `&` or `;` as older parsers split them. */
export function formNamesMethod(form: string): boolean {
  for (const [name] of new URLSearchParams(form.replaceAll(';', '&'))) if (isMethodField(name)) return true;
  return false;
}

/**
 * The one spelling of the boundary every reader takes alike: `; boundary=VALUE` or `; boundary="VALUE"`, no space
 * around `=`, the value without `"`, `,`, `;` or white space, then `;` or the end. PHP takes the first `boundary`
 * anywhere in the header and keeps spaces, Rack reads up to `"`, `;` or `,`: any other spelling is refused.
 */
const BOUNDARY = /;[ \t]*boundary=(?:"([^",; \t]+)"|([^",; \t]+))[ \t]*(?:;|$)/i;
const CHARSET = /;[ \t]*charset[ \t]*=[ \t]*("?)([^";,\s]*)\1/gi;
/** The charsets a body's fields are read in here; in any other (UTF-16, say) a framework that decodes it reads other names. */
const READABLE_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii', 'ascii', 'iso-8859-1', 'latin1']);
/** No reader needs a part's header block longer than this (Rack caps Content-Disposition at 1,536 bytes). */
const MAX_PART_HEADERS = 16 * 1024;

/**
 * Why a POST body's fields cannot be checked as a framework would read them, from its headers alone, or undefined: a
 * `Content-Encoding` (express's body-parser inflates gzip and reads the fields inside), a charset other than UTF-8,
 * US-ASCII or ISO-8859-1 (body-parser and Tomcat decode UTF-16), or a multipart boundary spelt another way than the one
 * every reader takes alike.
 */
export function unreadableBody(contentType: string | null, contentEncoding: string | null): string | undefined {
  const header = contentType ?? '';
  const type = mediaType(header);
  if (!readAsFields(type, header)) return undefined;
  const encoding = (contentEncoding ?? '').trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity')
    return `a body with Content-Encoding ${encoding} is refused: its fields cannot be checked before the upstream decodes it`;
  const charsets = [...header.matchAll(CHARSET)].map((match) => (match[2] ?? '').toLowerCase());
  // Tomcat finds `charset=` anywhere in the header (`xcharset=UTF-16LE` too): only one parameter, spelt as one, is read alike.
  if ((header.match(/charset/gi) ?? []).length !== charsets.length)
    return 'a charset written otherwise than as one `; charset=VALUE` parameter is refused: frameworks read it differently';
  if (charsets.length > 1 || (charsets[0] !== undefined && !READABLE_CHARSETS.has(charsets[0]))) {
    return `a body in charset ${charsets.join(', ')} is refused: its fields are checked in UTF-8, US-ASCII or ISO-8859-1 only`;
  }
  if (type.startsWith('multipart/') && ((header.match(/boundary/gi) ?? []).length !== 1 || !BOUNDARY.test(header))) {
    return 'a multipart boundary written otherwise than `; boundary=VALUE` once (no spaces, no `"`, `,` or `;` in it) is refused: frameworks read it differently';
  }
  return undefined;
}

/** Whether frameworks read fields from a body of this type: a form (or no type), any multipart, `json` anywhere in the header. */
function readAsFields(type: string, header: string): boolean {
  return type === '' || type === 'application/x-www-form-urlencoded' || type.startsWith('multipart/') || header.toLowerCase().includes('json');
}

/** The media type as PHP cuts it, at `;`, `,` or white space, without case. */
function mediaType(contentType: string): string {
  return (
    contentType
      .trim()
      .toLowerCase()
      .split(/[;,\s]/)[0] ?? ''
  );
}
const NAME_PARAMETER = /(?:^|[;\s])name(\*\d*\*?)?\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^;\s]*)/gi;

/**
 * The field names a multipart body's part headers give, read strictly: `name` (quoted with `"` or
 * `'`, escapes undone), RFC 2231's `name*`, and `Content-ID` (Rack names a part by it). Undefined when
 * a reader could see other names than these: no boundary or more than one (Rack takes the last, others
 * the first), a folded or malformed header line, a part with no header block, a name split over `name*0`,
 * `name*1` (RFC 2231 continuations), or parts after the close delimiter. Read twice, as RFC 2046 reads it
 * (a delimiter starts a line) and as a lax reader might (a delimiter anywhere), and the names of both kept:
 * a `--boundary--` inside a value must not hide the parts after it from this check while a reader takes them.
 */
function multipartFieldNames(text: string, contentType: string): string[] | undefined {
  const [, quoted, bare] = BOUNDARY.exec(contentType) ?? [];
  const boundary = quoted ?? bare;
  if (boundary === undefined) return undefined;
  const delimiter = `--${boundary}`;
  const lines = text.split(new RegExp(`(?:^|\r?\n)${escapeRegExp(delimiter)}`)).slice(1);
  // Readers disagree on a body that never closes (Rack refuses it, PHP takes the parts it has): refused.
  if (!lines.at(-1)?.startsWith('--')) return undefined;
  const atLineStart = partNames(lines);
  const anywhere = partNames(text.split(delimiter).slice(1));
  return atLineStart === undefined || anywhere === undefined ? undefined : [...atLineStart, ...anywhere];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The names the parts give (each part what follows a delimiter), or undefined as `multipartFieldNames` says. */
function partNames(parts: readonly string[]): string[] | undefined {
  const names: string[] = [];
  for (const [index, part] of parts.entries()) {
    if (part.startsWith('--')) {
      if (index < parts.length - 1) return undefined;
      break;
    }
    const afterDelimiter = part.replace(/^[ \t]*\r?\n/, '');
    const blank = /\r?\n\r?\n/.exec(afterDelimiter);
    if (/^\r?\n/.test(afterDelimiter)) continue;
    if (blank === null || blank.index > MAX_PART_HEADERS) return undefined;
    for (const line of afterDelimiter.slice(0, blank.index).split(/\r?\n/)) {
      const colon = line.indexOf(':');
      if (/^[ \t]/.test(line) || colon <= 0) return undefined;
      const header = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1);
      if (header.includes('content-id')) names.push(value.trim().replace(/^<|>$/g, ''));
      if (!header.includes('disposition')) continue;
      for (const [, star, raw = ''] of value.matchAll(NAME_PARAMETER)) {
        if (star !== undefined && star !== '*') return undefined;
        if (star === '*') names.push(decodeExtended(raw));
        else if (raw.startsWith('"')) names.push(raw.slice(1, -1).replace(/\\(.)/g, '$1'));
        else if (raw.startsWith("'")) names.push(raw.slice(1, -1));
        else names.push(raw);
      }
    }
  }
  return names;
}

/** RFC 2231 `charset'language'value`, percent-decoded. */
function decodeExtended(raw: string): string {
  const encoded = raw.slice(raw.lastIndexOf("'") + 1);
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded;
  }
}

/**
 * Whether a POST body a framework reads parameters from holds a `_method` field (Rack, Symfony,
 * Laravel, Spring, ASP.NET and method-override take one from a POST only): a form (Rack reads a POST
 * without a content type as one), any multipart body, or a JSON object when the content type holds
 * `json` anywhere (Laravel reads any such type as JSON). The media type is cut at `;`, `,` or a space,
 * as PHP cuts it. A content type two frameworks read two ways (`application/x-www-form-urlencoded;
 * x=/json`) has the body checked under each reading. `unreadable`: a multipart body whose field names
 * cannot be read unambiguously.
 */
export function bodyOverridesMethod(body: Uint8Array, contentType: string | null): boolean | 'unreadable' {
  try {
    return readBody(body, contentType);
  } catch {
    // A body no reading here survives (a regular expression out of stack on a huge header) is refused, never let through.
    return 'unreadable';
  }
}

function readBody(body: Uint8Array, contentType: string | null): boolean | 'unreadable' {
  const header = (contentType ?? '').trim().toLowerCase();
  const type = mediaType(header);
  const readings: (boolean | 'unreadable')[] = [];
  if (type === '' || type === 'application/x-www-form-urlencoded') readings.push(formNamesMethod(new TextDecoder().decode(body)));
  if (type.startsWith('multipart/')) {
    const names = multipartFieldNames(new TextDecoder('latin1').decode(body), contentType ?? '');
    readings.push(names === undefined ? 'unreadable' : names.some(isMethodField));
  }
  if (header.includes('json')) readings.push(jsonNamesMethod(body));
  return readings.includes(true) || (readings.includes('unreadable') ? 'unreadable' : false);
}

function jsonNamesMethod(body: Uint8Array): boolean {
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(body));
    return typeof parsed === 'object' && parsed !== null && Object.keys(parsed).some(isMethodField);
  } catch {
    return false;
  }
}
