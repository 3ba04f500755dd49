import { checkOutboundUrl } from './check-outbound-url.ts';
import { FetchError, readBounded } from './read-bounded.ts';

export interface OutboundHttpOptions {
  readonly fetch: typeof fetch;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly allowHttpLoopback: boolean;
}

export interface JsonDocument {
  readonly body: unknown;
  /** `max-age` from Cache-Control, in seconds, when the server sent one (and no `no-store`). */
  readonly maxAgeSeconds: number | undefined;
}

/**
 * GETs a JSON document from an issuer: https only (loopback http in development), no redirects,
 * a deadline and a size cap, because every byte of it comes from outside.
 */
export async function fetchJson(url: string, options: OutboundHttpOptions): Promise<JsonDocument> {
  checkOutboundUrl(url, options.allowHttpLoopback);
  let response: Response;
  try {
    response = await options.fetch(url, {
      headers: { accept: 'application/json' },
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (cause) {
    throw new FetchError(`GET ${url} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new FetchError(`GET ${url} answered ${response.status}`);
  }
  const text = await readBounded(response, options.maxBytes, `GET ${url}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new FetchError(`GET ${url} did not return JSON`);
  }
  return { body, maxAgeSeconds: maxAge(response.headers.get('cache-control')) };
}

function maxAge(cacheControl: string | null): number | undefined {
  if (cacheControl === null) return undefined;
  const directives = cacheControl
    .toLowerCase()
    .split(',')
    .map((part) => part.trim());
  if (directives.includes('no-store') || directives.includes('no-cache')) return 0;
  for (const directive of directives) {
    const match = /^max-age=(\d+)$/.exec(directive);
    if (match?.[1] !== undefined) return Number(match[1]);
  }
  return undefined;
}
