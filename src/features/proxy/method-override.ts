import { escapeRegExp } from '../../core/escape-reg-exp.ts';

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
  // The path prefix a reverse proxy mounted the app under, cut off the path before routing (Flask's ReverseProxied
  // snippet and its many copies, Django middlewares, calibre-web, SearXNG): `/a/b/admin` with `X-Script-Name: /a/b` is
  // routed as `/admin`.
  'x-script-name',
  // Vault's and OpenBao's namespace, which prefixes the path: `/v1/secret/data/x` with `X-Vault-Namespace: team-b` is
  // `/v1/team-b/secret/data/x`, the path a rule would have to name.
  'x-vault-namespace',
  // Next.js's own routing, which its router sets and strips from a request it receives: in minimal mode (Vercel, and
  // servers run so) `x-matched-path` is the page rendered and `x-now-route-matches` the dynamic route's parameters.
  'x-matched-path',
  'x-now-route-matches',
  // Where a function on Vercel reads the path it was called for, behind a rewrite (apps route on them).
  'x-vercel-original-url',
  'x-vercel-original-path',
  // A Next.js server action's id: a POST carrying it runs that action whatever page its path names (an app's actions
  // are found by id across all its pages, and forwarded to the worker that holds one), so the path a rule matched
  // says nothing of the code that runs.
  'next-action',
];

/**
 * By prefix: Next.js's render workers route a request by `x-invoke-path` and `x-invoke-query`, which its own router sets
 * (and render the error page `x-invoke-status` and `x-invoke-error` name), and apps on Vercel read their path from
 * `x-invoke-path`.
 */
const OVERRIDE_PREFIXES = ['x-invoke-'];

/**
 * What tells the upstream its own checks already ran. Next.js reserves `x-middleware-*` for itself: a request carrying
 * `x-middleware-subrequest` skipped the app's middleware, where apps check who calls (CVE-2025-29927, before 12.3.5,
 * 13.5.9, 14.2.25 and 15.2.3); the others are middleware's own verdicts (`-rewrite`, `-redirect`, `-next`, `-skip`,
 * `-override-headers`), which Next.js strips from a request it receives. OpenNext on AWS skipped the middleware of a
 * request carrying `x-isr` (from 2.3.0).
 */
const SKIPS_CHECKS = ['x-isr'];
const SKIPS_CHECKS_PREFIXES = ['x-middleware-'];

/**
 * What moves the request to another tenant of the upstream than the one its path names: Grafana's organisation (a
 * user's credential acts in each it belongs to), Consul Enterprise's namespace and admin partition, Nomad's namespace.
 * A rule names a method and a path; the same path in another organisation or namespace is another resource.
 */
const SCOPE_HEADERS = ['x-grafana-org-id', 'x-consul-namespace', 'x-consul-partition', 'x-nomad-namespace'];

const REFUSED_HEADERS: readonly { readonly names: readonly string[]; readonly prefixes: readonly string[]; readonly why: string }[] = [
  { names: OVERRIDE_HEADERS, prefixes: OVERRIDE_PREFIXES, why: "the method and path are the request's own" },
  { names: SKIPS_CHECKS, prefixes: SKIPS_CHECKS_PREFIXES, why: 'it would have the upstream skip checks it makes on every request' },
  { names: SCOPE_HEADERS, prefixes: [], why: 'the upstream acts where the path says, never in the organisation or namespace a header names' },
];

/**
 * The header the request carries that routes it otherwise than its method and path, skips the upstream's checks, or
 * moves it to another tenant, with why it is refused; or undefined. CGI, PHP and WSGI read `_` as `-`, so
 * `X_Original_URL` counts.
 */
export function refusedRoutingHeader(headers: Headers): { readonly name: string; readonly why: string } | undefined {
  for (const [name] of headers) {
    const lower = name.toLowerCase().replaceAll('_', '-');
    const refused = REFUSED_HEADERS.find((kind) => kind.names.includes(lower) || kind.prefixes.some((prefix) => lower.startsWith(prefix)));
    if (refused !== undefined) return { name, why: refused.why };
  }
  return undefined;
}

