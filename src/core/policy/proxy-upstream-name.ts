/** An upstream's name in `/proxy/<upstream>/…`, `grant.proxy.upstream` and the CLI: one path segment, lower case. */
export const PROXY_UPSTREAM_NAME = /^[a-z0-9](?:[a-z0-9-]{0,62})$/;
