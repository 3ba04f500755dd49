const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * An http URL on this machine (127.0.0.1, localhost, [::1]): the only place keyway accepts
 * plain http, for development. Its own module so the pipeline client and the GitHub Action
 * bundle it without the issuer catalog.
 */
export function isLoopbackHttpUrl(url: URL): boolean {
  return url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname);
}

/** A URL's hostname on this machine: 127.0.0.1, localhost or [::1]. */
export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname);
}
