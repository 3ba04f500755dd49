import type { CryptoKey } from 'jose';
import { checkOutboundUrl } from '../../../core/outbound/check-outbound-url.ts';
import { AnswerTooLargeError, readBounded } from '../../../core/outbound/read-bounded.ts';
import { importAppPrivateKey, signAppJwt } from './app-jwt.ts';
import { errorCodeForStatus, GitHubError } from './github-error.ts';
import type { GitHubAppSettings } from './github-settings.ts';

/** How keyway reaches GitHub: every call has a deadline and a size cap. */
export interface GitHubHttp {
  readonly fetch: typeof fetch;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly allowHttpLoopback: boolean;
}

/** The App a client acts as, for calls made with the App JWT. */
interface AppIdentity {
  readonly appId: string;
  readonly key: CryptoKey;
  readonly now: () => number;
}

/** Who a call is made as: the App itself (App JWT), or an installation (an installation token). */
export type GitHubAuth = { readonly as: 'app' } | { readonly as: 'installation'; readonly token: string };

export interface GitHubRequest {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Path under the API base, e.g. `/app/installations/1/access_tokens`; callers encode its segments. */
  readonly path: string;
  readonly auth: GitHubAuth;
  readonly body?: unknown;
  /** Statuses that are an answer, not an error (default: 200, 201). */
  readonly expect?: readonly number[];
}

/** The rate limit GitHub last reported to this client (`x-ratelimit-remaining`, `x-ratelimit-reset`, `retry-after`). */
export interface GitHubQuota {
  readonly remaining: number | undefined;
  /** When the window resets, ms since the epoch. */
  readonly resetAt: number | undefined;
  /** A secondary limit's `retry-after`, in seconds, from the last answer that had one. */
  readonly retryAfterSeconds: number | undefined;
}

const headerNumber = (headers: Headers, name: string): number | undefined => {
  const value = headers.get(name);
  return value === null || !/^\d{1,12}$/.test(value) ? undefined : Number(value);
};

export interface GitHubResponse {
  readonly status: number;
  readonly body: unknown;
}

/** The REST API version keyway is written against. */
export const GITHUB_API_VERSION = '2022-11-28';

/**
 * A small GitHub REST client: web-standard fetch, the base URL from settings (GitHub Enterprise
 * Server too), a deadline and a size cap on every call, no redirects, and typed errors.
 */
export class GitHubClient {
  readonly #http: GitHubHttp;
  readonly #app: AppIdentity | undefined;
  readonly #base: string;
  #quota: GitHubQuota = { remaining: undefined, resetAt: undefined, retryAfterSeconds: undefined };

  private constructor(apiUrl: string, http: GitHubHttp, app: AppIdentity | undefined) {
    this.#http = http;
    this.#app = app;
    this.#base = checkOutboundUrl(apiUrl, http.allowHttpLoopback).href.replace(/\/+$/, '');
  }

  /** A client acting as the App (App JWT) and, with their tokens, as its installations. */
  static async forApp(settings: GitHubAppSettings, http: GitHubHttp, now: () => number): Promise<GitHubClient> {
    return new GitHubClient(settings.apiUrl, http, { appId: settings.appId, key: await importAppPrivateKey(settings.privateKeyPem), now });
  }

  /** A client for calls made with an installation token only (revocation), without the App key. */
  static withTokensOnly(apiUrl: string, http: GitHubHttp): GitHubClient {
    return new GitHubClient(apiUrl, http, undefined);
  }

  get apiUrl(): string {
    return this.#base;
  }

  /** The App this client acts as; undefined for a tokens-only client. */
  get appId(): string | undefined {
    return this.#app?.appId;
  }

  /** What GitHub last said of this client's rate limit: the headroom an App pool picks by. */
  get quota(): GitHubQuota {
    return this.#quota;
  }

  async request(request: GitHubRequest): Promise<GitHubResponse> {
    const url = `${this.#base}${request.path}`;
    const credential = request.auth.as === 'app' ? await this.#appJwt() : request.auth.token;
    const headers: Record<string, string> = {
      accept: 'application/vnd.github+json',
      authorization: `Bearer ${credential}`,
      'x-github-api-version': GITHUB_API_VERSION,
      'user-agent': 'keyway',
    };
    if (request.body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.#http.fetch(url, {
        method: request.method,
        headers,
        body: request.body === undefined ? undefined : JSON.stringify(request.body),
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#http.timeoutMs),
      });
    } catch (cause) {
      throw new GitHubError('unavailable', `${request.method} ${request.path} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
    const remaining = headerNumber(response.headers, 'x-ratelimit-remaining');
    const reset = headerNumber(response.headers, 'x-ratelimit-reset');
    this.#quota = {
      remaining: remaining ?? this.#quota.remaining,
      resetAt: reset === undefined ? this.#quota.resetAt : reset * 1000,
      retryAfterSeconds: headerNumber(response.headers, 'retry-after'),
    };
    const expected = request.expect ?? [200, 201];
    if (!expected.includes(response.status)) {
      const message = await this.#errorMessage(response, `${request.method} ${url}`);
      const code = errorCodeForStatus(response.status, response.headers);
      throw new GitHubError(code, `${request.method} ${request.path} answered ${response.status}${message}`, { status: response.status });
    }
    if (response.status === 204) {
      await response.body?.cancel();
      return { status: response.status, body: undefined };
    }
    let text: string;
    try {
      text = await readBounded(response, this.#http.maxBytes, `${request.method} ${url}`);
    } catch (cause) {
      // Broken off mid-body: GitHub did not answer. Too large: it did, with more than keyway reads (a file's contents, say).
      const code = cause instanceof AnswerTooLargeError ? 'too_large' : 'unavailable';
      throw new GitHubError(code, cause instanceof Error ? cause.message : String(cause), { cause, status: response.status });
    }
    try {
      return { status: response.status, body: JSON.parse(text) as unknown };
    } catch {
      throw new GitHubError('malformed', `${request.method} ${request.path} did not return JSON`, { status: response.status });
    }
  }

  async #appJwt(): Promise<string> {
    if (this.#app === undefined) throw new GitHubError('unauthorized', 'this client has no App key (KEYWAY_GITHUB_APP_ID, KEYWAY_GITHUB_APP_PRIVATE_KEY)');
    return signAppJwt(this.#app.key, this.#app.appId, this.#app.now());
  }

  /** GitHub's own `message`, for logs: it names what was wrong (never a secret). */
  async #errorMessage(response: Response, request: string): Promise<string> {
    try {
      const body = JSON.parse(await readBounded(response, 16 * 1024, request)) as unknown;
      if (typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string') return `: ${body.message.slice(0, 200)}`;
    } catch {
      // An error without a readable message is still the same error.
    }
    return '';
  }
}

/** One path segment, encoded (owner, repository and file names come from policies and requests). */
export function segment(value: string | number): string {
  return encodeURIComponent(String(value));
}

/**
 * A repository as the REST API addresses it: by name (`/repos/{owner}/{repo}`), or by its id (`/repositories/{id}`,
 * GitHub's alias for every repository route), which a rename, a transfer or a name taken again by another account does not move.
 */
export type RepositoryLocation = { readonly owner: string; readonly repo: string } | { readonly id: number };

/** The path of a repository's routes, without a trailing slash. */
export function repositoryPath(repository: RepositoryLocation): string {
  return 'id' in repository ? `/repositories/${segment(repository.id)}` : `/repos/${segment(repository.owner)}/${segment(repository.repo)}`;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
