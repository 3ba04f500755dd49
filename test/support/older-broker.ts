import { serveOnLoopback } from './serve-on-loopback.ts';

/** A broker released before GitHub tokens could be handed back, in front of a real one. */
export interface OlderBroker {
  readonly url: string;
  /** What reached its `/revoke`, as `METHOD /path`. */
  readonly revocations: readonly string[];
  /** Passes every request but `/revoke` on to the broker at `url`: one started with this one's url as its issuer. */
  forwardTo(url: string): void;
  close(): Promise<void>;
}

/** Request headers the server in front sets for its own connection, not passed on. */
const OWN_CONNECTION = ['host', 'connection', 'content-length', 'keep-alive', 'transfer-encoding'];

/**
 * Answers `POST /revoke` 200 whatever the token (RFC 7009) without `Keyway-Revokes`, as a broker that takes no GitHub
 * token back does, and passes everything else on, so that a client's fallback for such a broker runs against a real one.
 */
export async function startOlderBroker(): Promise<OlderBroker> {
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
  return {
    url: base,
    revocations,
    forwardTo: (url) => {
      target = url;
    },
    close,
  };
}