/**
 * A field a request may not name, as it may not send the header: `_method` asks the upstream to route the request as
 * another method (Rack, Symfony, Laravel, Spring, ASP.NET, express's method-override), `sudo` to act as the user it names
 * (GitLab's Grape API from the query or any body, Gitea and Forgejo from the query or a form: an administrator's token
 * then acts as that user). From the query only: `namespace` (Nomad), `ns` and `partition` (Consul Enterprise), which
 * move the request to another tenant than the default one its path reaches, as their headers do (SCOPE_HEADERS), and
 * `orgId` (read without case, as every field here), on which Grafana makes the organisation it names the user's current
 * one before it answers (a redirect), so that the requests after it act there without a header. From a POST's body only:
 * `$action`, any name that begins `$ACTION_`, where a Next.js form posted without JavaScript names its server action
 * (React's `$ACTION_ID_<id>`, or `$ACTION_REF_<n>` with the id in `$ACTION_<n>:0`), which runs, as `Next-Action` names it,
 * whatever page the path names.
 */
export type RefusedField = '_method' | 'sudo' | 'namespace' | 'ns' | 'partition' | 'orgid' | '$action';

/** The fields read from the query, whatever the method. */
export const QUERY_FIELDS: readonly RefusedField[] = ['_method', 'sudo', 'namespace', 'ns', 'partition', 'orgid'];

const ELSEWHERE = 'the upstream acts where the path says, never in the namespace or partition a query names';

/** Why each is refused, for the record. */
export const FIELD_REFUSED: Readonly<Record<RefusedField, string>> = {
  _method: "the method is the request's own",
  sudo: "the upstream acts as keyway's credential, never as whom a request names",
  namespace: ELSEWHERE,
  ns: ELSEWHERE,
  partition: ELSEWHERE,
  orgid: 'the upstream acts where the path says, never in the organisation a query names, which Grafana keeps as the user’s current one',
  $action: 'a Next.js server action it names runs whatever page the path names',
};

/** How a record's detail names each, with its article: Grafana's `orgId` as Grafana writes it. */
export const FIELD_NAMED: Readonly<Record<RefusedField, string>> = {
  _method: 'a _method',
  sudo: 'a sudo',
  namespace: 'a namespace',
  ns: 'a ns',
  partition: 'a partition',
  orgid: 'an orgId',
  $action: 'a $ACTION_*',
};

/**
 * The fields read from a body of this method: `_method` and `$action` from a POST only (frameworks override no other
 * method, and Next.js runs an action for a POST only), `sudo` from any.
 */
function bodyFields(method: string): readonly RefusedField[] {
  return method.toUpperCase() === 'POST' ? ['_method', 'sudo', '$action'] : ['sudo'];
}

/**
 * The name a framework would read a field as, for the comparison with a refused one: without case, as PHP and Rack
 * read it (leading spaces and brackets dropped, `.` and spaces made `_`, the part before the next bracket), so
 * `.method`, `_method[]`, `[_method]` and `_METHOD` are all `_method`, and `sudo[]` is `sudo` (Rack's `params[:sudo]`,
 * an array). Grape and Go read names with case; comparing without it refuses `SUDO` too, which no client sends for
 * another field.
 */
function fieldName(name: string): string {
  const php = name
    .toLowerCase()
    // Trailing white space too: commons-fileupload trims a part's name (`_method ` is `_method` to Spring on Tomcat).
    .replace(/\s+$/, '')
    .replace(/^[\s[\]]+/, '')
    .replace(/[.\s]/g, '_');
  const bracket = php.search(/[[\]]/);
  return bracket === -1 ? php : php.slice(0, bracket);
}

/**
 * The refused field a name is to some framework, or undefined. A name with a C0 control character or DEL (PHP cuts it
 * at a NUL; a reader decoding another charset, UTF-16 or ISO-2022-JP's escapes, finds other characters) may be any of
 * them: taken as the first.
 */
function namedField(name: string, fields: readonly RefusedField[]): RefusedField | undefined {
  const read = fieldName(name);
  return fields.find((field) => (field === '$action' ? read.startsWith('$action_') : read === field)) ?? (hasControl(name) ? fields[0] : undefined);
}

