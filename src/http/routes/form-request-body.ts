const FORM_CONTENT_TYPE = /^application\/x-www-form-urlencoded\s*(;|$)/i;

/** Whether a request's `Content-Type` is an HTML form's (RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1), parameters after it allowed. */
export function isFormEncoded(contentType: string | undefined): boolean {
  return FORM_CONTENT_TYPE.test(contentType ?? '');
}
