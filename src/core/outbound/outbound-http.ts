import type { OutboundHttpOptions } from './fetch-json.ts';
import { outboundFetch } from './outbound-fetch.ts';

export const OUTBOUND_TIMEOUT_MS = 5000;
export const OUTBOUND_MAX_BYTES = 256 * 1024;

/**
 * What every outbound call (discovery and JWKS, the GitHub API, alert webhooks) shares: the
 * runtime's connector behind outboundFetch, which refuses non-public addresses, a deadline
 * and a size cap.
 */
export function outboundHttp(connect: typeof fetch, allowHttpLoopback: boolean): OutboundHttpOptions {
  return { fetch: outboundFetch(connect, allowHttpLoopback), timeoutMs: OUTBOUND_TIMEOUT_MS, maxBytes: OUTBOUND_MAX_BYTES, allowHttpLoopback };
}
