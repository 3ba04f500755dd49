import fc from 'fast-check';
import { base64url } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REASONS, type Reason } from '../../src/core/errors/reasons.ts';
import { OAUTH_ERRORS, type OAuthErrorCode } from '../../src/http/oauth-errors.ts';
import untrustedTriggers from '../../examples/policies/guardrails/untrusted-triggers.yaml?raw';
import { atIssuer } from '../support/readme-policies.ts';
import type { SigningAlg, TestIssuer } from '../support/test-issuer.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { exchangeForm, freshIssuer, GRANT_TYPE, ID_TOKEN, RFC_6749_ERROR_DESCRIPTION, type BrokerHarness, type StartBroker } from './exchange-suite.ts';

/** How many inputs each property tries, and the seed they are drawn from (a failure names the seed and the shrunk input). */
export interface FuzzRuns {
  readonly runs: number;
  readonly seed: number;
}

/**
 * The claim every policy here needs and no generated claim set carries: whatever is sent, nothing may be granted. A glob,
 * not an exact value, so the policy index files the policies under their other lines and every input meets their matchers.
 */
const GATE = 'fuzz_gate';

const OAUTH_CODES: readonly OAuthErrorCode[] = [...new Set(Object.values(OAUTH_ERRORS).map((answer) => answer.error))];

/** Text an attacker would try: any code points, encodings half done, case and look-alike tricks, paths, numbers JSON cannot hold. */
const hostileText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '%00',
    '%',
    '%zz',
    '%252e%252e/',
    '../../token',
    'ACME/API',
    'acme/api\u0000',
    'refs/heads/MAIN',
    'refs/heads/main ',
    '\u0130',
    '\u212a',
    '\ufeffacme/api',
    '\ud800',
    '1e400',
    '-0',
    'null',
    '[]',
    '{"a":1}',
    'https://github.com/acme/api#x',
    'http://169.254.169.254/latest/meta-data/',
    'urn:ietf:params:oauth:token-type:jwt',
    'eyJhbGciOiJub25lIn0.e30.',
  ),
  fc.webUrl(),
  // Past every length limit (parameters, claims, descriptions) and short of the body's.
  fc.integer({ min: 100, max: 10_000 }).map((length) => 'x'.repeat(length)),
);

const TOKEN_PARAMETERS = [
  'grant_type',
  'subject_token',
  'subject_token_type',
  'actor_token',
  'actor_token_type',
  'requested_token_type',
  'audience',
  'resource',
  'scope',
  'client_id',
  'client_assertion',
  'client_assertion_type',
  'assertion',
  'Grant_Type',
  'subject_token[]',
] as const;

const CLAIM_NAMES = [
  'iss',
  'aud',
  'sub',
  'exp',
  'nbf',
  'iat',
  'jti',
  'azp',
  'cnf',
  'act',
  'may_act',
  'repository',
  'repository_id',
  'repository_owner',
  'repository_owner_id',
  'ref',
  'ref_type',
  'environment',
  'event_name',
  'workflow_ref',
  'job_workflow_ref',
  'runner_environment',
  'actor',
  'base_ref',
  'head_ref',
  'team',
  'groups',
  'nested',
] as const;

// Not crit or b64: jose signs neither with a value it does not understand, so no issuer could send them (the hand-written
// header tests send them unsigned).
/** The claims the policies below match on, beside the gate. */
const MATCHED_CLAIMS = ['sub', 'team', 'groups', 'nested', 'environment', 'repository', 'repository_id', 'repository_owner_id'] as const;

const HEADER_NAMES = ['typ', 'kid', 'cty', 'jku', 'x5u', 'x5c', 'jwk', 'zip', 'x5t#S256'] as const;

/**
 * Refusals as every answer of the broker to a bad request must be: a 4xx (never a 5xx, never a token), an RFC 6749
 * error and description, `no-store`, and, except for a rate-limited run, the audit record of that very refusal, whose
 * reason is what the status and error say.
 */
async function expectRecordedRefusal(broker: BrokerHarness, response: Response): Promise<void> {
  const text = await response.text();
  expect(response.status, text).toBeGreaterThanOrEqual(400);
  expect(response.status, text).toBeLessThan(500);
  expect(response.headers.get('cache-control'), text).toBe('no-store');
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(body).not.toHaveProperty('access_token');
  expect(OAUTH_CODES, text).toContain(body['error']);
  if (body['error_description'] !== undefined) expect(body['error_description']).toMatch(RFC_6749_ERROR_DESCRIPTION);
  if (response.status === 429 && body['audit_event_id'] === undefined) return;
  expect(body['audit_event_id'], text).toBeTypeOf('string');
  const event = await broker.auditEvent(body['audit_event_id'] as string);
  expect(event, text).toBeDefined();
  expect(event).not.toHaveProperty('issued');
  const reason = event?.reason as Reason;
  expect(REASONS[reason]?.decision, text).not.toBe('granted');
  const answer = OAUTH_ERRORS[reason as keyof typeof OAUTH_ERRORS];
  expect({ reason, status: response.status, error: body['error'] }).toEqual({ reason, status: answer.status, error: answer.error });
}

