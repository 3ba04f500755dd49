import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { describeNetworkError, type FetchLike } from './retrying-fetch.ts';
import { KeywayError } from '../../core/errors/keyway-error.ts';

/** Where a job's own OIDC token comes from. `read` asks for one with `audience` where the CI lets it choose. */
export interface CiTokenSource {
  /** For the job log, e.g. "GitHub Actions". */
  readonly name: string;
  read(audience: string): Promise<string>;
  /**
   * Every read gives a new token (GitHub Actions' token service mints one per request): a retried exchange then asks for
   * one, since the broker may have used up the one it sent. Where it is not set, a read gives the same token again.
   */
  readonly renews?: true;
}

/** The job has no OIDC token to offer: a missing permission, variable or file. Exit code 3. */
export class CiTokenError extends KeywayError {
  override readonly name = 'CiTokenError';
  readonly code = 'ci_token_unavailable';
}

export type Environment = Readonly<Record<string, string | undefined>>;

export const SOURCE_NAMES = ['github', 'gitlab', 'circleci', 'buildkite', 'kubernetes', 'google'] as const;
export type SourceName = (typeof SOURCE_NAMES)[number];

export interface SourceSelection {
  /** `--from`: a source by name instead of detecting one. */
  readonly from?: SourceName | undefined;
  /** `--token-env`: the variable that holds the token (GitLab: the `id_tokens` name). */
  readonly tokenEnv?: string | undefined;
  /** `--subject-token-file`: a file holding the token, `-` for standard input. */
  readonly tokenFile?: string | undefined;
}

export interface SourceContext {
  readonly env: Environment;
  readonly fetch: FetchLike;
}

/** Where keyway reads a Kubernetes projected service-account token minted for the broker (see docs/ci/kubernetes.md). */
export const KUBERNETES_TOKEN_FILE = '/var/run/secrets/keyway/token';
export const GITLAB_DEFAULT_TOKEN_ENV = 'KEYWAY_ID_TOKEN';
const MAX_TOKEN_BYTES = 64 * 1024;

/** In order: each CI's marker variable, set in every job. */
const DETECTION: readonly (readonly [SourceName, (env: Environment) => boolean])[] = [
  ['github', (env) => env['GITHUB_ACTIONS'] === 'true'],
  ['gitlab', (env) => env['GITLAB_CI'] === 'true'],
  ['circleci', (env) => env['CIRCLECI'] === 'true'],
  ['buildkite', (env) => env['BUILDKITE'] === 'true'],
  ['kubernetes', (env) => Boolean(env['KUBERNETES_SERVICE_HOST'])],
  ['google', (env) => Boolean(env['GCE_METADATA_HOST'])],
];

/**
 * Picks the source: explicit options first, then the CI the environment says this is. Each CI
 * sets a marker variable in every job; Kubernetes sets KUBERNETES_SERVICE_HOST in every pod;
 * GCE_METADATA_HOST is the variable Google's own client libraries read for the metadata server.
 */
export function selectCiTokenSource(selection: SourceSelection, context: SourceContext): CiTokenSource {
  const { env } = context;
  if (selection.tokenFile !== undefined) return tokenFile(selection.tokenFile);
  if (selection.tokenEnv !== undefined) return environmentVariable(selection.tokenEnv, env, `set ${selection.tokenEnv} to the job's OIDC token`);
  const detected = selection.from ?? DETECTION.find(([, present]) => present(env))?.[0];
  switch (detected) {
    case 'github':
      return githubActions(context);
    case 'gitlab':
      return environmentVariable(
        GITLAB_DEFAULT_TOKEN_ENV,
        env,
        `declare it on the job: id_tokens: { ${GITLAB_DEFAULT_TOKEN_ENV}: { aud: <the broker's URL> } }, or name your own with --token-env`,
      );
    case 'circleci':
      return environmentVariable('CIRCLE_OIDC_TOKEN_V2', env, 'CircleCI injects it into jobs of projects with OIDC tokens enabled');
    case 'buildkite':
      return buildkiteAgent();
    case 'kubernetes':
      return { ...tokenFile(KUBERNETES_TOKEN_FILE), name: `Kubernetes (${KUBERNETES_TOKEN_FILE})` };
    case 'google':
      return googleMetadata(context);
    case undefined:
      throw new CiTokenError(
        'no CI OIDC token found: this does not look like GitHub Actions, GitLab CI, CircleCI, Buildkite, Kubernetes or Google Cloud; pass --subject-token-file, --token-env or --from',
      );
  }
}

