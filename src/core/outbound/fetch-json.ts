import { checkOutboundUrl } from './check-outbound-url.ts';
import { KeywayError } from '../errors/keyway-error.ts';

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

export class FetchError extends KeywayError {
  override readonly name = 'FetchError';
  readonly code = 'fetch_failed';
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

/**
 * Reads a response body up to `maxBytes`, refusing more (declared or streamed) and cancelling the rest
 * unread. Every failure is a FetchError: more bytes than the cap, and a body that breaks off (the
 * connection dropped, the deadline passed) alike, so callers map one error type to "the server is
 * unavailable". `request` names what was asked in the message (`GET https://…`).
 */
export async function readBounded(response: Response, maxBytes: number, request: string): Promise<string> {
  const tooLarge = () => new FetchError(`the answer to ${request} is larger than ${maxBytes} bytes: not read further`);
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch (cause) {
      throw new FetchError(`the answer to ${request} broke off while reading its body: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
    const { done, value } = chunk;
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
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
