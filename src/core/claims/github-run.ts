/** A positive whole number as GitHub writes ids and counts in claims and payloads: digits, no leading zero. */
const GITHUB_NUMBER = /^[1-9]\d{0,19}$/;

/** A string or number claim as text. */
export const claimText = (value: unknown): string | undefined => (typeof value === 'string' || typeof value === 'number' ? String(value) : undefined);

const githubNumberText = (value: unknown): string | undefined => {
  const text = claimText(value);
  return text !== undefined && GITHUB_NUMBER.test(text) ? text : undefined;
};

/**
 * A GitHub Actions job's check run id as the `check_run_id` claim and the `workflow_job` webhook name it. Anything else
 * (an empty or padded value) names no job, so a token carrying it is treated as one without the claim (its run's, which
 * any job's end takes) rather than one no job's end would ever match.
 */
export function checkRunIdOf(value: unknown): string | undefined {
  return githubNumberText(value);
}

/** A run's attempt as the `run_attempt` claim and the `workflow_run` webhook name it (1 for the first); undefined for anything else. */
export function runAttemptOf(value: unknown): number | undefined {
  const text = githubNumberText(value);
  return text === undefined || text.length > 6 ? undefined : Number(text);
}

/** The CI job a GitHub token is minted for, as its verified claims name it: what ends the token early (the `workflow_job` and `workflow_run` webhooks). */
export interface CiJob {
  readonly repositoryId: string | undefined;
  readonly runId: string | undefined;
  /**
   * Its job (`check_run_id` claim): only that job's end revokes the token. Undefined when its token had none (GitHub
   * Enterprise Server releases without the claim): then any job of the run does.
   */
  readonly checkRunId: string | undefined;
  /** Its run's attempt (`run_attempt` claim; undefined when its token had none): the end of an earlier attempt leaves it alone. */
  readonly runAttempt: number | undefined;
}

export function ciJobOf(claims: Readonly<Record<string, unknown>>): CiJob {
  return {
    repositoryId: claimText(claims['repository_id']),
    runId: claimText(claims['run_id']),
    checkRunId: checkRunIdOf(claims['check_run_id']),
    runAttempt: runAttemptOf(claims['run_attempt']),
  };
}

/**
 * The GitHub Actions job a verified token is of: `ciJobOf` its claims for a token of a GitHub issuer of `deployment`
 * (isGitHubActionsOf), none for any other: another kind of issuer's claims may name any repository and run ids, and another
 * deployment's number its own repositories and runs, which no webhook of this one speaks for.
 */
export function githubJobOf(
  verified: {
    readonly issuer: { readonly url: string; readonly preset: { readonly name: string } };
    readonly claims: Readonly<Record<string, unknown>>;
  },
  deployment: string | undefined,
): CiJob {
  return isGitHubActionsOf(deployment, { url: verified.issuer.url, kind: verified.issuer.preset.name })
    ? ciJobOf(verified.claims)
    : { repositoryId: undefined, runId: undefined, checkRunId: undefined, runAttempt: undefined };
}

/**
 * What ended in a CI run: one job, by its check run (undefined when the webhook named none usable), or the whole run;
 * either of one attempt (undefined when the webhook named none): a later attempt's tokens, a re-run already under
 * way, are not taken by it.
 */
export type RunEnd =
  | { readonly kind: 'job'; readonly checkRunId: string | undefined; readonly attempt: number | undefined }
  | { readonly kind: 'run'; readonly attempt: number | undefined };

/** github.com's Actions issuer host: its own tokens', and under it an enterprise's unique issuer (GHEC). */
const GITHUB_COM_ISSUER_HOST = 'token.actions.githubusercontent.com';
/** GHE.com (data residency): `api.SUB.ghe.com` and `token.actions.SUB.ghe.com` are of the deployment `SUB.ghe.com`. */
const GHE_COM = /^(?:api|token\.actions)\.([a-z0-9-]+\.ghe\.com)$/;

/**
 * The GitHub deployment a host is of, as its REST API (KEYWAY_GITHUB_API_URL) or its Actions issuer names it: `github.com`,
 * `SUB.ghe.com`, else the host itself (a GitHub Enterprise Server serves both, `/api/v3` and `/_services/token`). Each
 * deployment numbers its repositories and runs from its own counters: a server's repository 57 and run 1200 are no
 * github.com run's, nor another server's.
 */
export function githubDeploymentOf(url: string): string {
  // A fully qualified name's final dot (`api.github.com.`) names the same host: without it, the App's jobs would pass for another deployment's.
  const host = new URL(url).hostname.toLowerCase().replace(/\.$/, '');
  if (host === GITHUB_COM_ISSUER_HOST || host === 'api.github.com') return 'github.com';
  return GHE_COM.exec(host)?.[1] ?? host;
}

/**
 * Whether an issuer (its URL, and its kind as trusted or as recorded) is a GitHub Actions issuer of `deployment`
 * (githubDeploymentOf the App's API URL): its tokens' `repository_id`, `run_id` and `repository_owner_id` number that
 * deployment's repositories, runs and accounts, those its webhooks name and its installations are on. An undefined
 * deployment (not known: webhooks without an App, a policy tried offline) takes any GitHub Actions issuer.
 */
export function isGitHubActionsOf(deployment: string | undefined, issuer: { readonly url: string | null; readonly kind: string | null | undefined }): boolean {
  // Only a GitHub issuer's kind (github.com, GHE.com, a GHES) says its repository and run ids are ones GitHub gave.
  if (issuer.kind !== 'github') return false;
  return deployment === undefined || (issuer.url !== null && URL.canParse(issuer.url) && githubDeploymentOf(issuer.url) === deployment);
}
