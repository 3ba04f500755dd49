/** A positive whole number as GitHub writes ids and counts in claims and payloads: digits, no leading zero. */
const GITHUB_NUMBER = /^[1-9]\d{0,19}$/;

const githubNumberText = (value: unknown): string | undefined => {
  const text = typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
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

/**
 * What ended in a CI run: one job, by its check run (undefined when the webhook named none usable), or the whole run;
 * either of one attempt (undefined when the webhook named none): a later attempt's tokens, a re-run already under
 * way, are not taken by it.
 */
export type RunEnd =
  | { readonly kind: 'job'; readonly checkRunId: string | undefined; readonly attempt: number | undefined }
  | { readonly kind: 'run'; readonly attempt: number | undefined };
