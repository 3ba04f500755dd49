import fc from 'fast-check';
import { base64url } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asciiLowerCase } from '../../src/core/claims/case-fold.ts';
import { REASONS, type Reason } from '../../src/core/errors/reasons.ts';
import { OAUTH_ERRORS, type OAuthErrorCode } from '../../src/http/oauth-errors.ts';
import { AUDIT_EVENT_HEADER } from '../../src/http/routes/proxy.ts';
import untrustedTriggers from '../../examples/policies/guardrails/untrusted-triggers.yaml?raw';
import { atIssuer } from '../support/readme-policies.ts';
import type { SigningAlg, TestIssuer } from '../support/test-issuer.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { readMasterKeys } from '../../src/core/secrets/master-keys.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { UPSTREAM_SECRET_PURPOSE } from '../../src/features/proxy/proxy-settings.ts';
import { fakeUpstreamCalls, type UpstreamCall } from '../support/fake-upstream.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { deliveryRequest, WEBHOOK_SECRET } from '../support/github-webhook-delivery.ts';
import { jsonLogger } from '../../src/core/log.ts';
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

const FORM = 'application/x-www-form-urlencoded';

/**
 * Node's HTTP server answers a request line and headers over 16 KiB itself (431), before keyway sees the request, where
 * the fuzzed headers add up to that. An upstream's 431 relayed by keyway would carry its audit event id, and is checked.
 */
function refusedByTheHttpServer(response: Response): boolean {
  return response.status === 431 && !response.headers.has(AUDIT_EVENT_HEADER);
}

/** fast-check's settings for a property: the run's seed, and its inputs `times` over (for inputs that are one cheap request). */
function propertyRuns(fuzz: FuzzRuns, times = 1): { readonly numRuns: number; readonly seed: number } {
  return { numRuns: fuzz.runs * times, seed: fuzz.seed };
}

/** A property's time limit: each input a request or a few over loopback, far quicker than `msPerInput` on a loaded machine. */
function propertyTimeout(fuzz: FuzzRuns, msPerInput: number): number {
  return Math.max(20_000, fuzz.runs * msPerInput);
}

/** What a client can put in a header's value at all: fetch refuses control characters before sending. */
function isHeaderValue(text: string): boolean {
  return /^[\x20-\x7e]*$/.test(text);
}

/** What the fuzz's operator of the broker may do: read its APIs, and introspect. */
const OPERATOR_SCOPES = [
  'audit:read',
  'policy:explain',
  'health:read',
  'tokens:introspect',
  'tokens:revoke',
  'keys:read',
  'keys:rotate',
  'keys:withdraw',
] as const;

/** The issuer both test harnesses give the broker: policies naming it are written before it starts. */
const HARNESS_ISSUER = 'https://keyway.test';

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

/** A claim's value: arrays and objects first, since a claim of a type its reader does not expect is where a matcher would throw. */
const claimValue = (() => {
  const scalar = fc.oneof(hostileText, fc.constantFrom(1e300, -1, 0, 2 ** 53, 1.5, true, null, 'platform', 'one'));
  return fc.oneof(
    { arbitrary: fc.array(fc.oneof(scalar, fc.jsonValue({ maxDepth: 1 })), { maxLength: 4 }), weight: 2 },
    { arbitrary: fc.dictionary(fc.constantFrom('level', 'x', ''), fc.oneof(scalar, fc.jsonValue({ maxDepth: 1 })), { maxKeys: 2 }), weight: 1 },
    { arbitrary: scalar, weight: 1 },
    { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 1 },
  );
})();

/** The query parameters the operator APIs read (docs/audit/api.md, docs/audit/inventory.md). */
const OPERATOR_QUERY_NAMES = [
  'decision',
  'reason',
  'issuer',
  'subject',
  'policy',
  'repository',
  'upstream',
  'jti',
  'since',
  'until',
  'limit',
  'cursor',
  'order',
  'by',
  'format',
  'bucket',
  'shard',
  'after',
  'days',
] as const;

const OPERATOR_GET_PATHS = [
  '/v1/audit/events',
  '/v1/audit/export',
  '/v1/audit/stats',
  '/v1/audit/alerts',
  '/v1/audit/shards',
  '/v1/audit/checkpoints',
  '/v1/audit/checkpoints/latest',
  '/v1/audit/root-checkpoints',
  '/v1/audit/keys',
  '/v1/inventory',
  '/v1/inventory/usage',
  '/v1/health',
] as const;

/** The claims the policies below match on, beside the gate. */
const MATCHED_CLAIMS = ['sub', 'team', 'groups', 'nested', 'environment', 'repository', 'repository_id', 'repository_owner_id'] as const;

