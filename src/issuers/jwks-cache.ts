import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { discoverJwksUri } from './discover-jwks-uri.ts';
import { FetchError, fetchJson, type OutboundHttpOptions } from './fetch-json.ts';

export interface JwksCachePolicy {
  /** Floor and ceiling applied to the issuer's Cache-Control max-age. */
  readonly minFreshSeconds: number;
  readonly maxFreshSeconds: number;
  /** Freshness when the issuer sends no max-age. */
  readonly defaultFreshSeconds: number;
  /** How long cached keys keep verifying while the issuer cannot be reached. */
  readonly staleIfErrorSeconds: number;
  /** At most one refetch per issuer in this window, however many unknown `kid`s arrive. */
  readonly refetchCooldownSeconds: number;
}

export const DEFAULT_JWKS_CACHE_POLICY: JwksCachePolicy = {
  minFreshSeconds: 60,
  maxFreshSeconds: 24 * 60 * 60,
  defaultFreshSeconds: 10 * 60,
  staleIfErrorSeconds: 6 * 60 * 60,
  refetchCooldownSeconds: 30,
};

const MAX_KEYS = 100;

/** The issuer's keys cannot be had: never fetched, or cached too long ago to keep trusting. */
export class IssuerUnavailableError extends Error {
  override readonly name = 'IssuerUnavailableError';
}

interface CachedKeys {
  readonly getKey: JWTVerifyGetKey;
  readonly fetchedAt: number;
  readonly freshUntil: number;
  readonly staleUntil: number;
}

interface IssuerEntry {
  keys?: CachedKeys;
  inflight?: Promise<CachedKeys>;
  /** Last fetch of any kind: after a failed one, stale keys are served for a cooldown before trying again. */
  lastAttemptAt?: number;
  /** Last fetch forced by an unknown `kid`: these are what an attacker can trigger at will. */
  lastForcedAt?: number;
}

/** One fetch of an issuer's discovery document and JWKS, told to whoever watches the cache. */
export interface JwksFetchEvent {
  readonly issuer: string;
  readonly outcome: 'ok' | 'error';
  readonly seconds: number;
  readonly error?: string;
}

export interface JwksCacheStats {
  fetches: number;
  fetchFailures: number;
}

/**
 * Keys per issuer, found through that issuer's own discovery document. Honours Cache-Control
 * within bounds, refetches on an unknown `kid` at most once per cooldown, shares one fetch
 * among concurrent callers, and keeps serving cached keys through an outage for a bounded time.
 */
export class JwksCache {
  readonly #entries = new Map<string, IssuerEntry>();
  readonly #http: OutboundHttpOptions;
  readonly #policy: JwksCachePolicy;
  readonly #now: () => number;
  readonly #onFetch: (event: JwksFetchEvent) => void;
  readonly stats: JwksCacheStats = { fetches: 0, fetchFailures: 0 };

  constructor(http: OutboundHttpOptions, policy: JwksCachePolicy = DEFAULT_JWKS_CACHE_POLICY, now: () => number = Date.now, onFetch: (event: JwksFetchEvent) => void = () => {}) {
    this.#http = http;
    this.#policy = policy;
    this.#now = now;
    this.#onFetch = onFetch;
  }

  /** Keys to verify a token of `issuerUrl` with. */
  async keysFor(issuerUrl: string): Promise<JWTVerifyGetKey> {
    const entry = this.#entry(issuerUrl);
    const now = this.#now();
    const cached = entry.keys;
    if (cached !== undefined && now < cached.freshUntil) return cached.getKey;
    if (cached !== undefined && now < cached.staleUntil && this.#coolingDown(entry.lastAttemptAt, now)) return cached.getKey;
    try {
      return (await this.#refetch(issuerUrl, entry)).getKey;
    } catch (cause) {
      if (cached !== undefined && now < cached.staleUntil) return cached.getKey;
      throw new IssuerUnavailableError(`keys for ${issuerUrl} are unavailable: ${(cause as Error).message}`, { cause });
    }
  }

  /**
   * Called when a token names a `kid` the cached set lacks: the issuer may have rotated.
   * Returns fresh keys, or undefined when a refetch is not allowed yet or fails.
   */
  async refreshForUnknownKey(issuerUrl: string): Promise<JWTVerifyGetKey | undefined> {
    const entry = this.#entry(issuerUrl);
    const now = this.#now();
    if (entry.inflight === undefined) {
      if (this.#coolingDown(entry.lastForcedAt, now)) return undefined;
      entry.lastForcedAt = now;
    }
    try {
      return (await this.#refetch(issuerUrl, entry)).getKey;
    } catch {
      return undefined;
    }
  }

  #entry(issuerUrl: string): IssuerEntry {
    let entry = this.#entries.get(issuerUrl);
    if (entry === undefined) {
      entry = {};
      this.#entries.set(issuerUrl, entry);
    }
    return entry;
  }

  #coolingDown(since: number | undefined, now: number): boolean {
    return since !== undefined && now - since < this.#policy.refetchCooldownSeconds * 1000;
  }

  #refetch(issuerUrl: string, entry: IssuerEntry): Promise<CachedKeys> {
    if (entry.inflight !== undefined) return entry.inflight;
    entry.lastAttemptAt = this.#now();
    const started = performance.now();
    const seconds = (): number => (performance.now() - started) / 1000;
    entry.inflight = this.#fetchKeys(issuerUrl)
      .then((keys) => {
        entry.keys = keys;
        this.#onFetch({ issuer: issuerUrl, outcome: 'ok', seconds: seconds() });
        return keys;
      })
      .catch((error: unknown) => {
        this.stats.fetchFailures += 1;
        this.#onFetch({ issuer: issuerUrl, outcome: 'error', seconds: seconds(), error: error instanceof Error ? error.message : String(error) });
        throw error;
      })
      .finally(() => {
        entry.inflight = undefined;
      });
    return entry.inflight;
  }

  async #fetchKeys(issuerUrl: string): Promise<CachedKeys> {
    this.stats.fetches += 1;
    const jwksUri = await discoverJwksUri(issuerUrl, this.#http);
    const { body, maxAgeSeconds } = await fetchJson(jwksUri, this.#http);
    const jwks = publicSigningKeys(body, jwksUri);
    const { minFreshSeconds, maxFreshSeconds, defaultFreshSeconds, staleIfErrorSeconds } = this.#policy;
    const fresh = Math.min(maxFreshSeconds, Math.max(minFreshSeconds, maxAgeSeconds ?? defaultFreshSeconds));
    const fetchedAt = this.#now();
    return {
      getKey: createLocalJWKSet(jwks),
      fetchedAt,
      freshUntil: fetchedAt + fresh * 1000,
      staleUntil: fetchedAt + (fresh + staleIfErrorSeconds) * 1000,
    };
  }
}

/** RFC 7517 §5: keys that are not public signature keys are ignored, never used. */
function publicSigningKeys(body: unknown, jwksUri: string): JSONWebKeySet {
  const keys = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new FetchError(`${jwksUri} is not a JWK Set`);
  const usable = keys.filter(
    (key): key is JSONWebKeySet['keys'][number] =>
      typeof key === 'object' &&
      key !== null &&
      typeof (key as { kty?: unknown }).kty === 'string' &&
      (key as { kty: string }).kty !== 'oct' &&
      !('d' in key) &&
      ((key as { use?: unknown }).use === undefined || (key as { use?: unknown }).use === 'sig'),
  );
  if (usable.length === 0) throw new FetchError(`${jwksUri} holds no public signing keys`);
  return { keys: usable.slice(0, MAX_KEYS) };
}
