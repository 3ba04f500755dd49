import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { isLoopbackHttpUrl } from '../core/outbound/loopback-http-url.ts';
import { PROXY_UPSTREAM_NAME } from '../core/policy/proxy-upstream-name.ts';
import { selectCiTokenSource, SOURCE_NAMES, type CiTokenSource, type SourceName } from './pipeline/ci-token-sources.ts';
import { execInEnvironment } from './pipeline/exec-with-token.ts';
import { maskInActions } from './pipeline/hand-over-environment.ts';
import { reportFailure, retryLine } from './pipeline/job-log.ts';
import { jobLogLine } from './pipeline/job-log-line.ts';
import { forwarderBypass, GH_LOCALHOST_API, proxyEnvironment } from './pipeline/proxy-environment.ts';
import { startForwarder } from './pipeline/proxy-forwarder.ts';
import { refreshingCiToken } from './pipeline/refreshing-ci-token.ts';
import { DEFAULT_RETRY_POLICY, retryingFetch } from './pipeline/retrying-fetch.ts';
import { CliError, type Command, splitAtCommand } from './command.ts';

/** A CI token this close to its expiry is replaced before it is sent. */
const REFRESH_BEFORE_SECONDS = 60;
/** How long the broker may stay silent on one request before the command gets a 502. */
const IDLE_TIMEOUT_MS = 120_000;

const USAGE = `usage: keyway proxy --upstream NAME [options] -- COMMAND [ARG...]

Runs COMMAND with no token in its environment: its calls to the upstream go to a forwarder on
127.0.0.1, which sends each one to {broker}/proxy/NAME/... with this job's CI token; the broker
decides, calls the upstream with a credential that never leaves it, and the answer comes back.
The CI token is requested with the broker as its audience and read again before it expires.

options:
  --upstream NAME           the broker's upstream, e.g. github (required)
  --url URL                 the broker's URL (its KEYWAY_ISSUER); default $KEYWAY_URL
  --from SOURCE             take the CI token from ${SOURCE_NAMES.join(', ')} (default: detected)
  --token-env NAME          take the CI token from variable NAME (GitLab: the id_tokens name; default KEYWAY_ID_TOKEN)
  --subject-token-file PATH take the CI token from PATH
  --subject-audience AUD    request the CI token for AUD instead of the broker's URL
  --retries N               retries of the CI token service's network errors and 5xx answers (default ${DEFAULT_RETRY_POLICY.attempts - 1}, at most 10)

COMMAND's environment: KEYWAY_PROXY_URL (the forwarder, http://127.0.0.1:PORT) and
KEYWAY_PROXY_SECRET (this run's key to the forwarder, not a GitHub credential). With
--upstream github also GITHUB_API_URL and GITHUB_GRAPHQL_URL (the forwarder), GITHUB_TOKEN and
GH_TOKEN (the per-run secret), GH_HOST=github.localhost and HTTP_PROXY (the forwarder), so gh
and REST clients call through it. GITHUB_TOKEN, GH_TOKEN, GH_ENTERPRISE_TOKEN,
GITHUB_ENTERPRISE_TOKEN, the Actions token service (ACTIONS_ID_TOKEN_REQUEST_*,
ACTIONS_RUNTIME_TOKEN), CircleCI's CIRCLE_OIDC_TOKEN and CIRCLE_OIDC_TOKEN_V2 and any
variable holding the CI token are withheld.
The broker's refusals (answers with Keyway-Error) are logged on standard error with their code.

exit codes: COMMAND's status, 2 bad usage, 3 no CI token (COMMAND does not run)`;

