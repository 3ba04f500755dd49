import { describe, expect, it } from 'vitest';
import { parseTokenExchangeRequest, REQUEST_LIMITS, TOKEN_EXCHANGE_GRANT, TOKEN_TYPE } from '../../src/core/exchange/token-exchange-request.ts';
import { ExchangeError } from '../../src/core/errors/exchange-error.ts';

const base = { grant_type: TOKEN_EXCHANGE_GRANT, subject_token: 'aGVhZGVy.cGF5bG9hZA.c2ln', subject_token_type: TOKEN_TYPE.jwt };

function reason(form: URLSearchParams): string | undefined {
  try {
    parseTokenExchangeRequest(form);
    return undefined;
  } catch (error) {
    if (error instanceof ExchangeError) return error.reason;
    throw error;
  }
}

describe('parsing an RFC 8693 request', () => {
  it('accepts both JWT token types, and treats empty parameters as omitted', () => {
    const form = new URLSearchParams({ ...base, scope: '', audience: '', requested_token_type: '' });
    expect(parseTokenExchangeRequest(form)).toEqual({
      subjectToken: base.subject_token,
      subjectTokenType: TOKEN_TYPE.jwt,
      audiences: [],
      scopes: undefined,
      requestedTokenType: TOKEN_TYPE.accessToken,
    });
  });

  it('collects repeated audience and resource values, once each, and splits scope', () => {
    const form = new URLSearchParams(base);
    for (const [name, value] of [
      ['audience', 'a'],
      ['resource', 'https://r.example/'],
      ['audience', 'a'],
      ['scope', ' read  write read '],
    ])
      form.append(name as string, value as string);
    expect(parseTokenExchangeRequest(form)).toMatchObject({ audiences: ['a', 'https://r.example/'], scopes: ['read', 'write'] });
  });

  it('ignores unknown parameters and client_id, as RFC 6749 asks', () => {
    expect(reason(new URLSearchParams({ ...base, client_id: 'x', whatever: 'y' }))).toBeUndefined();
  });

  it.each([
    [
      'a repeated grant_type',
      () => {
        const f = new URLSearchParams(base);
        f.append('grant_type', TOKEN_EXCHANGE_GRANT);
        return f;
      },
      'malformed_request',
    ],
    ['a missing subject_token_type', () => new URLSearchParams({ grant_type: base.grant_type, subject_token: base.subject_token }), 'malformed_request'],
    ['an unsupported grant type', () => new URLSearchParams({ ...base, grant_type: 'password' }), 'unsupported_grant_type'],
    ['a token that is not a compact JWS', () => new URLSearchParams({ ...base, subject_token: 'not-a-jwt' }), 'token_malformed'],
    ['a JWE (five parts)', () => new URLSearchParams({ ...base, subject_token: 'a.b.c.d.e' }), 'token_malformed'],
    [
      'too many targets',
      () => {
        const f = new URLSearchParams(base);
        for (let i = 0; i < 11; i++) f.append('audience', `a${i}`);
        return f;
      },
      'malformed_request',
    ],
    [
      'too many targets, counting audience and resource together',
      () => {
        const f = new URLSearchParams(base);
        for (let i = 0; i < 6; i++) f.append('audience', `a${i}`);
        for (let i = 0; i < 5; i++) f.append('resource', `https://r${i}.example/`);
        return f;
      },
      'malformed_request',
    ],
    ['an audience a character too long', () => new URLSearchParams({ ...base, audience: 'a'.repeat(REQUEST_LIMITS.targetChars + 1) }), 'malformed_request'],
    ['a scope a character too long', () => new URLSearchParams({ ...base, scope: 'a'.repeat(REQUEST_LIMITS.scopeChars + 1) }), 'malformed_request'],
    [
      'an actor_token_type that is no JWT',
      () => new URLSearchParams({ ...base, actor_token: base.subject_token, actor_token_type: 'urn:ietf:params:oauth:token-type:saml2' }),
      'malformed_request',
    ],
    [
      'an actor_token a character too large',
      () => new URLSearchParams({ ...base, actor_token: `${'a'.repeat(REQUEST_LIMITS.subjectTokenBytes - 3)}.b.c`, actor_token_type: TOKEN_TYPE.jwt }),
      'malformed_request',
    ],
    [
      'an actor_token that is not a compact JWS',
      () => new URLSearchParams({ ...base, actor_token: 'not-a-jwt', actor_token_type: TOKEN_TYPE.jwt }),
      'token_malformed',
    ],
    ['a resource with a fragment', () => new URLSearchParams({ ...base, resource: 'https://r.example/#x' }), 'target_malformed'],
    ['a relative resource', () => new URLSearchParams({ ...base, resource: '/api' }), 'target_malformed'],
  ])('refuses %s', (_name, form, expected) => {
    expect(reason(form())).toBe(expected);
  });

  it('takes every limit exactly: as many targets, and a token, an audience and a scope as long, as it allows', () => {
    const form = new URLSearchParams({
      ...base,
      subject_token: `${'a'.repeat(REQUEST_LIMITS.subjectTokenBytes - 4)}.b.c`,
      scope: 'a'.repeat(REQUEST_LIMITS.scopeChars),
      audience: 'a'.repeat(REQUEST_LIMITS.targetChars),
    });
    for (let i = 1; i < REQUEST_LIMITS.targets; i++) form.append('resource', `https://r${i}.example/`);
    expect(parseTokenExchangeRequest(form).audiences).toHaveLength(REQUEST_LIMITS.targets);
  });
});
