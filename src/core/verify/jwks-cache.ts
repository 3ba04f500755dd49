import { base64url, createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { AUDIT_BOUNDS, boundText } from '../audit/bound-audit-event.ts';
import { discoverJwksUri } from './discover-jwks-uri.ts';
import { fetchJson, type OutboundHttpOptions } from '../outbound/fetch-json.ts';
import { FetchError } from '../outbound/read-bounded.ts';
import { KeywayError } from '../errors/keyway-error.ts';

export interface JwksCachePolicy {
  /** Floor and ceiling applied to the issuer's Cache-Control max-age. */
  readonly minFreshSeconds: number;
  readonly maxFreshSeconds: number;
  /** Freshness when the issuer sends no max-age. */
  readonly defaultFreshSeconds: number;
  /** How long cached keys keep verifying while the issuer cannot be reached. */
  readonly staleIfErrorSeconds: number;
  /**
   * At most one fetch per issuer in this window, however many tokens arrive: after a failed
   * fetch (with or without keys to fall back on) and for unknown `kid`s alike.
   */
  readonly refetchCooldownSeconds: number;
  /** Issuers whose keys (or last failure) are kept at most; the least recently used goes first. Default 1000. */
  readonly maxIssuers?: number;
}

const MAX_ISSUERS = 1000;

export const DEFAULT_JWKS_CACHE_POLICY: JwksCachePolicy = {
  minFreshSeconds: 60,
  maxFreshSeconds: 24 * 60 * 60,
  defaultFreshSeconds: 10 * 60,
  staleIfErrorSeconds: 6 * 60 * 60,
  refetchCooldownSeconds: 30,
  maxIssuers: MAX_ISSUERS,
};

const MAX_KEYS = 100;

/** The issuer's keys cannot be had: never fetched, or cached too long ago to keep trusting. */
export class IssuerUnavailableError extends KeywayError {
  override readonly name = 'IssuerUnavailableError';
  readonly code = 'issuer_unavailable';
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
  /** Why the last fetch failed, until one succeeds: without usable keys, the issuer is refused with it for a cooldown. */
  lastFailure?: string;
  /** Last fetch forced by an unknown `kid`: these are what an attacker can trigger at will. */
  lastForcedAt?: number;
}

/** One fetch of an issuer's discovery document and JWKS, told to whoever watches the cache. */
export interface JwksFetchEvent {
  readonly issuer: string;
  readonly outcome: 'ok' | 'error';
  readonly seconds: number;
  /** Why it failed, bounded (AUDIT_BOUNDS.detail): it can quote what the issuer's server sent. */
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

  constructor(
    http: OutboundHttpOptions,
    policy: JwksCachePolicy = DEFAULT_JWKS_CACHE_POLICY,
    now: () => number = Date.now,
    onFetch: (event: JwksFetchEvent) => void = () => {},
  ) {
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
    const usable = cached !== undefined && now < cached.staleUntil;
    if (usable && this.#coolingDown(entry.lastAttemptAt, now)) return cached.getKey;
    // Without keys to fall back on, a failing issuer is asked once per cooldown, not once per token.
    if (!usable && entry.inflight === undefined && entry.lastFailure !== undefined && this.#coolingDown(entry.lastAttemptAt, now)) {
      const cooldown = `tried again at most once per ${this.#policy.refetchCooldownSeconds} s`;
      throw new IssuerUnavailableError(`keys for ${issuerUrl} are unavailable: ${entry.lastFailure} (${cooldown})`);
    }
    try {
      return (await this.#refetch(issuerUrl, entry)).getKey;
    } catch (cause) {
      if (usable) return cached.getKey;
      const why = boundText((cause as Error).message, AUDIT_BOUNDS.detail);
      throw new IssuerUnavailableError(`keys for ${issuerUrl} are unavailable: ${why}`, { cause });
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

  /** The issuer's entry, made the most recently used; the least recently used one goes when there are too many. */
  #entry(issuerUrl: string): IssuerEntry {
    const entry = this.#entries.get(issuerUrl) ?? {};
    this.#entries.delete(issuerUrl);
    this.#entries.set(issuerUrl, entry);
    const max = this.#policy.maxIssuers ?? MAX_ISSUERS;
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= max) break;
      this.#entries.delete(oldest);
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
        entry.lastFailure = undefined;
        this.#onFetch({ issuer: issuerUrl, outcome: 'ok', seconds: seconds() });
        return keys;
      })
      .catch((error: unknown) => {
        this.stats.fetchFailures += 1;
        // Kept per issuer for a cooldown, and logged: bounded, as it can quote what the issuer's server sent.
        entry.lastFailure = boundText(error instanceof Error ? error.message : String(error), AUDIT_BOUNDS.detail);
        this.#onFetch({ issuer: issuerUrl, outcome: 'error', seconds: seconds(), error: entry.lastFailure });
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
      getKey: importFailuresRefused(createLocalJWKSet(jwks)),
      fetchedAt,
      freshUntil: fetchedAt + fresh * 1000,
      staleUntil: fetchedAt + (fresh + staleIfErrorSeconds) * 1000,
    };
  }
}

/**
 * A rollover that reuses a kid lists two or three keys under it, and a token naming that kid is tried with each
 * (verify-subject-token.ts). An issuer listing more (one a policy trusts but someone else runs) would make each token
 * naming it cost that many key imports and signature checks, so the keys past the first four under one kid are ignored
 * when the JWKS loads, whether or not they would import.
 */
const MAX_KEYS_UNDER_ONE_KID = 4;

/**
 * jose's key set with a key that will not import (an EC point off its curve) refused as an invalid key, a signature
 * failure: WebCrypto throws its own DataError there, not a jose error, which an exchange would answer with a 500.
 */
function importFailuresRefused(getKey: JWTVerifyGetKey): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await getKey(header, token);
    } catch (error) {
      if (error instanceof errors.JOSEError) throw error;
      throw new errors.JWKInvalid("the issuer's key for the token's kid does not import", { cause: error });
    }
  };
}

/** jose's floor for RSA keys, which it (and the Node verifier) enforces by throwing, not as a refusal: such a key is never offered. */
const MIN_RSA_BITS = 2048;

function rsaModulusBits(key: object): number {
  const n = (key as { n?: unknown }).n;
  if (typeof n !== 'string') return 0;
  try {
    const bytes = base64url.decode(n);
    const first = bytes.findIndex((byte) => byte !== 0);
    return first === -1 ? 0 : (bytes.length - first - 1) * 8 + (32 - Math.clz32(bytes[first] as number));
  } catch {
    return 0;
  }
}

/** RFC 7517 §5: keys that are not public signature keys are ignored, never used, and so are RSA keys too short to verify with. */
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
      ((key as { kty: string }).kty !== 'RSA' || rsaModulusBits(key) >= MIN_RSA_BITS) &&
      ((key as { use?: unknown }).use === undefined || (key as { use?: unknown }).use === 'sig'),
  );
  if (usable.length === 0) throw new FetchError(`${jwksUri} holds no public signing keys`);
  const underKid = new Map<string, number>();
  const kept = usable.filter((key) => {
    if (typeof key.kid !== 'string') return true;
    const count = (underKid.get(key.kid) ?? 0) + 1;
    underKid.set(key.kid, count);
    return count <= MAX_KEYS_UNDER_ONE_KID;
  });
  return { keys: kept.slice(0, MAX_KEYS) };
}
