import { describe, expect, it } from 'vitest';
import { parseCredentials } from '../../src/core/authorization-credentials.ts';

const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_';

describe('parseCredentials', () => {
  it.each([
    ['Bearer', 'Bearer'],
    ['bearer', 'Bearer'],
    ['BEARER', 'Bearer'],
    ['bEaReR', 'Bearer'],
    ['DPoP', 'DPoP'],
    ['dpop', 'DPoP'],
    ['DPOP', 'DPoP'],
  ])('takes the auth-scheme %s in any case (RFC 9110 §11.1), named as keyway spells it: %s', (written, scheme) => {
    expect(parseCredentials(`${written} ${JWT}`)).toEqual({ scheme, token: JWT });
  });

  it('takes one or more spaces between the scheme and the token (1*SP, RFC 9110 §11.4)', () => {
    expect(parseCredentials(`Bearer  ${JWT}`)).toEqual({ scheme: 'Bearer', token: JWT });
    expect(parseCredentials(`DPoP    ${JWT}`)).toEqual({ scheme: 'DPoP', token: JWT });
  });

  it('takes a token68 with all its characters and trailing = padding (RFC 9110 §11.2)', () => {
    const token68 = 'AZaz09-._~+/';
    expect(parseCredentials(`Bearer ${token68}`)).toEqual({ scheme: 'Bearer', token: token68 });
    expect(parseCredentials('Bearer YWJj==')).toEqual({ scheme: 'Bearer', token: 'YWJj==' });
  });

  it.each([
    ['no header', undefined],
    ['no header (Headers.get)', null],
    ['an empty value', ''],
    ['the scheme alone', 'Bearer'],
    ['the scheme and a space, no token', 'Bearer '],
    ['a tab between scheme and token', `Bearer\t${JWT}`],
    ['a space and a tab between scheme and token', `Bearer \t${JWT}`],
    ['a trailing space', `Bearer ${JWT} `],
    ['a leading space', ` Bearer ${JWT}`],
    ['a newline after the token', `Bearer ${JWT}\n`],
    ['no space between scheme and token', `Bearer${JWT}`],
    ['no space between scheme and a token that starts with a digit', `Bearer0${JWT}`],
    ['Basic', 'Basic dXNlcjpwYXNz'],
    ['another scheme that starts like one', `Bearers ${JWT}`],
    ['a scheme with a Cyrillic a (U+0430)', `Be\u0430rer ${JWT}`],
    ['= padding in the middle of the token', 'Bearer YWJj=ZGVm'],
    ['= alone', 'Bearer ='],
    ['two tokens', `Bearer ${JWT} ${JWT}`],
    ['auth-params instead of a token68', 'Bearer realm="keyway", token="x"'],
    ['a comma-joined second credential', `Bearer ${JWT}, Bearer ${JWT}`],
    ['a non-ASCII letter in the token', `Bearer ${JWT}é`],
    ['the Kelvin sign, which case-folds to k', `Bearer ${JWT}\u212a`],
    ['the long s, which case-folds to s', `Bearer ${JWT}\u017f`],
    ['a character outside token68', `Bearer ${JWT}!`],
  ])('refuses %s', (_name, authorization) => {
    expect(parseCredentials(authorization)).toBeUndefined();
  });
});
