import type { HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import { calculateJwkThumbprint, CompactSign, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTHeaderParameters } from 'jose';
import { misbehave, type Misbehaviour, type NodeContext } from './misbehaviour.ts';
import { serveOnLoopback } from './serve-on-loopback.ts';
import type { HeaderParameters, IssuerSettings, SigningAlg } from './test-issuer.ts';

/**
 * A real OIDC issuer on 127.0.0.1 for tests. Any path is an issuer of its own (`/ci-a`,
 * `/org/<uuid>`, `/2.0/workspaces/acme/pipelines-config/identity/oidc`, or the bare origin),
 * with its own keys, discovery document (`<path>/.well-known/openid-configuration`) and JWKS
 * (`<path>/jwks`), so a test can stand in for a CI system at its exact issuer path. An issuer
 * whose URL ends in `/` (AKS) is made by calling its admin API with `?trailing_slash=1`.
 *
 * `POST /_test/sites` starts another origin (a new port) with the same behaviour, for issuers
 * that are a bare origin (`https://gitlab.com`, `https://agent.buildkite.com`). Tests drive
 * every issuer through its admin API (`<path>/_test/...`) over HTTP, so the same client works
 * from Node tests and from tests running inside workerd.
 */

interface IssuerKey {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

interface IssuerState {
  /** The issuer URL ends in `/`; its discovery and JWKS still live at the path without it. */
  readonly trailingSlash: boolean;
  /** Keys published in the JWKS; the newest one of the requested algorithm signs. */
  keys: IssuerKey[];
  down: boolean;
  cacheControl: string;
  /** How the discovery and JWKS endpoints fail, when they do (a redirect goes to the trap). */
  misbehaviour: { discovery?: Misbehaviour; jwks?: Misbehaviour };
  hits: { discovery: number; jwks: number; trap: number };
}

async function newKey(alg: SigningAlg = 'RS256'): Promise<IssuerKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, privateJwk: await exportJWK(privateKey), publicJwk: { ...publicJwk, kid, alg, use: 'sig' } };
}

/** The newest published key of `alg`; without one, a new key that is not published. */
async function publishedKey(issuer: IssuerState, alg: SigningAlg): Promise<IssuerKey> {
  return [...issuer.keys].reverse().find((key) => key.publicJwk.alg === alg) ?? (await newKey(alg));
}

export interface SignRequest {
  readonly claims: Record<string, unknown>;
  /** Extra or overriding header parameters (`kid`, `jku`, `typ`, …). */
  readonly header?: HeaderParameters;
  /** `published` (default): the newest published key. `foreign`: a key never published, with the published kid unless the header says otherwise. */
  readonly key?: 'published' | 'foreign';
  readonly alg?: SigningAlg;
  /** The payload as exact JSON text, signed as it is instead of `claims`: for what JSON.stringify cannot write (`1e400`). */
  readonly payloadText?: string;
}

interface Site {
  readonly base: string;
  close(): Promise<void>;
}

const ADMIN = /^(.*)\/_test\/(sign|sign-many|rotate|settings|hits)$/;
const DISCOVERY = /^(.*)\/\.well-known\/openid-configuration$/;
const JWKS = /^(.*)\/jwks$/;
const TRAP = /^(.*?)\/trap\/.*$/;
/** `<issuer>/redirect-to-trap` answers 302 to `<issuer>/trap/redirected`: whoever follows it is counted as a trap hit. */
const REDIRECT = /^(.*?)\/redirect-to-trap$/;

class IssuerConflictError extends Error {}