function hasControl(text: string): boolean {
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** The first of `fields` a query string or form body names, fields split at `&` or `;` as older parsers split them. */
export function formNamesField(form: string, fields: readonly RefusedField[]): RefusedField | undefined {
  return firstNamed([...new URLSearchParams(form.replaceAll(';', '&')).keys()], fields);
}

/** RFC 9110's token and quoted-string, and `; name=value` parameters of them (no space around `=`), as a header is written that every reader reads alike. */
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const QUOTED = '"(?:[^"\\\\\\r\\n]|\\\\[^\\r\\n])*"';
const PARAMETER = new RegExp(`;[ \\t]*(${TOKEN})=(${TOKEN}|${QUOTED})[ \\t]*`, 'y');
const MEDIA_TYPE = new RegExp(`^[ \\t]*${TOKEN}/${TOKEN}[ \\t]*`);
const DISPOSITION_TYPE = new RegExp(`^[ \\t]*${TOKEN}[ \\t]*(?=;|$)`);
/** RFC 2046's boundary characters (quoted, `=` `:` `?` `(` `)` `/` too, as Python's email package writes them), and token ones, less space and `,`. */
const BOUNDARY_CHARS = /^[0-9A-Za-z!#$%&'()*+\-./:=?^_`|~]+$/;
/** A header name (RFC 9110 token); a part header line with another (`X; name=_method: 1`) is refused. */
const HEADER_NAME = new RegExp(`^${TOKEN}$`);
/** RFC 2231's ext-value (`utf-8''%5Fmethod`) of a `name*` or `filename*` parameter. */
const EXT_VALUE = /^[0-9A-Za-z!#$&+^_`{}~-]*'[0-9A-Za-z-]*'[0-9A-Za-z!#$&+.^_`|~%-]*$/;

/**
 * `; name=value` parameters, names without case and quoted values unquoted (and said to be), or undefined when `text` is not only
 * such parameters (an unclosed quote, a parameter without its `;`, a value with a character no token holds): readers
 * part ways on those (PHP reads an unclosed quote to the line's end, Rack 3 finds `name=` after a quoted value).
 */
function parameters(text: string): [name: string, value: string, quoted: boolean][] | undefined {
  const found: [string, string, boolean][] = [];
  for (let at = 0; at < text.length; ) {
    PARAMETER.lastIndex = at;
    const match = PARAMETER.exec(text);
    if (match === null) return undefined;
    const [, name = '', value = ''] = match;
    const quoted = value.startsWith('"');
    found.push([name.toLowerCase(), quoted ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value, quoted]);
    at = PARAMETER.lastIndex;
  }
  return found;
}

/** The charsets a body's fields are read in here; in any other (UTF-16, say) a framework that decodes it reads other names. */
const READABLE_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii', 'ascii', 'iso-8859-1', 'latin1']);
/** No reader needs a part's header block longer than this (Rack caps Content-Disposition at 1,536 bytes). */
const MAX_PART_HEADERS = 16 * 1024;

/**
 * A Content-Type's boundary and charset as every reader takes them alike, or why not. The header must be
 * `type/subtype` and `; name=value` parameters; `boundary` and `charset` at most once each, spelt so (not `charset*`,
 * `xcharset`), and no other `boundary=` or `charset=` anywhere in the header (PHP takes the first `boundary`
 * anywhere, Tomcat the first `charset=`); a boundary of BOUNDARY_CHARS (no space, `,`, `;` or `"`, which PHP keeps
 * and Rack ends at); a charset that reads fields as UTF-8, US-ASCII or ISO-8859-1 do.
 */
function contentTypeFacts(header: string): { readonly boundary?: string } | { readonly refused: string } {
  const media = MEDIA_TYPE.exec(header);
  const found = media === null ? undefined : parameters(header.slice(media[0].length).trimEnd());
  if (found === undefined) return { refused: 'a Content-Type not written as type/subtype; name=value ... is refused: frameworks read it differently' };
  const named = (word: string) => found.filter(([name]) => name === word).map(([, value]) => value);
  const stray = (word: string) => found.some(([name]) => name !== word && name.includes(word));
  const [boundary, ...more] = named('boundary');
  const [charset, ...moreCharsets] = named('charset');
  if (more.length > 0 || stray('boundary') || (header.match(/boundary[ \t]*=/gi) ?? []).length > (boundary === undefined ? 0 : 1)) {
    return { refused: 'a boundary written otherwise than once as `; boundary=VALUE` is refused: frameworks read it differently' };
  }
  if (moreCharsets.length > 0 || stray('charset') || (header.match(/charset[ \t]*=/gi) ?? []).length > (charset === undefined ? 0 : 1)) {
    return { refused: 'a charset written otherwise than once as `; charset=VALUE` is refused: frameworks read it differently' };
  }
  if (boundary !== undefined && !BOUNDARY_CHARS.test(boundary)) {
    return {
      refused: 'a multipart boundary with a character outside RFC 2046\'s (a space, `,`, `;` or `"` among them) is refused: frameworks read it differently',
    };
  }
  if (charset !== undefined && !READABLE_CHARSETS.has(charset.toLowerCase())) {
    return { refused: `a body in charset ${charset.toLowerCase()} is refused: its fields are checked in UTF-8, US-ASCII or ISO-8859-1 only` };
  }
  return boundary === undefined ? {} : { boundary };
}

/**
 * Why a body's fields cannot be checked as a framework would read them, from its headers alone, or undefined: a
 * `Content-Encoding` (express's body-parser inflates gzip and reads the fields inside), a Content-Type whose charset
 * or boundary readers take differently (contentTypeFacts), or a multipart type with no boundary.
 */
export function unreadableBody(contentType: string | null, contentEncoding: string | null, method: string): string | undefined {
  const header = contentType ?? '';
  const readings = readingsOf(header, method);
  if (readings.length === 0) return undefined;
  const encoding = (contentEncoding ?? '').trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity')
    return `a body with Content-Encoding ${encoding} is refused: its fields cannot be checked before the upstream decodes it`;
  if (header.trim() === '') return undefined;
  const facts = contentTypeFacts(header);
  if ('refused' in facts) return facts.refused;
  if (readings.includes('multipart') && facts.boundary === undefined) return 'a multipart body without a boundary is refused';
  return undefined;
}

type Reading = 'form' | 'multipart' | 'json';

/**
 * How frameworks read fields from a body of this Content-Type, each way one does: a form (or, for a POST, no type: Rack
 * reads one; Go and Rack read a typeless body of another method as no form), any multipart, JSON when `json` is anywhere
 * in the header (Laravel); none for any other type.
 */
function readingsOf(contentType: string, method: string): Reading[] {
  const type = mediaType(contentType);
  const form = type === 'application/x-www-form-urlencoded' || (type === '' && method.toUpperCase() === 'POST');
  return [
    ...(form ? (['form'] as const) : []),
    ...(type.startsWith('multipart/') ? (['multipart'] as const) : []),
    ...(contentType.toLowerCase().includes('json') ? (['json'] as const) : []),
  ];
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

/**
 * The field names a multipart body's part headers give, read strictly (partNames). Undefined when a reader could see
 * other names than these: a Content-Type readers take differently, a body that never closes, or parts after its close.
 * Read twice, as RFC 2046 reads it (a delimiter starts a line) and as a lax reader might (a delimiter anywhere), and the
 * names of both kept: a `--boundary--` inside a value must not hide the parts after it from this check while a reader
 * takes them.
 */
function multipartFieldNames(text: string, contentType: string): string[] | undefined {
  const facts = contentTypeFacts(contentType);
  if ('refused' in facts || facts.boundary === undefined) return undefined;
  const delimiter = `--${facts.boundary}`;
  const lines = text.split(new RegExp(`(?:^|\r?\n)${escapeRegExp(delimiter)}`)).slice(1);
  // Readers disagree on a body that never closes (Rack refuses it, PHP takes the parts it has): refused.
  if (!lines.at(-1)?.startsWith('--')) return undefined;
  const atLineStart = partNames(lines);
  const anywhere = partNames(text.split(delimiter).slice(1));
  return atLineStart === undefined || anywhere === undefined ? undefined : [...atLineStart, ...anywhere];
}

/**
 * The names the parts give (each part what follows a delimiter): `Content-Disposition`'s `name` (`"` quotes undone;
 * `'` ones too, which PHP undoes) and RFC 2231's `name*`, and `Content-ID` (Rack names a part by it). Undefined when
 * a reader could see others: a folded or malformed header line, a part header block over MAX_PART_HEADERS, a
 * Content-Disposition not written as type and `; name=value` parameters (contentTypeFacts' grammar), a name split over
 * `name*0`, `name*1`, an RFC 2047 encoded-word (`=?UTF-8?B?…?=`, which commons-fileupload and Tomcat decode), or a part
 * Content-Type in a charset a reader would decode the name from (Rack re-encodes it).
 */
function partNames(parts: readonly string[]): string[] | undefined {
  const names: string[] = [];
  for (const [index, part] of parts.entries()) {
    if (part.startsWith('--')) {
      if (index < parts.length - 1) return undefined;
      break;
    }
    // CRLF ends a header line, as commons-fileupload ends one (a bare LF inside a line is still that line to it).
    const afterDelimiter = /^[ \t]*\r\n/.exec(part);
    if (afterDelimiter === null) return undefined;
    const block = part.slice(afterDelimiter[0].length);
    if (block.startsWith('\r\n')) continue;
    const blank = block.indexOf('\r\n\r\n');
    if (blank === -1 || blank > MAX_PART_HEADERS) return undefined;
    const headers = block.slice(0, blank);
    if (/\r(?!\n)|(?<!\r)\n/.test(headers)) return undefined;
    for (const line of headers.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0 || !HEADER_NAME.test(line.slice(0, colon))) return undefined;
      const header = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      // Rack before 3.1.16 finds `Content-Disposition:` and `Content-ID:` anywhere in the header block (in `X-Content-ID:` too).
      if ([...line.matchAll(/content-(?:disposition|id)[ \t]*:/gi)].some((found) => found.index > 0)) return undefined;
      if (header === 'content-id') names.push(value.replace(/^<|>$/g, ''));
      if (header === 'content-type' && 'refused' in contentTypeFacts(value)) return undefined;
      if (header !== 'content-disposition') continue;
      const found = dispositionNames(value);
      if (found === undefined) return undefined;
      names.push(...found);
    }
  }
  return names.some(isEncodedWord) ? undefined : names;
}

/**
 * The names a Content-Disposition gives (`name`, `name*`), or undefined when readers could find others: not a type and
 * `; name=value` parameters, a name split over `name*0`, a quoted value holding `; name=`, or a `'` in an unquoted value
 * but a whole `'…'` one or RFC 2231's ext-value (PHP starts a quoted stretch at any `'`, so `a=x'y; b="'; name=_method`
 * hides nothing from it).
 */
function dispositionNames(value: string): string[] | undefined {
  const type = DISPOSITION_TYPE.exec(value);
  const found = parameters(type === null ? `;${value}` : value.slice(type[0].length));
  if (found === undefined) return undefined;
  const names: string[] = [];
  for (const [name, raw, quoted] of found) {
    // Rack 2.2 and 3.0 take the line's last `; name=`, inside a quoted value too (`x="; name=_method"`).
    if (quoted && /;\s*name\s*=/i.test(raw)) return undefined;
    const extended = name.endsWith('*');
    const singleQuoted = !quoted && /^'[^']+'$/.test(raw);
    if (!quoted && raw.includes("'") && !(extended ? EXT_VALUE.test(raw) : singleQuoted)) return undefined;
    if (name === 'name') names.push(singleQuoted ? raw.slice(1, -1) : raw);
    else if (name === 'name*') names.push(decodeExtended(raw));
    else if (name.startsWith('name*')) return undefined;
  }
  return names;
}

/** An RFC 2047 encoded-word (`=?charset?B?…?=`), which commons-fileupload and Tomcat decode in a part's name. */
function isEncodedWord(name: string): boolean {
  const start = name.indexOf('=?');
  return start !== -1 && name.indexOf('?=', start + 2) !== -1;
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
 * The first of bodyFields(method) a body a framework reads parameters from names: a form (Rack reads a POST without a
 * content type as one), any multipart body, or a JSON object when the content type holds `json` anywhere (Laravel reads
 * any such type as JSON). The media type is cut at `;`, `,` or a space, as PHP cuts it. A content type two frameworks
 * read two ways (`application/x-www-form-urlencoded; x=/json`) has the body checked under each reading. `unreadable`: a
 * body whose field names cannot be read unambiguously (a multipart body outside the grammar every reader takes alike, or
 * one no reading here survives).
 */
export function bodyNamesField(body: Uint8Array, contentType: string | null, method: string): RefusedField | 'unreadable' | undefined {
  try {
    return readBody(body, contentType, method);
  } catch {
    // A body no reading here survives (a regular expression out of stack on a huge header) is refused, never let through.
    return 'unreadable';
  }
}

function readBody(body: Uint8Array, contentType: string | null, method: string): RefusedField | 'unreadable' | undefined {
  const fields = bodyFields(method);
  const verdicts = readingsOf(contentType ?? '', method).map((reading): RefusedField | 'unreadable' | undefined => {
    if (reading === 'form') return formNamesField(new TextDecoder().decode(body), fields);
    if (reading === 'json') {
      const keys = jsonKeys(body, contentType ?? '');
      return keys === 'unreadable' ? keys : firstNamed(keys, fields);
    }
    const names = multipartFieldNames(new TextDecoder('latin1').decode(body), contentType ?? '');
    return names === undefined ? 'unreadable' : firstNamed(names, fields);
  });
  return verdicts.find((verdict) => verdict !== undefined && verdict !== 'unreadable') ?? verdicts.find((verdict) => verdict !== undefined);
}

function firstNamed(names: readonly string[], fields: readonly RefusedField[]): RefusedField | undefined {
  for (const name of names) {
    const found = namedField(name, fields);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * A JSON object's own keys, the top level only: Grape reads `params[:sudo]`, Laravel `_method`, never a nested key.
 * Comments are read as white space, as Ruby's json gem (GitLab's reader) reads them, so `{"sudo" // x` and a line break
 * before `: "root"}` is an object here too. Text that does not parse even so is `unreadable` under a JSON media type
 * (`/json` or `+json`, as Laravel tells JSON): readers are laxer than JSON.parse in ways no list here can follow (the json
 * gem before 2.17 dropped the backslash of an unknown escape, so `{"sud\o":1}` is `sudo` to it). Under another type that
 * merely mentions json (`application/x-ndjson`), no framework reads fields from it: it names nothing.
 */
function jsonKeys(body: Uint8Array, contentType: string): string[] | 'unreadable' {
  try {
    const parsed: unknown = JSON.parse(withoutComments(new TextDecoder().decode(body)));
    return typeof parsed === 'object' && parsed !== null ? Object.keys(parsed) : [];
  } catch {
    const type = contentType.toLowerCase();
    return type.includes('/json') || type.includes('+json') ? 'unreadable' : [];
  }
}

/** The text with each comment outside a string (slash-star to star-slash, `//` to the line's end) made a space; one left open runs to the end. */
function withoutComments(text: string): string {
  const kept: string[] = [];
  let from = 0;
  for (let at = 0; at < text.length; at += 1) {
    if (text[at] === '"') {
      for (at += 1; at < text.length && text[at] !== '"'; at += text[at] === '\\' ? 2 : 1);
    } else if (text[at] === '/' && (text[at + 1] === '*' || text[at + 1] === '/')) {
      const block = text[at + 1] === '*';
      const end = block ? text.indexOf('*/', at + 2) : text.indexOf('\n', at + 2);
      kept.push(text.slice(from, at), ' ');
      from = end === -1 ? text.length : end + (block ? 2 : 0);
      at = from - 1;
    }
  }
  kept.push(text.slice(from));
  return kept.join('');
}
