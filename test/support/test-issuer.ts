import type { JWTHeaderParameters } from 'jose';

/**
 * Client for one issuer of the test issuer server (see test-issuer-server.ts). Web-standard
 * fetch only, so it runs in Node and inside workerd alike.
 */
export class TestIssuer {
  readonly url: string;

  constructor(base: string, name: string) {
    this.url = `${base}/${name}`;
  }

  async #post<T>(path: string, body: unknown): Promise<T> {
    const response = await fetch(`${this.url}/_test/${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    if (!response.ok) throw new Error(`test issuer ${path} answered ${response.status}`);
    return (await response.json()) as T;
  }

  /** Signs `claims` as they are: callers set iss, aud and the time claims (see `ciClaims`). */
  async sign(
    claims: Record<string, unknown>,
    options: { header?: Partial<JWTHeaderParameters> & Record<string, unknown>; key?: 'published' | 'foreign'; alg?: 'RS256' | 'ES256' } = {},
  ): Promise<string> {
    return (await this.#post<{ token: string }>('sign', { claims, ...options })).token;
  }

  async rotate(options: { keepOld?: boolean; alg?: 'RS256' | 'ES256' } = {}): Promise<string> {
    return (await this.#post<{ kid: string }>('rotate', options)).kid;
  }

  async settings(settings: { down?: boolean; cacheControl?: string }): Promise<void> {
    await this.#post('settings', settings);
  }

  async hits(): Promise<{ discovery: number; jwks: number; trap: number }> {
    return (await (await fetch(`${this.url}/_test/hits`)).json()) as { discovery: number; jwks: number; trap: number };
  }

  async jwks(): Promise<{ keys: Record<string, unknown>[] }> {
    return (await (await fetch(`${this.url}/jwks`)).json()) as { keys: Record<string, unknown>[] };
  }
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
