import { CiTokenError } from './ci-token-sources.ts';
import type { RetryNotice } from './retrying-fetch.ts';
import { BrokerRefusedError, BrokerUnavailableError, type IssuedToken } from './exchange-with-broker.ts';
import { CloudRefusedError, CloudUnavailableError } from './cloud-service-errors.ts';

/** Exit codes of `keyway exchange`, documented in docs/reference/cli.md. */
export const EXIT = { ok: 0, usage: 2, noCiToken: 3, refused: 4, unavailable: 5 } as const;

export interface FailureReport {
  readonly exitCode: number;
  /** For the job log: what went wrong, the audit event id, and what to do. Never a token. */
  readonly lines: readonly string[];
}

/** A retry, as the job log shows it: the URL without its query (GitHub's token service URL carries parameters). */
export function retryLine(notice: RetryNotice): string {
  return `${notice.method} ${notice.url.split('?')[0]} ${notice.reason}; try ${notice.attempt + 1} of ${notice.attempts} in ${(notice.delayMs / 1000).toFixed(1)} s`;
}

/** The job log's record of a grant: enough for an auditor to match this run to the broker's audit record, never the token. */
export function grantLine(issued: IssuedToken): string {
  return `granted: audit_event_id=${issued.auditEventId ?? '-'} access_token_sha256=${issued.sha256} expires_at=${issued.expiresAt.toISOString()} scope="${issued.scope ?? ''}"`;
}

/** Claims holding someone's e-mail address (GitLab's `user_email`, Google's `email`): a job log can be public, they are not. */
const EMAIL_CLAIM = /e-?mail/i;

/** The claims of the token the job sent, one per line: its own, so the job log may show them (never the token, nor an e-mail address). */
function sentClaimLines(error: BrokerRefusedError): string[] {
  if (error.sentClaims === undefined) return ['the CI token sent is not a JWT: it has no claims to show'];
  return [
    'claims of the CI token sent (decoded here, not verified):',
    ...Object.entries(error.sentClaims).map(
      ([name, value]) => `  ${name}: ${EMAIL_CLAIM.test(name) ? '(withheld: an e-mail address)' : JSON.stringify(value)}`,
    ),
  ];
}

/** What the operator lets the pipeline learn of a refusal, and where the rest is. */
function learnedLines(error: BrokerRefusedError): string[] {
  const explain = `an operator with audit:read sees the whole explanation: keyway audit explain ${error.auditEventId ?? 'EVENT_ID'}`;
  const { diagnostics } = error;
  if (diagnostics === undefined) {
    return [`the broker's operators share nothing more with pipelines (diagnostics: none, the default); ${explain}`];
  }
  const failed = diagnostics.failedClaims.length === 0 ? 'none' : diagnostics.failedClaims.join(', ');
  return [
    `the operator shares claim names (diagnostics: claim-names): claims that failed for the closest allow policy: ${failed}`,
    `deny guardrails that fired: ${diagnostics.deniedBy.length === 0 ? 'none' : diagnostics.deniedBy.join(', ')}`,
    explain,
  ];
}

/** What the job log says when an exchange fails; undefined for errors that are bugs, not outcomes. */
export function describeFailure(error: unknown): FailureReport | undefined {
  if (error instanceof CiTokenError) return { exitCode: EXIT.noCiToken, lines: [`no CI token: ${error.message}`] };
  if (error instanceof BrokerRefusedError) {
    return {
      exitCode: EXIT.refused,
      lines: [
        `refused (HTTP ${error.status}): ${error.message}`,
        `audit_event_id=${error.auditEventId ?? '-'}`,
        ...sentClaimLines(error),
        ...learnedLines(error),
      ],
    };
  }
  if (error instanceof CloudRefusedError) return { exitCode: EXIT.refused, lines: [`${error.service} refused (HTTP ${error.status}): ${error.message}`] };
  if (error instanceof CloudUnavailableError) return { exitCode: EXIT.unavailable, lines: [`cloud unavailable: ${error.message}`] };
  if (error instanceof BrokerUnavailableError) {
    return {
      exitCode: EXIT.unavailable,
      lines: [`broker unavailable: ${error.message}`, ...(error.auditEventId === undefined ? [] : [`audit_event_id=${error.auditEventId}`])],
    };
  }
  return undefined;
}

/** Logs what the job log says of a failed exchange and gives its exit code; an error that is a bug, not an outcome, is thrown on. */
export function reportFailure(error: unknown, log: (line: string) => void): number {
  const failure = describeFailure(error);
  if (failure === undefined) throw error;
  for (const line of failure.lines) log(line);
  return failure.exitCode;
}
