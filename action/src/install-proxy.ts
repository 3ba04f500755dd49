import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CiTokenError, NO_GITHUB_ID_TOKEN } from '../../src/cli/pipeline/ci-token-sources.ts';
import { appendEnvironmentFile } from '../../src/cli/pipeline/github-commands.ts';
import { PROXY_UPSTREAM_NAME } from '../../src/core/policy/proxy-upstream-name.ts';

/** The inputs of the other modes: proxy mode asks the broker for no token, so none of them applies. */
const TOKEN_INPUTS = ['audience', 'scope', 'repositories', 'cloud', 'role-arn', 'aws-region', 'service-account', 'client-id', 'tenant-id'] as const;

const quoted = (text: string): string => `'${text.replaceAll("'", "'\\''")}'`;

/**
 * Proxy mode: no token, no background process. Writes `keyway-proxy` (this action's bundled
 * `keyway proxy`, run by the runner's own Node, with the broker and upstream filled in) to a
 * directory on $GITHUB_PATH, so a later step runs `keyway-proxy -- COMMAND` and gets a forwarder
 * for exactly that command's life. Nothing secret is written anywhere: each run makes its own.
 */
export function installProxy(url: string, upstream: string, input: (name: string) => string, log: (line: string) => void): void {
  if (!PROXY_UPSTREAM_NAME.test(upstream)) throw new Error('the `proxy` input names one of the broker’s upstreams, e.g. github');
  const others = [
    ...TOKEN_INPUTS.filter((name) => input(name) !== ''),
    ...(['github-token', 'github-token-map'] as const).filter((name) => input(name) === 'true'),
  ];
  if (others.length > 0) throw new Error(`proxy mode asks the broker for no token: it does not combine with ${others.join(', ')}`);
  if (!process.env['ACTIONS_ID_TOKEN_REQUEST_URL'] || !process.env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']) {
    throw new CiTokenError(NO_GITHUB_ID_TOKEN);
  }
  const runnerTemp = process.env['RUNNER_TEMP'];
  if (!runnerTemp) throw new Error('$RUNNER_TEMP is not set: this is not a GitHub Actions step');
  const directory = join(runnerTemp, 'keyway-bin');
  const command = join(directory, 'keyway-proxy');
  const bundle = join(dirname(fileURLToPath(import.meta.url)), 'proxy.mjs');
  mkdirSync(directory, { recursive: true });
  writeFileSync(
    command,
    `#!/bin/sh\n# Written by the keyway action (proxy: ${upstream}): keyway proxy, run by the runner's Node.\n` +
      `exec ${quoted(process.execPath)} ${quoted(bundle)} --upstream ${quoted(upstream)} --url ${quoted(url)} "$@"\n`,
    { mode: 0o755 },
  );
  appendFileSync(requiredFile('GITHUB_PATH'), `${directory}\n`, 'utf8');
  appendEnvironmentFile(process.env['GITHUB_OUTPUT'], 'GITHUB_OUTPUT', 'proxy-command', command);
  log(`proxy mode: later steps run \`keyway-proxy -- COMMAND\` (${command}); each run has its own forwarder, and no step gets a token`);
}

function requiredFile(variable: string): string {
  const path = process.env[variable];
  if (!path) throw new Error(`$${variable} is not set: this is not a GitHub Actions step`);
  return path;
}
