import type { JWTHeaderParameters } from 'jose';
import type { Misbehaviour } from './misbehaviour.ts';

export type SigningAlg = 'RS256' | 'ES256' | 'ES384' | 'ES512';

/** Header parameters a token is signed with, over the test issuer's own; one given as null is left out (`kid: null`: a token naming no kid). */
export type HeaderParameters = Omit<Partial<JWTHeaderParameters>, 'kid'> & { readonly kid?: string | null } & Record<string, unknown>;

/** What a test changes about an issuer; `discovery` and `jwks` make that endpoint misbehave (`null`: behave again). */
export interface IssuerSettings {
  readonly down?: boolean;
  readonly cacheControl?: string;
  readonly discovery?: Misbehaviour | null;
  readonly jwks?: Misbehaviour | null;
}

/**
 * Client for one issuer of the test issuer server (see test-issuer-server.ts). Web-standard
 * fetch only, so it runs in Node and inside workerd alike.
 */
export class TestIssuer {
  /** The issuer URL exactly as tokens carry it in `iss`. */
  readonly url: string;
  readonly #admin: string;
  readonly #query: string;

  /** `new TestIssuer(base, name)`: the issuer at `<base>/<name>`; `new TestIssuer(url)`: the issuer at exactly `url`. */
  constructor(baseOrUrl: string, name?: string) {
    this.url = name === undefined ? baseOrUrl : `${baseOrUrl}/${name}`;
    const trailingSlash = this.url.endsWith('/');
    this.#admin = `${trailingSlash ? this.url.slice(0, -1) : this.url}/_test`;
    this.#query = trailingSlash ? '?trailing_slash=1' : '';
  }

  async #post<T>(path: string, body: unknown): Promise<T> {
    const response = await fetch(`${this.#admin}/${path}${this.#query}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
    if (!response.ok) throw new Error(`test issuer ${path} answered ${response.status}: ${await response.text()}`);
    return (await response.json()) as T;
  }

  /** Signs `claims` as they are: callers set iss, aud and the time claims (see `ciClaims`). */
  async sign(claims: Record<string, unknown>, options: { header?: HeaderParameters; key?: 'published' | 'foreign'; alg?: SigningAlg } = {}): Promise<string> {
    return (await this.#post<{ token: string }>('sign', { claims, ...options })).token;
  }

  /** Signs `payloadText` byte for byte as the payload, with the newest published key: claims JSON.stringify cannot write. */
  async signPayloadText(payloadText: string): Promise<string> {
    return (await this.#post<{ token: string }>('sign', { claims: {}, payloadText })).token;
  }

  /** Signs each claim set as it is, with the newest published RS256 key, in one request. */
  async signMany(claims: readonly Record<string, unknown>[]): Promise<string[]> {
    return (await this.#post<{ tokens: string[] }>('sign-many', { claims })).tokens;
  }

  async rotate(options: { keepOld?: boolean; alg?: SigningAlg } = {}): Promise<string> {
    return (await this.#post<{ kid: string }>('rotate', options)).kid;
  }

  async settings(settings: IssuerSettings): Promise<void> {
    await this.#post('settings', settings);
  }

  async hits(): Promise<{ discovery: number; jwks: number; trap: number }> {
    return (await (await fetch(`${this.#admin}/hits${this.#query}`)).json()) as { discovery: number; jwks: number; trap: number };
  }

  async jwks(): Promise<{ keys: Record<string, unknown>[] }> {
    return (await (await fetch(`${this.#admin.slice(0, -'/_test'.length)}/jwks`)).json()) as { keys: Record<string, unknown>[] };
  }
}

/** Starts another origin on the test issuer server, for issuers that are a bare origin. Returns its base URL. */
export async function newTestSite(base: string): Promise<string> {
  const response = await fetch(`${base}/_test/sites`, { method: 'POST' });
  if (!response.ok) throw new Error(`test issuer server could not start a site: ${response.status}`);
  return ((await response.json()) as { base: string }).base;
}

/** A GitHub Actions-shaped claim set for `issuer`, valid now, overridable field by field. */
export function ciClaims(issuer: string, audience: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: issuer,
    aud: audience,
    sub: 'repo:acme/api:environment:production',
    iat: now,
    nbf: now - 5,
    exp: now + 300,
    jti: crypto.randomUUID(),
    repository: 'acme/api',
    repository_id: '734201',
    repository_owner: 'acme',
    repository_owner_id: '1200934',
    ref: 'refs/heads/main',
    ref_type: 'branch',
    environment: 'production',
    event_name: 'push',
    job_workflow_ref: 'acme/workflows/.github/workflows/deploy.yml@refs/tags/v1.4.0',
    workflow_ref: 'acme/api/.github/workflows/release.yml@refs/heads/main',
    run_id: '9001',
    runner_environment: 'github-hosted',
    ...overrides,
  };
}