/** A form body: through URLSearchParams, or written raw so half-done percent-encodings and bare `&`/`=` reach the parser. */
function formBody(entries: readonly (readonly [string, string])[], raw: boolean): string {
  if (raw) return entries.map(([name, value]) => `${name}=${value}`).join('&');
  const form = new URLSearchParams();
  for (const [name, value] of entries) form.append(name, value);
  return form.toString();
}

/**
 * Property-based attacks on the exchange's inputs: forms, claims, headers and token text drawn at random (fast-check,
 * from a seed the run prints), each answered as every refusal must be. The policies all need a claim no input carries,
 * and a control test shows the same tokens with it are granted, so "nothing granted" is the broker refusing, not a
 * broker that grants nothing. Runs on Node and inside workerd.
 */
export function hostileInputSuite(runtime: string, start: StartBroker, issuerBase: () => string, fuzz: () => FuzzRuns): void {
  describe(`hostile input at the token, revocation and introspection endpoints on ${runtime}`, () => {
    let broker: BrokerHarness;
    let github: TestIssuer;
    let generic: TestIssuer;
    /** A well-formed GitHub Actions token that matches no policy (no gate claim). */
    let closedToken: string;
    const options = () => ({ numRuns: fuzz().runs, seed: fuzz().seed });
    // Each input is a request or two over loopback: a few ms each, far fewer than this on a loaded machine.
    const timeout = Math.max(20_000, fuzz().runs * 200);
    const claimsOf = (issuer: TestIssuer) =>
      ciClaims(
        issuer.url,
        broker.issuer,
        issuer === generic ? { sub: 'svc-fuzz', team: 'platform', groups: ['ops', 'platform'], nested: { level: 'one' }, environment: 'staging' } : {},
      );

    beforeAll(async () => {
      github = freshIssuer(issuerBase(), 'fuzz-gh');
      generic = freshIssuer(issuerBase(), 'fuzz-oidc');
      const grant = `grant:\n  audience: [https://fuzz.example, https://fuzz-two.example]\n  scopes: [fuzz:read, fuzz:write]\n`;
      broker = await start(
        {
          'fuzz/github.yaml': `version: 1\nissuer: { kind: github, url: "${github.url}" }\nmatch:\n  repository_owner_id: "1200934"\n  repository_id: "734201"\n  repository: acme/api\n  ${GATE}: { glob: open }\n${grant}`,
          'guardrails/untrusted-triggers.yaml': atIssuer(untrustedTriggers, `{ kind: github, url: "${github.url}" }`),
          // A plain OIDC issuer has no claim rules of its own: whatever type a claim has reaches these matchers.
          'fuzz/generic.yaml':
            `version: 1\nissuer: "${generic.url}"\nmatch:\n  sub: svc-fuzz\n  team: { glob: "plat*" }\n  groups: platform\n` +
            `  /nested/level: { regex: "one|two" }\n  environment: { not: production }\n  ${GATE}: { glob: open }\n${grant}`,
        },
        { settings: { KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '100000', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '100000', KEYWAY_RATE_LIMIT_CLIENT_BURST: '100000' } },
      );
      closedToken = await github.sign(claimsOf(github));
    });
    afterAll(() => broker.close());

    const post = (body: string, contentType: string | undefined, method = 'POST') =>
      broker.request('/token', {
        method,
        body: method === 'GET' ? undefined : body,
        headers: contentType === undefined ? {} : { 'content-type': contentType },
      });

    it('grants the same tokens once they carry the gate claim (the control: the refusals below are not a broker that grants nothing)', async () => {
      for (const issuer of [github, generic]) {
        const token = await issuer.sign({ ...claimsOf(issuer), [GATE]: 'open' });
        const response = await post(exchangeForm(token, { audience: 'https://fuzz.example' }).toString(), 'application/x-www-form-urlencoded');
        expect(response.status, await response.clone().text()).toBe(200);
        expect(await response.json()).toHaveProperty('access_token');
      }
      const closed = await post(exchangeForm(closedToken).toString(), 'application/x-www-form-urlencoded');
      await expectRecordedRefusal(broker, closed);
    });

    it(
      'refuses any form, in any media type, by any method, and records why',
      async () => {
        // Mostly a well-formed request with a few parameters changed, dropped or added, so inputs reach every stage of
        // the parser; sometimes nothing of one.
        const keptOr = (valid: string) =>
          fc.oneof({ arbitrary: fc.constant<string | undefined>(valid), weight: 4 }, hostileText, fc.constant<string | undefined>(undefined));
        const value = fc.oneof(hostileText, fc.constantFrom(GRANT_TYPE, ID_TOKEN, 'https://fuzz.example', 'fuzz:read', 'TOKEN'));
        const form = fc.record({
          grant_type: keptOr(GRANT_TYPE),
          subject_token: keptOr('TOKEN'),
          subject_token_type: keptOr(ID_TOKEN),
          more: fc.array(fc.tuple(fc.oneof({ arbitrary: fc.constantFrom(...TOKEN_PARAMETERS), weight: 3 }, hostileText), value), { maxLength: 8 }),
        });
        const contentType = fc.option(
          fc.oneof(
            fc.constantFrom(
              'application/x-www-form-urlencoded',
              'application/x-www-form-urlencoded; charset=utf-8',
              'application/x-www-form-urlencoded; charset=utf-16le',
              'Application/X-WWW-Form-Urlencoded',
              'application/json',
              'multipart/form-data; boundary=x',
              'text/plain',
            ),
            // What a client can put in a header at all: fetch refuses control characters before sending.
            hostileText.filter((text) => /^[\x20-\x7e]*$/.test(text)),
          ),
          { nil: undefined },
        );
        const method = fc.constantFrom('POST', 'POST', 'POST', 'PUT', 'PATCH', 'DELETE', 'GET');
        await fc.assert(
          fc.asyncProperty(form, fc.boolean(), contentType, method, async ({ more, ...base }, raw, type, verb) => {
            const entries = [...Object.entries(base).filter((entry): entry is [string, string] => entry[1] !== undefined), ...more];
            const body = formBody(
              entries.map(([name, text]) => [name, text === 'TOKEN' ? closedToken : text] as const),
              raw,
            );
            await expectRecordedRefusal(broker, await post(body, type, verb));
          }),
          options(),
        );
      },
      timeout,
    );

    it(
      'refuses tokens of trusted issuers whatever their claims and header hold, and records why',
      async () => {
        const scalar = fc.oneof(hostileText, fc.constantFrom(1e300, -1, 0, 2 ** 53, 1.5, true, null, 'platform', 'one'));
        // Arrays and objects first: a claim of a type its reader does not expect is where a matcher would throw.
        const claimValue = fc.oneof(
          { arbitrary: fc.array(fc.oneof(scalar, fc.jsonValue({ maxDepth: 1 })), { maxLength: 4 }), weight: 2 },
          { arbitrary: fc.dictionary(fc.constantFrom('level', 'x', ''), fc.oneof(scalar, fc.jsonValue({ maxDepth: 1 })), { maxKeys: 2 }), weight: 1 },
          { arbitrary: scalar, weight: 1 },
          { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 1 },
        );
        // One to three of the claims the policies and presets read, so the values meet the checks rather than pass them by,
        // and up to three of any others.
        const claims = fc
          .tuple(
            fc.dictionary(fc.constantFrom(...MATCHED_CLAIMS), claimValue, { minKeys: 1, maxKeys: 3 }),
            fc.dictionary(fc.oneof(fc.constantFrom(...CLAIM_NAMES), hostileText), claimValue, { maxKeys: 3 }),
          )
          .map(([matched, others]) => ({ ...others, ...matched }))
          .filter((set) => !(GATE in set));
        const header = fc.dictionary(fc.constantFrom(...HEADER_NAMES), fc.oneof(fc.jsonValue({ maxDepth: 2 }), hostileText), { maxKeys: 3 });
        // Mostly the issuer's own RS256 key, so most inputs get past the signature to the claim checks.
        const signer = fc.record({
          issuer: fc.constantFrom('github', 'generic'),
          alg: fc.oneof({ arbitrary: fc.constant<SigningAlg>('RS256'), weight: 6 }, fc.constantFrom<SigningAlg>('ES256', 'ES384', 'ES512')),
          key: fc.oneof({ arbitrary: fc.constant('published' as const), weight: 4 }, fc.constant('foreign' as const)),
        });
        const target = fc.dictionary(fc.constantFrom('audience', 'resource', 'scope', 'requested_token_type'), hostileText, { maxKeys: 2 });
        await fc.assert(
          fc.asyncProperty(claims, header, signer, target, async (overrides, extraHeader, how, extra) => {
            const issuer = how.issuer === 'github' ? github : generic;
            let token: string;
            try {
              token = await issuer.sign({ ...claimsOf(issuer), ...overrides }, { header: extraHeader, alg: how.alg, key: how.key });
            } catch {
              // jose will not sign some headers (b64 without crit, crit it does not know): not an input a broker can receive.
              return fc.pre(false);
            }
            await expectRecordedRefusal(broker, await post(exchangeForm(token, extra).toString(), 'application/x-www-form-urlencoded'));
          }),
          options(),
        );
      },
      timeout,
    );

    it(
      'refuses a token whose text was changed, segment by segment, and records why',
      async () => {
        const [header, payload, signature] = closedToken.split('.') as [string, string, string];
        const segment = fc.oneof(
          fc.constantFrom(header, payload, signature, ''),
          fc.uint8Array({ maxLength: 96 }).map((bytes) => base64url.encode(bytes)),
          fc.jsonValue({ maxDepth: 2 }).map((value) => base64url.encode(JSON.stringify(value) ?? 'null')),
          hostileText,
        );
        const text = fc.oneof(
          fc.array(segment, { minLength: 1, maxLength: 6 }).map((parts) => parts.join('.')),
          fc
            .tuple(fc.nat(closedToken.length - 1), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }))
            .map(([at, inserted]) => closedToken.slice(0, at) + inserted + closedToken.slice(at + 1)),
          fc.constantFrom(` ${closedToken}`, `${closedToken}\n`, closedToken.toUpperCase(), `${header}.${payload}.`, `${header}.${payload}`),
        );
        await fc.assert(
          fc.asyncProperty(text, async (token) => {
            await expectRecordedRefusal(broker, await post(exchangeForm(token).toString(), 'application/x-www-form-urlencoded'));
          }),
          options(),
        );
      },
      timeout,
    );

    it(
      'answers /revoke and /introspect, whoever asks and whatever they send, without a 5xx, a cached answer or an active token',
      async () => {
        const [header, payload] = closedToken.split('.') as [string, string];
        const token = fc.oneof(hostileText, fc.constantFrom('TOKEN', `${header}.${payload}.`, `${header}.${payload}`));
        const authorization = fc.option(
          fc
            .tuple(fc.constantFrom('Bearer ', 'bearer ', 'DPoP ', 'Basic ', '', 'Bearer  '), token)
            .map(([scheme, credential]) => scheme + (credential === 'TOKEN' ? closedToken : credential))
            .filter((text) => /^[\x20-\x7e]*$/.test(text)),
          { nil: undefined },
        );
        const entries = fc.array(fc.tuple(fc.oneof({ arbitrary: fc.constantFrom('token', 'token_type_hint'), weight: 3 }, hostileText), token), {
          maxLength: 4,
        });
        const dpop = fc.option(
          fc.oneof(token, fc.constant('eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.')).filter((text) => /^[\x20-\x7e]*$/.test(text)),
          { nil: undefined },
        );
        await fc.assert(
          fc.asyncProperty(fc.constantFrom('/revoke', '/introspect'), entries, fc.boolean(), authorization, dpop, async (path, form, raw, auth, proof) => {
            const body = formBody(
              form.map(([name, text]) => [name, text === 'TOKEN' ? closedToken : text] as const),
              raw,
            );
            const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
            if (auth !== undefined) headers['authorization'] = auth;
            if (proof !== undefined) headers['dpop'] = proof;
            const response = await broker.request(path, { method: 'POST', body, headers });
            const text = await response.text();
            expect(response.status, text).toBeLessThan(500);
            expect(response.headers.get('cache-control'), text).toBe('no-store');
            // RFC 7009 §2.2: a revocation, or a token that is none, is a 200 with nothing in it.
            if (path === '/revoke' && response.status === 200) {
              expect(text).toBe('');
              return;
            }
            const answer = JSON.parse(text) as Record<string, unknown>;
            if (response.status >= 400) {
              expect(OAUTH_CODES, text).toContain(answer['error']);
              if (answer['error_description'] !== undefined) expect(answer['error_description']).toMatch(RFC_6749_ERROR_DESCRIPTION);
            } else if (path === '/introspect') {
              // Nothing here is a keyway token: none can be active.
              expect(answer, text).toEqual({ active: false });
            }
          }),
          options(),
        );
      },
      timeout,
    );
  });
}