export const NO_GITHUB_ID_TOKEN =
  'GitHub Actions offers this job no OIDC token: give the job `permissions: id-token: write` (pull_request runs from forks never get one)';

/** The GitHub Actions token service: `$ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with the request token. */
function githubActions({ env, fetch }: SourceContext): CiTokenSource {
  return {
    name: 'GitHub Actions',
    renews: true,
    async read(audience) {
      const requestUrl = env['ACTIONS_ID_TOKEN_REQUEST_URL'];
      const requestToken = env['ACTIONS_ID_TOKEN_REQUEST_TOKEN'];
      if (!requestUrl || !requestToken) {
        throw new CiTokenError(NO_GITHUB_ID_TOKEN);
      }
      const url = new URL(requestUrl);
      url.searchParams.set('audience', audience);
      const response = await ask('the GitHub Actions token service', fetch, url.href, {
        headers: { authorization: `bearer ${requestToken}`, accept: 'application/json' },
      });
      if (!response.ok) throw new CiTokenError(`the GitHub Actions token service answered ${response.status}`);
      const body = (await response.json().catch(() => undefined)) as { value?: unknown } | undefined;
      if (typeof body?.value !== 'string') throw new CiTokenError('the GitHub Actions token service answered without a token');
      return checkJwtShape(body.value, 'GitHub Actions');
    },
  };
}

/** A CI token service's answer; what kept it from answering (after the retries: unreachable, too long an answer) is a CiTokenError. */
async function ask(service: string, fetch: FetchLike, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (error) {
    throw new CiTokenError(`${service}: ${describeNetworkError(error)}`, { cause: error });
  }
}

/** Google's metadata server: an ID token for the attached service account, with our audience. */
function googleMetadata({ env, fetch }: SourceContext): CiTokenSource {
  const host = env['GCE_METADATA_HOST'] || 'metadata.google.internal';
  return {
    name: `Google metadata server (${host})`,
    async read(audience) {
      const url = new URL(`http://${host}/computeMetadata/v1/instance/service-accounts/default/identity`);
      url.searchParams.set('audience', audience);
      url.searchParams.set('format', 'full');
      const response = await ask('the Google metadata server', fetch, url.href, { headers: { 'metadata-flavor': 'Google' } });
      if (!response.ok) throw new CiTokenError(`the Google metadata server answered ${response.status}`);
      // Anything else answering on that address is not the metadata server.
      if (response.headers.get('metadata-flavor') !== 'Google') throw new CiTokenError(`${host} is not a Google metadata server`);
      return checkJwtShape(await response.text(), 'the Google metadata server');
    },
  };
}

/** `buildkite-agent oidc request-token --audience …`: the agent asks Buildkite for the job's token. */
function buildkiteAgent(): CiTokenSource {
  return {
    name: 'Buildkite',
    read: (audience) =>
      new Promise((resolve, reject) => {
        execFile(
          'buildkite-agent',
          ['oidc', 'request-token', '--audience', audience],
          { timeout: 30_000, maxBuffer: MAX_TOKEN_BYTES },
          (error, stdout, stderr) => {
            if (error === null) return resolve(checkJwtShape(stdout, 'buildkite-agent'));
            if ((error as NodeJS.ErrnoException).code === 'ENOENT') return reject(new CiTokenError('buildkite-agent is not on PATH'));
            reject(new CiTokenError(`buildkite-agent oidc request-token failed: ${stderr.trim() || error.message}`));
          },
        );
      }),
  };
}

function environmentVariable(name: string, env: Environment, hint: string): CiTokenSource {
  return {
    name: `$${name}`,
    async read() {
      const value = env[name];
      if (!value) throw new CiTokenError(`$${name} is not set: ${hint}`);
      return checkJwtShape(value, `$${name}`);
    },
  };
}

function tokenFile(path: string): CiTokenSource {
  const stdin = path === '-';
  return {
    name: stdin ? 'standard input' : path,
    async read() {
      let content: string;
      try {
        content = stdin ? await text(process.stdin) : await readFile(path, 'utf8');
      } catch (error) {
        throw new CiTokenError(`cannot read the token from ${path}: ${(error as Error).message}`);
      }
      if (content.length > MAX_TOKEN_BYTES) throw new CiTokenError(`${stdin ? 'standard input' : path} holds more than a token`);
      return checkJwtShape(content, stdin ? 'standard input' : path);
    },
  };
}

/** A compact JWS, before it is sent anywhere: a clear local error beats the broker's 400. */
function checkJwtShape(value: string, from: string): string {
  const token = value.trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) throw new CiTokenError(`what ${from} gave is not a JWT`);
  return token;
}
