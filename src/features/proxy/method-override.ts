/**
 * What asks the upstream to route the request as another method or path than the one the rule
 * matched: refused outright, never stripped silently. Frameworks honour these (Rails and Rack,
 * Laravel, Symfony, express's method-override, IIS URL Rewrite, Zend): with keyway's credential
 * attached, a rule for `POST …/comments` would otherwise carry a DELETE, or a call to a path of the caller's choosing.
 */
export const OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-method', 'x-original-url', 'x-rewrite-url'];

const METHOD_FIELD = '_method';

/** Whether a query string or form body names `_method`, with `&` or `;` between fields as older parsers split them. */
export function hasMethodField(form: string): boolean {
  return new URLSearchParams(form.replaceAll(';', '&')).has(METHOD_FIELD);
}

const MULTIPART_METHOD_FIELD = /^content-disposition:[^\r\n]*;\s*name\s*=\s*(?:"_method"|_method)\s*(?:;|$)/im;

/** Whether a request body a framework reads parameters from (a form, multipart or JSON object) holds a `_method` field. */
export function bodyOverridesMethod(body: Uint8Array, contentType: string | null): boolean {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'application/x-www-form-urlencoded') return hasMethodField(new TextDecoder().decode(body));
  if (type === 'multipart/form-data') return MULTIPART_METHOD_FIELD.test(new TextDecoder('latin1').decode(body));
  if (type === 'application/json' || type.endsWith('+json')) {
    try {
      const parsed: unknown = JSON.parse(new TextDecoder().decode(body));
      return typeof parsed === 'object' && parsed !== null && Object.hasOwn(parsed, METHOD_FIELD);
    } catch {
      return false;
    }
  }
  return false;
}
