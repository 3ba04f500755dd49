import { serveOnLoopback } from './serve-on-loopback.ts';

/** A broker released before GitHub tokens could be handed back, in front of a real one. */
export interface OlderBroker {
  readonly url: string;
  /** What reached its `/revoke`, as `METHOD /path`. */
  readonly revocations: readonly string[];
}

/** Request headers the server in front sets for its own connection, not passed on. */
const OWN_CONNECTION = ['host', 'connection', 'content-length', 'keep-alive', 'transfer-encoding'];

/**
 * Runs `use` with an older broker in front of a real one, which `start` starts with the older one's url as its issuer (the
 * client checks discovery's issuer and the CI token's audience against the url it is given), and closes both after.
 * The older one answers `POST /revoke` 200 whatever the token (RFC 7009) without `Keyway-Revokes`, as a broker that takes
 * no GitHub token back does, and passes everything else on, so that a client's fallback for such a broker runs against a
 * real one.
 */
export async function withOlderBroker(
  start: (issuer: string) => Promise<{ readonly url: string; close(): Promise<void> }>,
  use: (older: OlderBroker) => Promise<void>,
): Promise<void> {
  const revocations: string[] = [];
  let target: string | undefined;
  const { base, close } = await serveOnLoopback(async (request) => {
    const { pathname, search } = new URL(request.url);
    if (pathname === '/revoke') {
      revocations.push(`${request.method} ${pathname}`);
      return new Response(null, { status: 200, headers: { 'cache-control': 'no-store' } });
    }
    if (target === undefined) return new Response(null, { status: 503 });
    const headers = [...request.headers].filter(([name]) => !OWN_CONNECTION.includes(name));
    const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : await request.arrayBuffer();
    const answer = await fetch(`${target}${pathname}${search}`, { method: request.method, headers, ...(body === undefined ? {} : { body }) });
    return new Response(await answer.arrayBuffer(), {
      status: answer.status,
      headers: { 'content-type': answer.headers.get('content-type') ?? 'application/octet-stream' },
    });
  });
  let behind: { readonly url: string; close(): Promise<void> } | undefined;
  try {
    behind = await start(base);
    target = behind.url;
    await use({ url: base, revocations });
  } finally {
    await Promise.all([behind?.close(), close()]);
  }
}
