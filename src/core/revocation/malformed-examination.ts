import type { RequestContext } from '../exchange/exchange-token.ts';
import { appendExamination, examinationRecord } from './examine-token.ts';
import { refuseStranger, type RefusedRevocation, type RevokeDeps } from './rfc7009-revoke.ts';

/** Why a request to `/revoke` or `/introspect` holds no one token to examine. */
export type MalformedExamination = 'no_token' | 'several_tokens' | 'empty_token' | 'not_form_encoded' | 'body_incomplete';

const PROBLEMS: Record<MalformedExamination, string> = {
  no_token: 'the body holds no token parameter: send one, form-encoded',
  several_tokens: 'the body holds more than one token parameter: send one',
  empty_token: 'the token parameter is empty',
  not_form_encoded: 'the body must be application/x-www-form-urlencoded',
  body_incomplete: 'the request body ended before it was received whole: the client closed the connection or ran out of time',
};

/**
 * Refuses a request to `endpoint` that holds no one token, and records it as `malformed_request`, its `detail` naming the
 * endpoint and the problem (there is no token to describe). A holder's (no operator asked) is a stranger's, so it is
 * recorded within the unverified budget of its chain, as a refused proof is; an operator's, whose keyway token verified,
 * as its other requests are. Rejects if the record cannot be written.
 */
export async function refuseMalformedExamination(
  deps: Pick<RevokeDeps, 'audit' | 'issuer' | 'limits' | 'now'>,
  endpoint: '/revoke' | '/introspect',
  caller: { readonly holder: true } | { readonly operator: string },
  problem: MalformedExamination,
  context: RequestContext,
): Promise<RefusedRevocation> {
  const message = PROBLEMS[problem];
  const event = examinationRecord(deps, { caller, reason: 'malformed_request', detail: `POST ${endpoint}: ${message}`, context, now: deps.now() });
  if ('holder' in caller) return refuseStranger(deps, event, message);
  return { refused: { message, auditEventId: await appendExamination(deps, event) } };
}
