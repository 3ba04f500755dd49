import { describe, expect, it } from 'vitest';
import { isFormEncoded } from '../../src/http/routes/form-request-body.ts';

describe('isFormEncoded, the Content-Type check of /token, /revoke and /introspect', () => {
  it('takes the form media type in any case, with parameters after it', () => {
    for (const type of [
      'application/x-www-form-urlencoded',
      'Application/X-WWW-Form-Urlencoded',
      'application/x-www-form-urlencoded; charset=utf-8',
      'application/x-www-form-urlencoded ;charset=UTF-8',
      'application/x-www-form-urlencoded;',
    ]) {
      expect(isFormEncoded(type), type).toBe(true);
    }
  });

  it('refuses any other media type, one that only begins or ends with the form one among them, and none at all', () => {
    for (const type of [
      undefined,
      '',
      'application/json',
      'multipart/form-data; boundary=x',
      'application/x-www-form-urlencodedx',
      'application/x-www-form-urlencoded-utf8',
      'application/x-www-form-urlencoded, application/json',
      'text/plain; application/x-www-form-urlencoded',
      'text/plain;x=application/x-www-form-urlencoded',
    ]) {
      expect(isFormEncoded(type), String(type)).toBe(false);
    }
  });
});
