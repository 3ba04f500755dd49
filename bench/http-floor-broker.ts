// The HTTP + crypto floor of `npm run bench`: what keyway's own stack costs with nothing of keyway
// in it. The same Hono app on @hono/node-server that keyway runs on Node, one POST /token route that
// parses the RFC 8693 form, verifies the RS256 CI token with node:crypto against the issuer's key
// (its JWKS found by discovery at start, keys imported once, chosen by kid), checks iss, aud, exp,
// nbf and the one rule (repository and ref), and signs an ES256 token with node:crypto. No audit,
// no policies, no logs, no metrics, no rate limits, no replay checks. Not a service anyone should
// run: the line below which no broker on this stack and these signatures can go, so that the
// bench can say how much of keyway's CPU per exchange is keyway's own.
// Started by bench/broker-process.ts (startHttpFloorBroker) in a process of its own; prints its URL
// once it listens. Environment: bench/one-rule-settings.ts's, PORT, and FLOOR_GRANTS (a file: on SIGTERM it writes {"exchanges", "distinctTokens"} of what it granted).
import { createPublicKey, generateKeyPairSync, type KeyObject, randomUUID, sign, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { AUDIENCE, ISSUER, RULE, setting } from './one-rule-settings.ts';

const TOKEN_TTL_SECONDS = 600;

const discovery = (await (await fetch(`${ISSUER}/.well-known/openid-configuration`)).json()) as { jwks_uri: string };
const jwks = (await (await fetch(discovery.jwks_uri)).json()) as { keys: ({ kid?: string } & Record<string, unknown>)[] };
const keys = new Map<string, KeyObject>(jwks.keys.map((jwk) => [jwk.kid ?? '', createPublicKey({ key: jwk as never, format: 'jwk' })]));
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const HEADER = Buffer.from(JSON.stringify({ alg: 'ES256', kid: 'floor', typ: 'at+jwt' })).toString('base64url');
const granted: string[] = [];

type Claims = Record<string, unknown> & { iss?: unknown; aud?: unknown; exp?: unknown; nbf?: unknown; jti?: unknown };

/** The CI token's claims if node:crypto verifies its signature with the issuer's key and they pass the checks, else undefined. */
function verified(token: string): Claims | undefined {
  const [header, payload, signature, extra] = token.split('.');
  if (header === undefined || payload === undefined || signature === undefined || extra !== undefined) return undefined;
  const { alg, kid } = JSON.parse(Buffer.from(header, 'base64url').toString()) as { alg?: unknown; kid?: unknown };
  const key = keys.get(String(kid));
  if (alg !== 'RS256' || key === undefined) return undefined;
  if (!verify('sha256', Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, 'base64url'))) return undefined;
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Claims;
  const now = Date.now() / 1000;
  const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (claims.iss !== ISSUER || !audience.includes(AUDIENCE) || typeof claims.exp !== 'number' || claims.exp <= now) return undefined;
  if (typeof claims.nbf === 'number' && claims.nbf > now) return undefined;
  return claims;
}

const app = new Hono();
app.post('/token', async (c) => {
  const form = new URLSearchParams(await c.req.text());
  const claims = form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:token-exchange' ? verified(form.get('subject_token') ?? '') : undefined;
  if (claims === undefined || claims['repository'] !== RULE.repository || claims['ref'] !== RULE.ref) {
    return c.json({ error: 'invalid_request', error_description: 'refused' }, 400);
  }
  const now = Math.floor(Date.now() / 1000);
  const body = Buffer.from(
    JSON.stringify({ iss: AUDIENCE, sub: claims['sub'], aud: 'https://deploy.acme.dev', iat: now, exp: now + TOKEN_TTL_SECONDS, jti: randomUUID() }),
  ).toString('base64url');
  const signature = sign('sha256', Buffer.from(`${HEADER}.${body}`), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  granted.push(String(claims.jti));
  return c.json(
    {
      access_token: `${HEADER}.${body}.${signature}`,
      issued_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_type: 'Bearer',
      expires_in: TOKEN_TTL_SECONDS,
    },
    200,
    { 'cache-control': 'no-store' },
  );
});

const server = serve({ fetch: app.fetch, port: Number(process.env['PORT'] ?? 0), hostname: '127.0.0.1' }, (info) => {
  process.stdout.write(`http://127.0.0.1:${info.port}\n`);
});
process.once('SIGTERM', () => {
  writeFileSync(setting('FLOOR_GRANTS'), JSON.stringify({ exchanges: granted.length, distinctTokens: new Set(granted).size }));
  server.close(() => process.exit(0));
});
