import { KeywayError } from '../../../core/errors/keyway-error.ts';

export type GitHubErrorCode =
  /** GitHub did not answer in time, answered 5xx or 429 or a rate-limited 403, or could not be reached. */
  | 'unavailable'
  /** 401: the App JWT or installation token was refused. */
  | 'unauthorized'
  /** 403: authenticated, but not allowed (e.g. the App lacks a permission it is asked to grant). */
  | 'forbidden'
  /** 404: no such installation, repository or file (or not visible to the App). */
  | 'not_found'
  /** 422 or another 4xx: GitHub refused the request as made. */
  | 'rejected'
  /** The answer was not what the API documents. */
  | 'malformed'
  /** The answer was larger than keyway reads of one (OUTBOUND_MAX_BYTES): what was asked is that large, not GitHub failing. */
  | 'too_large';

/** A failed GitHub API call, with a code the caller decides on (never the token, never the body of a secret). */
export class GitHubError extends KeywayError {
  override readonly name = 'GitHubError';
  readonly code: GitHubErrorCode;
  readonly status: number | undefined;

  constructor(code: GitHubErrorCode, message: string, options?: { status?: number; cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.code = code;
    this.status = options?.status;
  }
}

/**
 * Whether a failure is GitHub's for a while, to be asked again: down, rate limiting, or an answer larger than keyway reads
 * (GitHub misbehaving where its answers are small; a policy file's contents too large are refused before this is asked).
 */
export const isGitHubUnavailable = (error: GitHubError): boolean => error.code === 'unavailable' || error.code === 'too_large';

/**
 * GitHub answers a spent rate limit with 403 as often as 429: `x-ratelimit-remaining: 0` for the
 * primary limit, `retry-after` for a secondary one. That is GitHub being unavailable for a while,
 * never an answer about what was asked (a missing repository, a permission the App lacks).
 */
export function errorCodeForStatus(status: number, headers: Headers = new Headers()): GitHubErrorCode {
  if (status === 401) return 'unauthorized';
  if (status === 403) return headers.get('x-ratelimit-remaining') === '0' || headers.has('retry-after') ? 'unavailable' : 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 429 || status >= 500) return 'unavailable';
  return 'rejected';
}
