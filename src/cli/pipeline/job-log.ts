import { CiTokenError } from './ci-token-sources.ts';
import type { RetryNotice } from './retrying-fetch.ts';
import { BrokerRefusedError, BrokerUnavailableError, type IssuedToken } from './exchange-with-broker.ts';
import { StsRefusedError, StsUnavailableError } from './aws-sts.ts';
import { CloudRefusedError, CloudUnavailableError } from './cloud-token-exchanges.ts';

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

/** What the job log says when an exchange fails; undefined for errors that are bugs, not outcomes. */
export function describeFailure(error: unknown): FailureReport | undefined {
  if (error instanceof CiTokenError) return { exitCode: EXIT.noCiToken, lines: [`no CI token: ${error.message}`] };
  if (error instanceof BrokerRefusedError) {
    const id = error.auditEventId ?? '(none)';
    return {
      exitCode: EXIT.refused,
      lines: [
        `refused (HTTP ${error.status}): ${error.message}`,
        `audit_event_id=${error.auditEventId ?? '-'}`,
        `hint: the broker never tells the pipeline which policy line decided; its operators can, with \`keyway policy explain\` for audit event ${id}`,
      ],
    };
  }
  if (error instanceof StsRefusedError) return { exitCode: EXIT.refused, lines: [`AWS STS refused (HTTP ${error.status}): ${error.message}`] };
  if (error instanceof CloudRefusedError) return { exitCode: EXIT.refused, lines: [`${error.service} refused (HTTP ${error.status}): ${error.message}`] };
  if (error instanceof CloudUnavailableError) return { exitCode: EXIT.unavailable, lines: [`cloud unavailable: ${error.message}`] };
  if (error instanceof StsUnavailableError) return { exitCode: EXIT.unavailable, lines: [`AWS STS unavailable: ${error.message}`] };
  if (error instanceof BrokerUnavailableError) {
    return {
      exitCode: EXIT.unavailable,
      lines: [`broker unavailable: ${error.message}`, ...(error.auditEventId === undefined ? [] : [`audit_event_id=${error.auditEventId}`])],
    };
  }
  return undefined;
}