/** Starts one origin. Every site serves the same routes; `sites` collects those started through it. */
async function startSite(sites: Site[]): Promise<Site> {
  /** By issuer path without its trailing slash ('' for the bare origin). */
  const issuers = new Map<string, Promise<IssuerState>>();
  const state = async (path: string, trailingSlash?: boolean): Promise<IssuerState> => {
    let found = issuers.get(path);
    if (found === undefined) {
      found = newKey().then((key) => ({
        trailingSlash: trailingSlash ?? false,
        keys: [key],
        down: false,
        cacheControl: 'public, max-age=300',
        misbehaviour: {},
        hits: { discovery: 0, jwks: 0, trap: 0 },
      }));
      issuers.set(path, found);
    }
    const issuer = await found;
    if (trailingSlash !== undefined && issuer.trailingSlash !== trailingSlash) {
      throw new IssuerConflictError(`issuer ${path} exists ${issuer.trailingSlash ? 'with' : 'without'} a trailing slash`);
    }
    return issuer;
  };

  let base = '';
  /**
   * The origin an issuer is published under: the site's, or `http://localhost:<port>` when addressed so. The same CI
   * system at another host (a second GitHub Enterprise Server), whose issuer URLs differ from the site's in the host alone.
   */
  const originOf = (c: NodeContext): string => {
    const url = new URL(c.req.url);
    return url.hostname === 'localhost' ? url.origin : base;
  };
  const issuerUrl = (origin: string, path: string, issuer: IssuerState): string => `${origin}${path}${issuer.trailingSlash ? '/' : ''}`;

  const admin = async (c: NodeContext, path: string, operation: string): Promise<Response> => {
    const issuer = await state(path, c.req.query('trailing_slash') === '1');
    switch (operation) {
      case 'sign': {
        const request = await c.req.json<SignRequest>();
        const alg = request.alg ?? 'RS256';
        const published = await publishedKey(issuer, alg);
        const signer = request.key === 'foreign' ? await newKey(alg) : published;
        const given = Object.entries({ alg, typ: 'JWT', kid: published.kid, ...request.header }).filter(([, value]) => value !== null);
        const header = Object.fromEntries(given) as JWTHeaderParameters;
        const key = await importJWK(signer.privateJwk, alg);
        const token =
          request.payloadText === undefined
            ? await new SignJWT(request.claims).setProtectedHeader(header).sign(key)
            : await new CompactSign(new TextEncoder().encode(request.payloadText)).setProtectedHeader(header).sign(key);
        return c.json({ token });
      }
      case 'sign-many': {
        // Many claim sets with one key import: the benchmarks' token supply, which needs tens of thousands.
        const { claims } = await c.req.json<{ claims: Record<string, unknown>[] }>();
        const signer = await publishedKey(issuer, 'RS256');
        const key = await importJWK(signer.privateJwk, 'RS256');
        const header = { alg: 'RS256', typ: 'JWT', kid: signer.kid };
        return c.json({ tokens: await Promise.all(claims.map((set) => new SignJWT(set).setProtectedHeader(header).sign(key))) });
      }
      case 'rotate': {
        const { keepOld = false, alg = 'RS256' } = await c.req.json<{ keepOld?: boolean; alg?: SigningAlg }>();
        const key = await newKey(alg);
        issuer.keys = keepOld ? [...issuer.keys, key] : [key];
        return c.json({ kid: key.kid });
      }
      case 'settings': {
        const settings = await c.req.json<IssuerSettings>();
        if (settings.down !== undefined) issuer.down = settings.down;
        if (settings.cacheControl !== undefined) issuer.cacheControl = settings.cacheControl;
        for (const endpoint of ['discovery', 'jwks'] as const) {
          const how = settings[endpoint];
          if (how === null) delete issuer.misbehaviour[endpoint];
          else if (how !== undefined) issuer.misbehaviour[endpoint] = how;
        }
        return c.json({ ok: true });
      }
      default:
        return c.json(issuer.hits);
    }
  };

  const app = new Hono<{ Bindings: HttpBindings }>();
  app.post('/_test/sites', async (c) => {
    const site = await startSite(sites);
    return c.json({ base: site.base });
  });
  app.all('*', async (c) => {
    const path = new URL(c.req.url).pathname;
    try {
      const adminCall = ADMIN.exec(path);
      if (adminCall !== null) return await admin(c, adminCall[1] ?? '', adminCall[2] ?? '');
      const discovery = DISCOVERY.exec(path);
      if (discovery !== null && c.req.method === 'GET') {
        const issuerPath = discovery[1] ?? '';
        const issuer = await state(issuerPath);
        issuer.hits.discovery += 1;
        if (issuer.down) return c.text('down', 503);
        const document = {
          issuer: issuerUrl(originOf(c), issuerPath, issuer),
          jwks_uri: `${originOf(c)}${issuerPath}/jwks`,
          id_token_signing_alg_values_supported: ['RS256', 'ES256', 'ES384', 'ES512'],
        };
        const how = issuer.misbehaviour.discovery;
        return how === undefined ? c.json(document) : await misbehave(c, how, document, `${base}${issuerPath}/trap/redirected`);
      }
      const jwks = JWKS.exec(path);
      if (jwks !== null && c.req.method === 'GET') {
        const issuer = await state(jwks[1] ?? '');
        issuer.hits.jwks += 1;
        if (issuer.down) return c.text('down', 503);
        const document = { keys: issuer.keys.map((key) => key.publicJwk) };
        const how = issuer.misbehaviour.jwks;
        if (how !== undefined) return await misbehave(c, how, document, `${base}${jwks[1] ?? ''}/trap/redirected`);
        c.header('Cache-Control', issuer.cacheControl);
        return c.json(document);
      }
      const redirect = REDIRECT.exec(path);
      if (redirect !== null) return c.redirect(`${base}${redirect[1] ?? ''}/trap/redirected`, 302);
      const trap = TRAP.exec(path);
      if (trap !== null) {
        (await state(trap[1] ?? '')).hits.trap += 1;
        return c.json({ keys: [] });
      }
      return c.text('not found', 404);
    } catch (error) {
      if (error instanceof IssuerConflictError) return c.text(error.message, 409);
      throw error;
    }
  });

  const served = await serveOnLoopback(app.fetch);
  base = served.base;
  const site: Site = { base, close: served.close };
  sites.push(site);
  return site;
}

export async function startTestIssuerServer(): Promise<{ base: string; close(): Promise<void> }> {
  const sites: Site[] = [];
  const main = await startSite(sites);
  return { base: main.base, close: async () => void (await Promise.all(sites.map((site) => site.close()))) };
}
