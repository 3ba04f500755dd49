import { decodeJwt } from 'jose';
import { ExchangeError } from '../errors/exchange-error.ts';
import { parseTokenExchangeRequest, TOKEN_EXCHANGE_GRANT, TOKEN_TYPE, type TokenExchangeRequest } from './token-exchange-request.ts';

/** RFC 7523 §2.1: a JWT as an authorization grant. */
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
/** RFC 6749 §4.4, with the client authenticated by an RFC 7523 §2.2 client assertion (what Entra-style clients send). */
export const CLIENT_CREDENTIALS_GRANT = 'client_credentials';
export const JWT_CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** The grants `POST /token` takes, as the metadata advertises them. */
export const GRANT_TYPES = [TOKEN_EXCHANGE_GRANT, JWT_BEARER_GRANT, CLIENT_CREDENTIALS_GRANT] as const;
export type GrantType = (typeof GRANT_TYPES)[number];

export interface TokenRequest extends TokenExchangeRequest {
  readonly grantType: GrantType;
}

/** Parameters that belong to token exchange only: sent with an assertion grant, the request is ambiguous. */
const EXCHANGE_ONLY = ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type'] as const;

function malformed(detail: string): ExchangeError {
  return new ExchangeError('malformed_request', detail, { public: true });
}

/**
 * Parses `POST /token` for any grant keyway takes. The JWT bearer grant's `assertion` and the
 * client credentials grant's `client_assertion` are the CI token itself, so both become the token
 * exchange of that JWT (`subject_token_type` jwt) and go through the same verify → decide → mint →
 * audit path, with the same bounds.
 */
export function parseTokenRequest(form: URLSearchParams): TokenRequest {
  const grantType = single(form, 'grant_type');
  if (grantType === JWT_BEARER_GRANT) return { ...parseTokenExchangeRequest(asExchange(form, single(form, 'assertion'))), grantType };
  if (grantType === CLIENT_CREDENTIALS_GRANT) {
    const assertionType = single(form, 'client_assertion_type');
    if (assertionType !== JWT_CLIENT_ASSERTION_TYPE) throw malformed(`client_credentials needs client_assertion_type ${JWT_CLIENT_ASSERTION_TYPE}`);
    const assertion = single(form, 'client_assertion');
    const clientId = form.getAll('client_id').filter((value) => value !== '');
    if (clientId.length > 1) throw malformed('parameter client_id must not be repeated');
    if (clientId[0] !== undefined && assertion !== undefined && subOf(assertion) !== clientId[0]) {
      throw malformed('client_id must be the sub of the client assertion (RFC 7521 section 4.2)');
    }
    return { ...parseTokenExchangeRequest(asExchange(form, assertion)), grantType };
  }
  return { ...parseTokenExchangeRequest(form), grantType: TOKEN_EXCHANGE_GRANT };
}

function single(form: URLSearchParams, name: string): string | undefined {
  const values = form.getAll(name).filter((value) => value !== '');
  if (values.length > 1) throw malformed(`parameter ${name} must not be repeated`);
  return values[0];
}

function asExchange(form: URLSearchParams, assertion: string | undefined): URLSearchParams {
  const grant = form.get('grant_type');
  if (assertion === undefined) throw malformed(`${grant === JWT_BEARER_GRANT ? 'assertion' : 'client_assertion'} is missing`);
  const stray = EXCHANGE_ONLY.find((name) => form.getAll(name).some((value) => value !== ''));
  if (stray !== undefined) throw malformed(`${stray} belongs to token exchange, not to grant_type ${grant}`);
  const exchange = new URLSearchParams(form);
  exchange.set('grant_type', TOKEN_EXCHANGE_GRANT);
  exchange.set('subject_token', assertion);
  exchange.set('subject_token_type', TOKEN_TYPE.jwt);
  return exchange;
}

/** The unverified `sub`, only to hold `client_id` to it: verification checks the assertion itself. */
function subOf(assertion: string): unknown {
  try {
    return decodeJwt(assertion).sub;
  } catch {
    return undefined;
  }
}
