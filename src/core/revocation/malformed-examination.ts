import type { Refusal } from '../errors/reasons.ts';
import type { RequestContext } from '../exchange/exchange-token.ts';
import { examinationRecord } from './examine-token.ts';
import { refuseRecorded, refuseStranger, type RefusedRevocation, type RevokeDeps } from './rfc7009-revoke.ts';

/** The most a body of `/revoke` or `/introspect` may hold: a keyway token is a few hundred bytes, and the form holds it and a hint. */
export const EXAMINATION_BODY_BYTES = 16 * 1024;

/** The endpoints that examine one token a form names. */
export type ExaminationEndpoint = '/revoke' | '/introspect';

/** Why a request to `/revoke` or `/introspect` holds no one token to examine. */
export type MalformedExamination = 'no_token' | 'several_tokens' | 'empty_token' | 'not_form_encoded' | 'body_incomplete' | 'body_too_large';

const PROBLEMS: Record<MalformedExamination, { readonly reason: Refusal; readonly message: string }> = {
  no_token: { reason: 'malformed_request', message: 'the body holds no token parameter: send one, form-encoded' },
  several_tokens: { reason: 'malformed_request', message: 'the body holds more than one token parameter: send one' },
  empty_token: { reason: 'malformed_request', message: 'the token parameter is empty' },
  not_form_encoded: { reason: 'unsupported_media_type', message: 'the body must be application/x-www-form-urlencoded' },
  body_incomplete: {
    reason: 'malformed_request',
    message: 'the request body ended before it was received whole: the client closed the connection or ran out of time',
  },
  body_too_large: { reason: 'request_too_large', message: `the body is larger than ${EXAMINATION_BODY_BYTES} bytes` },
};

/**
 * Refuses a request to `endpoint` that holds no one token, and records it as `malformed_request` (`request_too_large` for
 * a body over EXAMINATION_BODY_BYTES, `unsupported_media_type` for one not form-encoded, as at `/token`), its `detail`
 * naming the endpoint and the problem (there is no token to describe).
 * A holder's (no operator asked) is a stranger's, so it is recorded within the unverified budget of its chain, as a
 * refused proof is; an operator's, whose keyway token verified, as its other requests are. Rejects if the record cannot
 * be written. The refusal carries its reason, for the answer's status and error.
 */
export async function refuseMalformedExamination(
  deps: Pick<RevokeDeps, 'audit' | 'issuer' | 'limits' | 'now'>,
  endpoint: ExaminationEndpoint,
  caller: { readonly holder: true } | { readonly operator: string },
  problem: MalformedExamination,
  context: RequestContext,
): Promise<RefusedRevocation & { readonly reason: Refusal }> {
  const { reason, message } = PROBLEMS[problem];
  const event = examinationRecord(deps, { caller, reason, detail: `POST ${endpoint}: ${message}`, context, now: deps.now() });
  const refused = 'holder' in caller ? await refuseStranger(deps, event, message) : await refuseRecorded(deps, event, message);
  return { ...refused, reason };
}
