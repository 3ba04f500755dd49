import { Hono } from 'hono';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { fetchIssuerKeys } from './issuer-keys.ts';
import { serveOnLoopback } from './serve-on-loopback.ts';

/**
 * Microsoft Entra ID's token endpoint (`POST /{tenant}/oauth2/v2.0/token`, client credentials
 * with a client assertion) on loopback, written from Microsoft's documentation (the client
 * credentials flow; federated identity credential considerations; Azure DevOps' AADSTS error
 * list). Like Entra it matches the assertion to an application's federated identity credentials
 * exactly and case-sensitively (issuer, then subject, then audience), fetches the issuer's
 * discovery and JWKS, verifies RS256 only and the token's time range. What it cannot check: TLS,
 * the minutes a new credential takes to apply, Entra's own key cache, and AADSTS700212 (an
 * audience mismatch: its code is not documented; the fake answers it).
 */
export interface FederatedCredential {
  readonly issuer: string;
  readonly subject: string;
  readonly audience: string;
}

export interface FakeEntraConfig {
  readonly tenantId: string;
  /** Application (client) id → its federated identity credentials. */
  readonly applications: Record<string, FederatedCredential[]>;
}

const aadsts = (code: number, description: string, error = 'invalid_client') => ({
  status: 400,
  body: { error, error_description: `AADSTS${code}: ${description}`, error_codes: [code] },
});

export class FakeEntra {
  readonly config: FakeEntraConfig;
  url = '';
  #close: () => Promise<void> = async () => {};

  private constructor(config: FakeEntraConfig) {
    this.config = config;
  }

  static async start(config: FakeEntraConfig): Promise<FakeEntra> {
    const entra = new FakeEntra(config);
    const app = new Hono();
    app.post('/:tenant/oauth2/v2.0/token', async (c) => {
      const outcome = await entra.#token(c.req.param('tenant'), new URLSearchParams(await c.req.text()));
      return c.json(outcome.body, outcome.status as 200);
    });
    const served = await serveOnLoopback(app.fetch);
    entra.url = served.base;
    entra.#close = served.close;
    return entra;
  }

  close(): Promise<void> {
    return this.#close();
  }

  async #token(tenant: string, form: URLSearchParams): Promise<{ status: number; body: object }> {
    if (tenant !== this.config.tenantId) return aadsts(90002, `Tenant '${tenant}' not found.`, 'invalid_request');
    if (form.get('grant_type') !== 'client_credentials') return aadsts(70003, 'The app requested an unsupported grant type.', 'unsupported_grant_type');
    if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
      return aadsts(7000274, 'client_assertion_type is invalid.', 'invalid_request');
    if (!(form.get('scope') ?? '').endsWith('/.default')) return aadsts(1002012, 'The provided value for scope is not valid.', 'invalid_scope');
    const clientId = form.get('client_id') ?? '';
    const credentials = this.config.applications[clientId];
    if (credentials === undefined) return aadsts(700016, `Application with identifier '${clientId}' was not found in the directory.`, 'unauthorized_client');
    if (credentials.length === 0) return aadsts(70025, 'The client has no configured federated identity credentials.');
    const assertion = form.get('client_assertion') ?? '';
    let claimed: Record<string, unknown>;
    try {
      claimed = decodeJwt(assertion);
    } catch {
      return aadsts(50027, 'JWT token is invalid or malformed.');
    }
    const byIssuer = credentials.filter((credential) => credential.issuer === claimed['iss']);
    if (byIssuer.length === 0) {
      const folded = credentials.some((credential) => credential.issuer.toLowerCase() === String(claimed['iss']).toLowerCase());
      return folded
        ? aadsts(
            7002138,
            `No matching federated identity record found for presented assertion issuer '${String(claimed['iss'])}'; the issuer differs only in case.`,
          )
        : aadsts(700211, `No matching federated identity record found for presented assertion issuer '${String(claimed['iss'])}'.`);
    }
    const bySubject = byIssuer.filter((credential) => credential.subject === claimed['sub']);
    if (bySubject.length === 0) {
      return aadsts(700213, `No matching federated identity record found for presented assertion subject '${String(claimed['sub'])}'.`);
    }
    const audiences = typeof claimed['aud'] === 'string' ? [claimed['aud']] : Array.isArray(claimed['aud']) ? claimed['aud'].map(String) : [];
    if (!bySubject.some((credential) => audiences.includes(credential.audience))) {
      return aadsts(700212, `No matching federated identity record found for presented assertion audience '${audiences.join(', ')}'.`);
    }
    try {
      await jwtVerify(assertion, createLocalJWKSet(await fetchIssuerKeys(String(claimed['iss']))), { algorithms: ['RS256'] });
    } catch (failure) {
      const code = failure instanceof Error && 'code' in failure ? String(failure.code) : '';
      if (code === 'ERR_JWT_EXPIRED' || code === 'ERR_JWT_CLAIM_VALIDATION_FAILED')
        return aadsts(700024, 'Client assertion is not within its valid time range.');
      return aadsts(5002738, 'Invalid JWT token: the signature or its algorithm is not supported (RS256 only).');
    }
    return { status: 200, body: { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: `entra-access-${crypto.randomUUID()}` } };
  }
}
