import * as v from 'valibot';
import { cloudOfAudience } from '../../core/policy/cloud-profile.ts';
import { parseYamlFile, type Position } from '../../core/policy/parse-yaml-file.ts';
import { PROXY_UPSTREAM_NAME } from '../../core/policy/proxy-upstream-name.ts';
import { ConfigError, type SettingsSource } from '../../core/settings/read-settings.ts';
import { isLoopbackHttpUrl } from '../../core/outbound/loopback-http-url.ts';
import { type WrittenForms, writtenFormsOf } from './capped-stream.ts';

/** What keyway holds back an upstream's answers and the caller's requests to, unless the operator says otherwise. */
export const DEFAULT_PROXY_LIMITS = {
  requestBytes: 1024 * 1024,
  responseBytes: 16 * 1024 * 1024,
  queryBytes: 2048,
  timeoutSeconds: 30,
  requestsPerMinute: 600,
} as const;

export type ProxyLimits = { readonly [K in keyof typeof DEFAULT_PROXY_LIMITS]: number };

/** How keyway authenticates to the upstream; the caller never sees the credential. */
export type UpstreamAuth =
  /** An installation token of the broker's GitHub App, scoped to the one repository and the permissions of the matched rule. */
  | { readonly kind: 'github-app' }
  /** A keyway JWT minted per request, `aud` this audience, `sub` the caller's. */
  | { readonly kind: 'keyway-jwt'; readonly audience: string }
  /** A secret keyway holds, sealed at rest under the master key; sent as `header: prefix + secret`. */
  | { readonly kind: 'static'; readonly header: string; readonly prefix: string; readonly sealed: string };

export interface UpstreamDeclaration {
  readonly name: string;
  /** The pinned base URL (no query or fragment); undefined for `github-app`, which calls the App's own API URL. */
  readonly url: string | undefined;
  readonly auth: UpstreamAuth;
  readonly limits: ProxyLimits;
}

/**
 * The longest static secret, in characters. nginx and Apache refuse a header line longer than 8 KB by default, so no
 * upstream behind them takes a longer one.
 */
export const MAX_STATIC_SECRET_LENGTH = 8192;

/**
 * The most bytes a static secret's redaction may look for (its WrittenForms' bytes), held from start at about 20 bytes each: some
 * 40 MB. An 8,192-character PEM key comes to 1.5 MB; as many characters that every encoder writes otherwise, 23 MB.
 */
export const MAX_STATIC_SECRET_REDACTION_BYTES = 2 * 1024 * 1024;

/**
 * The written forms of `secret`, which its redaction is built from (written once: for the longest secrets, a tenth of a
 * second), or why it cannot be a static upstream's: a problem for the operator, which never quotes it.
 */
export function staticSecretForms(secret: string): { readonly forms: WrittenForms } | { readonly problem: string } {
  if (secret.length > MAX_STATIC_SECRET_LENGTH)
    return { problem: `the secret is ${secret.length} characters, more than the ${MAX_STATIC_SECRET_LENGTH} a static secret may hold` };
  const forms = writtenFormsOf(secret);
  if (forms.bytes > MAX_STATIC_SECRET_REDACTION_BYTES) {
    return {
      problem: `the secret's written forms, which answers are searched for, come to ${forms.bytes} bytes, more than the ${MAX_STATIC_SECRET_REDACTION_BYTES} a static secret's may (characters JSON and other encoders escape take many forms)`,
    };
  }
  return { forms };
}

/** The purpose a static upstream secret is sealed for; its context is the upstream's name, so it opens for that upstream only. */
export const UPSTREAM_SECRET_PURPOSE = 'proxy-upstream-secret';

const Positive = (max: number) => v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(max));
const HEADER_NAME = /^[A-Za-z0-9-]{1,64}$/;
/** Headers a static secret may not go in: keyway sets or strips these itself. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'cookie']);

const Limits = v.strictObject({
  request_bytes: v.optional(Positive(1024 * 1024 * 1024)),
  response_bytes: v.optional(Positive(1024 * 1024 * 1024)),
  query_bytes: v.optional(Positive(16 * 1024)),
  timeout_seconds: v.optional(Positive(300)),
  requests_per_minute: v.optional(Positive(1_000_000)),
});

const Auth = v.variant('kind', [
  v.strictObject({ kind: v.literal('github-app') }),
  v.strictObject({ kind: v.literal('keyway-jwt'), audience: v.pipe(v.string(), v.minLength(1), v.maxLength(2048)) }),
  v.strictObject({
    kind: v.literal('static'),
    header: v.optional(
      v.pipe(
        v.string(),
        v.regex(HEADER_NAME, 'header is a header name'),
        v.check((name) => !RESERVED_HEADERS.has(name.toLowerCase()), 'header is one keyway sets itself'),
      ),
    ),
    prefix: v.optional(v.pipe(v.string(), v.regex(/^[\x20-\x7e]{0,32}$/, 'prefix is printable ASCII'))),
    sealed: v.pipe(v.string(), v.minLength(1)),
  }),
]);

const Upstream = v.strictObject({ url: v.optional(v.string()), auth: Auth, limits: v.optional(Limits) });
const ProxyFile = v.strictObject({ upstreams: v.record(v.pipe(v.string(), v.regex(PROXY_UPSTREAM_NAME, 'an upstream name is a-z, 0-9 and -')), Upstream) });

/** What the declarations are read against. */
export interface ProxyUpstreamContext {
  /** The broker's own issuer URL (KEYWAY_ISSUER), which no keyway-jwt upstream's audience may name. */
  readonly issuer: string;
  readonly allowHttpLoopback: boolean;
  /** Whether a GitHub App is configured, without which a github-app upstream cannot start. */
  readonly githubApp: boolean;
}

