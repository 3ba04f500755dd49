import { connectionNamed, isHopByHop } from './hop-by-hop.ts';
/**
 * Which headers cross the proxy. Hop-by-hop headers (RFC 9110 §7.6.1) and whatever `Connection`
 * names are dropped both ways; the caller's credentials and forwarding claims never reach the
 * upstream; the upstream's cookies and anything claiming to be keyway's own error never reach the caller.
 */
/**
 * Never forwarded upstream: the caller's credentials, what would let it name the target host or the client (the
 * headers servers and frameworks read a client address or original host from), and what fetch sets itself.
 * `accept-encoding` too: keyway asks for the codings fetch decodes (DECODED_CODINGS) and passes on identity bodies only.
 * `range` and `if-range`: a slice of an answer that echoes the credential holds a piece of it, which no redaction of the
 * whole value finds, and two slices make it whole again; the caller gets the whole answer, redacted.
 */
const CALLER_ONLY = [
  'authorization',
  'cookie',
  'dpop',
  'forwarded',
  'host',
  'x-host',
  'x-original-host',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  'fastly-client-ip',
  'client-ip',
  'x-originating-ip',
  'x-remote-addr',
  'x-remote-ip',
  'x-forwarded',
  'forwarded-for',
  'x-original-forwarded-for',
  'wl-proxy-client-ip',
  'x-proxyuser-ip',
  'x-azure-clientip',
  'x-appengine-user-ip',
  'via',
  'content-length',
  'expect',
  'origin',
  'referer',
  'accept-encoding',
  'range',
  'if-range',
];

/**
 * Never passed back: the upstream's cookies, what no longer describes the body fetch decoded and keyway streams
 * (`content-encoding`, `content-length`), keyway's own marker (an upstream cannot pass for a keyway error), and what a
 * client applies to the whole origin that answered, keyway's (another endpoint for it, its HSTS policy, clearing its
 * cookies and storage).
 */
const UPSTREAM_ONLY = [
  'set-cookie',
  'set-cookie2',
  'content-length',
  'content-encoding',
  'keyway-error',
  'alt-svc',
  'strict-transport-security',
  'clear-site-data',
  // Network Error Logging: a policy a browser keeps for the origin, reporting its later requests (URLs, statuses) to the
  // Report-To endpoints the same answer names.
  'nel',
  'report-to',
  // What the server or CDN in front of keyway (docs/operations/node.md: a TLS reverse proxy) takes from the answer it
  // relays as said to itself: how long to cache it for everyone who asks that URL, with or without a credential
  // (Akamai's `Edge-Control`, whose `!no-store` caches it even against Cache-Control).
  'surrogate-control',
  'edge-control',
];

/**
 * RFC 9213's targeted cache controls, never passed back either: `CDN-Cache-Control` and each CDN's own
 * (`Cloudflare-`, `Vercel-`, `Netlify-CDN-Cache-Control`), which the CDN it names obeys instead of Cache-Control.
 */
const TARGETED_CACHE_CONTROL = /(?:^|-)cdn-cache-control$/i;

/**
 * Never passed back either, by prefix: what such a server acts on in an answer it relays. nginx's `X-Accel-Redirect`
 * (on by default) serves another URI in its place, `internal` locations included, and replays the caller's request
 * headers (its CI token among them) there; `X-Accel-Expires` caches it whatever Cache-Control says. Apache's and
 * lighttpd's `X-Sendfile` (`-Temporary`, `2`) and `X-LIGHTTPD-send-file` serve a file from that server's disk. Envoy's
 * `x-envoy-*` mark the host that answered (keyway) failed or degraded for its health checks and load balancing.
 */
const UPSTREAM_ONLY_PREFIXES = ['x-accel-', 'x-sendfile', 'x-lighttpd-send-', 'x-envoy-'];