// Not crit or b64: jose signs neither with a value it does not understand, so no issuer could send them (the hand-written
// header tests send them unsigned).
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
    /** A keyway token of this broker's operator: its APIs, and introspection. */
    let operator: string;
    const timeout = propertyTimeout(fuzz(), 200);
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
          // An operator of this broker, for its own APIs.
          'ops/operator.yaml': `version: 1\nissuer: "${generic.url}"\nmatch: { sub: fuzz-operator }\ngrant:\n  audience: ${HARNESS_ISSUER}\n  scopes: [${OPERATOR_SCOPES.join(', ')}]\n`,
          // A plain OIDC issuer has no claim rules of its own: whatever type a claim has reaches these matchers.
          'fuzz/generic.yaml':
            `version: 1\nissuer: "${generic.url}"\nmatch:\n  sub: svc-fuzz\n  team: { glob: "plat*" }\n  groups: platform\n` +
            `  /nested/level: { regex: "one|two" }\n  environment: { not: production }\n  ${GATE}: { glob: open }\n${grant}`,
        },
        { settings: { KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '100000', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '100000', KEYWAY_RATE_LIMIT_CLIENT_BURST: '100000' } },
      );
      closedToken = await github.sign(claimsOf(github));
      const subject = await generic.sign({ ...ciClaims(generic.url, broker.issuer, { sub: 'fuzz-operator' }) });
      const granted = await post(exchangeForm(subject, { audience: broker.issuer, scope: OPERATOR_SCOPES.join(' ') }).toString(), FORM);
      expect(granted.status, await granted.clone().text()).toBe(200);
      operator = ((await granted.json()) as Record<string, string>)['access_token']!;
    });
    afterAll(() => broker.close());

    /** A form of these entries, the placeholder TOKEN standing for closedToken. */
    const formOf = (entries: readonly (readonly [string, string])[], raw: boolean) =>
      formBody(
        entries.map(([name, text]) => [name, text === 'TOKEN' ? closedToken : text] as const),
        raw,
      );
    const post = (body: string, contentType: string | undefined, method = 'POST') =>
      broker.request('/token', {
        method,
        body: method === 'GET' ? undefined : body,
        headers: contentType === undefined ? {} : { 'content-type': contentType },
      });

    it('grants the same tokens once they carry the gate claim (the control: the refusals below are not a broker that grants nothing)', async () => {
      for (const issuer of [github, generic]) {
        const token = await issuer.sign({ ...claimsOf(issuer), [GATE]: 'open' });
        const response = await post(exchangeForm(token, { audience: 'https://fuzz.example' }).toString(), FORM);
        expect(response.status, await response.clone().text()).toBe(200);
        expect(await response.json()).toHaveProperty('access_token');
      }
      const closed = await post(exchangeForm(closedToken).toString(), FORM);
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
        // Mostly a form POSTed, as the parser takes it: another media type or method is refused before the form is read.
        const contentType = fc.option(
          fc.oneof(
            {
              arbitrary: fc.constantFrom(FORM, 'application/x-www-form-urlencoded; charset=utf-8', 'Application/X-WWW-Form-Urlencoded'),
              weight: 6,
            },
            fc.constantFrom('application/x-www-form-urlencoded; charset=utf-16le', 'application/json', 'multipart/form-data; boundary=x', 'text/plain'),
            hostileText.filter(isHeaderValue),
          ),
          { nil: undefined, freq: 12 },
        );
        const method = fc.oneof({ arbitrary: fc.constant('POST'), weight: 6 }, fc.constantFrom('PUT', 'PATCH', 'DELETE', 'GET'));
        await fc.assert(
          fc.asyncProperty(form, fc.boolean(), contentType, method, async ({ more, ...base }, raw, type, verb) => {
            const entries = [...Object.entries(base).filter((entry): entry is [string, string] => entry[1] !== undefined), ...more];
            await expectRecordedRefusal(broker, await post(formOf(entries, raw), type, verb));
          }),
          propertyRuns(fuzz()),
        );
      },
      timeout,
    );

    it(
      'refuses tokens of trusted issuers whatever their claims and header hold, and records why',
      async () => {
        // One to three of the claims the policies and presets read, so the values meet the checks rather than pass them by,
        // and up to three of any others.
        const claims = fc
          .tuple(
            fc.dictionary(fc.constantFrom(...MATCHED_CLAIMS), claimValue, { minKeys: 1, maxKeys: 3 }),
            fc.dictionary(fc.oneof(fc.constantFrom(...CLAIM_NAMES), hostileText), claimValue, { maxKeys: 3 }),
          )
          .map(([matched, others]) => ({ ...others, ...matched }))
          .filter((set) => !(GATE in set));
        // Mostly the issuer's own header and no target: jku, x5u, x5c and jwk are refused as such, as is a hostile target,
        // before any claim is read.
        const header = fc.oneof(
          { arbitrary: fc.constant({}), weight: 3 },
          fc.dictionary(fc.constantFrom(...HEADER_NAMES), fc.oneof(fc.jsonValue({ maxDepth: 2 }), hostileText), { minKeys: 1, maxKeys: 3 }),
        );
        // Mostly the issuer's own RS256 key, so most inputs get past the signature to the claim checks.
        const signer = fc.record({
          issuer: fc.constantFrom('github', 'generic'),
          alg: fc.oneof({ arbitrary: fc.constant<SigningAlg>('RS256'), weight: 6 }, fc.constantFrom<SigningAlg>('ES256', 'ES384', 'ES512')),
          key: fc.oneof({ arbitrary: fc.constant('published' as const), weight: 4 }, fc.constant('foreign' as const)),
        });
        const target = fc.oneof(
          { arbitrary: fc.constant({}), weight: 3 },
          fc.dictionary(fc.constantFrom('audience', 'resource', 'scope', 'requested_token_type'), hostileText, { minKeys: 1, maxKeys: 2 }),
        );
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
            await expectRecordedRefusal(broker, await post(exchangeForm(token, extra).toString(), FORM));
          }),
          propertyRuns(fuzz()),
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
            await expectRecordedRefusal(broker, await post(exchangeForm(token).toString(), FORM));
          }),
          propertyRuns(fuzz()),
        );
      },
      timeout,
    );

    it(
      'answers the operator APIs, whatever an operator asks of them, without a 5xx or a cached refusal',
      async () => {
        const visible = (text: string) => /^[\x21-\x7e]*$/.test(text);
        const value = fc.oneof(
          fc.constantFrom(
            '',
            '0',
            '-1',
            '1',
            '1e9',
            '9007199254740993',
            'granted',
            'denied',
            'no_policy_matched',
            'desc',
            'asc',
            'csv',
            'ndjson',
            'hour',
            '0',
            'legacy',
          ),
          fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
          fc.constantFrom('2026-13-45T99:00:00Z', '01ANYTHING', '01M95NHQXPEFZRSBS1BG28KKRN', 'AAAA', '%00', '%ZZ'),
          hostileText,
        );
        const name = fc.oneof(
          { arbitrary: fc.constantFrom(...OPERATOR_QUERY_NAMES), weight: 4 },
          hostileText.filter((text) => visible(text) && !/[&=#]/.test(text)),
        );
        const query = fc.array(fc.tuple(name, value), { maxLength: 5 }).map((pairs) => {
          const search = new URLSearchParams();
          for (const [key, text] of pairs) search.append(key, text);
          return search.toString();
        });
        const get = fc.record({
          method: fc.constant('GET'),
          path: fc.oneof(
            fc.constantFrom(...OPERATOR_GET_PATHS),
            hostileText.filter(visible).map((id) => `/v1/audit/events/${encodeURIComponent(id)}`),
            hostileText.filter(visible).map((id) => `/v1/audit/events/${encodeURIComponent(id)}/explanation`),
          ),
          query,
          body: fc.constant<string | undefined>(undefined),
        });
        const claims = fc
          .tuple(
            fc.constantFrom(github.url, generic.url, 'https://untrusted.example'),
            fc.dictionary(fc.constantFrom(...CLAIM_NAMES), claimValue, { maxKeys: 5 }),
          )
          .map(([iss, rest]) => ({ iss, ...rest }));
        const explain = fc.oneof(
          // What each reads (docs/policies/explain.md): explain, claims (of a trusted issuer, mostly) and what is asked for;
          // who-can, the scope, audience or GitHub permission asked about. Now and then any JSON.
          fc.record({
            method: fc.constant('POST'),
            path: fc.constant('/v1/policy/explain'),
            query: fc.constant(''),
            body: fc
              .record({ claims, audience: fc.oneof(hostileText, fc.array(hostileText, { maxLength: 3 })), scope: hostileText }, { requiredKeys: ['claims'] })
              .map((json) => JSON.stringify(json)),
          }),
          fc.record({
            method: fc.constant('POST'),
            path: fc.constant('/v1/policy/who-can'),
            query: fc.constant(''),
            body: fc
              .record(
                {
                  audience: fc.oneof({ arbitrary: fc.constantFrom('https://fuzz.example', 'https://fuzz-two.example'), weight: 2 }, hostileText),
                  scope: fc.oneof({ arbitrary: fc.constantFrom('fuzz:read', 'fuzz:write'), weight: 2 }, hostileText),
                  github_permission: fc.oneof({ arbitrary: fc.constantFrom('contents:read', 'contents:write', 'issues:write'), weight: 2 }, hostileText),
                },
                { requiredKeys: [] },
              )
              .map((json) => JSON.stringify(json)),
          }),
          // A revocation by jti: a jti no grant issued, or any JSON.
          fc.record({
            method: fc.constant('POST'),
            path: fc.constant('/v1/tokens/revoke'),
            query: fc.constant(''),
            body: fc.record({ jti: hostileText }).map((json) => JSON.stringify(json)),
          }),
          fc.record({
            method: fc.constant('POST'),
            path: fc.constantFrom('/v1/policy/explain', '/v1/policy/who-can', '/v1/tokens/revoke'),
            query: fc.constant(''),
            body: fc.oneof(
              fc.jsonValue({ maxDepth: 4 }).map((json) => JSON.stringify(json) ?? 'null'),
              hostileText,
            ),
          }),
        );
        await fc.assert(
          fc.asyncProperty(fc.oneof(get, explain), async (call) => {
            const response = await broker.request(`${call.path}${call.query === '' ? '' : `?${call.query}`}`, {
              method: call.method,
              body: call.body,
              headers: { authorization: `Bearer ${operator}`, ...(call.body === undefined ? {} : { 'content-type': 'application/json' }) },
            });
            const text = await response.text();
            if (refusedByTheHttpServer(response)) return;
            expect(response.status, text).toBeLessThan(500);
            if (response.status >= 400) {
              expect(response.headers.get('cache-control'), text).toBe('no-store');
              const answer = JSON.parse(text) as Record<string, unknown>;
              expect(answer['error'], text).toBeTypeOf('string');
              if (answer['error_description'] !== undefined) expect(answer['error_description']).toMatch(RFC_6749_ERROR_DESCRIPTION);
            }
          }),
          propertyRuns(fuzz(), 3),
        );
      },
      timeout,
    );

    it('refuses what is not a withdrawal or a rotation at /v1/keys: a 400 invalid_request for each, and the signing keys as they were', async () => {
      const keys = async () => (await broker.request('/v1/keys', { headers: { authorization: `Bearer ${operator}` } })).json();
      const before = (await keys()) as { keys: { kid: string; state: string; alg: string }[] };
      // The current key's kid: a parser that read past what is refused here would withdraw it.
      const kid = before.keys.find((key) => key.state === 'current' && key.alg === 'ES256')?.kid ?? '';
      const json = 'application/json';
      const bodies: readonly (readonly [path: string, contentType: string, body: string])[] = [
        ['/v1/keys/withdraw', json, `kid=${kid}`],
        ['/v1/keys/withdraw', json, `{"kid":"${kid}"`],
        ['/v1/keys/withdraw', json, ''],
        ['/v1/keys/withdraw', 'text/plain', JSON.stringify({ kid })],
        ['/v1/keys/withdraw', 'application/x-www-form-urlencoded', JSON.stringify({ kid })],
        ['/v1/keys/withdraw', 'application/jsonp', JSON.stringify({ kid })],
        // A type a browser posts across origins unasked, whose parameter only names JSON.
        ['/v1/keys/withdraw', 'text/plain; charset=application/json', JSON.stringify({ kid })],
        ['/v1/keys/withdraw', json, JSON.stringify({ kid: kid.repeat(40) })],
        ['/v1/keys/withdraw', json, JSON.stringify({ kid: 'k'.repeat(200) })],
        ['/v1/keys/withdraw', json, JSON.stringify({ kid: 'k'.repeat(129) })],
        ['/v1/keys/withdraw', json, JSON.stringify({ kid: `../${kid}` })],
        ['/v1/keys/withdraw', json, JSON.stringify({ kid: `${kid}=` })],
        ['/v1/keys/withdraw', json, JSON.stringify({ kid, also: 'this' })],
        ['/v1/keys/withdraw', json, JSON.stringify({ kid: '' })],
        ['/v1/keys/withdraw', json, JSON.stringify({ kid: `${kid}\u00e9` })],
        ['/v1/keys/withdraw', json, JSON.stringify({ kid: `\u00e9${kid}` })],
        ['/v1/keys/withdraw', json, JSON.stringify({ kid: 'ключ-🔑' })],
        ['/v1/keys/withdraw', json, JSON.stringify({ kid: [kid] })],
        ['/v1/keys/withdraw', json, JSON.stringify({ kid: null })],
        ['/v1/keys/withdraw', json, JSON.stringify([{ kid }])],
        ['/v1/keys/withdraw', json, `{"kid":"not-this-one","kid":"${kid}"}`],
        ['/v1/keys/withdraw', json, `{"kid":"${kid}","k\\u0069d":"not-this-one"}`],
        ['/v1/keys/rotate', json, '{}'],
        ['/v1/keys/rotate', json, '{"rotate":'],
        ['/v1/keys/rotate', 'text/plain', 'rotate, please'],
        ['/v1/keys/rotate', 'text/plain', 'x'],
      ];
      for (const [path, contentType, body] of bodies) {
        const response = await broker.request(path, { method: 'POST', body, headers: { authorization: `Bearer ${operator}`, 'content-type': contentType } });
        const text = await response.text();
        const what = `${path} ${contentType} ${body.slice(0, 80)}: ${text}`;
        expect(response.status, what).toBe(400);
        expect(response.headers.get('cache-control'), what).toBe('no-store');
        const answer = JSON.parse(text) as Record<string, unknown>;
        expect(answer['error'], what).toBe('invalid_request');
        expect(answer['error_description'], what).toMatch(RFC_6749_ERROR_DESCRIPTION);
      }
      expect(await keys()).toEqual(before);
    });

    it(
      'answers /revoke and /introspect, whoever asks and whatever they send, without a 5xx, a cached answer or an active token',
      async () => {
        const [header, payload] = closedToken.split('.') as [string, string];
        const token = fc.oneof(hostileText, fc.constantFrom('TOKEN', `${header}.${payload}.`, `${header}.${payload}`));
        // Now and then the operator's own keyway token, so that introspection answers about what is sent, not only 401.
        const authorization = fc.option(
          fc.oneof(
            fc.constant('OPERATOR'),
            fc
              .tuple(fc.constantFrom('Bearer ', 'bearer ', 'DPoP ', 'Basic ', '', 'Bearer  '), token)
              .map(([scheme, credential]) => scheme + (credential === 'TOKEN' ? closedToken : credential))
              .filter(isHeaderValue),
          ),
          { nil: undefined },
        );
        const entries = fc.array(fc.tuple(fc.oneof({ arbitrary: fc.constantFrom('token', 'token_type_hint'), weight: 3 }, hostileText), token), {
          maxLength: 4,
        });
        const dpop = fc.option(fc.oneof(token, fc.constant('eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.')).filter(isHeaderValue), { nil: undefined });
        await fc.assert(
          fc.asyncProperty(fc.constantFrom('/revoke', '/introspect'), entries, fc.boolean(), authorization, dpop, async (path, form, raw, auth, proof) => {
            const body = formOf(form, raw);
            const headers: Record<string, string> = { 'content-type': FORM };
            if (auth !== undefined) headers['authorization'] = auth === 'OPERATOR' ? `Bearer ${operator}` : auth;
            if (proof !== undefined) headers['dpop'] = proof;
            const response = await broker.request(path, { method: 'POST', body, headers });
            const text = await response.text();
            if (refusedByTheHttpServer(response)) return;
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
          propertyRuns(fuzz(), 3),
        );
      },
      timeout,
    );
  });
}

/** Headers the proxy drops on the way: the caller's credentials and forwarding claims. */
const STRIPPED_HEADERS = ['cookie', 'dpop', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-real-ip', 'via', 'range'] as const;

/** Headers the proxy refuses the request for: overrides of the method or path, skipped checks, another tenant, and impersonation. */
const REFUSED_HEADERS = [
  'sudo',
  'x-middleware-subrequest',
  'x-matched-path',
  'x-invoke-path',
  'X_Nomad_Namespace',
  'x-grafana-org-id',
  'x-http-method-override',
  'X_HTTP_Method_Override',
  'x-original-url',
  'impersonate-user',
  'impersonate-group',
  'remote-user',
  'x-remote-user',
  'x-webauth-user',
  'x-forwarded-user',
] as const;

/** Headers that must never reach the upstream as the caller sent them. */
const CALLER_HEADERS: readonly string[] = [...STRIPPED_HEADERS, ...REFUSED_HEADERS];

/** Paths of the fake upstream that answer otherwise than by echoing (fake-upstream-server.ts): never drawn. */
const UPSTREAM_SPECIAL = /^(big|gate|slow|status|redirect|echo|landing|known)/i;

/**
 * Property-based attacks on proxy mode: a job's token with a rule for `GET /repos/{repository}/**` and `POST
 * /repos/{repository}/issues/{number}/comments` (a `*` segment), and requests with any method, path, query, headers and body. Whatever is sent,
 * either keyway refuses it (a 4xx of its own, and the upstream is not called) or the upstream receives one request
 * that the rule allows: the method, each segment of the path decoded once within the repository's, no dot segment, no
 * encoded slash or `;`, no `sudo`, `_method`, `namespace`, `ns` or `partition` in the query, the credential keyway holds and not the caller's headers.
 */
export function hostileProxyInputSuite(
  runtime: string,
  start: StartBroker,
  bases: () => { readonly issuer: string; readonly upstream: string },
  masterKey: () => string,
  fuzz: () => FuzzRuns,
): void {
  describe(`hostile input to proxy mode on ${runtime}`, () => {
    let broker: BrokerHarness;
    let issuer: TestIssuer;
    let job: string;
    const tenant = `fuzz${crypto.randomUUID().slice(0, 8)}`;
    const secret = `upstream-secret-${crypto.randomUUID()}`;
    const timeout = propertyTimeout(fuzz(), 200);
    const calls = () => fakeUpstreamCalls(bases().upstream, tenant);

    beforeAll(async () => {
      issuer = freshIssuer(bases().issuer, 'fuzz-proxy');
      const box = await SecretBox.fromMasterKeys(readMasterKeys({ KEYWAY_MASTER_KEY: masterKey() })!);
      const sealed = await box.seal(secret, UPSTREAM_SECRET_PURPOSE, 'vendor');
      broker = await start(
        {
          'proxy/vendor.yaml': `version: 1\nissuer: { kind: github, url: "${issuer.url}" }
match: { repository_owner_id: "1200934", repository_id: "734201", repository: acme/api }
grant:
  proxy:
    upstream: vendor
    allow:
      - { method: GET, path: "/repos/{repository}/**" }
      - { method: POST, path: "/repos/{repository}/issues/*/comments" }
`,
        },
        {
          settings: {
            KEYWAY_MASTER_KEY: masterKey(),
            KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
            KEYWAY_RATE_LIMIT_SUBJECT_BURST: '100000',
            KEYWAY_PROXY_UPSTREAMS: `upstreams:\n  vendor:\n    url: ${bases().upstream}/t/${tenant}\n    auth: { kind: static, sealed: "${sealed}" }\n`,
          },
        },
      );
      job = await issuer.sign(ciClaims(issuer.url, broker.issuer));
    });
    afterAll(() => broker.close());

    it("passes the rule's own request on, the control: the properties below see requests reach the upstream", async () => {
      const response = await broker.request('/proxy/vendor/repos/acme/api/issues/7/comments', {
        method: 'POST',
        body: '{"body":"hi"}',
        headers: { authorization: `Bearer ${job}`, 'content-type': 'application/json' },
      });
      expect(response.status, await response.clone().text()).toBe(200);
      expect(response.headers.get('keyway-error')).toBeNull();
      expect((await calls()).at(-1)).toMatchObject({ method: 'POST', url: `/t/${tenant}/repos/acme/api/issues/7/comments` });
    });

    it(
      'sends the upstream only what the rule allows, or nothing, whatever the method, path, query, headers and body',
      async () => {
        const visible = (text: string) => /^[\x21-\x7e]*$/.test(text) && !/[?#]/.test(text);
        const segment = fc
          .oneof(
            { arbitrary: fc.constantFrom('repos', 'acme', 'api', 'issues', '7', 'comments', 'contents', 'README.md'), weight: 4 },
            fc.constantFrom(
              'ACME',
              'Api',
              '.',
              '..',
              '%2e',
              '%2E%2e',
              '%2f',
              '%2F',
              '%5c',
              '%252e',
              '..;',
              ';x',
              '',
              '%00',
              '%c0%ae',
              '%ff',
              '~',
              'a%2fb',
              '%3b',
            ),
            hostileText.filter(visible),
          )
          .filter((text) => !text.includes('/') && !UPSTREAM_SPECIAL.test(text));
        // Mostly within the repository, so that most requests are the rule's and the upstream sees what passes.
        const path = fc.oneof(
          { arbitrary: fc.array(segment, { maxLength: 4 }).map((tail) => ['repos', 'acme', 'api', ...tail]), weight: 3 },
          segment.map((issue) => ['repos', 'acme', 'api', 'issues', issue, 'comments']),
          fc.array(segment, { maxLength: 7 }),
        );
        const queryName = fc.oneof(
          fc.constantFrom('sudo', 'SUDO', '_method', 's%75do', 'sudo[]', 'x[sudo]', 'page', '_METHOD', 'namespace', 'ns', 'Partition'),
          hostileText.filter(visible),
        );
        const query = fc.array(fc.tuple(queryName, fc.oneof(fc.constantFrom('root', 'DELETE', '1'), hostileText.filter(visible))), { maxLength: 3 });
        const someQuery = fc.oneof({ arbitrary: fc.constant<[string, string][]>([]), weight: 2 }, query);
        const headers = fc.dictionary(
          fc.oneof(
            { arbitrary: fc.constantFrom(...STRIPPED_HEADERS), weight: 3 },
            fc.constantFrom(...REFUSED_HEADERS),
            fc.constantFrom('accept', 'x-custom', 'content-type'),
          ),
          fc.oneof(fc.constantFrom('root', 'application/x-www-form-urlencoded', 'application/json', 'bytes=0-3'), hostileText.filter(isHeaderValue)),
          { maxKeys: 3 },
        );
        const someHeaders = fc.oneof({ arbitrary: fc.constant<Record<string, string>>({}), weight: 2 }, headers);
        const body = fc.oneof(fc.constantFrom('', 'sudo=root', '_method=DELETE', '{"sudo":"root"}', '{"body":"hi"}', 'a=1&SUDO=x'), hostileText);
        const method = fc.oneof(
          { arbitrary: fc.constant('GET'), weight: 4 },
          { arbitrary: fc.constant('POST'), weight: 3 },
          fc.constantFrom('PUT', 'DELETE', 'PATCH'),
        );
        await fc.assert(
          fc.asyncProperty(method, path, someQuery, someHeaders, body, async (verb, segments, pairs, sent, payload) => {
            const before = (await calls()).length;
            const search = pairs.length === 0 ? '' : `?${pairs.map(([name, value]) => `${name}=${value}`).join('&')}`;
            const target = `/proxy/vendor/${segments.join('/')}${search}`;
            // The client's URL parser resolves dot segments first (proxy-dot-segments-suite.ts sends them raw): a target it
            // takes out of /proxy/vendor is a request to another route.
            fc.pre(/^\/proxy\/vendor(\/|$)/.test(new URL(target, 'http://broker.test').pathname));
            const response = await broker.request(target, {
              method: verb,
              body: verb === 'GET' ? undefined : payload,
              headers: { ...sent, authorization: `Bearer ${job}` },
            });
            const received = (await calls()).slice(before);
            if (response.headers.get('keyway-error') !== null) {
              expect(received).toEqual([]);
              await expectRecordedRefusal(broker, response);
              return;
            }
            const text = await response.text();
            if (refusedByTheHttpServer(response) && received.length === 0) return;
            expect(received, `${response.status} ${text}`).toHaveLength(1);
            const [call] = received as [UpstreamCall];
            expect(['GET', 'POST']).toContain(call.method);
            expect(call.method).toBe(verb);
            const [rawPath, rawQuery = ''] = call.url.split('?') as [string, string?];
            const decoded = rawPath
              .split('/')
              .slice(1)
              .map((part) => decodeURIComponent(part));
            for (const part of decoded) {
              expect(['', '.', '..'], call.url).not.toContain(part);
              expect(part, call.url).not.toMatch(/[/\\;]/);
            }
            // {repository} compares as GitHub compares it, without ASCII case (docs/proxy.md); the rest exactly.
            expect([...decoded.slice(0, 3), ...decoded.slice(3, 5).map(asciiLowerCase)], call.url).toEqual(['t', tenant, 'repos', 'acme', 'api']);
            if (call.method === 'POST') expect(decoded.length === 8 && decoded[5] === 'issues' && decoded[7] === 'comments', call.url).toBe(true);
            for (const [name] of new URLSearchParams(rawQuery))
              expect(name.toLowerCase().replace(/\[.*$/, ''), call.url).not.toMatch(/^(sudo|_method|namespace|ns|partition)$/);
            expect(call.headers['authorization']).toBe(`Bearer ${secret}`);
            // Not merely changed: a caller's X-Forwarded-For with the client appended, or a value trimmed, is the caller's still.
            for (const name of Object.keys(sent)) {
              if (CALLER_HEADERS.includes(name)) expect(call.headers[name.toLowerCase()], `${name} reached the upstream`).toBeUndefined();
            }
          }),
          propertyRuns(fuzz()),
        );
      },
      timeout,
    );
  });
}

/** Errors a handler throws only when its code met a shape it did not expect: never GitHub being unavailable. */
const PROGRAMMING_ERROR = /^(TypeError|RangeError|ReferenceError|SyntaxError)\b/;

/**
 * Property-based attacks on `POST /webhooks/github`, from whoever holds the secret (GitHub, or whoever took it): deliveries
 * of every event keyway handles, signed, with each field of the shape webhook-payloads.ts reads holding what an attacker
 * chooses (texts of any content, ids at and past their bounds, another type now and then). Every answer is 200, 202, 400
 * or 503 with JSON and no-store, never a 500; and a 503 (GitHub failing: redeliver) is never a handler's own TypeError.
 */
export function hostileWebhookInputSuite(runtime: string, start: StartBroker, githubBase: () => string, fuzz: () => FuzzRuns): void {
  describe(`hostile deliveries to the GitHub webhook on ${runtime}`, () => {
    let broker: BrokerHarness;
    let github: FakeGitHub;
    const logLines: string[] = [];
    const timeout = propertyTimeout(fuzz(), 300);

    beforeAll(async () => {
      github = await FakeGitHub.create(githubBase());
      await github.install({
        id: 71,
        owner: 'acme',
        ownerId: 1200934,
        repositories: [
          { id: 4242, name: 'keyway-policies' },
          { id: 734201, name: 'api' },
        ],
        permissions: { contents: 'read', checks: 'write' },
      });
      broker = await start(
        { 'svc.yaml': 'version: 1\nissuer: "https://ci.example"\nmatch: { sub: svc }\ngrant: { audience: https://svc.example }\n' },
        {
          settings: {
            ...github.settings,
            KEYWAY_GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
            KEYWAY_GITHUB_POLICY_REPOSITORY: 'acme/keyway-policies',
            KEYWAY_GITHUB_POLICY_REPOSITORY_ID: '4242',
            KEYWAY_GITHUB_POLICY_PATH: 'policies',
          },
          log: jsonLogger({}, { write: (line) => logLines.push(line) }),
          ownState: true,
        },
      );
    });
    afterAll(() => broker.close());

    const deliver = async (event: string, body: string) => {
      const { init } = await deliveryRequest({ event, payload: undefined, body });
      return broker.request('/webhooks/github', init);
    };

    it('handles a delivery GitHub would send, the control: the properties below reach the handlers', async () => {
      const job = { id: 9, run_id: 19, run_attempt: 1, started_at: new Date().toISOString(), status: 'completed', conclusion: 'success', name: 'release' };
      const response = await deliver(
        'workflow_job',
        JSON.stringify({ action: 'completed', workflow_job: job, repository: { id: 734201 }, installation: { id: 71 } }),
      );
      expect(response.status, await response.clone().text()).toBe(200);
      expect(await response.json()).toMatchObject({ status: 'handled' });
    });

    it(
      "answers any signed delivery of an event it handles with 200, 202, 400 or 503, never a 500 or a handler's own error",
      async () => {
        const other = fc.jsonValue({ maxDepth: 1 });
        /** Mostly of the type GitHub sends, holding anything; now and then another type. */
        const typed = <T>(arbitrary: fc.Arbitrary<T>) => fc.oneof({ arbitrary, weight: 20 }, other);
        const text = typed(fc.oneof(hostileText, fc.constantFrom('acme', 'ACME', 'keyway-policies', 'api', 'main', 'refs/heads/main', 'policies')));
        const id = typed(fc.oneof(fc.constantFrom(4242, 734201, 71, 1, 2 ** 53 - 1), fc.integer({ min: -2, max: 2 ** 31 })));
        const sha = typed(fc.oneof({ arbitrary: fc.stringMatching(/^[0-9a-f]{40}$/), weight: 5 }, hostileText));
        /** Mostly an action GitHub sends with the event (one its handler acts on, or one it ignores), now and then anything. */
        const actionOf = (...known: [string, ...string[]]) => typed(fc.oneof({ arbitrary: fc.constantFrom(...known), weight: 4 }, hostileText));
        // A login is what a user's or an organisation's account always has: one without it is refused before any handler.
        const account = typed(fc.record({ login: text }));
        /** An installation's account: a user's or an organisation's login, or an enterprise's slug. */
        const installationAccount = typed(fc.record({ login: text, slug: text }, { requiredKeys: [] }));
        const repository = typed(fc.record({ id, name: text, full_name: text, owner: account, default_branch: text, private: typed(fc.boolean()) }));
        const deliveries = fc.oneof(
          fc.record({ event: fc.constant('push'), payload: fc.record({ ref: text, deleted: typed(fc.boolean()), after: sha, repository }) }),
          fc.record({
            event: fc.constant('pull_request'),
            payload: fc.record({
              action: actionOf('opened', 'synchronize', 'reopened', 'edited', 'closed'),
              number: id,
              pull_request: fc.record({
                number: id,
                user: account,
                base: fc.record({ sha, ref: text }),
                head: fc.record({ sha, ref: text, repo: typed(fc.record({ id })) }),
              }),
              repository,
              sender: account,
            }),
          }),
          fc.record({
            event: fc.constantFrom('installation', 'installation_repositories'),
            payload: fc.record({
              action: actionOf('created', 'deleted', 'added', 'removed', 'suspend'),
              installation: fc.record({ id, account: installationAccount }),
            }),
          }),
          fc.record({
            event: fc.constant('installation_target'),
            payload: fc.record({
              action: actionOf('renamed', 'created'),
              account: installationAccount,
              changes: typed(fc.record({ login: typed(fc.record({ from: text })) })),
            }),
          }),
          fc.record({
            event: fc.constant('workflow_job'),
            payload: fc.record({
              action: actionOf('completed', 'in_progress', 'queued'),
              repository,
              installation: fc.record({ id }),
              workflow_job: fc.record(
                {
                  id,
                  run_id: id,
                  run_attempt: id,
                  check_run_url: typed(fc.oneof(text, fc.webUrl())),
                  started_at: typed(
                    fc.oneof(
                      fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
                      text,
                    ),
                  ),
                  status: text,
                  conclusion: text,
                  name: text,
                },
                { requiredKeys: ['id', 'run_id'] },
              ),
            }),
          }),
          fc.record({
            event: fc.constant('workflow_run'),
            payload: fc.record({
              action: actionOf('completed', 'requested', 'in_progress'),
              repository,
              workflow_run: fc.record({ id, run_attempt: id }, { requiredKeys: ['id'] }),
            }),
          }),
          fc.record({ event: fc.constant('ping'), payload: other }),
        );
        await fc.assert(
          fc.asyncProperty(deliveries, async ({ event, payload }) => {
            const logged = logLines.length;
            const response = await deliver(event, JSON.stringify(payload) ?? 'null');
            const text = await response.text();
            expect([200, 202, 400, 503], text).toContain(response.status);
            expect(response.headers.get('cache-control'), text).toBe('no-store');
            const answer = JSON.parse(text) as Record<string, unknown>;
            if (response.status >= 400) expect(['invalid_request', 'temporarily_unavailable'], text).toContain(answer['error']);
            for (const line of logLines.slice(logged)) {
              const entry = JSON.parse(line) as Record<string, unknown>;
              expect(String(entry['error'] ?? ''), line).not.toMatch(PROGRAMMING_ERROR);
            }
          }),
          propertyRuns(fuzz()),
        );
      },
      timeout,
    );
  });
}
