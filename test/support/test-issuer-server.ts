import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTHeaderParameters } from 'jose';

/**
 * A real OIDC issuer on 127.0.0.1 for tests: every first path segment is its own issuer
 * (`/ci-a`, `/ci-b`, …) with its own RSA keys, discovery document and JWKS. Tests drive it
 * through a small admin API (`/<name>/_test/...`) over HTTP, so the same client works from
 * Node tests and from tests running inside workerd.
 */
interface IssuerState {
  /** Keys published in the JWKS; the last one signs by default. */
  keys: { kid: string; privateJwk: JWK; publicJwk: JWK }[];
  down: boolean;
  cacheControl: string;
  hits: { discovery: number; jwks: number; trap: number };
}

async function newKey(alg: 'RS256' | 'ES256' = 'RS256'): Promise<{ kid: string; privateJwk: JWK; publicJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, privateJwk: await exportJWK(privateKey), publicJwk: { ...publicJwk, kid, alg, use: 'sig' } };
}

export interface SignRequest {
  readonly claims: Record<string, unknown>;
  /** Extra or overriding header parameters (`kid`, `jku`, `typ`, …). */
  readonly header?: Partial<JWTHeaderParameters> & Record<string, unknown>;
  /** `published` (default): the newest published key. `foreign`: a key never published, with the published kid unless the header says otherwise. */
  readonly key?: 'published' | 'foreign';
  readonly alg?: 'RS256' | 'ES256';
}

export async function startTestIssuerServer(): Promise<{ base: string; close(): Promise<void> }> {
  const issuers = new Map<string, Promise<IssuerState>>();
  const state = (name: string): Promise<IssuerState> => {
    let found = issuers.get(name);
    if (found === undefined) {
      found = newKey().then((key) => ({ keys: [key], down: false, cacheControl: 'public, max-age=300', hits: { discovery: 0, jwks: 0, trap: 0 } }));
      issuers.set(name, found);
    }
    return found;
  };
  let base = '';
  const app = new Hono();
  app.get('/:name/.well-known/openid-configuration', async (c) => {
    const issuer = await state(c.req.param('name'));
    issuer.hits.discovery += 1;
    if (issuer.down) return c.text('down', 503);
    const url = `${base}/${c.req.param('name')}`;
    return c.json({ issuer: url, jwks_uri: `${url}/jwks`, id_token_signing_alg_values_supported: ['RS256', 'ES256'] });
  });
  app.get('/:name/jwks', async (c) => {
    const issuer = await state(c.req.param('name'));
    issuer.hits.jwks += 1;
    if (issuer.down) return c.text('down', 503);
    c.header('Cache-Control', issuer.cacheControl);
    return c.json({ keys: issuer.keys.map((key) => key.publicJwk) });
  });
  app.all('/:name/trap/*', async (c) => {
    (await state(c.req.param('name'))).hits.trap += 1;
    return c.json({ keys: [] });
  });
  app.post('/:name/_test/sign', async (c) => {
    const issuer = await state(c.req.param('name'));
    const request = await c.req.json<SignRequest>();
    const alg = request.alg ?? 'RS256';
    const published = [...issuer.keys].reverse().find((key) => key.publicJwk.alg === alg) ?? (await newKey(alg));
    const signer = request.key === 'foreign' ? await newKey(alg) : published;
    const header = { alg, typ: 'JWT', kid: published.kid, ...request.header } as JWTHeaderParameters;
    const token = await new SignJWT(request.claims).setProtectedHeader(header).sign(await importJWK(signer.privateJwk, alg));
    return c.json({ token });
  });
  app.post('/:name/_test/rotate', async (c) => {
    const issuer = await state(c.req.param('name'));
    const { keepOld = false, alg = 'RS256' } = await c.req.json<{ keepOld?: boolean; alg?: 'RS256' | 'ES256' }>();
    const key = await newKey(alg);
    issuer.keys = keepOld ? [...issuer.keys, key] : [key];
    return c.json({ kid: key.kid });
  });
  app.post('/:name/_test/settings', async (c) => {
    const issuer = await state(c.req.param('name'));
    const settings = await c.req.json<{ down?: boolean; cacheControl?: string }>();
    if (settings.down !== undefined) issuer.down = settings.down;
    if (settings.cacheControl !== undefined) issuer.cacheControl = settings.cacheControl;
    return c.json({ ok: true });
  });
  app.get('/:name/_test/hits', async (c) => c.json((await state(c.req.param('name'))).hits));

  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeAllConnections' in server) server.closeAllConnections();
      }),
  };
}