/**
 * Headers that ask the upstream to act as someone other than keyway's credential: GitLab's `Sudo` (an administrator's
 * token acts as the user it names), Kubernetes' `Impersonate-User`, `-Group`, `-Uid` and `-Extra-*`, Elasticsearch's
 * `es-security-runas-user`, Gerrit's `X-Gerrit-RunAs`, and the user, groups or email an authenticating proxy in front of
 * a server vouches for (Authelia's `Remote-User`, `-Groups`, `-Name` and `-Email`, Kubernetes request-header auth's `X-Remote-User`,
 * `-Group` and `-Extra-*` (not `X-Remote-Addr`: a client address, dropped with the others), nginx auth_request's usual
 * `X-User` and `X-Email`; Grafana's and Gitea's `X-WEBAUTH-*`, oauth2-proxy's `X-Auth-Request-*`, Louketo's
 * `X-Auth-Username` and the like, Kong's `X-Consumer-*`, `X-Authenticated-*` and `X-Userinfo`, Pomerium's
 * `X-Pomerium-Claim-*`, Tailscale's `Tailscale-User-*`, Google IAP's `X-Goog-Authenticated-User-*` and `X-Goog-IAP-*`,
 * AWS ALB's `X-Amzn-Oidc-*`, Azure App Service's `X-MS-Client-Principal*` and `X-MS-TOKEN-*` (the user's own tokens it
 * hands the app), authentik's `X-authentik-*`, Vouch Proxy's `X-Vouch-*`, Teleport's `Teleport-Jwt-Assertion`). keyway is
 * that proxy to the upstream: a rule allows a method and path done as its credential.
 */
const IMPERSONATION_HEADERS = [
  'sudo',
  'es-security-runas-user',
  'x-gerrit-runas',
  'x-user',
  'x-email',
  'x-userinfo',
  'x-auth-username',
  'x-auth-userid',
  'x-auth-email',
  'x-auth-subject',
  'x-auth-roles',
  'x-auth-groups',
  'x-pomerium-jwt-assertion',
  'teleport-jwt-assertion',
  'remote-user',
  'remote-groups',
  'remote-name',
  'remote-email',
  'x-remote-user',
  'x-remote-group',
];
const IMPERSONATION_PREFIXES = [
  'impersonate-',
  'x-remote-extra-',
  'x-pomerium-claim-',
  'tailscale-user-',
  'x-webauth-',
  'x-auth-request-',
  'x-consumer-',
  'x-authenticated-',
  'x-goog-authenticated-user-',
  'x-goog-iap-',
  'x-amzn-oidc-',
  'x-ms-client-principal',
  'x-ms-token-',
  'x-authentik-',
  'x-vouch-',
];

/** The header that names someone for the upstream to act as, or undefined. CGI, PHP and WSGI read `_` as `-`, so `X_Remote_User` counts. */
export function refusedImpersonationHeader(headers: Headers): string | undefined {
  for (const [name] of headers) {
    const lower = name.toLowerCase().replaceAll('_', '-');
    if (IMPERSONATION_HEADERS.includes(lower) || IMPERSONATION_PREFIXES.some((prefix) => lower.startsWith(prefix))) return name;
  }
  return undefined;
}

function dropped(name: string, named: ReadonlySet<string>, extra: readonly string[]): boolean {
  const lower = name.toLowerCase();
  return isHopByHop(lower, named) || extra.includes(lower);
}

/**
 * The content codings keyway asks the upstream for and passes an answer in: those fetch decodes on both runtimes.
 * undici (Node) decodes a list of `gzip`, `x-gzip`, `deflate`, `br` and `zstd`, in any case, but none of the list once
 * one member is another coding (`gzip, identity`); workerd decodes a Content-Encoding that is exactly `gzip` or `br`.
 */
const DECODED_CODINGS = ['gzip', 'br'];

/**
 * Whether fetch handed over the answer's body decoded: its Content-Encoding is absent, `identity`, or one coding both
 * runtimes decode. Any other is passed on still encoded and unlabelled, where the credential's redaction cannot see.
 */
function decodedByFetch(contentEncoding: string | null): boolean {
  // Both runtimes drop the spaces and tabs around a coding, and nothing else JavaScript's trim() would.
  const coding = contentEncoding?.replace(/^[ \t]+|[ \t]+$/g, '');
  return coding === undefined || coding === '' || coding === 'identity' || DECODED_CODINGS.includes(coding);
}

/**
 * Whether fetch took off every transfer coding of the answer: its Transfer-Encoding is absent or `chunked`. A server may
 * apply others (`gzip, chunked`); fetch takes off the chunking only and hands over the rest still encoded, with no
 * Content-Encoding to say so.
 */
function unframedByFetch(transferEncoding: string | null): boolean {
  return transferEncoding === null || transferEncoding.split(',').every((coding) => coding.trim().toLowerCase() === 'chunked');
}

