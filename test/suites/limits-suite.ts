import { decodeJwt } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/mint/sha256-hex.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, expectRefusal, freshIssuer, suitePolicies, type BrokerHarness, type StartBroker, type TokenResponse } from './exchange-suite.ts';
import { TOKEN_TYPE } from '../../src/core/exchange/token-exchange-request.ts';
import { signInToPage } from '../support/audit-page-sign-in.ts';
import { athOf, DpopKey } from '../support/dpop-key.ts';

/**
 * The /token rate limits through the real broker: 429 with a truthful Retry-After, the
 * per-subject limit keyed on the verified identity only, the per-client and global limits
 * before verification, and one audit record per run of refusals. Runs on Node and in workerd.
 */
export function limitsSuite(runtime: string, start: StartBroker, issuerBase: () => string, brokerIssuer: string): void {
  describe(`rate limits on ${runtime}`, { shuffle: true }, () => {
    const running: BrokerHarness[] = [];
    afterEach(async () => {
      await Promise.all(running.splice(0).map((broker) => broker.close()));
    });

    /** A broker with `settings`, on a clock the test moves (with `ownState`, on Workers its state, audit shards and buckets are its own). */
    async function setup(settings: Record<string, string>, ownState = false, more: (github: TestIssuer) => Record<string, string> = () => ({})) {
      const github = freshIssuer(issuerBase(), 'limits-gh');
      const clock = { now: Date.now() };
      const policies = { ...suitePolicies(github, freshIssuer(issuerBase(), 'limits-oidc')), ...more(github) };
      const broker = await start(policies, { settings, now: () => clock.now, ownState });
      running.push(broker);
      return { github, clock, broker, good: (overrides: Record<string, unknown> = {}) => github.sign(ciClaims(github.url, broker.issuer, overrides)) };
    }

    /** On Workers the client address is CF-Connecting-IP; on Node it is the socket's (127.0.0.1), and the header is ignored. */
    async function post(broker: BrokerHarness, body: URLSearchParams | string, userAgent?: string): Promise<TokenResponse & { retryAfter: string | null }> {
      const response = await broker.request('/token', {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'cf-connecting-ip': '127.0.0.1',
          ...(userAgent === undefined ? {} : { 'user-agent': userAgent }),
        },
      });
      const answer = (await response.json()) as Record<string, unknown>;
      return { status: response.status, headers: response.headers, retryAfter: response.headers.get('retry-after'), body: answer };
    }
    const limited = { status: 429, error: 'temporarily_unavailable', reason: 'rate_limited' } as const;
    /** The rest of a run of refusals: counted, not written. */
    const limitedAgain = { ...limited, reason: null } as const;
    const noPolicy = { error: 'invalid_request', reason: 'no_policy_matched' } as const;
    const malformed = { error: 'invalid_request', reason: 'token_malformed' } as const;

    /** Another tenant's policy, which takes its jobs' tokens for an audience of its own: one a stranger may guess. */
    const otherTenants = (github: TestIssuer) => ({
      'other/own-audience.yaml':
        `version: 1\nissuer: { kind: github, url: "${github.url}" }\nsubject_audience: https://own-audience.example\n` +
        `match:\n  repository_owner_id: "1200934"\n  repository_id: "734303"\ngrant:\n  audience: https://own-audience-api.example\n`,
    });

    // GitHub lets a job ask for its token with any audience: a stranger must not learn which audiences the policies accept.
    it("answers a stranger's genuine token minted for an audience no policy accepts as one minted for an audience a policy does: the answers and the limits they spend are the same", async () => {
      const { broker, github, good } = await setup(
        {
          KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1',
          KEYWAY_RATE_LIMIT_SUBJECT_BURST: '2',
          KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1',
          KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '1',
        },
        true,
        otherTenants,
      );
      // Each audience asked by a stranger of its own account (a subject, and so a subject limit, of its own).
      const ask = async (aud: string, owner: number) => {
        const stranger = {
          aud,
          sub: `repo:stranger${owner}/tool:ref:refs/heads/main`,
          repository: `stranger${owner}/tool`,
          repository_id: String(owner * 10),
          repository_owner: `stranger${owner}`,
          repository_owner_id: String(owner),
        };
        const answers = [];
        for (let attempt = 0; attempt < 4; attempt += 1) {
          const { status, body } = await post(broker, exchangeForm(await good(stranger)));
          answers.push({ status, error: body['error'], error_description: body['error_description'], recorded: 'audit_event_id' in body });
        }
        return answers;
      };
      const accepted = await ask(broker.issuer, 101);
      expect(accepted.map(({ status, recorded }) => [status, recorded])).toEqual([
        [400, true],
        [400, true],
        [429, true],
        [429, false],
      ]);
      expect(await ask('https://own-audience.example', 102)).toEqual(accepted);
      expect(await ask('https://nobody-accepts.example', 103)).toEqual(accepted);
      // The record tells the operator why; it names the caller, whose token its issuer signed.
      const event = (await broker.recentAuditEvents()).find((one) => one.reason === 'audience_mismatch');
      expect(event).toMatchObject({ issuer: github.url, subject: 'repo:stranger103/tool:ref:refs/heads/main' });
    });

    it("answers a stranger's genuine token minted for an audience no policy accepts, sent for a repository's own policy, as one for an audience a policy accepts", async () => {
      const { broker, good } = await setup({}, true, otherTenants);
      const stranger = {
        sub: 'repo:stranger/tool:ref:refs/heads/main',
        repository: 'stranger/tool',
        repository_id: '40',
        repository_owner: 'stranger',
        repository_owner_id: '4',
      };
      // Asked of a repository's own policy the way that needs no GitHub call: too many repositories, or its own with no App.
      const ask = async (aud: string) =>
        Promise.all(
          [['https://github.com/stranger/tool', 'https://github.com/stranger/other'], 'https://github.com/stranger/tool'].map(async (resource) => {
            const form = exchangeForm(await good({ ...stranger, aud }), {
              requested_token_type: TOKEN_TYPE.githubInstallationToken,
              scope: 'policy:deploy',
              resource,
            });
            const { status, body } = await post(broker, form);
            return { status, error: body['error'], error_description: body['error_description'] };
          }),
        );
      const accepted = await ask(broker.issuer);
      expect(await ask('https://own-audience.example')).toEqual(accepted);
      expect(await ask('https://nobody-accepts.example')).toEqual(accepted);
    });

    it("answers a stranger's genuine token minted for an audience no policy accepts at /proxy as one minted for an audience a policy does: the answers and the budgets they spend are the same", async () => {
      const { broker, github, good } = await setup(
        {
          KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1',
          KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '1',
          KEYWAY_RATE_LIMIT_TENANT_REFUSALS_PER_MINUTE: '1',
          KEYWAY_RATE_LIMIT_TENANT_REFUSALS_BURST: '2',
        },
        true,
        otherTenants,
      );
      // Each audience asked by a stranger of its own account (a subject, and so a budget, of its own).
      const ask = async (aud: string, owner: number) => {
        const token = await good({
          aud,
          sub: `repo:stranger${owner}/tool:ref:refs/heads/main`,
          repository: `stranger${owner}/tool`,
          repository_id: String(owner * 10),
          repository_owner: `stranger${owner}`,
          repository_owner_id: String(owner),
        });
        const answers = [];
        for (let attempt = 0; attempt < 4; attempt += 1) {
          const response = await broker.request('/proxy/api/repos/acme/api', {
            headers: { authorization: `Bearer ${token}`, 'cf-connecting-ip': '127.0.0.1' },
          });
          const body = (await response.json()) as Record<string, unknown>;
          answers.push({
            status: response.status,
            keywayError: response.headers.get('keyway-error'),
            retryAfter: response.headers.get('retry-after'),
            error: body['error'],
            error_description: body['error_description'],
            recorded: 'audit_event_id' in body,
          });
        }
        return answers;
      };
      const accepted = await ask(broker.issuer, 201);
      // Its account's refusal budget (two) bounds what is recorded; the answer is the same throughout.
      expect(accepted.map(({ status, keywayError, recorded }) => [status, keywayError, recorded])).toEqual([
        [400, 'no_policy_matched', true],
        [400, 'no_policy_matched', true],
        [400, 'no_policy_matched', true],
        [400, 'no_policy_matched', false],
      ]);
      expect(await ask('https://own-audience.example', 202)).toEqual(accepted);
      expect(await ask('https://nobody-accepts.example', 203)).toEqual(accepted);
      // The record tells the operator why; it names the caller, whose token its issuer signed.
      const event = (await broker.recentAuditEvents()).find((one) => one.reason === 'audience_mismatch');
      expect(event).toMatchObject({ issuer: github.url, subject: 'repo:stranger203/tool:ref:refs/heads/main', proxy: { upstream: 'api' } });
    });

    it("lets no one holding a job's genuine token for another service spend the limit its tokens for the broker spend", async () => {
      const { broker, good } = await setup({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '2' }, true);
      // That service replays the token it was given, as often as it likes: its own bucket runs dry.
      const replayed = exchangeForm(await good({ aud: 'https://other-service.example' }));
      expect([(await post(broker, replayed)).status, (await post(broker, replayed)).status, (await post(broker, replayed)).status]).toEqual([400, 400, 429]);
      // The job's own exchanges are not held up by it.
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      expect((await post(broker, exchangeForm(await good()))).status).toBe(429);
    });

    // gitlab.com, and other issuers, mint a token for the list of audiences a job names: a job must not multiply its limit by
    // writing the broker's audience in a list of its own, in another order, twice, or beside audiences it invents.
    it("spends the broker's audience's bucket for every token that names it, however the aud list around it is written", async () => {
      const { broker, good } = await setup({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '2' }, true);
      const exchange = async (aud: unknown) => (await post(broker, exchangeForm(await good({ aud })))).status;
      expect([await exchange(broker.issuer), await exchange([broker.issuer])]).toEqual([200, 200]);
      const written = [
        [broker.issuer, broker.issuer],
        [broker.issuer, 'https://invented-1.example'],
        ['https://invented-2.example', broker.issuer],
        ['https://invented-3.example', broker.issuer, 'https://invented-4.example', 'https://invented-5.example'],
      ];
      expect(await Promise.all(written.map(exchange))).toEqual(written.map(() => 429));
      // A list of more audiences than a bucket each spends one bucket the job's lists that long share: one more, not one a list.
      const long = (n: number) => [broker.issuer, ...['a', 'b', 'c', 'd'].map((name) => `https://${name}${n}.example`)];
      expect([await exchange(long(1)), await exchange(long(2)), await exchange(long(3))]).toEqual([200, 200, 429]);
    });

    it('answers 429 with Retry-After once an identity spent its burst, audits the first refusal of a run only, and lets it through when the bucket refilled', async () => {
      // Two a minute: a token every 30 s, two saved up.
      const { broker, clock, good } = await setup({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '2', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '2' });
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);

      const first = await post(broker, exchangeForm(await good()));
      expect(first.retryAfter).toBe('30');
      expect(first.body['error_description']).toContain('subject rate limit');
      expect(await expectRefusal(broker, first, limited)).toMatchObject({ decision: 'denied', subject: 'repo:acme/api:environment:production' });

      // The rest of the run is counted, not written.
      await expectRefusal(broker, await post(broker, exchangeForm(await good())), limitedAgain);
      clock.now += 29_000;
      const almost = await post(broker, exchangeForm(await good()));
      expect(almost.retryAfter).toBe('1');
      await expectRefusal(broker, almost, limitedAgain);

      clock.now += 1_000;
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      const again = await post(broker, exchangeForm(await good()));
      expect(again.retryAfter).toBe('30');
      await expectRefusal(broker, again, limited);
    });

    it('keys the per-subject limit on the verified identity: a forged sub cannot drain its bucket, another identity has its own', async () => {
      const { broker, github, good } = await setup({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '2' });
      const forger = freshIssuer(issuerBase(), 'limits-forger');
      // The victim's exact iss and sub, signed with keys that are not the issuer's; then with alg none.
      const badSignature = { error: 'invalid_request', reason: 'signature_invalid' } as const;
      for (let attempt = 0; attempt < 6; attempt += 1) {
        await expectRefusal(broker, await post(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.issuer), { key: 'foreign' }))), badSignature);
        const unsigned = await post(
          broker,
          exchangeForm(
            `${btoa(JSON.stringify({ alg: 'none' })).replace(/=+$/, '')}.${btoa(JSON.stringify(ciClaims(github.url, broker.issuer))).replace(/=+$/, '')}.`,
          ),
        );
        await expectRefusal(broker, unsigned, { error: 'invalid_request', reason: 'algorithm_not_allowed' });
        // Another issuer entirely, claiming the victim's iss.
        await expectRefusal(broker, await post(broker, exchangeForm(await forger.sign(ciClaims(github.url, broker.issuer)))), badSignature);
      }
      // A real identity of the same issuer spends its own bucket…
      const attacker = { sub: 'repo:evil/tool:ref:refs/heads/main', repository: 'evil/tool', repository_id: '666' };
      await expectRefusal(broker, await post(broker, exchangeForm(await good(attacker))), noPolicy);
      await expectRefusal(broker, await post(broker, exchangeForm(await good(attacker))), noPolicy);
      const drained = await post(broker, exchangeForm(await good(attacker)));
      expect(await expectRefusal(broker, drained, limited)).toMatchObject({ subject: attacker.sub });
      // …and the victim's is untouched.
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      const victim = await post(broker, exchangeForm(await good()));
      expect(await expectRefusal(broker, victim, limited)).toMatchObject({ subject: 'repo:acme/api:environment:production' });
    });

    it("keys the per-subject limit on the caller's account too: a stranger whose customised GitHub sub equals the victim's cannot drain its bucket", async () => {
      const { broker, good } = await setup({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '2' });
      // GitHub lets each repository choose its sub's claims (include_claim_keys): with job_workflow_ref alone, every caller
      // of acme's public reusable workflow, in any account, gets this very sub, signed by GitHub.
      const sub = 'job_workflow_ref:acme/workflows/.github/workflows/deploy.yml@refs/tags/v1.4.0';
      const stranger = { sub, repository: 'evil/tool', repository_id: '666', repository_owner: 'evil', repository_owner_id: '666000' };
      await expectRefusal(broker, await post(broker, exchangeForm(await good(stranger))), noPolicy);
      await expectRefusal(broker, await post(broker, exchangeForm(await good(stranger))), noPolicy);
      expect(await expectRefusal(broker, await post(broker, exchangeForm(await good(stranger))), limited)).toMatchObject({ subject: sub });
      // The victim's bucket under the same issuer and sub is its own.
      expect((await post(broker, exchangeForm(await good({ sub })))).status).toBe(200);
      expect((await post(broker, exchangeForm(await good({ sub })))).status).toBe(200);
      expect(await expectRefusal(broker, await post(broker, exchangeForm(await good({ sub }))), limited)).toMatchObject({ subject: sub });
    });

    it("sheds a client's flood before the body is read or a signature checked", async () => {
      const { broker, clock, github, good } = await setup({ KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_CLIENT_BURST: '3' });
      for (let attempt = 0; attempt < 3; attempt += 1) await expectRefusal(broker, await post(broker, exchangeForm('garbage')), malformed);
      // A body that is not even a form is refused for the limit, not as malformed: it was never read.
      const flood = await post(broker, 'not even a form');
      expect(flood.retryAfter).toBe('60');
      expect(flood.body['error_description']).toContain('client rate limit');
      const record = await expectRefusal(broker, flood, limited);
      expect(record.decision).toBe('denied');
      expect(record).not.toHaveProperty('subject_token');
      // Even a good token waits: the limit sits before verification, so its issuer is never asked for keys.
      const good429 = await post(broker, exchangeForm(await good()));
      expect(good429.retryAfter).toBe('60');
      await expectRefusal(broker, good429, limitedAgain);
      expect(await github.hits()).toEqual({ discovery: 0, jwks: 0, trap: 0 });
      clock.now += 60_000;
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      expect(await github.hits()).toMatchObject({ discovery: 1, jwks: 1 });
    });

    /** The records of requests sent with this User-Agent, however they were answered. */
    /** The token an exchange of `form` granted, once its holder revoked it. */
    async function revokedByItsHolder(broker: BrokerHarness, form: URLSearchParams): Promise<string> {
      const exchanged = await post(broker, form);
      expect(exchanged.status).toBe(200);
      const token = exchanged.body['access_token'] as string;
      const revoked = await broker.request('/revoke', {
        method: 'POST',
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': '127.0.0.1' },
      });
      expect(revoked.status).toBe(200);
      return token;
    }

    async function recordsFrom(broker: BrokerHarness, userAgent: string) {
      return (await broker.recentAuditEvents()).filter((event) => event.request.user_agent === userAgent);
    }

    it('sheds a flood of GET /token like one of exchanges: 405 and a record while within the limit, then 429 and one record for the whole run', async () => {
      const { broker } = await setup({ KEYWAY_RATE_LIMIT_CLIENT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_CLIENT_BURST: '2' });
      const userAgent = `flood-${crypto.randomUUID()}`;
      const get = async (): Promise<TokenResponse> => {
        const response = await broker.request('/token', { headers: { 'user-agent': userAgent, 'cf-connecting-ip': '127.0.0.1' } });
        return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
      };
      const notAllowed = { status: 405, error: 'invalid_request', reason: 'method_not_allowed' } as const;
      const first = await get();
      expect(first.headers.get('allow')).toBe('POST');
      await expectRefusal(broker, first, notAllowed);
      expect(await recordsFrom(broker, userAgent)).toHaveLength(1);
      await expectRefusal(broker, await get(), notAllowed);

      const shed = await get();
      expect(shed.headers.get('retry-after')).toBe('60');
      expect(shed.body['error_description']).toContain('client rate limit');
      await expectRefusal(broker, shed, limited);
      for (let request = 0; request < 20; request += 1) await expectRefusal(broker, await get(), limitedAgain);
      expect((await recordsFrom(broker, userAgent)).map((event) => event.reason)).toEqual(['rate_limited', 'method_not_allowed', 'method_not_allowed']);
    });

    it('sheds a flood of refused /proxy requests before they are recorded, with no upstream declared', async () => {
      const { broker } = await setup({ KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_GLOBAL_BURST: '2' });
      const userAgent = `flood-${crypto.randomUUID()}`;
      const get = async (index: number) => {
        const response = await broker.request(`/proxy/nope-${index}/${'a'.repeat(2000)}`, { headers: { 'user-agent': userAgent } });
        return { response, body: (await response.json()) as Record<string, unknown> };
      };
      for (let index = 0; index < 2; index += 1) {
        const { response, body } = await get(index);
        expect(response.status).toBe(401);
        expect(response.headers.get('keyway-error')).toBe('proxy_unauthenticated');
        expect(await broker.auditEvent(body['audit_event_id'] as string)).toMatchObject({ reason: 'proxy_unauthenticated' });
      }
      for (let index = 2; index < 22; index += 1) {
        const { response, body } = await get(index);
        expect(response.status).toBe(429);
        expect(response.headers.get('keyway-error')).toBe('rate_limited');
        expect(response.headers.get('retry-after')).toBe('60');
        expect(body['error']).toBe('temporarily_unavailable');
        expect(body['error_description']).toContain('global rate limit');
        // Only the first refusal of the run is recorded.
        if (index === 2) expect(await broker.auditEvent(body['audit_event_id'] as string)).toMatchObject({ reason: 'rate_limited' });
        else expect(body).not.toHaveProperty('audit_event_id');
      }
      const recorded = await recordsFrom(broker, userAgent);
      expect(recorded.map((event) => event.reason)).toEqual(['rate_limited', 'proxy_unauthenticated', 'proxy_unauthenticated']);
      expect(recorded[0]?.proxy).toMatchObject({ upstream: 'nope-2' });
    });

    it("bounds what tokens that do not verify leave in their identity's chain: past the unverified budget one record per run, the next record counts the rest, and the identity's own refusal and grant are still recorded", async () => {
      const { broker, clock, github, good } = await setup({ KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '3' }, true);
      const stranger = `stranger-${crypto.randomUUID()}`;
      // The victim's exact iss and sub, signed with keys that are not the issuer's: filed under the victim's identity,
      // so on Workers in the victim's audit shard, as every record of its own.
      const forged = async () => post(broker, exchangeForm(await github.sign(ciClaims(github.url, broker.issuer), { key: 'foreign' })), stranger);
      const badSignature = { error: 'invalid_request', reason: 'signature_invalid' } as const;
      for (let request = 0; request < 3; request += 1) await expectRefusal(broker, await forged(), badSignature);

      const shed = await forged();
      expect(shed.retryAfter).toBe('60');
      expect(shed.body['error_description']).toContain('unverified rate limit');
      const first = await expectRefusal(broker, shed, limited);
      expect(first.detail).toContain('refused: signature_invalid');
      expect(first.subject_token).toMatchObject({ claimed_iss: github.url, claimed_sub: 'repo:acme/api:environment:production' });
      for (let request = 0; request < 20; request += 1) {
        await expectRefusal(broker, await forged(), limitedAgain);
        if (request !== 10) continue;
        // Mid-flood, the identity's own refusal and grant: each answered and recorded as ever.
        const refused = await expectRefusal(broker, await post(broker, exchangeForm(await good({ ref: 'refs/heads/feature' }))), noPolicy);
        expect(refused.subject).toBe('repo:acme/api:environment:production');
        const granted = await post(broker, exchangeForm(await good()));
        expect(granted.status).toBe(200);
        expect(await broker.auditEvent(granted.body['audit_event_id'] as string)).toMatchObject({ decision: 'granted', subject: refused.subject });
      }
      expect((await recordsFrom(broker, stranger)).map((event) => event.reason)).toEqual(['rate_limited', ...Array(3).fill('signature_invalid')]);

      // Once the budget refilled, the next refusal is recorded again, and says how many went unrecorded before it.
      clock.now += 60_000;
      const next = await expectRefusal(broker, await forged(), badSignature);
      expect(next.detail).toMatch(/^after 20 refusals answered rate_limited without a record \(the unverified limit\); /);
      // The refusal after it starts a new run, whose first is recorded too: under a steady flood, two records per token refilled.
      expect((await expectRefusal(broker, await forged(), limited)).detail).toContain('refused: signature_invalid');
    });

    it("bounds what tokens that do not verify leave in their identity's chain at /proxy as at /token: past the unverified budget 429 and one record per run, the identity's own refusal still recorded", async () => {
      const { broker, clock, github, good } = await setup({ KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '3' }, true);
      const stranger = `stranger-${crypto.randomUUID()}`;
      const call = async (token: string, userAgent?: string) => {
        const response = await broker.request('/proxy/api/repos/acme/api', {
          headers: { authorization: `Bearer ${token}`, 'cf-connecting-ip': '127.0.0.1', ...(userAgent === undefined ? {} : { 'user-agent': userAgent }) },
        });
        return { response, body: (await response.json()) as Record<string, unknown> };
      };
      // The victim's exact iss and sub, signed with keys that are not the issuer's.
      const forged = async () => call(await github.sign(ciClaims(github.url, broker.issuer), { key: 'foreign' }), stranger);
      for (let request = 0; request < 3; request += 1) {
        const { response, body } = await forged();
        expect(response.status).toBe(400);
        expect(await broker.auditEvent(body['audit_event_id'] as string)).toMatchObject({ reason: 'signature_invalid' });
      }

      const shed = await forged();
      expect(shed.response.status).toBe(429);
      expect(shed.response.headers.get('keyway-error')).toBe('rate_limited');
      expect(shed.response.headers.get('retry-after')).toBe('60');
      expect(shed.body['error_description']).toContain('unverified rate limit');
      const first = await broker.auditEvent(shed.body['audit_event_id'] as string);
      expect(first).toMatchObject({ reason: 'rate_limited', subject_token: { claimed_iss: github.url, claimed_sub: 'repo:acme/api:environment:production' } });
      expect(first?.detail).toContain('refused: signature_invalid');
      for (let request = 0; request < 20; request += 1) {
        const { response, body } = await forged();
        expect(response.status).toBe(429);
        expect(body).not.toHaveProperty('audit_event_id');
        if (request !== 10) continue;
        // Mid-flood, the identity's own refusal (no policy grants it this upstream): answered and recorded as ever.
        const own = await call(await good());
        expect({ status: own.response.status, keywayError: own.response.headers.get('keyway-error') }).toEqual({
          status: 403,
          keywayError: 'proxy_not_allowed',
        });
        expect(await broker.auditEvent(own.body['audit_event_id'] as string)).toMatchObject({
          reason: 'proxy_not_allowed',
          subject: 'repo:acme/api:environment:production',
        });
      }
      expect((await recordsFrom(broker, stranger)).map((event) => event.reason)).toEqual(['rate_limited', ...Array(3).fill('signature_invalid')]);

      clock.now += 60_000;
      const next = await forged();
      expect(await broker.auditEvent(next.body['audit_event_id'] as string)).toMatchObject({
        reason: 'signature_invalid',
        detail: expect.stringMatching(/^after 20 refusals answered rate_limited without a record \(the unverified limit\); /),
      });
    });

    it("records a /proxy refusal of a token whose signature verified whatever the unverified budget: a thief's use of a bound CI token is not hidden by a flood naming its identity", async () => {
      const { broker, github, good } = await setup({ KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '3' }, true);
      const call = async (token: string) => {
        const response = await broker.request('/proxy/api/repos/acme/api', { headers: { authorization: `Bearer ${token}`, 'cf-connecting-ip': '127.0.0.1' } });
        return { response, body: (await response.json()) as Record<string, unknown> };
      };
      // The flood: the victim's exact iss and sub, signed with keys that are not the issuer's, until the budget is spent.
      for (let request = 0; request < 5; request += 1) await call(await github.sign(ciClaims(github.url, broker.issuer), { key: 'foreign' }));
      // A copy of the victim's own CI token, bound to a key the thief does not hold: signed by the issuer, refused, and recorded.
      const stolen = await call(await good({ cnf: { jkt: 'a'.repeat(43) } }));
      expect(stolen.response.status).toBe(400);
      expect(stolen.response.headers.get('keyway-error')).toBe('subject_token_bound');
      expect(await broker.auditEvent(stolen.body['audit_event_id'] as string)).toMatchObject({
        reason: 'subject_token_bound',
        issuer: github.url,
        subject: 'repo:acme/api:environment:production',
      });
    });

    /** A stranger's token that the issuer signed: another account of the shared issuer, on a branch of its own (a subject of its own). */
    const strangersToken = (good: (overrides?: Record<string, unknown>) => Promise<string>, account: string) => {
      const branch = `refs/heads/b-${crypto.randomUUID().slice(0, 8)}`;
      return good({
        repository_owner_id: account,
        repository_owner: `mallory-${account}`,
        repository: `mallory-${account}/x`,
        ref: branch,
        sub: `repo:mallory-${account}/x:ref:${branch}`,
      });
    };

    it("bounds what strangers a shared issuer vouches for leave in the log, per account: past its budget the same refusal, one record per run, the next record counts the rest; another account's, and the victim's own, still recorded", async () => {
      const { broker, clock, good } = await setup({ KEYWAY_RATE_LIMIT_TENANT_REFUSALS_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_TENANT_REFUSALS_BURST: '3' }, true);
      const stranger = `stranger-${crypto.randomUUID()}`;
      const flood = async () => post(broker, exchangeForm(await strangersToken(good, '666')), stranger);
      const described = 'no trust policy grants this request';
      for (let request = 0; request < 3; request += 1)
        expect((await expectRefusal(broker, await flood(), noPolicy)).detail).toBe('no allow policy matched the token');

      // Past the budget the answer is the same refusal (no 429, nothing to retry); the first of the run is recorded, saying so.
      const shed = await flood();
      expect(shed.retryAfter).toBeNull();
      expect(shed.body['error_description']).toBe(described);
      const first = await expectRefusal(broker, shed, noPolicy);
      expect(first.detail).toBe(
        'the first refusal past the tenant_refusals limit: the rest of its run is answered without a record; no allow policy matched the token',
      );
      expect(first.claims).toMatchObject({ repository_owner_id: '666' });
      for (let request = 0; request < 20; request += 1) {
        const unrecorded = await flood();
        expect(unrecorded.retryAfter).toBeNull();
        expect(unrecorded.body['error_description']).toBe(described);
        await expectRefusal(broker, unrecorded, { ...noPolicy, reason: null });
        if (request !== 10) continue;
        // Mid-flood, another stranger account's refusal, and the victim's own refusal and grant: each answered and recorded.
        await expectRefusal(broker, await post(broker, exchangeForm(await strangersToken(good, '667'))), noPolicy);
        await expectRefusal(broker, await post(broker, exchangeForm(await good({ ref: 'refs/heads/feature' }))), noPolicy);
        const granted = await post(broker, exchangeForm(await good()));
        expect(granted.status).toBe(200);
        expect(await broker.auditEvent(granted.body['audit_event_id'] as string)).toMatchObject({ decision: 'granted' });
      }
      expect((await recordsFrom(broker, stranger)).map((event) => event.reason)).toEqual(Array(4).fill('no_policy_matched'));

      // Once the budget refilled, the next refusal is recorded again, and says how many went unrecorded before it.
      clock.now += 60_000;
      const next = await expectRefusal(broker, await flood(), noPolicy);
      expect(next.detail).toBe('after 20 refusals answered without a record (the tenant_refusals limit); no allow policy matched the token');
    });

    it("spends no account's refusal budget on a caller an allow policy matched, nor on a token that did not verify", async () => {
      const { broker, github, good } = await setup({ KEYWAY_RATE_LIMIT_TENANT_REFUSALS_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_TENANT_REFUSALS_BURST: '1' }, true);
      // The victim's own account, its budget spent by a refusal no policy matched.
      await expectRefusal(broker, await post(broker, exchangeForm(await good({ ref: 'refs/heads/feature' }))), noPolicy);
      // An allow policy matched, the audience was not granted: each recorded, whatever the account's budget.
      for (let request = 0; request < 3; request += 1) {
        const form = exchangeForm(await good(), { audience: 'https://elsewhere.example' });
        await expectRefusal(broker, await post(broker, form), { error: 'invalid_target', reason: 'audience_not_granted' });
      }
      // Forged in its name: the unverified budget's, not the account's.
      for (let request = 0; request < 3; request += 1) {
        const forged = await github.sign(ciClaims(github.url, broker.issuer, { ref: 'refs/heads/feature' }), { key: 'foreign' });
        await expectRefusal(broker, await post(broker, exchangeForm(forged)), { error: 'invalid_request', reason: 'signature_invalid' });
      }
      // And the account's budget is still spent: the next refusal no policy matched is the first of a run past it.
      const past = await expectRefusal(broker, await post(broker, exchangeForm(await good({ ref: 'refs/heads/feature' }))), noPolicy);
      expect(past.detail).toMatch(/^the first refusal past the tenant_refusals limit: /);
    });

    it("bounds a stranger's refusals at /proxy as at /token: past its account's budget the same refusal, without a record or Retry-After", async () => {
      const { broker, good } = await setup({ KEYWAY_RATE_LIMIT_TENANT_REFUSALS_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_TENANT_REFUSALS_BURST: '2' }, true);
      const call = async () => {
        const response = await broker.request('/proxy/api/repos/acme/api', {
          headers: { authorization: `Bearer ${await strangersToken(good, '668')}`, 'cf-connecting-ip': '127.0.0.1' },
        });
        return { response, body: (await response.json()) as Record<string, unknown> };
      };
      const answers = [];
      for (let request = 0; request < 5; request += 1) answers.push(await call());
      for (const { response, body } of answers) {
        expect(response.status).toBe(400);
        expect(response.headers.get('keyway-error')).toBe('no_policy_matched');
        expect(response.headers.get('retry-after')).toBeNull();
        expect(body['error_description']).toBe('no trust policy grants this request');
      }
      const ids = answers.map(({ body }) => body['audit_event_id']);
      expect(ids.map((id) => id !== undefined)).toEqual([true, true, true, false, false]);
      expect(await broker.auditEvent(ids[2] as string)).toMatchObject({
        reason: 'no_policy_matched',
        detail: expect.stringMatching(/^the first refusal past the tenant_refusals limit: /),
      });
    });

    it("records a thief's use of a known pipeline's token refused before the policies decided, whatever its account's refusal budget: a co-tenant's flood cannot hide it", async () => {
      const { broker, good } = await setup({ KEYWAY_RATE_LIMIT_TENANT_REFUSALS_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_TENANT_REFUSALS_BURST: '1' }, true);
      // Another job of the victim's account that no allow policy matches spends the account's budget, and starts a run past it.
      const coTenant = async () => post(broker, exchangeForm(await good({ ref: 'refs/heads/feature' })));
      await expectRefusal(broker, await coTenant(), noPolicy);
      await expectRefusal(broker, await coTenant(), noPolicy);
      await expectRefusal(broker, await coTenant(), { ...noPolicy, reason: null });
      // A copy of the pipeline's own CI token (an allow policy matches its claims), bound to a key the thief does not hold.
      const stolen = await broker.request('/proxy/api/repos/acme/api', {
        headers: { authorization: `Bearer ${await good({ cnf: { jkt: 'a'.repeat(43) } })}`, 'cf-connecting-ip': '127.0.0.1' },
      });
      const body = (await stolen.json()) as Record<string, unknown>;
      expect(stolen.headers.get('keyway-error')).toBe('subject_token_bound');
      expect(await broker.auditEvent(body['audit_event_id'] as string)).toMatchObject({
        reason: 'subject_token_bound',
        subject: 'repo:acme/api:environment:production',
      });
    });

    it("records the first 429 of a known pipeline's run at /token whatever its account's refusal budget: its co-tenants' refusals cannot hide that its subject was flooded", async () => {
      const { broker, good } = await setup(
        {
          KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1',
          KEYWAY_RATE_LIMIT_SUBJECT_BURST: '2',
          KEYWAY_RATE_LIMIT_TENANT_REFUSALS_PER_MINUTE: '1',
          KEYWAY_RATE_LIMIT_TENANT_REFUSALS_BURST: '1',
        },
        true,
      );
      // Jobs of the pipeline's account that no allow policy matches, each a subject of its own: they spend the account's
      // budget and start a run past it.
      const coTenant = async (branch: number) =>
        post(broker, exchangeForm(await good({ ref: `refs/heads/b${branch}`, sub: `repo:acme/api:ref:refs/heads/b${branch}` })));
      await expectRefusal(broker, await coTenant(0), noPolicy);
      await expectRefusal(broker, await coTenant(1), noPolicy);
      await expectRefusal(broker, await coTenant(2), { ...noPolicy, reason: null });
      // The pipeline itself (an allow policy matches its token) spends its subject's burst: the first 429 is recorded.
      for (let request = 0; request < 2; request += 1) expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      const shed = await post(broker, exchangeForm(await good()));
      expect(shed.retryAfter).toBe('60');
      expect(await expectRefusal(broker, shed, limited)).toMatchObject({ subject: 'repo:acme/api:environment:production' });
    });

    it("bounds what a known pipeline's token refused at /proxy before the policies decided leaves in the log by its subject's budget: a thief's replay of a bound copy cannot write a record per request", async () => {
      const { broker, clock, good } = await setup({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '3' }, true);
      // A copy of the pipeline's own CI token (an allow policy matches its claims), bound to a key the thief does not hold:
      // never its account's refusal budget, so only its subject's bounds it.
      const stolen = await good({ cnf: { jkt: 'a'.repeat(43) } });
      const thief = `thief-${crypto.randomUUID()}`;
      const replay = async () => {
        const response = await broker.request('/proxy/api/repos/acme/api', {
          headers: { authorization: `Bearer ${stolen}`, 'user-agent': thief, 'cf-connecting-ip': '127.0.0.1' },
        });
        return { response, body: (await response.json()) as Record<string, unknown> };
      };
      for (let request = 0; request < 3; request += 1) expect((await replay()).response.headers.get('keyway-error')).toBe('subject_token_bound');
      const shed = await replay();
      expect(shed.response.status).toBe(429);
      expect(shed.response.headers.get('retry-after')).toBe('60');
      expect(await broker.auditEvent(shed.body['audit_event_id'] as string)).toMatchObject({
        reason: 'rate_limited',
        subject: 'repo:acme/api:environment:production',
        detail: expect.stringMatching(/^the subject rate limit .*; refused: subject_token_bound$/),
      });
      for (let request = 0; request < 20; request += 1) {
        const again = await replay();
        expect(again.response.status).toBe(429);
        expect(again.body).not.toHaveProperty('audit_event_id');
      }
      expect((await recordsFrom(broker, thief)).map((event) => event.reason)).toEqual(['rate_limited', ...Array(3).fill('subject_token_bound')]);

      // Once the budget refilled, the next refusal is recorded again.
      clock.now += 60_000;
      expect((await replay()).response.headers.get('keyway-error')).toBe('subject_token_bound');
      expect(await recordsFrom(broker, thief)).toHaveLength(5);
    });

    it("spends no subject budget on a /proxy refusal after the policies decided: its per-caller bucket bounds it, and the pipeline's exchanges at /token keep their burst", async () => {
      const { broker, good } = await setup({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '2' }, true);
      // The pipeline's own token, whose allow policy grants it no upstream: refused after the decision, and recorded.
      for (let request = 0; request < 4; request += 1) {
        const response = await broker.request('/proxy/api/repos/acme/api', {
          headers: { authorization: `Bearer ${await good()}`, 'cf-connecting-ip': '127.0.0.1' },
        });
        const body = (await response.json()) as Record<string, unknown>;
        expect(response.headers.get('keyway-error')).toBe('proxy_not_allowed');
        expect(await broker.auditEvent(body['audit_event_id'] as string)).toMatchObject({ reason: 'proxy_not_allowed' });
      }
      for (let request = 0; request < 2; request += 1) expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      expect((await post(broker, exchangeForm(await good()))).status).toBe(429);
    });

    it("bounds a stranger's subject-limit refusals by its account's budget too: a subject per branch gets no record of its own, and the answer is still 429 with Retry-After", async () => {
      const { broker, good } = await setup(
        {
          KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1',
          KEYWAY_RATE_LIMIT_SUBJECT_BURST: '1',
          KEYWAY_RATE_LIMIT_TENANT_REFUSALS_PER_MINUTE: '1',
          KEYWAY_RATE_LIMIT_TENANT_REFUSALS_BURST: '1',
        },
        true,
      );
      const stranger = `stranger-${crypto.randomUUID()}`;
      for (let branch = 0; branch < 8; branch += 1) {
        // A new branch is a new subject with a full bucket: the first request spends it, the second is the first of its run.
        const form = exchangeForm(await strangersToken(good, '669'));
        expect((await post(broker, form, stranger)).body['error']).toBe('invalid_request');
        const shed = await post(broker, form, stranger);
        expect(shed.status).toBe(429);
        expect(shed.retryAfter).toBe('60');
      }
      // Within the budget the first refusal, then the first past it; each new subject's run of 429s no record of its own.
      expect((await recordsFrom(broker, stranger)).map((event) => event.reason)).toEqual(['rate_limited', 'no_policy_matched']);
    });

    it('bounds what refused operator credentials leave in the log: a record each within the unverified budget, past it 429 and one record per run, the next record counts the rest', async () => {
      const { broker, clock } = await setup({ KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '3' }, true);
      const stranger = `stranger-${crypto.randomUUID()}`;
      // One forged token throughout: on Workers its records go to one chain, the one its claimed subject picks. Its signature
      // is as long as an ES256 one: the record keeps the hash of a token shaped as a signed JWT.
      const forged =
        `${btoa(JSON.stringify({ alg: 'ES256', typ: 'at+jwt' }))}.${btoa(JSON.stringify({ iss: broker.issuer, sub: 'ops' }))}.${'c2ln'.repeat(22)}`.replace(
          /=/g,
          '',
        );
      const headers = { 'user-agent': stranger, 'cf-connecting-ip': '127.0.0.1' };
      const query = () => broker.request('/v1/audit/alerts', { headers: { ...headers, authorization: `Bearer ${forged}` } });
      const signIn = () => signInToPage(broker, forged, headers);
      for (let request = 0; request < 3; request += 1) {
        const refused = await query();
        expect(refused.status).toBe(401);
        const id = ((await refused.json()) as Record<string, unknown>)['audit_event_id'] as string;
        expect(await broker.auditEvent(id)).toMatchObject({
          reason: 'operator_token_invalid',
          subject_token: { sha256: sha256Hex(forged), claimed_sub: 'ops' },
        });
      }

      const shed = await query();
      expect(shed.status).toBe(429);
      expect(shed.headers.get('retry-after')).toBe('60');
      const body = (await shed.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ error: 'temporarily_unavailable', error_description: expect.stringContaining('unverified rate limit') });
      expect(await broker.auditEvent(body['audit_event_id'] as string)).toMatchObject({
        reason: 'rate_limited',
        detail: expect.stringContaining('refused: operator_token_invalid'),
      });
      for (let request = 0; request < 20; request += 1) {
        const again = await (request % 2 === 0 ? query() : signIn());
        expect(again.status).toBe(429);
        expect(again.headers.get('retry-after')).toMatch(/^\d+$/);
        if (request % 2 === 0) expect(await again.json()).not.toHaveProperty('audit_event_id');
        else expect(await again.text()).toContain('unverified rate limit');
      }
      const recorded = await recordsFrom(broker, stranger);
      expect(recorded.map((event) => event.reason)).toEqual(['rate_limited', ...Array(3).fill('operator_token_invalid')]);
      for (const event of recorded) expect(JSON.stringify(event)).not.toContain(forged);

      // Once the budget refilled, the next refusal is recorded again, and says how many went unrecorded before it.
      clock.now += 60_000;
      const page = await signIn();
      expect(page.status).toBe(401);
      const id = /The refusal is audit event ([0-9A-Z]{26})\./.exec(await page.text())?.[1];
      expect(await broker.auditEvent(id ?? '')).toMatchObject({
        reason: 'operator_token_invalid',
        detail: expect.stringMatching(/^after 20 refusals answered rate_limited without a record \(the unverified limit\); POST \/audit\/sign-in: /),
      });
    });

    it("bounds what a refused token of the broker's own leaves in the log by its subject's budget: a CI job's token, revoked by its holder and replayed at /v1/*, cannot write a record per request", async () => {
      const { broker, clock, good } = await setup({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '3' }, true);
      // Any CI job that can exchange gets a token the broker's keys signed (for any audience), and may revoke it itself.
      const token = await revokedByItsHolder(broker, exchangeForm(await good()));
      const replayer = `replayer-${crypto.randomUUID()}`;
      const replay = () =>
        broker.request('/v1/audit/alerts', { headers: { authorization: `Bearer ${token}`, 'user-agent': replayer, 'cf-connecting-ip': '127.0.0.1' } });
      for (let request = 0; request < 3; request += 1) expect((await replay()).status).toBe(401);
      const shed = await replay();
      expect(shed.status).toBe(429);
      expect(shed.headers.get('retry-after')).toBe('60');
      const body = (await shed.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ error: 'temporarily_unavailable', error_description: expect.stringContaining('subject rate limit') });
      expect(await broker.auditEvent(body['audit_event_id'] as string)).toMatchObject({
        reason: 'rate_limited',
        subject: 'github:acme/api:production',
        detail: expect.stringContaining('refused: operator_token_invalid'),
      });
      for (let request = 0; request < 20; request += 1) {
        const again = await replay();
        expect(again.status).toBe(429);
        expect(await again.json()).not.toHaveProperty('audit_event_id');
      }
      const recorded = await recordsFrom(broker, replayer);
      expect(recorded.map((event) => event.reason)).toEqual(['rate_limited', ...Array(3).fill('operator_token_invalid')]);

      // Once the budget refilled, the next refusal is recorded again.
      clock.now += 60_000;
      expect((await replay()).status).toBe(401);
      expect(await recordsFrom(broker, replayer)).toHaveLength(5);
    });

    /**
     * Two accounts' policies that mint the broker's own tokens of one `sub` (a template each writes alike) for /proxy/api,
     * and each account's token, revoked by its holder.
     */
    async function twoAccountsOfOneOwnSubject() {
      const subject = `shared-${crypto.randomUUID().slice(0, 8)}`;
      const policyOf = (github: TestIssuer, owner: string, repository: string) =>
        `version: 1\nissuer: { kind: github, url: "${github.url}" }\nmatch:\n  repository_owner_id: "${owner}"\n  repository_id: "${repository}"\n` +
        `grant:\n  audience: ${brokerIssuer}/proxy/api\n  subject: ${subject}\n`;
      const { broker, good } = await setup({ KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '3' }, true, (github) => ({
        'own-subject/victim.yaml': policyOf(github, '1200934', '734201'),
        'own-subject/other.yaml': policyOf(github, '4040', '4041'),
      }));
      const revokedToken = async (claims: Record<string, unknown>) =>
        revokedByItsHolder(broker, exchangeForm(await good(claims), { audience: `${brokerIssuer}/proxy/api` }));
      const victims = await revokedToken({});
      const others = await revokedToken({
        repository_owner_id: '4040',
        repository_owner: 'other',
        repository_id: '4041',
        repository: 'other/x',
        sub: 'repo:other/x:ref:refs/heads/main',
      });
      expect([decodeJwt(victims).sub, decodeJwt(others).sub]).toEqual([subject, subject]);
      return { broker, victims, others };
    }

    it("keys a refused token of the broker's own on the policy that granted it: another account's token of the same sub, replayed at /v1/*, cannot spend the victim's budget", async () => {
      const { broker, victims, others } = await twoAccountsOfOneOwnSubject();
      const replay = (token: string) => broker.request('/v1/audit/alerts', { headers: { authorization: `Bearer ${token}`, 'cf-connecting-ip': '127.0.0.1' } });
      for (let request = 0; request < 3; request += 1) expect((await replay(others)).status).toBe(401);
      expect((await replay(others)).status).toBe(429);
      const own = await replay(victims);
      expect(own.status).toBe(401);
      expect(await broker.auditEvent(((await own.json()) as Record<string, unknown>)['audit_event_id'] as string)).toMatchObject({
        reason: 'operator_token_invalid',
      });
    });

    it("keys a refused token of the broker's own at /proxy on the policy that granted it: another account's token of the same sub cannot spend the victim's budget", async () => {
      const { broker, victims, others } = await twoAccountsOfOneOwnSubject();
      const replay = async (token: string) => {
        const response = await broker.request('/proxy/api/x', { headers: { authorization: `Bearer ${token}`, 'cf-connecting-ip': '127.0.0.1' } });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      for (let request = 0; request < 3; request += 1) expect((await replay(others)).status).toBe(401);
      expect((await replay(others)).status).toBe(429);
      const own = await replay(victims);
      expect(own.status).toBe(401);
      expect(await broker.auditEvent(own.body['audit_event_id'] as string)).toMatchObject({
        reason: 'proxy_unauthenticated',
        subject: decodeJwt(victims).sub,
        detail: expect.stringContaining('revoked'),
      });
    });

    it('starts a detail with the count of refusals that went unrecorded only in the record that ends a run: text a stranger sends cannot forge one', async () => {
      const { broker, github } = await setup({ KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '3' }, true);
      const forgedCount = 'after 999999 refusals answered rate_limited without a record (the unverified limit); acme/api';
      const form = exchangeForm(await github.sign(ciClaims(github.url, broker.issuer), { key: 'foreign' }), {
        requested_token_type: 'urn:keyway:params:oauth:token-type:github-installation-token',
        audience: forgedCount,
      });
      const event = await expectRefusal(broker, await post(broker, form), { error: 'invalid_target', reason: 'github_repository_not_granted' });
      expect(event.detail).toContain(forgedCount);
      expect(event.detail).not.toMatch(/^after \d+ refusals/);
    });

    it("bounds what a holder's /revoke of tokens that are not live leaves in the chain they claim: 200 whether recorded or not, one record per run past the budget, a live token still revoked and recorded", async () => {
      const { broker, clock, github, good } = await setup({ KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '3' }, true);
      const stranger = `stranger-${crypto.randomUUID()}`;
      const revoke = async (token: string, userAgent?: string) => {
        const response = await broker.request('/revoke', {
          method: 'POST',
          body: new URLSearchParams({ token }),
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            'cf-connecting-ip': '127.0.0.1',
            ...(userAgent === undefined ? {} : { 'user-agent': userAgent }),
          },
        });
        return {
          status: response.status,
          headers: response.headers,
          body: response.status === 200 ? {} : ((await response.json()) as Record<string, unknown>),
        };
      };
      // Tokens that are no keyway token of this broker, claiming the victim's iss and sub; one of them claims a DPoP key too.
      const garbage = async () => revoke(await github.sign(ciClaims(github.url, broker.issuer), { key: 'foreign' }), stranger);
      const bound = async () => revoke(await github.sign(ciClaims(github.url, broker.issuer, { cnf: { jkt: 'a'.repeat(43) } }), { key: 'foreign' }), stranger);
      const refusedProof = await bound();
      expect(refusedProof.status).toBe(400);
      expect(refusedProof.body['error']).toBe('invalid_dpop_proof');
      for (let request = 0; request < 2; request += 1) expect((await garbage()).status).toBe(200);

      // Past the budget: answered as before (RFC 7009 §2.2), the first of the run recorded as the limit's.
      for (let request = 0; request < 21; request += 1) {
        expect((await garbage()).status).toBe(200);
        if (request !== 10) continue;
        // Mid-flood, a live token's holder revokes it: revoked and recorded as ever.
        const live = (await post(broker, exchangeForm(await good()))).body['access_token'] as string;
        expect((await revoke(live)).status).toBe(200);
        const revoked = (await broker.recentAuditEvents()).find((event) => event.reason === 'token_revoked');
        expect(revoked).toMatchObject({ detail: 'revoked by its holder', subject_token: { sha256: sha256Hex(live) } });
      }
      // A refused proof is refused whatever the token is, so past the budget it is the limit's refusal.
      const shedProof = await bound();
      expect(shedProof.status).toBe(429);
      expect(shedProof.headers.get('retry-after')).toBe('60');
      expect(shedProof.body).toMatchObject({ error: 'temporarily_unavailable' });
      expect(shedProof.body['error_description']).toContain('unverified rate limit');
      expect(shedProof.body).not.toHaveProperty('audit_event_id');
      const recorded = await recordsFrom(broker, stranger);
      expect(recorded.map((event) => event.reason)).toEqual(['rate_limited', 'algorithm_not_allowed', 'algorithm_not_allowed', 'dpop_proof_invalid']);
      expect(recorded[0]).toMatchObject({ subject_token: { claimed_iss: github.url, claimed_sub: 'repo:acme/api:environment:production' } });
      expect(recorded[0]?.detail).toContain('refused: algorithm_not_allowed');

      clock.now += 60_000;
      expect((await garbage()).status).toBe(200);
      expect((await recordsFrom(broker, stranger))[0]?.detail).toMatch(/^after 21 refusals answered rate_limited without a record \(the unverified limit\); /);
    });

    it("records the first refused DPoP proof at /revoke past the unverified budget as the limit's, with its id in the 429, and no other of the run", async () => {
      const { broker, github } = await setup({ KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '3' }, true);
      const stranger = `stranger-${crypto.randomUUID()}`;
      const bound = async () => {
        const token = await github.sign(ciClaims(github.url, broker.issuer, { cnf: { jkt: 'a'.repeat(43) } }), { key: 'foreign' });
        const response = await broker.request('/revoke', {
          method: 'POST',
          body: new URLSearchParams({ token }),
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': '127.0.0.1', 'user-agent': stranger },
        });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      for (let request = 0; request < 3; request += 1) expect((await bound()).status).toBe(400);
      const first = await bound();
      expect(first).toMatchObject({ status: 429, body: { error: 'temporarily_unavailable', audit_event_id: expect.any(String) } });
      expect(await broker.auditEvent(first.body['audit_event_id'] as string)).toMatchObject({
        reason: 'rate_limited',
        detail: expect.stringContaining('refused: dpop_proof_invalid'),
      });
      expect((await bound()).body).not.toHaveProperty('audit_event_id');
      expect((await recordsFrom(broker, stranger)).map((event) => event.reason)).toEqual(['rate_limited', ...Array(3).fill('dpop_proof_invalid')]);
    });

    it("refuses a stranger's /revoke without a token past the unverified budget with the limit's 429, recording the first of the run as the limit's", async () => {
      const { broker } = await setup({ KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '3' }, true);
      const send = async () => {
        const response = await broker.request('/revoke', {
          method: 'POST',
          body: 'token_type_hint=access_token',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': '127.0.0.1' },
        });
        return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
      };
      // Its record names no identity, so it goes to the chain of its own id: on Workers any of the 16 shards, each with a budget of 3.
      const answers = [];
      for (let request = 0; request < 16 * 3 + 1; request += 1) {
        answers.push(await send());
        if (answers.at(-1)?.status !== 400) break;
      }
      const limited = answers.pop();
      expect(answers.length).toBeGreaterThanOrEqual(3);
      expect(answers.every((answer) => answer.body['error'] === 'invalid_request' && typeof answer.body['audit_event_id'] === 'string')).toBe(true);
      expect(limited).toMatchObject({ status: 429, body: { error: 'temporarily_unavailable', audit_event_id: expect.any(String) } });
      expect([limited?.headers.get('retry-after'), limited?.headers.get('cache-control')]).toEqual(['60', 'no-store']);
      expect(limited?.body['error_description']).toContain('unverified rate limit');
      expect(await broker.auditEvent(limited?.body['audit_event_id'] as string)).toMatchObject({
        reason: 'rate_limited',
        detail: expect.stringContaining('refused: malformed_request'),
      });
    });

    it("records every /introspect of an operator's that holds no token whatever the unverified budget: its keyway token verified, so it is no stranger", async () => {
      const { broker, good } = await setup({ KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '3' }, true, (github) => ({
        'ops/introspector.yaml': `version: 1\nissuer: { kind: github, url: "${github.url}" }\nmatch: { repository_owner_id: "1200934", repository_id: "4242" }\ngrant: { audience: ${brokerIssuer}, scopes: [tokens:introspect] }\n`,
      }));
      const granted = await post(broker, exchangeForm(await good({ repository: 'acme/ops', repository_id: '4242' }), { audience: brokerIssuer }));
      expect(granted.status, JSON.stringify(granted.body)).toBe(200);
      const authorization = `Bearer ${granted.body['access_token'] as string}`;
      // Past the budget of 3 of every chain its records could go to: on Workers the operator's, one shard.
      for (let request = 0; request < 5; request += 1) {
        const response = await broker.request('/introspect', {
          method: 'POST',
          body: 'token_type_hint=access_token',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': '127.0.0.1', authorization },
        });
        const body = (await response.json()) as Record<string, unknown>;
        expect({ request, status: response.status, error: body['error'] }).toEqual({ request, status: 400, error: 'invalid_request' });
        expect(await broker.auditEvent(body['audit_event_id'] as string)).toMatchObject({
          reason: 'malformed_request',
          detail: expect.stringContaining('POST /introspect'),
        });
      }
    });

    it("records a holder's /revoke of a keyway token already revoked whatever the unverified budget: the token verified, so its holder is no stranger", async () => {
      const { broker, github, good } = await setup({ KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '3' }, true);
      const holder = `holder-${crypto.randomUUID()}`;
      const stranger = `stranger-${crypto.randomUUID()}`;
      const revoke = async (token: string, userAgent: string) => {
        const response = await broker.request('/revoke', {
          method: 'POST',
          body: new URLSearchParams({ token }),
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': '127.0.0.1', 'user-agent': userAgent },
        });
        return response.status;
      };
      const live = (await post(broker, exchangeForm(await good()))).body['access_token'] as string;
      expect(await revoke(live, holder)).toBe(200);
      // Tokens no keyway key signed, claiming the revoked token's iss and sub: their records go to its chain and spend its budget.
      const { iss, sub } = JSON.parse(atob(live.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { iss: string; sub: string };
      const now = Math.floor(Date.now() / 1000);
      const garbage = async () =>
        revoke(await github.sign({ iss, sub, aud: iss, iat: now, exp: now + 300, jti: crypto.randomUUID() }, { key: 'foreign' }), stranger);
      for (let request = 0; request < 5; request += 1) expect(await garbage()).toBe(200);
      expect((await recordsFrom(broker, stranger)).map((event) => event.reason)).toEqual([
        'rate_limited',
        'algorithm_not_allowed',
        'algorithm_not_allowed',
        'algorithm_not_allowed',
      ]);

      // Past the budget, the holder asks again: its token verified, so the record is written as any verified caller's is.
      expect(await revoke(live, holder)).toBe(200);
      expect((await recordsFrom(broker, holder)).map((event) => [event.reason, event.detail])).toEqual([
        ['token_revoked', 'already revoked; asked again by its holder'],
        ['token_revoked', 'revoked by its holder'],
      ]);
      // And it spent nothing of the budget: the strangers' run goes on unrecorded.
      expect(await garbage()).toBe(200);
      expect(await recordsFrom(broker, stranger)).toHaveLength(4);
    });

    it("records a holder's /revoke with a replayed DPoP proof whatever the unverified budget: the proof verified, so its holder is no stranger", async () => {
      const { broker, github, good } = await setup({ KEYWAY_RATE_LIMIT_UNVERIFIED_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_UNVERIFIED_BURST: '3' }, true);
      const key = await DpopKey.generate();
      const jti = crypto.randomUUID();
      const exchanged = await broker.request('/token', {
        method: 'POST',
        body: exchangeForm(await good()),
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await key.proof('POST', `${broker.issuer}/token`, { jti }) },
      });
      const live = ((await exchanged.json()) as Record<string, unknown>)['access_token'] as string;
      // Tokens no keyway key signed, claiming the bound token's iss and sub, spend its chain's budget.
      const stranger = `stranger-${crypto.randomUUID()}`;
      const { iss, sub } = decodeJwt(live) as { iss: string; sub: string };
      const now = Math.floor(Date.now() / 1000);
      for (let request = 0; request < 5; request += 1) {
        const garbage = await github.sign({ iss, sub, aud: iss, iat: now, exp: now + 300, jti: crypto.randomUUID() }, { key: 'foreign' });
        const response = await broker.request('/revoke', {
          method: 'POST',
          body: new URLSearchParams({ token: garbage }),
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': '127.0.0.1', 'user-agent': stranger },
        });
        expect(response.status).toBe(200);
      }
      expect(await recordsFrom(broker, stranger)).toHaveLength(4);

      // Past the budget, the holder revokes with a proof of its key whose jti was used at /token: refused as a replay, and recorded.
      const replayed = await broker.request('/revoke', {
        method: 'POST',
        body: new URLSearchParams({ token: live }),
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'cf-connecting-ip': '127.0.0.1',
          dpop: await key.proof('POST', `${broker.issuer}/revoke`, { jti, ath: await athOf(live) }),
        },
      });
      const body = (await replayed.json()) as Record<string, unknown>;
      expect({ status: replayed.status, error: body['error'] }).toEqual({ status: 400, error: 'invalid_dpop_proof' });
      expect(await broker.auditEvent(body['audit_event_id'] as string)).toMatchObject({ reason: 'dpop_proof_replayed' });
    });

    it('holds every caller to the global limit', async () => {
      const { broker, good } = await setup({ KEYWAY_RATE_LIMIT_GLOBAL_PER_MINUTE: '3', KEYWAY_RATE_LIMIT_GLOBAL_BURST: '2' });
      expect((await post(broker, exchangeForm(await good()))).status).toBe(200);
      await expectRefusal(broker, await post(broker, exchangeForm('garbage')), malformed);
      const refused = await post(broker, exchangeForm(await good()));
      expect(refused.retryAfter).toBe('20');
      expect(refused.body['error_description']).toContain('global rate limit');
      await expectRefusal(broker, refused, limited);
    });
  });
}
