// The settings of the bench's one-rule servers (bench/baseline-broker.ts, bench/http-floor-broker.ts),
// read from the environment bench/broker-process.ts gives them: the CI issuer (its JWKS found by
// discovery), the CI token's `aud` (also their tokens' `iss`), and the rule: the repository and ref
// they grant.
import { generateKeyPairSync } from 'node:crypto';

/** An environment variable that must be set. */
export function setting(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} is not set`);
  return value;
}

export const ISSUER = setting('RULE_ISSUER');
export const AUDIENCE = setting('RULE_AUDIENCE');
export const RULE = { repository: setting('RULE_REPOSITORY'), ref: setting('RULE_REF') };

/** The ES256 key (PEM) a server signs with, as if read from a mounted secret at start: BASELINE_SIGNING_KEY, or a new one. */
export function signingKeyPem(): string {
  return (
    process.env['BASELINE_SIGNING_KEY'] ??
    generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } })
      .privateKey
  );
}