export const proxy: Command = {
  summary: "run a command whose upstream calls go through the broker's proxy, with no token in its environment",
  usage: USAGE,
  async run(argv) {
    const { args, command } = splitAtCommand(argv);
    const { values } = parseArgs({
      args,
      options: {
        upstream: { type: 'string' },
        url: { type: 'string' },
        from: { type: 'string' },
        'token-env': { type: 'string' },
        'subject-token-file': { type: 'string' },
        'subject-audience': { type: 'string' },
        retries: { type: 'string', default: String(DEFAULT_RETRY_POLICY.attempts - 1) },
      },
      strict: true,
    });
    const upstream = values.upstream;
    if (upstream === undefined || !PROXY_UPSTREAM_NAME.test(upstream)) throw new CliError("--upstream names one of the broker's upstreams, e.g. github");
    const url = values.url ?? process.env['KEYWAY_URL'];
    if (!url) throw new CliError('--url is required (or set KEYWAY_URL): the broker, e.g. https://keyway.example.com');
    if (!URL.canParse(url)) throw new CliError(`--url ${url} is not a URL`);
    const broker = new URL(url);
    if (broker.protocol !== 'https:' && !isLoopbackHttpUrl(broker))
      throw new CliError('--url must be https, unless the broker is on this machine (127.0.0.1, localhost, [::1])');
    const from = values.from;
    if (from !== undefined && !(SOURCE_NAMES as readonly string[]).includes(from)) throw new CliError(`--from is one of ${SOURCE_NAMES.join(', ')}`);
    if (values['subject-token-file'] === '-') throw new CliError("--subject-token-file - is not possible here: standard input is the command's");
    const retries = Number(values.retries);
    if (!Number.isInteger(retries) || retries < 0 || retries > 10) throw new CliError('--retries is a whole number from 0 to 10');
    if (command.length === 0) throw new CliError('a command to run is required after --');

    const log = (line: string) => process.stderr.write(jobLogLine(line));
    const fetch = retryingFetch({ ...DEFAULT_RETRY_POLICY, attempts: retries + 1 }, (notice) => log(retryLine(notice)));
    const audience = values['subject-audience'] ?? url.replace(/\/$/, '');
    let ciToken: () => Promise<string>;
    let first: string;
    try {
      const selected = selectCiTokenSource(
        { from: from as SourceName | undefined, tokenEnv: values['token-env'], tokenFile: values['subject-token-file'] },
        { env: process.env, fetch },
      );
      // Masked as each is read, before a refusal the job log shows (the broker's, or an error page's in front of it) could quote it.
      const source: CiTokenSource = {
        name: selected.name,
        read: async (wanted) => {
          const token = await selected.read(wanted);
          maskInActions([token], process.env);
          return token;
        },
      };
      ciToken = refreshingCiToken(source, audience, {
        refreshBeforeSeconds: REFRESH_BEFORE_SECONDS,
        onRead: ({ sha256, expiresAt }) =>
          log(
            `CI token from ${source.name} (audience ${audience}), sha256 ${sha256}, expires ${expiresAt?.toISOString() ?? 'never (read again for each request)'}`,
          ),
      });
      // Read once before the command runs: a job without a CI token fails here, clearly, not on its first call.
      first = await ciToken();
    } catch (error) {
      return reportFailure(error, log);
    }

    const bypass = upstream === 'github' ? forwarderBypass(process.env) : undefined;
    if (bypass !== undefined) {
      log(
        `${bypass} covers ${GH_LOCALHOST_API}: gh calls it itself, not through this forwarder, and fails or sends the per-run secret ` +
          "to whatever listens on port 80 here; leave that entry out of the command's environment",
      );
    }
    const secret = randomBytes(32).toString('base64url');
    const forwarder = await startForwarder({ broker, upstream, secret, ciToken, log, idleTimeoutMs: IDLE_TIMEOUT_MS });
    log(`proxy: ${forwarder.url} → ${broker.origin}${broker.pathname.replace(/\/$/, '')}/proxy/${upstream}/ for ${command[0]}`);
    try {
      return await execInEnvironment(command, proxyEnvironment(process.env, { url: forwarder.url, secret }, [first], upstream), log);
    } finally {
      await forwarder.close();
      const { forwarded, refusedByBroker, refusedHere } = forwarder.counts;
      log(`proxy: ${forwarded} request(s) forwarded (${refusedByBroker} answered with Keyway-Error), ${refusedHere} refused here`);
    }
  },
};
