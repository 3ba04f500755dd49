// The GitHub Action's post step: hands back what the main step obtained and can be revoked.
import { annotation } from '../../src/cli/pipeline/github-commands.ts';
import { jobLogLine } from '../../src/cli/pipeline/job-log-line.ts';
import { DEFAULT_RETRY_POLICY, retryingFetch } from '../../src/cli/pipeline/retrying-fetch.ts';
import { REVOCATIONS } from '../../src/cli/pipeline/revoke-token.ts';
import { REVOKE_STATE } from './runner.ts';

const log = (line: string): void => {
  process.stdout.write(jobLogLine(line));
};

async function post(): Promise<void> {
  const saved = process.env[`STATE_${REVOKE_STATE}`];
  if (!saved) return log('nothing to revoke: keyway access tokens expire on their own');
  // One token, or (github-token-map) one per owner, and the broker that issued them: it knows the GitHub they are revoked at.
  // Its URL as the main step used it, not the `url` input again: the runner evaluates a post step's inputs anew, and one
  // that reads what a later step can change (`${{ env.… }}`, through GITHUB_ENV) would send the live tokens there.
  const state = JSON.parse(saved) as { type: string; token?: string; tokens?: string[]; broker: string };
  const { type, token, tokens } = state;
  const revoke = REVOCATIONS.get(type);
  if (revoke === undefined) return log(`nothing to revoke: no revocation for ${type}`);
  const fetch = retryingFetch(DEFAULT_RETRY_POLICY, () => {});
  const broker = new URL(state.broker);
  for (const each of tokens ?? (token === undefined ? [] : [token])) {
    // Each on its own: one that cannot be revoked must not keep the others alive.
    await revoke(each, { broker, env: process.env, fetch }).then(log, warnNotRevoked);
  }
}

/** The job's work is done; a failed revocation is worth a warning, not a failed job (the token expires within the hour). */
function warnNotRevoked(error: unknown): void {
  process.stdout.write(annotation('warning', `keyway: could not revoke the token: ${(error as Error).message}`));
}

try {
  await post();
} catch (error) {
  warnNotRevoked(error);
}
