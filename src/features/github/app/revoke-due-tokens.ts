import { errorText, type Logger } from '../../../core/log.ts';
import { SecretBoxError, type SecretBox } from '../../../core/secrets/secret-box.ts';
import { GitHubClient, type GitHubHttp } from './github-client.ts';
import { GitHubError } from './github-error.ts';
import { revokeInstallationToken } from './installation-token.ts';
import type { PendingRevocation, RevocationStore } from './revocation-store.ts';

/** What became of one pending revocation. */
export type RevocationOutcome =
  /** GitHub accepted the revocation. */
  | 'revoked'
  /** GitHub no longer accepted the token: revoked or expired already (e.g. by `keyway exchange` at the end of the job). */
  | 'already_invalid'
  /** Past GitHub's own expiry: nothing left to revoke. */
  | 'expired'
  /** GitHub failed; tried again later. */
  | 'retrying'
  /** Every attempt failed: the token lives until GitHub expires it. */
  | 'gave_up'
  /**
   * The sealed token does not open under the configured master keys, or not for its row's id and API URL (one rewritten
   * since, or a token an older release sealed for its row alone): it cannot be revoked, and is sent nowhere.
   */
  | 'unsealable';

export interface RevokeDueTokensDeps {
  readonly store: RevocationStore;
  readonly box: SecretBox;
  readonly http: GitHubHttp;
  readonly now: () => number;
  readonly log: Logger;
  readonly retry?: RevocationRetryPolicy;
}

export interface RevocationRetryPolicy {
  readonly attempts: number;
  /** Wait before the second attempt, doubled before each next one. */
  readonly backoffMs: number;
}

export const DEFAULT_REVOCATION_RETRY: RevocationRetryPolicy = { attempts: 8, backoffMs: 5000 };

/** The sealed token's purpose; its context is `githubTokenContext`'s. */
export const GITHUB_TOKEN_PURPOSE = 'github-token';

/**
 * A sealed token's context: its row's id and the API it is revoked at, so that it opens only in its own row and only to
 * be sent to its own API. The row's API URL is kept in the clear beside it: were it not bound, whoever could write the
 * schedule (the database file, a backup or export restored) could point a row at a server of theirs, and the revocation
 * round would open the token and hand it there.
 */
export function githubTokenContext(id: string, apiUrl: string): string {
  return JSON.stringify([id, apiUrl]);
}

const BATCH = 50;

/**
 * Revokes every GitHub token whose time has come (`DELETE /installation/token` with the token
 * itself), deleting its sealed copy once done; a failure is retried with backoff, a bounded
 * number of times. Node runs this from a timer, Workers from the KeywayState alarm.
 */
export async function revokeDueTokens(deps: RevokeDueTokensDeps): Promise<{ readonly id: string; readonly outcome: RevocationOutcome }[]> {
  const retry = deps.retry ?? DEFAULT_REVOCATION_RETRY;
  const outcomes: { id: string; outcome: RevocationOutcome }[] = [];
  for (;;) {
    const due = await deps.store.due(deps.now(), BATCH);
    for (const pending of due) outcomes.push({ id: pending.id, outcome: await revokeOne(deps, retry, pending) });
    if (due.length < BATCH) return outcomes;
  }
}

async function revokeOne(deps: RevokeDueTokensDeps, retry: RevocationRetryPolicy, pending: PendingRevocation): Promise<RevocationOutcome> {
  const fields = { audit_event_id: pending.id, token_sha256: pending.tokenSha256, installation_id: pending.installationId };
  const finish = async (outcome: RevocationOutcome, level: 'info' | 'error' = 'info', extra: Record<string, unknown> = {}): Promise<RevocationOutcome> => {
    await deps.store.remove(pending.id);
    deps.log[level]('github token revocation', { ...fields, outcome, attempts: pending.attempts + 1, ...extra });
    return outcome;
  };
  const now = deps.now();
  if (now >= pending.githubExpiresAt) return finish('expired');
  let token: string;
  try {
    token = await deps.box.open(pending.sealedToken, GITHUB_TOKEN_PURPOSE, githubTokenContext(pending.id, pending.apiUrl));
  } catch (error) {
    if (!(error instanceof SecretBoxError)) throw error;
    return finish('unsealable', 'error', { error: error.message });
  }
  try {
    return await finish(await revokeInstallationToken(GitHubClient.withTokensOnly(pending.apiUrl, deps.http), token));
  } catch (error) {
    const message = errorText(error);
    const attempts = pending.attempts + 1;
    const next = now + retry.backoffMs * 2 ** (attempts - 1);
    if (attempts >= retry.attempts || next >= pending.githubExpiresAt) return finish('gave_up', 'error', { error: message });
    await deps.store.retry(pending.id, attempts, next);
    deps.log.warn('github token revocation', {
      ...fields,
      outcome: 'retrying',
      attempts,
      next_attempt_at: new Date(next).toISOString(),
      error: message,
      code: error instanceof GitHubError ? error.code : undefined,
    });
    return 'retrying';
  }
}
