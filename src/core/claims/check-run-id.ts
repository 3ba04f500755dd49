/**
 * A GitHub Actions job's check run id as the `check_run_id` claim and the `workflow_job` webhook name it: digits, no
 * leading zero. Anything else (an empty or padded value) names no job, so a token carrying it is treated as one without
 * the claim (its run's, which any job's end takes) rather than one no job's end would ever match.
 */
export function checkRunIdOf(value: unknown): string | undefined {
  const text = typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
  return text !== undefined && /^[1-9]\d{0,19}$/.test(text) ? text : undefined;
}

/** What ended in a CI run: one job, by its check run (undefined when the webhook named none usable), or the whole run. */
export type RunEnd = { readonly kind: 'job'; readonly checkRunId: string | undefined } | { readonly kind: 'run' };
