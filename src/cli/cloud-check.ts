import { parseArgs } from 'node:util';
import { checkCloudDiscovery } from '../features/cloud/check-discovery.ts';
import { CLOUD_PROVIDERS, type CloudProvider } from '../core/policy/cloud-profile.ts';
import { ANSWER_BYTES, answerText } from './bounded-answer.ts';
import { CliError, type Command } from './command.ts';

const USAGE = `usage: keyway cloud check --url URL [--cloud PROVIDER]... [--json]

Fetches the broker's /.well-known/openid-configuration and its JWKS as a cloud's OIDC federation
does, and reports, per cloud, every field or key that cloud requires and would not find: the
issuer (exact, https, AWS: no port), response_types_supported, subject_types_supported,
id_token_signing_alg_values_supported, claims_supported, a key of the algorithm keyway signs
that cloud's tokens with (Azure: RS256), the JWKS Cache-Control and fetch time.

options:
  --url URL          the broker's issuer URL (KEYWAY_ISSUER), exactly as the clouds will be configured with it
  --cloud PROVIDER   ${CLOUD_PROVIDERS.join(', ')} (repeatable; default: all three)
  --json             print the findings as JSON

exit codes: 0 nothing missing, 1 something missing or the broker unreachable, 2 bad usage`;

const FETCH_TIMEOUT_MS = 10_000;

async function fetchJson(url: string): Promise<{ json: unknown; response: Response; milliseconds: number }> {
  const started = performance.now();
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers: { accept: 'application/json' } });
  } catch (error) {
    throw new CliError(`cannot fetch ${url}: ${error instanceof Error ? error.message : String(error)}`, 1);
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new CliError(`${url} answered ${response.status}`, 1);
  }
  const text = await answerText(response, ANSWER_BYTES.small, `GET ${url}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: the check reports every field it would have read as missing.
  }
  return { json, response, milliseconds: performance.now() - started };
}

export const cloudCheck: Command = {
  summary: "check the broker's discovery and JWKS against what AWS, Google Cloud and Azure require",
  usage: USAGE,
  async run(args) {
    const { values } = parseArgs({
      args: [...args],
      options: { url: { type: 'string' }, cloud: { type: 'string', multiple: true, default: [] }, json: { type: 'boolean', default: false } },
    });
    if (values.url === undefined) throw new CliError('--url is required');
    const unknown = values.cloud.filter((cloud) => !(CLOUD_PROVIDERS as readonly string[]).includes(cloud));
    if (unknown.length > 0) throw new CliError(`unknown cloud ${unknown.join(', ')}: one of ${CLOUD_PROVIDERS.join(', ')}`);
    const clouds = values.cloud.length === 0 ? CLOUD_PROVIDERS : (values.cloud as CloudProvider[]);
    const issuer = values.url;
    const discovery = await fetchJson(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
    const metadata = discovery.json as { jwks_uri?: unknown } | undefined;
    // The JWKS is fetched where the document says, as a cloud does; without one there is nothing to fetch.
    const jwks =
      typeof metadata?.jwks_uri === 'string' && URL.canParse(metadata.jwks_uri)
        ? await fetchJson(metadata.jwks_uri)
        : { json: undefined, response: undefined, milliseconds: 0 };
    const findings = checkCloudDiscovery(
      {
        issuer,
        metadata: discovery.json,
        jwks: jwks.json,
        jwksCacheControl: jwks.response?.headers.get('cache-control') ?? null,
        jwksMilliseconds: jwks.milliseconds,
      },
      clouds,
    );
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ issuer, clouds: findings })}\n`);
    } else {
      for (const { cloud, problems } of findings) {
        process.stdout.write(problems.length === 0 ? `${cloud}: ok\n` : `${cloud}: ${problems.length} missing\n${problems.map((p) => `  - ${p}\n`).join('')}`);
      }
    }
    return findings.some((finding) => finding.problems.length > 0) ? 1 : 0;
  },
};
