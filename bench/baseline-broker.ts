// The hand-rolled baseline of `npm run bench`: the token exchange a team would write instead of
// running keyway, with the libraries such a team reaches for and in the way their READMEs show:
// express with its form parser, jwks-rsa fetching and caching the issuer's JWKS (its defaults),
// jsonwebtoken verifying the RS256 CI token with the PEM jwks-rsa gives and signing an ES256
// token with the PEM key the service holds, one hard-coded rule (repository and ref), and one log
// line per decision appended to a file. RFC 8693 form in, JSON out, like keyway's POST /token.
// No audit chain, no policies, no replay checks, no rate limits: the point of comparison.
// Started by bench/broker-process.ts (startBaselineBroker) in a process of its own; prints its URL
// once it listens; SIGTERM closes it. On several cores, bench/baseline-processes.ts runs copies of it.
// Environment: bench/one-rule-settings.ts's (issuer, audience, the rule), BASELINE_LOG (the log
// file), PORT, BASELINE_SIGNING_KEY (see signingKeyPem).
import cluster from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import type { AddressInfo } from 'node:net';
import express from 'express';
import jwt, { type JwtPayload } from 'jsonwebtoken';
import jwksClient from 'jwks-rsa';
import { AUDIENCE, ISSUER, RULE, setting, signingKeyPem } from './one-rule-settings.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TOKEN_TTL_SECONDS = 600;

const discovery = (await (await fetch(`${ISSUER}/.well-known/openid-configuration`)).json()) as { jwks_uri: string };
const jwks = jwksClient({ jwksUri: discovery.jwks_uri });
const getKey: jwt.GetPublicKeyOrSecret = (header, callback) => {
  jwks.getSigningKey(header.kid).then(
    (key) => callback(null, key.getPublicKey()),
    (error: Error) => callback(error),
  );
};
const privateKey = signingKeyPem();
const log = createWriteStream(setting('BASELINE_LOG'), { flags: 'a' });

/** The decision's log line: who asked and what was decided, never the token. */
const logDecision = (ip: string | undefined, decision: string, claims?: JwtPayload) => {
  const { iss, sub, jti, repository, ref } = claims ?? {};
  log.write(`${JSON.stringify({ time: new Date().toISOString(), decision, ip, iss, sub, jti, repository, ref })}\n`);
};

const app = express();
app.post('/token', express.urlencoded({ extended: false }), (req, res) => {
  const form = (req.body ?? {}) as Record<string, unknown>;
  const refuse = (error: string, description: string, claims?: JwtPayload) => {
    logDecision(req.ip, `refused: ${description}`, claims);
    res.status(400).json({ error, error_description: description });
  };
  if (form['grant_type'] !== TOKEN_EXCHANGE) return refuse('unsupported_grant_type', 'not a token exchange');
  const subjectToken = form['subject_token'];
  const subjectTokenType = String(form['subject_token_type']);
  if (typeof subjectToken !== 'string' || !subjectTokenType.startsWith('urn:ietf:params:oauth:token-type:'))
    return refuse('invalid_request', 'no subject token');
  jwt.verify(subjectToken, getKey, { algorithms: ['RS256'], issuer: ISSUER, audience: AUDIENCE }, (error, payload) => {
    if (error !== null || payload === undefined || typeof payload === 'string') return refuse('invalid_request', `invalid subject token: ${error?.message}`);
    if (payload['repository'] !== RULE.repository || payload['ref'] !== RULE.ref) return refuse('invalid_request', 'no rule allows it', payload);
    const accessToken = jwt.sign({ scope: 'deploy:write artifacts:read', repository: payload['repository'] }, privateKey, {
      algorithm: 'ES256',
      keyid: 'baseline',
      issuer: AUDIENCE,
      audience: 'https://deploy.acme.dev',
      subject: `github:${String(payload['repository'])}:${String(payload['environment'])}`,
      expiresIn: TOKEN_TTL_SECONDS,
      jwtid: randomUUID(),
    });
    logDecision(req.ip, 'granted', payload);
    res.set('cache-control', 'no-store').json({
      access_token: accessToken,
      issued_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_type: 'Bearer',
      expires_in: TOKEN_TTL_SECONDS,
    });
  });
});

const server = app.listen(Number(process.env['PORT'] ?? 0), '127.0.0.1', () => {
  // A copy under node:cluster leaves the URL to its primary, which prints it once every copy listens.
  if (cluster.isPrimary) process.stdout.write(`http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.once('SIGTERM', () => server.close(() => log.end(() => process.exit(0))));
