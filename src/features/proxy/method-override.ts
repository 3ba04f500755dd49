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
 * reads it (leading spaces dropped, `.` and spaces made `_`, the part before `[`), so `.method`,
 * `_method[]` and `_METHOD` are all `_method`.
 */
function fieldName(name: string): string {
  const php = name.trimStart().toLowerCase().replace(/[.\s]/g, '_');
  const bracket = php.indexOf('[');
  return bracket === -1 ? php : php.slice(0, bracket);
}

const isMethodField = (name: string): boolean => fieldName(name) === '_method';

/** Whether a query string or form body names `_method`, fields split at `&` or `;` as older parsers split them. */
export function formNamesMethod(form: string): boolean {
  for (const [name] of new URLSearchParams(form.replaceAll(';', '&'))) if (isMethodField(name)) return true;
  return false;
}

const DISPOSITION = /^content-disposition:([^\r\n]*)$/gim;
const NAME_PARAMETER = /;\s*name(\*?)\s*=\s*(?:"([^"]*)"|([^;\s]*))/gi;

/** The field names of a multipart body's parts: `name`, and RFC 2231's `name*` (`utf-8''%5Fmethod`) decoded. */
function multipartNames(text: string): string[] {
  const names: string[] = [];
  for (const [, parameters] of text.matchAll(DISPOSITION)) {
    for (const [, extended, quoted, bare] of (parameters ?? '').matchAll(NAME_PARAMETER)) {
      const value = quoted ?? bare ?? '';
      if (extended === '') {
        names.push(value);
        continue;
      }
      const encoded = value.slice(value.lastIndexOf("'") + 1);
      try {
        names.push(decodeURIComponent(encoded));
      } catch {
        names.push(encoded);
      }
    }
  }
  return names;
}

/**
 * Whether a request body a framework reads parameters from holds a `_method` field: a form (Rack reads a
 * POST without a content type as one), a multipart form, or a JSON object (Laravel reads any type with
 * `json` in it). The media type is cut at `;`, `,` or a space, as PHP cuts it.
 */
export function bodyOverridesMethod(body: Uint8Array, contentType: string | null): boolean {
  const type =
    (contentType ?? '')
      .trim()
      .split(/[;,\s]/)[0]
      ?.toLowerCase() ?? '';
  if (type === '' || type === 'application/x-www-form-urlencoded') return formNamesMethod(new TextDecoder().decode(body));
  if (type === 'multipart/form-data') return multipartNames(new TextDecoder('latin1').decode(body)).some(isMethodField);
  if (type.includes('json')) {
    try {
      const parsed: unknown = JSON.parse(new TextDecoder().decode(body));
      return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) && Object.keys(parsed).some(isMethodField);
    } catch {
      return false;
    }
  }
  return false;
}
