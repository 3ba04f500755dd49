// The GitHub Action's main step: the job's OIDC token for a keyway access token, as step outputs;
// in proxy mode, `keyway-proxy` for later steps instead.
import { selectCiTokenSource } from '../../src/cli/pipeline/ci-token-sources.ts';
import { exchangeForTokenMap, exchangeWithBroker } from '../../src/cli/pipeline/exchange-with-broker.ts';
import { addMask, annotation, appendEnvironmentFile } from '../../src/cli/pipeline/github-commands.ts';
import { describeFailure, grantLine, retryLine } from '../../src/cli/pipeline/job-log.ts';
import { jobLogLine } from '../../src/cli/pipeline/job-log-line.ts';
import { DEFAULT_RETRY_POLICY, retryingFetch, type RetryingFetch } from '../../src/cli/pipeline/retrying-fetch.ts';
import { GITHUB_INSTALLATION_TOKEN_TYPE, REVOCATIONS } from '../../src/cli/pipeline/revoke-token.ts';
import { CLOUD_TOKEN_TYPE } from '../../src/cli/pipeline/aws-delivery.ts';
import { cloudDeliveryOf, deliverCloudCredentials } from '../../src/cli/pipeline/cloud-delivery-options.ts';
import { ownerOutput, tokenMapGrantLines } from '../../src/cli/pipeline/token-map-delivery.ts';
import { installProxy } from './install-proxy.ts';
import { actionInput, REVOKE_STATE } from './runner.ts';

const log = (line: string): void => {
  process.stdout.write(jobLogLine(line));
};
const mask = (token: string): void => {
  process.stdout.write(addMask(token));
};

async function main(): Promise<void> {
  const url = actionInput('url');
  if (url === '' || !URL.canParse(url)) throw new Error("the `url` input must be the broker's URL");
  if (actionInput('proxy') !== '') return installProxy(url, actionInput('proxy'), actionInput, log);
  const fetch = retryingFetch(DEFAULT_RETRY_POLICY, (notice) => log(retryLine(notice)));
  if (actionInput('github-token-map') === 'true') return tokenMap(url, fetch);
  const cloud = actionInput('cloud') === '' ? undefined : cloudDeliveryOf((name) => actionInput(name) || undefined, [], process.env);
  const issued = await exchangeWithBroker({
    url: new URL(url),
    source: selectCiTokenSource({ from: 'github' }, { env: process.env, fetch }),
    audiences:
      cloud === undefined
        ? [...actionInput('audience').split(/\s+/), ...actionInput('repositories').split(/\s+/)].filter(Boolean)
        : [cloud.identity].filter((identity) => identity !== undefined),
    scopes: cloud === undefined ? actionInput('scope').split(/\s+/).filter(Boolean) : [],
    requestedTokenType: cloud !== undefined ? CLOUD_TOKEN_TYPE : actionInput('github-token') === 'true' ? GITHUB_INSTALLATION_TOKEN_TYPE : undefined,
    fetch,
    log,
    mask,
  });
  mask(issued.accessToken);
  if (cloud !== undefined) {
    // The keyway token goes to the cloud only; later steps get the cloud's credentials, masked.
    log(grantLine(issued));
    if ((await deliverCloudCredentials(cloud, issued, { env: process.env, fetch, log })) !== 0) process.exitCode = 1;
    return;
  }
  // Saved for the post step before the outputs, which can fail: a token minted is a token to take back.
  if (issued.issuedTokenType !== undefined && REVOCATIONS.has(issued.issuedTokenType)) {
    appendEnvironmentFile(
      process.env['GITHUB_STATE'],
      'GITHUB_STATE',
      REVOKE_STATE,
      JSON.stringify({ type: issued.issuedTokenType, token: issued.accessToken, broker: url }),
    );
  }
  appendEnvironmentFile(process.env['GITHUB_OUTPUT'], 'GITHUB_OUTPUT', 'token', issued.accessToken);
  appendEnvironmentFile(process.env['GITHUB_OUTPUT'], 'GITHUB_OUTPUT', 'expires-at', issued.expiresAt.toISOString());
  log(grantLine(issued));
}

/**
 * github-token-map: one GitHub installation token per owner of `repositories`, all or none. Each is masked first, then set
 * as output `token-<owner>` (and `expires-at-<owner>`), `owners` lists them; the post step revokes every one.
 */
async function tokenMap(url: string, fetch: RetryingFetch): Promise<void> {
  if (actionInput('cloud') !== '' || actionInput('github-token') === 'true' || actionInput('audience') !== '') {
    throw new Error('github-token-map asks for the owners of `repositories`: not with cloud, github-token or audience');
  }
  const issued = await exchangeForTokenMap({
    url: new URL(url),
    source: selectCiTokenSource({ from: 'github' }, { env: process.env, fetch }),
    audiences: actionInput('repositories').split(/\s+/).filter(Boolean),
    scopes: actionInput('scope').split(/\s+/).filter(Boolean),
    fetch,
    log,
    mask,
    env: process.env,
  });
  for (const token of issued.tokens) mask(token.accessToken);
  // Saved for the post step before anything else can fail: a token minted is a token to take back.
  const tokens = issued.tokens.map((token) => token.accessToken);
  appendEnvironmentFile(
    process.env['GITHUB_STATE'],
    'GITHUB_STATE',
    REVOKE_STATE,
    JSON.stringify({ type: GITHUB_INSTALLATION_TOKEN_TYPE, tokens, broker: url }),
  );
  for (const token of issued.tokens) {
    appendEnvironmentFile(process.env['GITHUB_OUTPUT'], 'GITHUB_OUTPUT', ownerOutput('token', token.owner), token.accessToken);
    appendEnvironmentFile(process.env['GITHUB_OUTPUT'], 'GITHUB_OUTPUT', ownerOutput('expires-at', token.owner), token.expiresAt.toISOString());
  }
  appendEnvironmentFile(process.env['GITHUB_OUTPUT'], 'GITHUB_OUTPUT', 'owners', issued.tokens.map((token) => token.owner).join(' '));
  for (const line of tokenMapGrantLines(issued)) log(line);
}

try {
  await main();
} catch (error) {
  const failure = describeFailure(error);
  for (const line of failure?.lines ?? []) log(line);
  process.stdout.write(annotation('error', `keyway: ${failure?.lines[0] ?? (error as Error).message}`));
  process.exitCode = 1;
}