/**
 * Why an upstream's answer cannot be passed on, or undefined: a status the caller's Response does not take (HTTP/1.1
 * takes any three digits; workerd throws outside 200…599), or a body fetch hands over still encoded, where the
 * credential's redaction cannot see and the caller could decode it.
 */
export function unpassableAnswer(response: Response): string | undefined {
  if (response.status < 200 || response.status > 599) return `with status ${response.status}, outside 200…599`;
  if (response.body === null) return undefined;
  if (!decodedByFetch(response.headers.get('content-encoding'))) return 'in a content coding other than gzip or br, which is not decoded';
  if (!unframedByFetch(response.headers.get('transfer-encoding'))) return 'in a transfer coding other than chunked, which is not decoded';
  return undefined;
}

/** What the upstream receives of the caller's headers, and keyway's Accept-Encoding, before keyway adds its own credential. */
export function upstreamRequestHeaders(caller: Headers): Headers {
  const named = connectionNamed(caller.get('connection') ?? undefined);
  const headers = new Headers();
  for (const [name, value] of caller) {
    const lower = name.toLowerCase();
    // A name with `_`: CGI, PHP and WSGI read it as the `-` spelling (X_Real_IP as X-Real-IP), which nginx and Apache drop for that reason.
    if (lower.includes('_')) continue;
    if (
      dropped(lower, named, CALLER_ONLY) ||
      lower.startsWith('x-forwarded-') ||
      lower.startsWith('x-envoy-') ||
      lower.startsWith('cf-') ||
      lower.startsWith('keyway-')
    )
      continue;
    headers.append(name, value);
  }
  // Without it, undici asks for `deflate` too, which workerd would hand over undecoded.
  headers.set('accept-encoding', DECODED_CODINGS.join(', '));
  return headers;
}

/** What the caller receives of the upstream's headers; a header that echoes the upstream credential, in its name or value, is dropped too. */
export function callerResponseHeaders(upstream: Headers, credential: string | undefined): Headers {
  const named = connectionNamed(upstream.get('connection') ?? undefined);
  const headers = new Headers();
  for (const [name, value] of upstream) {
    if (
      dropped(name, named, UPSTREAM_ONLY) ||
      UPSTREAM_ONLY_PREFIXES.some((prefix) => name.toLowerCase().startsWith(prefix)) ||
      TARGETED_CACHE_CONTROL.test(name)
    )
      continue;
    // The name too: a credential is a valid header name, and a server may turn what it received into one.
    if (echoesCredential(`${name}: ${value}`, credential)) continue;
    headers.append(name, value);
  }
  // The answer is for the caller keyway's policies let through, fetched with keyway's credential: a shared cache in front of
  // keyway (nginx's proxy_cache, which ignores the request's Authorization; Varnish) must not hand it to whoever asks the
  // same URL, whatever the upstream allowed the caches between it and keyway.
  headers.set('cache-control', privateCacheControl(headers.get('cache-control')));
  return headers;
}

/** What lets a shared cache store an answer to a request with a credential (RFC 9111 §3.5), or speaks to shared caches alone. */
const SHARED_CACHE_DIRECTIVE = /^\s*(?:public|private|proxy-revalidate|s-maxage\s*=.*)\s*$/i;

/** The upstream's Cache-Control for the caller's own cache: `private`, and its other directives but those for shared caches. */
function privateCacheControl(given: string | null): string {
  const kept = (given ?? '').split(',').filter((directive) => directive.trim() !== '' && !SHARED_CACHE_DIRECTIVE.test(directive));
  return ['private', ...kept.map((directive) => directive.trim())].join(', ');
}

/** Whether a value holds the credential, as it is or percent-encoded (a URL that carries it, such as a redirect's Location). */
export function echoesCredential(value: string, credential: string | undefined): boolean {
  if (credential === undefined || credential === '') return false;
  // A credential travels in a header, so it is ASCII: decoding the ASCII escapes alone finds it however a URL encodes it.
  const decoded = value.replace(/%([0-7][0-9A-Fa-f])/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
  return value.includes(credential) || decoded.includes(credential);
}

/** A `Link` header with each target (`<URL>`) passed through `rewrite`; a target it gives undefined for stays as it is. */
export function rewriteLinkTargets(link: string, rewrite: (url: string) => string | undefined): string {
  return link.replace(/<([^>]*)>/g, (whole, url: string) => {
    const rewritten = rewrite(url);
    return rewritten === undefined ? whole : `<${rewritten}>`;
  });
}