/**
 * The upstreams of proxy mode (docs/proxy.md): `KEYWAY_PROXY_UPSTREAMS`, the YAML text of the
 * declarations (on Workers a var, as every setting); on Node `KEYWAY_PROXY_UPSTREAMS_FILE` names a
 * file that holds it instead. No upstream declared: `/proxy/…` answers `proxy_upstream_unknown`.
 */
export function readProxyUpstreams(env: SettingsSource, context: ProxyUpstreamContext): readonly UpstreamDeclaration[] {
  const text = env['KEYWAY_PROXY_UPSTREAMS'];
  return typeof text === 'string' && text.trim() !== '' ? parseProxyUpstreams(text, context) : [];
}

/**
 * The declarations in `text`. A refusal names the line, column and key path and what is wrong, never the value: the text
 * holds upstream secrets, and the error is printed at start-up, into the broker's log.
 */
export function parseProxyUpstreams(text: string, context: ProxyUpstreamContext): readonly UpstreamDeclaration[] {
  const { issuer, allowHttpLoopback, githubApp } = context;
  const at = ({ line, column }: Position, message: string): string => `KEYWAY_PROXY_UPSTREAMS:${line}:${column} ${message}`;
  const parsed = parseYamlFile(text, ProxyFile, { nameWrittenKeys: false });
  if (!parsed.ok) throw new ConfigError(parsed.problems.map((problem) => at(problem, problem.message)).join('; '));
  return Object.entries(parsed.data.upstreams).map(([name, upstream]) => {
    const fail = (path: readonly string[], problem: string): ConfigError =>
      new ConfigError(at(parsed.locate(['upstreams', name, ...path]), `${['upstreams', name, ...path].join('.')} ${problem}`));
    if (upstream.auth.kind === 'github-app' && !githubApp) {
      throw fail([], 'needs the GitHub App (KEYWAY_GITHUB_APP_ID, KEYWAY_GITHUB_APP_PRIVATE_KEY): it is a github-app upstream');
    }
    if (upstream.auth.kind === 'github-app' && upstream.url !== undefined) {
      throw fail(['url'], "must go: a github-app upstream calls the GitHub App's API URL (KEYWAY_GITHUB_API_URL); it takes no url");
    }
    if (upstream.auth.kind !== 'github-app' && upstream.url === undefined) throw fail(['url'], 'is required');
    if (upstream.auth.kind === 'keyway-jwt') {
      const problem = upstreamAudienceProblem(upstream.auth.audience, issuer);
      if (problem !== undefined) throw fail(['auth', 'audience'], problem);
    }
    const auth: UpstreamAuth =
      upstream.auth.kind === 'static'
        ? { kind: 'static', header: upstream.auth.header ?? 'authorization', prefix: upstream.auth.prefix ?? 'Bearer ', sealed: upstream.auth.sealed }
        : upstream.auth;
    const limits = upstream.limits ?? {};
    return {
      name,
      url: upstream.url === undefined ? undefined : checkBaseUrl(upstream.url, (problem) => fail(['url'], problem), allowHttpLoopback),
      auth,
      limits: {
        requestBytes: limits.request_bytes ?? DEFAULT_PROXY_LIMITS.requestBytes,
        responseBytes: limits.response_bytes ?? DEFAULT_PROXY_LIMITS.responseBytes,
        queryBytes: limits.query_bytes ?? DEFAULT_PROXY_LIMITS.queryBytes,
        timeoutSeconds: limits.timeout_seconds ?? DEFAULT_PROXY_LIMITS.timeoutSeconds,
        requestsPerMinute: limits.requests_per_minute ?? DEFAULT_PROXY_LIMITS.requestsPerMinute,
      },
    };
  });
}

/**
 * Why a keyway-jwt upstream may not have this audience, or undefined. The upstream holds each token
 * keyway mints for it (60 s), so its audience may name no one else who takes a keyway access token:
 * a cloud's STS, as `grant.audience` may not (cloudOfAudience), nor keyway itself: the broker's
 * issuer is the audience of its operator APIs (which also want a scope; this token has none) and of
 * its own tokens as subject tokens at /token, and `{issuer}/proxy/{upstream}` that of a caller at
 * /proxy. `grant.audience` may name both: there the policy hands the token to its caller on purpose.
 * Compared as URLs (scheme and host without case, default port, dot segments resolved), stricter
 * than verification's exact match.
 */
function upstreamAudienceProblem(audience: string, issuer: string): string | undefined {
  const cloud = cloudOfAudience(audience);
  if (cloud !== undefined) return `is ${cloud}'s STS audience: a keyway access token for it would pass as a cloud token`;
  const url = URL.canParse(audience) ? new URL(audience) : undefined;
  if (url === undefined || url.origin !== issuer) return undefined;
  if (url.pathname === '/' && url.search === '' && url.hash === '') {
    return "is the broker's own issuer (KEYWAY_ISSUER), the audience of keyway's operator APIs and of its own tokens at /token: the upstream could present the token back to keyway";
  }
  if (url.pathname === '/proxy' || url.pathname.startsWith('/proxy/')) {
    return "is under the broker's own /proxy: the upstream could present the token to keyway as the caller";
  }
  return undefined;
}

/** A pinned base: https (http on loopback in development only), no credentials, query or fragment; a trailing / is dropped. */
function checkBaseUrl(text: string, fail: (problem: string) => ConfigError, allowHttpLoopback: boolean): string {
  if (!URL.canParse(text)) throw fail('is not a URL');
  const url = new URL(text);
  if (url.protocol !== 'https:' && !(allowHttpLoopback && isLoopbackHttpUrl(url))) throw fail('must use https');
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') throw fail('must have no credentials, query or fragment');
  return url.href.replace(/\/$/, '');
}
