import { FetchError, readBounded } from '../core/outbound/read-bounded.ts';
import { OUTBOUND_MAX_BYTES } from '../core/outbound/outbound-http.ts';
import { CliError } from './command.ts';
import { inert } from '../core/inert-text.ts';

/**
 * How much of a broker's answer the commands that read one (`keyway audit … --url`, `keys … --url`, `cloud check`) read
 * before they stop and fail: whatever answers in the broker's place (a mistyped URL, a proxy) could stream without end.
 */
export const ANSWER_BYTES = {
  /** An error, the key list, a rotation, the audit keys, the shards; discovery and the JWKS, as the broker reads an issuer's. */
  small: OUTBOUND_MAX_BYTES,
  /** A page of the audit API (at most 500 records, each bounded: docs/audit/record.md#bounds, or of checkpoints), the stats, the inventory. */
  page: 64 * 1024 * 1024,
  /** One audit record: an event by its id, a line of an export. */
  record: 1024 * 1024,
} as const;

/**
 * The answer's text, read through readBounded (the rest cancelled unread): too long an answer, or one that broke off, is
 * exit 1; one its request's deadline cut off fails with the deadline's own error.
 */
export async function answerText(response: Response, maxBytes: number, request: string): Promise<string> {
  try {
    return await readBounded(response, maxBytes, request);
  } catch (error) {
    if (error instanceof FetchError) throw error.cause instanceof CliError ? error.cause : new CliError(error.message, 1);
    throw error;
  }
}

/** The answer's JSON, read as answerText reads it; an answer that is not JSON is exit 1 too. */
export async function answerJson<T>(response: Response, maxBytes: number, request: string): Promise<T> {
  const text = await answerText(response, maxBytes, request);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new CliError(`the answer to ${request} is not JSON`, 1);
  }
}

/** A broker's error answer as exit 1: the path, the status and its RFC 6749 error, made inert (the broker chose it). */
export async function brokerError(method: string, path: string, response: Response): Promise<CliError> {
  const body = await answerJson<{ error?: unknown; error_description?: unknown }>(response, ANSWER_BYTES.small, `${method} ${path}`).catch(
    (): { error?: unknown; error_description?: unknown } => ({}),
  );
  const text = (value: unknown): string => (typeof value === 'string' ? inert(value) : '');
  const description = body.error_description === undefined ? '' : `: ${text(body.error_description)}`;
  return new CliError(`${path} answered ${response.status} ${text(body.error)}${description}`, 1);
}
