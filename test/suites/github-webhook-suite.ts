import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeGitHub, type FakeCall } from '../support/fake-github.ts';
import { deliveryRequest, payloads, WEBHOOK_SECRET, type Delivery } from '../support/github-webhook-delivery.ts';
import { forgejoToken } from '../support/ci-token-fixtures.ts';
import { ciClaims, newTestSite, TestIssuer } from '../support/test-issuer.ts';
import type { Logger } from '../../src/core/log.ts';
import { POLICY_FETCH_CONCURRENCY, POLICY_FETCH_LIMITS } from '../../src/features/github/repository-policies/fetch-policy-files.ts';
import { HEALTH_READ_SCOPE } from '../../src/http/routes/health.ts';
import { auditorToken, operatorPolicy } from './audit-api-suite.ts';
import { exchangeForm, expectRefusal, freshIssuer, ID_TOKEN, postToken, type BrokerHarness, type StartBroker } from './exchange-suite.ts';
import { GITHUB_TOKEN_TYPE } from './github-exchange-suite.ts';
import { GITHUB_TOKEN_MAP_TYPE } from './github-token-map-suite.ts';

const OWNER = 'acme';
const POLICY_REPO = { owner: OWNER, name: 'keyway-policies' };
/** The policy repository's numeric id: payloads carry it (github-webhook-delivery.ts), and the broker is pinned to it. */
const POLICY_REPO_ID = 4242;
const POLICY_DIR = 'policies';
/** The issuer both test harnesses give the broker: policies naming it are written before it starts. */
const HARNESS_ISSUER = 'https://keyway.test';

/** A deploy policy for one environment, and a guardrail. Line numbers matter: annotations point at them. */
function deployPolicy(issuer: string, environment: string): string {
  return `version: 1
issuer: { kind: github, url: "${issuer}" }
match:
  repository_owner_id: "1200934"
  repository_id: "734201"
  environment: ${environment}
grant:
  audience: https://deploy.acme.dev
  scopes: [deploy:write]
`;
}

function guardPolicy(issuer: string): string {
  return `version: 1
effect: deny
issuer: { kind: github, url: "${issuer}" }
match:
  event_name: [pull_request_target, workflow_run]
`;
}

/** Line 9 names a field the schema does not have. */
function brokenPolicy(issuer: string): string {
  return `version: 1
issuer: { kind: github, url: "${issuer}" }
match:
  repository_owner_id: "1200934"
  environment: production
grant:
  audience: https://deploy.acme.dev
  scopes: [deploy:read]
  lifetime: 5m
`;
}

/** A GitHub token, or a keyway token, for jobs on the release branch (the policy repository's installation is the only one). */
function githubPolicy(issuer: string): string {
  return `version: 1
issuer: { kind: github, url: "${issuer}" }
match: { repository_id: "734201", ref: refs/heads/release }
grant:
  audience: https://release.acme.dev
  github: { repositories: [${OWNER}/keyway-policies], permissions: { contents: read } }
  ttl: 10m
`;
}

/** The fake GitHub API knows tokens by their SHA-256. */
async function sha256Hex(token: string): Promise<string> {
  return Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))), (byte) => byte.toString(16).padStart(2, '0')).join(
    '',
  );
}

const sha = (label: string): string =>
  Array.from(new TextEncoder().encode(label.padEnd(20, '.').slice(0, 20)), (byte) => byte.toString(16).padStart(2, '0')).join('');

/** How an exchange no policy grants is refused. */
const NO_POLICY = { error: 'invalid_request', reason: 'no_policy_matched' } as const;

/** Deliveries keyway must refuse unread: no signature, a forger's secret, and malformed signature headers. */
const UNSIGNED_OR_FORGED: readonly Pick<Delivery, 'secret' | 'signature'>[] = [
  { secret: null },
  { secret: 'not-the-webhook-secret-at-all-000' },
  { signature: 'sha256=' },
  { signature: 'sha1=0123456789abcdef0123456789abcdef01234567' },
  { signature: `sha256=${'0'.repeat(64)}` },
];

interface CheckRunBody {
  name: string;
  head_sha: string;
  status: string;
  conclusion: string;
  output: {
    title: string;
    summary: string;
    annotations: { path: string; start_line: number; end_line: number; annotation_level: string; message: string; title?: string }[];
  };
}

/**
 * `POST /webhooks/github` against the real broker and the fake GitHub API on 127.0.0.1, with
 * deliveries signed as GitHub signs them. Runs on Node and inside workerd.
 */
export function githubWebhookSuite(runtime: string, start: StartBroker, issuerBase: () => string, fakeGitHubBase: () => string): void {
  // Every test has a broker of its own (audit log, live set, deliveries); the fake GitHub App is shared, and a test counts only
  // the calls, check runs and tokens it caused. So no test depends on what another did, or on running after it.
  describe(`POST /webhooks/github on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let github: FakeGitHub;
    /** The pool's second App, with its own webhook secret. */
    let second: FakeGitHub;
    const SECOND_SECRET = 'second-app-webhook-secret-0123456789';
    let ci: TestIssuer;

    const deliver = async (delivery: Delivery) => {
      const { id, init } = await deliveryRequest(delivery);
      const response = await broker.request('/webhooks/github', init);
      return { id, status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const exchange = async (overrides: Record<string, unknown>) => postToken(broker, exchangeForm(await ci.sign(ciClaims(ci.url, broker.issuer, overrides))));
    const putPolicies = async (ref: string, files: Record<string, string>) => {
      for (const [path, text] of Object.entries(files))
        await github.putFile({ owner: POLICY_REPO.owner, repo: POLICY_REPO.name, path: `${POLICY_DIR}/${path}`, ref, text });
    };
    /** Moves the policy repository's main branch to `to`, as a push does before GitHub delivers it. */
    const moveMain = (to: string) => github.setBranch({ owner: POLICY_REPO.owner, repo: POLICY_REPO.name, branch: 'main', sha: to });
    /** The push delivery of main moved to `after`. */
    const pushOf = (after: string) => ({ event: 'push', payload: payloads.push(POLICY_REPO, { ref: 'refs/heads/main', after }) });
    /** The check runs published, oldest first, each as it stands now (created, then completed). */
    const checkRuns = async (): Promise<CheckRunBody[]> => (await github.checkRuns()) as unknown as CheckRunBody[];
    /** The App on acme: the policy repository (under the id given) and acme/api. */
    const installApp = (policyRepositoryId: number) =>
      github.install({
        id: 71,
        owner: OWNER,
        ownerId: 1200934,
        repositories: [
          { id: policyRepositoryId, name: POLICY_REPO.name },
          { id: 734201, name: 'api' },
        ],
        permissions: { contents: 'read', checks: 'write' },
      });
    let people: TestIssuer;
    let operator: string;
    /** The health in detail, as an operator reads it; strangers get `status` alone. */
    const health = async () =>
      (await (await broker.request('/v1/health', { headers: { authorization: `Bearer ${operator}` } })).json()) as Record<string, unknown>;
    const publicHealth = async () => (await (await broker.request('/healthz')).json()) as Record<string, unknown>;

    beforeAll(async () => {
      people = freshIssuer(issuerBase(), 'webhooks-ops');
      github = await FakeGitHub.create(fakeGitHubBase());
      second = await FakeGitHub.create(fakeGitHubBase());
      await installApp(POLICY_REPO_ID);
      // The default author of the pull requests below may write to the policy repository.
      await github.setRole({ owner: OWNER, repo: POLICY_REPO.name, username: 'octocat', role: 'write' });
    });
    /** The broker every test starts with (`settings` over the suite's own, `policies` beside its own), for the issuer of the test's CI jobs. */
    const startBroker = (settings: Readonly<Record<string, string>> = {}, policies: Readonly<Record<string, string>> = {}, log?: Logger, now?: () => number) =>
      start(
        {
          ...policies,
          'deploy.yaml': deployPolicy(ci.url, 'production'),
          'guard.yaml': guardPolicy(ci.url),
          'github/read.yaml': githubPolicy(ci.url),
          'ops/olga.yaml': operatorPolicy(people, HARNESS_ISSUER, 'olga@acme.dev', [HEALTH_READ_SCOPE, 'tokens:introspect']),
        },
        {
          settings: {
            ...github.settings,
            KEYWAY_GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
            KEYWAY_GITHUB_POLICY_REPOSITORY: `${POLICY_REPO.owner}/${POLICY_REPO.name}`,
            KEYWAY_GITHUB_POLICY_REPOSITORY_ID: String(POLICY_REPO_ID),
            KEYWAY_GITHUB_POLICY_PATH: POLICY_DIR,
            ...second.poolSettings(2),
            KEYWAY_GITHUB_APP_2_WEBHOOK_SECRET: SECOND_SECRET,
            ...settings,
          },
          ownState: true,
          ...(log === undefined ? {} : { log }),
          ...(now === undefined ? {} : { now }),
        },
      );
    beforeEach(async () => {
      ci = freshIssuer(issuerBase(), 'webhooks');
      broker = await startBroker();
    });
    afterEach(() => broker?.close());

    it('refuses a delivery without a signature, with a forged one, or with a malformed one (401), and remembers none of them', async () => {
      const ping = { zen: 'Keep it logically awesome.', hook_id: 1 };
      const id = crypto.randomUUID();
      for (const signature of UNSIGNED_OR_FORGED) {
        expect(await deliver({ event: 'ping', payload: ping, id, ...signature })).toMatchObject({ status: 401, body: { error: 'invalid_signature' } });
      }
      // A body changed after signing: the signature is over the exact bytes.
      const signed = await deliveryRequest({ event: 'ping', payload: ping, id });
      const tampered = await broker.request('/webhooks/github', { ...signed.init, body: JSON.stringify({ ...ping, hook_id: 2 }) });
      expect(tampered.status).toBe(401);
      // …a byte order mark put before it (a text decoder drops it), or a byte that is not UTF-8 (one would replace it).
      const bytes = new TextEncoder().encode(signed.init.body as string);
      for (const body of [new Uint8Array([0xef, 0xbb, 0xbf, ...bytes]), new Uint8Array([...bytes.slice(0, -1), 0xff, ...bytes.slice(-1)])]) {
        expect((await broker.request('/webhooks/github', { ...signed.init, body })).status).toBe(401);
      }
      // None of them was recorded: the genuine delivery with the same id is handled, not a duplicate.
      const genuine = await deliver({ event: 'ping', payload: ping, id });
      expect(genuine).toMatchObject({ status: 200, body: { status: 'handled' } });
    });

    it('acts on no unsigned, forged or malformed push or pull_request: the live set stays, no check run, nothing asked of GitHub', async () => {
      // A push that would switch the live set to qa, and a pull request that would get a check run.
      const pushed = sha('forged-push');
      await putPolicies(pushed, { 'deploy.yaml': deployPolicy(ci.url, 'qa'), 'guard.yaml': guardPolicy(ci.url) });
      await moveMain(pushed);
      const [base, head] = [sha('forged-base'), sha('forged-head')];
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'staging') });
      const push = { ...pushOf(pushed), id: crypto.randomUUID() };
      const pullRequest = {
        event: 'pull_request',
        payload: payloads.pullRequest(POLICY_REPO, { number: 12, baseSha: base, headSha: head }),
        id: crypto.randomUUID(),
      };
      // The health as an operator reads it: with the token of none, both reads would be the same refusal whatever happened.
      operator = await auditorToken(broker, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
      const [healthBefore, callsBefore] = [await health(), (await github.calls()).length];
      expect(healthBefore).toHaveProperty('policies');

      for (const delivery of [push, pullRequest]) {
        for (const signature of UNSIGNED_OR_FORGED) {
          expect(await deliver({ ...delivery, ...signature })).toMatchObject({ status: 401, body: { error: 'invalid_signature' } });
        }
      }
      expect((await github.calls()).slice(callsBefore)).toEqual([]);
      expect(await health()).toEqual(healthBefore);
      await expectRefusal(broker, await exchange({ environment: 'qa' }), NO_POLICY);
      expect((await exchange({ environment: 'production' })).status).toBe(200);

      // Signed, the same deliveries (none was remembered) do what the forged ones could not.
      expect(await deliver(push)).toMatchObject({ status: 200, body: { status: 'handled' } });
      expect((await exchange({ environment: 'qa' })).status).toBe(200);
      const runsBefore = (await checkRuns()).length;
      expect(await deliver(pullRequest)).toMatchObject({ status: 200, body: { status: 'handled' } });
      expect((await checkRuns()).slice(runsBefore)).toEqual([expect.objectContaining({ head_sha: head })]);
    });

    it('handles one of two concurrent copies of a delivery, and calls the other a duplicate', async () => {
      const delivery = { event: 'ping', payload: { zen: 'Design for failure.', hook_id: 3 }, id: crypto.randomUUID() };
      const answers = await Promise.all([deliver(delivery), deliver(delivery), deliver(delivery)]);
      expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200]);
      expect(answers.map((answer) => answer.body['status']).sort()).toEqual(['duplicate', 'duplicate', 'handled']);
    });

    it('de-duplicates on the signed body, never on the unsigned X-GitHub-Delivery id alone', async () => {
      const ping = { zen: 'Approachable is better than simple.', hook_id: 5 };
      const first = await deliver({ event: 'ping', payload: ping });
      expect(first).toMatchObject({ status: 200, body: { status: 'handled' } });
      // A captured signed body sent again under a fresh delivery id is the same delivery.
      expect(await deliver({ event: 'ping', payload: ping, id: crypto.randomUUID() })).toMatchObject({ status: 200, body: { status: 'duplicate' } });
      // A delivery id reused (forged) on another signed body does not suppress it.
      expect(await deliver({ event: 'ping', payload: { ...ping, hook_id: 6 }, id: first.id })).toMatchObject({ status: 200, body: { status: 'handled' } });
    });

    it('handles a redelivery whose first handling died mid-way once its claim is stale; a finished delivery stays a duplicate', async () => {
      const base = sha('died-base');
      const head = sha('died-head');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'qa') });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'perf') });
      const delivery = { event: 'pull_request', payload: payloads.pullRequest(POLICY_REPO, { number: 32, baseSha: base, headSha: head }) };
      // The delivery's key: the SHA-256 of its event's name and its body.
      const key = await sha256Hex(`pull_request\n${JSON.stringify(delivery.payload)}`);
      const claim = 'INSERT INTO github_deliveries (id, event, received_at) VALUES (?, ?, ?)';
      const minutesAgo = (minutes: number): number => Date.now() - minutes * 60_000;
      // What a broker that stopped while handling it leaves (a restart; a Worker cancelled when GitHub gave up after 10 s): its claim, no check run.
      await broker.tamper(claim, [key, 'pull_request', minutesAgo(10)]);
      const before = (await checkRuns()).length;
      expect(await deliver(delivery)).toMatchObject({ status: 200, body: { status: 'handled' } });
      expect((await checkRuns()).length).toBe(before + 1);
      // Handled to the end now: a redelivery long after is still a duplicate.
      await broker.tamper('UPDATE github_deliveries SET received_at = ? WHERE id = ?', [minutesAgo(10), key]);
      expect(await deliver(delivery)).toMatchObject({ status: 200, body: { status: 'duplicate' } });
      expect((await checkRuns()).length).toBe(before + 1);
      // A copy claimed a moment ago is being handled: left to that handler.
      const ping = { zen: 'Mind your words, they are important.', hook_id: 9 };
      await broker.tamper(claim, [await sha256Hex(`ping\n${JSON.stringify(ping)}`), 'ping', Date.now()]);
      expect(await deliver({ event: 'ping', payload: ping })).toMatchObject({ status: 200, body: { status: 'duplicate' } });
    });

    it('refuses a body over the limit (413) and acknowledges events it does not act on (202)', async () => {
      const huge = await deliver({ event: 'ping', payload: { zen: 'x'.repeat(4 * 1024 * 1024 + 1) } });
      expect(huge.status).toBe(413);
      const star = await deliver({ event: 'star', payload: { action: 'created', repository: { full_name: 'acme/api' } } });
      expect(star).toMatchObject({ status: 202, body: { status: 'ignored', event: 'star' } });
      const missing = await broker.request('/webhooks/github', {
        ...(await deliveryRequest({ event: 'ping', payload: {} })).init,
        headers: { 'x-hub-signature-256': 'sha256=00' },
      });
      expect(missing.status).toBe(401);
    });

    it('reviews a pull request: the access diff and the impact replay of audited exchanges, as a passing check run', async () => {
      // Audited exchanges: 3 production deploys granted, 2 staging attempts refused.
      for (let i = 0; i < 3; i += 1) expect((await exchange({ environment: 'production' })).status).toBe(200);
      for (let i = 0; i < 2; i += 1) await expectRefusal(broker, await exchange({ environment: 'staging' }), NO_POLICY);
      const base = sha('review-base');
      const head = sha('review-head');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production'), 'guard.yaml': guardPolicy(ci.url) });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'staging'), 'guard.yaml': guardPolicy(ci.url) });
      const before = (await checkRuns()).length;
      const tokensBefore = (await github.tokens()).length;

      const delivery = { event: 'pull_request', payload: payloads.pullRequest(POLICY_REPO, { number: 7, baseSha: base, headSha: head }) };
      const handled = await deliver(delivery);
      expect(handled).toMatchObject({ status: 200, body: { status: 'handled' } });
      const runs = (await checkRuns()).slice(before);
      expect(runs).toHaveLength(1);
      const [run] = runs as [CheckRunBody];
      expect(run).toMatchObject({ name: 'keyway policy review', head_sha: head, status: 'completed', conclusion: 'success' });
      expect(run.output.title).toContain('would newly allow 2, newly deny 3');
      expect(run.output.summary).toContain('**Impact replay: would newly allow 2, newly deny 3** of 5 exchanges');
      // The policy it touches granted 3 times in the last 90 days: its unused access is shown beside the replay.
      expect(run.output.summary).toContain('**Unused access** of the policies this change touches, in the 90 days from');
      expect(run.output.summary).toMatch(/\| `deploy` \| 3 \| /);
      expect(run.output.summary).toContain('| `deploy` | **changed** |');
      expect(run.output.summary).toContain('match.environment: \\"production\\" → \\"staging\\"'.replaceAll('\\"', '"'));
      // Lint warnings are annotated on their lines; nothing fails.
      expect(run.output.annotations.filter((annotation) => annotation.annotation_level === 'failure')).toEqual([]);
      expect(run.output.annotations).toContainEqual(
        expect.objectContaining({ path: 'policies/deploy.yaml', start_line: 9, annotation_level: 'warning', title: 'keyway write-from-untrusted' }),
      );

      // The same delivery again (GitHub's redelivery, or a replay of the signed body): handled once.
      const again = await deliver({ ...delivery, id: handled.id });
      expect(again).toMatchObject({ status: 200, body: { status: 'duplicate' } });
      // …and the captured body under a fresh delivery id: still the same signed body, so not reviewed again.
      const replayed = await deliver({ ...delivery, id: crypto.randomUUID() });
      expect(replayed).toMatchObject({ status: 200, body: { status: 'duplicate' } });
      expect((await checkRuns()).slice(before)).toHaveLength(1);
      // The installation token used for the review was limited to the policy repository and revoked after.
      const tokens = (await github.tokens()).slice(tokensBefore);
      expect(tokens.length).toBeGreaterThan(0);
      for (const token of tokens)
        expect(token).toMatchObject({ revoked: true, repositories: [POLICY_REPO.name], permissions: { contents: 'read', checks: 'write', metadata: 'read' } });
    });

    it('replays audited exchanges only for pull requests from a branch of the policy repository by an author with write access', async () => {
      for (let i = 0; i < 2; i += 1) expect((await exchange({ environment: 'staging' })).status).toBe(400);
      const base = sha('trust-base');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production'), 'guard.yaml': guardPolicy(ci.url) });
      await github.setRole({ owner: OWNER, repo: POLICY_REPO.name, username: 'maintainer', role: 'maintain' });
      await github.setRole({ owner: OWNER, repo: POLICY_REPO.name, username: 'triager', role: 'triage' });
      const permissionCalls = async () => (await github.calls()).filter((call) => call.path.includes('/collaborators/')).length;
      type Repo = Parameters<typeof payloads.pullRequest>[0];
      const review = async (number: number, pr: Partial<Parameters<typeof payloads.pullRequest>[1]>, repo: Repo = POLICY_REPO) => {
        const head = sha(`trust-head-${number}`);
        await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'staging'), 'guard.yaml': guardPolicy(ci.url) });
        const before = (await checkRuns()).length;
        const delivered = await deliver({ event: 'pull_request', payload: payloads.pullRequest(repo, { number, baseSha: base, headSha: head, ...pr }) });
        expect(delivered).toMatchObject({ status: 200, body: { status: 'handled' } });
        const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
        expect(run).toMatchObject({ head_sha: head, conclusion: 'success' });
        return run;
      };

      // A maintainer (GitHub answers write) sees the replay, subjects included.
      const trusted = await review(50, { author: 'maintainer' });
      expect(trusted.output.title).toMatch(/^would newly allow [1-9]\d*, newly deny \d+/);
      expect(trusted.output.summary).toContain('`repo:acme/api:environment:');
      expect(trusted.output.summary).toContain('**Unused access**');
      expect(trusted.output.summary).toMatch(/\b[0-9A-HJKMNP-TV-Z]{26}\b/);

      // A fork's head (whoever wrote it), a triager (an organization MEMBER by author_association), a user GitHub does not know,
      // and the maintainer's own pull request in a policy repository that is public (its check runs are the world's to read):
      // the diff and lint, and not even counts.
      const calls = await permissionCalls();
      const withheld = [
        await review(51, { fork: { owner: 'mallory', name: POLICY_REPO.name, id: 9_999 } }),
        await review(52, { author: 'triager' }),
        await review(53, { author: 'stranger' }),
        await review(54, { author: 'maintainer' }, { ...POLICY_REPO, private: false }),
      ];
      expect(await permissionCalls()).toBe(calls + 2);
      for (const run of withheld) {
        expect(run.output.title).not.toContain('would newly');
        expect(run.output.summary).toContain('No impact replay: it shows audited exchanges');
        expect(run.output.summary).toContain('| `deploy` | **changed** |');
        expect(run.output.summary).not.toContain('**Impact replay');
        expect(run.output.summary).not.toContain('**Unused access**');
        expect(run.output.summary).not.toContain('repo:acme/api:environment');
        expect(run.output.summary).not.toMatch(/\b[0-9A-HJKMNP-TV-Z]{26}\b/);
      }
    });

    it("fails the review of a fork's pull request proposing more than the review reads beyond the base, without compiling it; a branch's is reviewed", async () => {
      const base = sha('central-limits-base');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production'), 'guard.yaml': guardPolicy(ci.url) });
      const fork = { owner: 'mallory', name: POLICY_REPO.name, id: 9_996 };
      /** The base's two policies and `files` more, each of `regexes` regexes. */
      const review = async (number: number, files: number, regexes: number, pr: Partial<Parameters<typeof payloads.pullRequest>[1]>) => {
        const head = sha(`central-limits-${number}`);
        const environments = `[${Array.from({ length: regexes }, (_, n) => `{ regex: "qa-${n}-[0-9]+" }`).join(', ')}]`;
        const added = Array.from({ length: files }, (_, n) => [`p${n}.yaml`, deployPolicy(ci.url, environments)]);
        await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'production'), 'guard.yaml': guardPolicy(ci.url), ...Object.fromEntries(added) });
        const [runs, calls] = [(await checkRuns()).length, (await github.calls()).length];
        const payload = payloads.pullRequest(POLICY_REPO, { number, baseSha: base, headSha: head, ...pr });
        expect(await deliver({ event: 'pull_request', payload })).toMatchObject({ status: 200, body: { status: 'handled' } });
        const [run] = (await checkRuns()).slice(runs) as [CheckRunBody];
        const read = (await github.calls()).slice(calls).filter((call) => /\/contents\/policies\/p\d+\.yaml$/.test(call.path));
        return { run, read: read.length };
      };
      // 65 files more than the base's two: refused from the listing, before any file is read.
      const many = await review(90, 65, 1, { fork });
      expect(many.run).toMatchObject({
        conclusion: 'failure',
        output: { title: 'too large to review: the proposed policies hold 67 files, at most 66', annotations: [] },
      });
      expect(many.run.output.summary).toMatch(
        /^\*\*keyway does not review this change:\*\* the proposed policies under policies hold 67 files, at most 66\. It reviews a pull request from a fork only when its proposed policies hold at most 64 files, 131072 characters, 128 regexes, 8192 characters of regexes more than the base \(2 files, \d+ characters, 0 regexes, 0 characters of regexes\)/,
      );
      expect(many.read).toBe(0);
      // Five files of 26 regexes each, the central set bounding none: 130 regexes more than the base's none.
      const regexes = await review(91, 5, 26, { fork });
      expect(regexes.run).toMatchObject({
        conclusion: 'failure',
        output: { title: 'too large to review: the proposed policies hold 130 regexes, at most 128' },
      });
      expect(regexes.read).toBe(5);
      // The same changes from a branch of the repository, whose writers may push the base itself, are reviewed.
      for (const [number, files, count] of [
        [92, 65, 1],
        [93, 5, 26],
      ] as const) {
        const branch = await review(number, files, count, {});
        expect(branch.run).toMatchObject({ conclusion: 'success' });
        expect(branch.run.output.title).not.toMatch(/^too large/);
        expect(branch.read).toBe(files);
      }
    });

    it("replays audited exchanges for a writer's pull request only while whoever last pushed to or reopened it may write too", async () => {
      for (let i = 0; i < 2; i += 1) expect((await exchange({ environment: 'staging' })).status).toBe(400);
      await github.setRole({ owner: OWNER, repo: POLICY_REPO.name, username: 'triager', role: 'triage' });
      const base = sha('sender-base');
      const head = sha('sender-head');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production'), 'guard.yaml': guardPolicy(ci.url) });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'staging'), 'guard.yaml': guardPolicy(ci.url) });
      const review = async (action: string, sender: string) => {
        const before = (await checkRuns()).length;
        const payload = payloads.pullRequest(POLICY_REPO, { number: 60, baseSha: base, headSha: head, action, sender });
        expect(await deliver({ event: 'pull_request', payload })).toMatchObject({ status: 200, body: { status: 'handled' } });
        const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
        expect(run).toMatchObject({ head_sha: head, conclusion: 'success' });
        return run;
      };
      // octocat (write) wrote the pull request; a triager reopens it, or a user GitHub does not know is the sender.
      for (const [action, sender] of [
        ['reopened', 'triager'],
        ['synchronize', 'stranger'],
      ] as const) {
        const withheld = await review(action, sender);
        expect(withheld.output.summary).toContain('No impact replay: it shows audited exchanges');
        expect(withheld.output.summary).toContain('whoever last pushed to or reopened it, has write access');
        expect(withheld.output.summary).not.toContain('**Impact replay');
        expect(withheld.output.summary).not.toContain('repo:acme/api:environment');
      }
      const trusted = await review('synchronize', 'octocat');
      expect(trusted.output.summary).toContain('**Impact replay');
      expect(trusted.output.summary).toContain('`repo:acme/api:environment:');
    });

    it('fails the check run of a broken change, with annotations on the offending lines', async () => {
      const base = sha('broken-base');
      const head = sha('broken-head');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production'), 'guard.yaml': guardPolicy(ci.url) });
      await putPolicies(head, { 'deploy.yaml': brokenPolicy(ci.url), 'guard.yaml': guardPolicy(ci.url) });
      const before = (await checkRuns()).length;
      expect(
        await deliver({
          event: 'pull_request',
          payload: payloads.pullRequest(POLICY_REPO, { number: 8, baseSha: base, headSha: head, action: 'synchronize' }),
        }),
      ).toMatchObject({ status: 200 });
      const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
      expect(run).toMatchObject({ head_sha: head, conclusion: 'failure' });
      expect(run.output.title).toMatch(/^\d+ errors?: the proposed policies do not load$/);
      expect(run.output.summary).toContain('**The proposed policies do not load**');
      const failures = run.output.annotations.filter((annotation) => annotation.annotation_level === 'failure');
      expect(failures.length).toBeGreaterThan(0);
      for (const annotation of failures) expect(annotation.path).toBe('policies/deploy.yaml');
      expect(failures.map((annotation) => annotation.start_line)).toContain(9);
      expect(failures.find((annotation) => annotation.start_line === 9)?.message).toMatch(/lifetime/);
    });

    it('fails the review of a pull request whose policy directory keyway cannot read', async () => {
      const base = sha('unreadable-base');
      const head = sha('unreadable-head');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      // At the head, the policy directory's path is a file.
      await github.putFile({ owner: POLICY_REPO.owner, repo: POLICY_REPO.name, path: POLICY_DIR, ref: head, text: 'not a directory' });
      const before = (await checkRuns()).length;
      expect(await deliver({ event: 'pull_request', payload: payloads.pullRequest(POLICY_REPO, { number: 11, baseSha: base, headSha: head }) })).toMatchObject({
        status: 200,
        body: { status: 'handled' },
      });
      const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
      expect(run).toMatchObject({ head_sha: head, conclusion: 'failure', output: { title: 'the policy directory cannot be read' } });
      expect(run.output.summary).toContain(`${POLICY_DIR} at ${head} is not a directory`);

      // At another head, a policy file that is not UTF-8 text: a failed review, not a failed delivery.
      const latin1 = sha('unreadable-latin1');
      await putPolicies(latin1, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      await github.putFile({
        owner: POLICY_REPO.owner,
        repo: POLICY_REPO.name,
        path: `${POLICY_DIR}/notes.yaml`,
        ref: latin1,
        text: '',
        base64: btoa('# caf\xe9\n'),
      });
      const pullRequest = payloads.pullRequest(POLICY_REPO, { number: 12, baseSha: base, headSha: latin1 });
      expect(await deliver({ event: 'pull_request', payload: pullRequest })).toMatchObject({ status: 200, body: { status: 'handled' } });
      const [failed] = (await checkRuns()).slice(before + 1) as [CheckRunBody];
      expect(failed).toMatchObject({ head_sha: latin1, conclusion: 'failure', output: { title: 'the policy directory cannot be read' } });
      expect(failed.output.summary).toContain(`${POLICY_DIR}/notes.yaml at ${latin1} is not UTF-8 text`);
    });

    it('publishes its check run in progress before the review reads the proposed policies, then completes that same check run', async () => {
      const base = sha('progress-base');
      const head = sha('progress-head');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'staging') });
      const [runsBefore, callsBefore] = [(await checkRuns()).length, (await github.calls()).length];
      const reads = await github.holdReads(head, 'deploy.yaml');
      let delivered;
      try {
        delivered = deliver({ event: 'pull_request', payload: payloads.pullRequest(POLICY_REPO, { number: 81, baseSha: base, headSha: head }) });
        await reads.held();
        // The review is reading the proposed policy: keyway's check run is on the head commit already, and passes nothing yet.
        const [pending, ...others] = (await checkRuns()).slice(runsBefore);
        expect(others).toEqual([]);
        expect(pending).toMatchObject({ name: 'keyway policy review', head_sha: head, status: 'in_progress' });
        expect(pending).not.toHaveProperty('conclusion');
      } finally {
        await reads.release();
      }
      expect(await delivered).toMatchObject({ status: 200, body: { status: 'handled' } });
      const runs = (await checkRuns()).slice(runsBefore);
      expect(runs).toEqual([expect.objectContaining({ name: 'keyway policy review', head_sha: head, status: 'completed', conclusion: 'success' })]);
      // GitHub saw it created in progress, then that check run (by its id) completed with the conclusion.
      const writes = (await github.calls()).slice(callsBefore).filter((call: FakeCall) => call.path.includes('/check-runs'));
      expect(writes.map(({ method, path, status }) => ({ method, path, status }))).toEqual([
        { method: 'POST', path: `/repositories/${POLICY_REPO_ID}/check-runs`, status: 201 },
        { method: 'PATCH', path: `/repositories/${POLICY_REPO_ID}/check-runs/${(runs[0] as unknown as { id: number }).id}`, status: 200 },
      ]);
      expect(writes[0]?.body).toEqual({ name: 'keyway policy review', head_sha: head, status: 'in_progress' });
      expect(writes[1]?.body).toMatchObject({ status: 'completed', conclusion: 'success' });
    });

    it('completes its check run as a failure when the review fails after it started, and answers 503 so a redelivery reviews the change', async () => {
      const base = sha('midway-base');
      const head = sha('midway-head');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'staging') });
      const delivery = {
        event: 'pull_request',
        payload: payloads.pullRequest(POLICY_REPO, { number: 82, baseSha: base, headSha: head }),
        id: crypto.randomUUID(),
      };
      const before = (await checkRuns()).length;
      // GitHub fails the read of the proposed policy, after the check run was published in progress.
      const reads = await github.holdReads(head, 'deploy.yaml');
      let failed;
      try {
        failed = deliver(delivery);
        await reads.held();
      } finally {
        await reads.fail(502);
      }
      expect(await failed).toMatchObject({ status: 503, body: { error: 'temporarily_unavailable' } });
      const [abandoned, ...others] = (await checkRuns()).slice(before) as CheckRunBody[];
      expect(others).toEqual([]);
      // Not left in progress, and not passed: a failure that says the review did not run.
      expect(abandoned).toMatchObject({
        name: 'keyway policy review',
        head_sha: head,
        status: 'completed',
        conclusion: 'failure',
        output: { title: 'the review could not run' },
      });
      expect(abandoned?.output.summary).toContain('keyway could not finish reviewing this change');
      // The delivery was given back: sent again, it is reviewed, in a check run of its own.
      expect(await deliver(delivery)).toMatchObject({ status: 200, body: { status: 'handled' } });
      const runs = (await checkRuns()).slice(before);
      expect(runs).toHaveLength(2);
      expect(runs[1]).toMatchObject({ head_sha: head, status: 'completed', conclusion: 'success' });
    });

    it("warns on the line of a proposed policy that grants statuses: write on the policy repository: a job's status could pass for the review", async () => {
      const base = sha('spoof-base');
      const head = sha('spoof-head');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      const statuses = `version: 1
issuer: { kind: github, url: "${ci.url}" }
match:
  repository_owner_id: "1200934"
  repository_id: "${POLICY_REPO_ID}"
  ref: refs/heads/main
grant:
  github: { repositories: [${OWNER}/${POLICY_REPO.name}], permissions: { statuses: write } }
`;
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'production'), 'statuses.yaml': statuses });
      const before = (await checkRuns()).length;
      expect(await deliver({ event: 'pull_request', payload: payloads.pullRequest(POLICY_REPO, { number: 83, baseSha: base, headSha: head }) })).toMatchObject({
        status: 200,
        body: { status: 'handled' },
      });
      const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
      expect(run).toMatchObject({ head_sha: head, status: 'completed', conclusion: 'success' });
      expect(run.output.annotations).toContainEqual(
        expect.objectContaining({
          path: `${POLICY_DIR}/statuses.yaml`,
          start_line: 8,
          annotation_level: 'warning',
          title: 'keyway policy-review-writable',
          message: expect.stringContaining(`${OWNER}/${POLICY_REPO.name}`),
        }),
      );
    });

    it("warns on the line of a proposed policy whose GitHub grant pins no owner_id for another GitHub deployment's jobs than the App's", async () => {
      const base = sha('unreachable-base');
      const head = sha('unreachable-head');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      // github.com's jobs, where the App is on this (fake) GitHub: their accounts are numbered apart from its own.
      const unreachable = `version: 1
issuer: github
match:
  repository_owner_id: "1200934"
  repository_id: "${POLICY_REPO_ID}"
  ref: refs/heads/main
grant:
  github: { owner: ${OWNER}, repositories: [${POLICY_REPO.name}], permissions: { contents: read } }
`;
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'production'), 'unreachable.yaml': unreachable });
      const before = (await checkRuns()).length;
      expect(await deliver({ event: 'pull_request', payload: payloads.pullRequest(POLICY_REPO, { number: 84, baseSha: base, headSha: head }) })).toMatchObject({
        status: 200,
        body: { status: 'handled' },
      });
      const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
      expect(run).toMatchObject({ head_sha: head, status: 'completed', conclusion: 'success' });
      expect(run.output.annotations).toContainEqual(
        expect.objectContaining({
          path: `${POLICY_DIR}/unreachable.yaml`,
          start_line: 8,
          annotation_level: 'warning',
          title: 'keyway unreachable-github-grant',
          message: expect.stringContaining(`the App's GitHub deployment (${new URL(github.apiUrl).hostname}, KEYWAY_GITHUB_API_URL's)`),
        }),
      );
    });

    it('reviews a pull request again when its base branch is changed: a review against the old base would hide a widening from the new one', async () => {
      // staging already holds the widening (deploy to staging); main does not. The pull request adds a guardrail on top.
      const [staging, main, head] = [sha('retarget-staging'), sha('retarget-main'), sha('retarget-head')];
      await putPolicies(staging, { 'deploy.yaml': deployPolicy(ci.url, 'staging') });
      await putPolicies(main, { 'deploy.yaml': deployPolicy(ci.url, 'production'), 'guard.yaml': guardPolicy(ci.url) });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'staging'), 'guard.yaml': guardPolicy(ci.url) });
      const before = (await checkRuns()).length;
      const opened = payloads.pullRequest(POLICY_REPO, { number: 70, baseSha: staging, headSha: head });
      expect(await deliver({ event: 'pull_request', payload: opened })).toMatchObject({ status: 200, body: { status: 'handled' } });
      const [againstStaging] = (await checkRuns()).slice(before) as [CheckRunBody];
      expect(againstStaging.output.summary).not.toContain('| `deploy` | **changed** |');

      // Its title edited: nothing to review again.
      const titled = {
        ...payloads.pullRequest(POLICY_REPO, { number: 70, baseSha: staging, headSha: head, action: 'edited' }),
        changes: { title: { from: 'wip' } },
      };
      expect(await deliver({ event: 'pull_request', payload: titled })).toMatchObject({ status: 200, body: { status: 'ignored' } });
      expect((await checkRuns()).slice(before)).toHaveLength(1);

      // Retargeted at main (GitHub sends `edited` with changes.base): the same head is reviewed against main, where it widens deploy.
      const retargeted = {
        ...payloads.pullRequest(POLICY_REPO, { number: 70, baseSha: main, headSha: head, action: 'edited' }),
        changes: { base: { ref: { from: 'staging' }, sha: { from: staging } } },
      };
      expect(await deliver({ event: 'pull_request', payload: retargeted })).toMatchObject({ status: 200, body: { status: 'handled' } });
      const runs = (await checkRuns()).slice(before);
      expect(runs).toHaveLength(2);
      const [, againstMain] = runs as [CheckRunBody, CheckRunBody];
      expect(againstMain).toMatchObject({ name: 'keyway policy review', head_sha: head, status: 'completed' });
      expect(againstMain.output.summary).toContain('| `deploy` | **changed** |');
      expect(againstMain.output.summary).toContain('match.environment: "production" → "staging"');
    });

    it('publishes nothing for a pull request that changes no policy file', async () => {
      const base = sha('same-base');
      const head = sha('same-head');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      const before = (await checkRuns()).length;
      const handled = await deliver({ event: 'pull_request', payload: payloads.pullRequest(POLICY_REPO, { number: 9, baseSha: base, headSha: head }) });
      expect(handled).toMatchObject({ status: 200, body: { status: 'ignored' } });
      expect((await checkRuns()).length).toBe(before);
      // Closed pull requests and other repositories are not reviewed either.
      expect(
        (
          await deliver({
            event: 'pull_request',
            payload: payloads.pullRequest(POLICY_REPO, { number: 9, baseSha: base, headSha: sha('x'), action: 'closed' }),
          })
        ).body['status'],
      ).toBe('ignored');
      expect(
        (
          await deliver({
            event: 'pull_request',
            payload: payloads.pullRequest({ owner: OWNER, name: 'api', id: 734201 }, { number: 1, baseSha: base, headSha: head }),
          })
        ).body['status'],
      ).toBe('ignored');
    });

    /** A job's check run as the REST API addresses it, under `api` (GitHub Enterprise Server serves it under /api/v3). */
    const checkRunUrl = (id: number, api = 'https://api.github.com') => `${api}/repos/${OWNER}/api/check-runs/${id}`;
    /**
     * A `workflow_job` delivery's payload: job `id` (named `name`) of run `runId` in the api repository, at `action`. Its
     * check run is GitHub's: the same id as the job (what the job's OIDC tokens carry as `check_run_id`); null leaves it out.
     */
    const workflowJob = (
      runId: number,
      action: string,
      { id = 1, name = 'release', checkRun = checkRunUrl(id), attempt = 1 }: { id?: number; name?: string; checkRun?: string | null; attempt?: number } = {},
    ) => ({
      action,
      workflow_job: {
        id,
        run_id: runId,
        run_attempt: attempt,
        started_at: new Date(Date.now() - 60_000).toISOString(),
        status: action === 'completed' ? 'completed' : 'in_progress',
        conclusion: action === 'completed' ? 'success' : null,
        name,
        ...(checkRun === null ? {} : { check_run_url: checkRun }),
      },
      repository: { id: 734201, name: 'api', full_name: `${OWNER}/api`, owner: { login: OWNER } },
      installation: { id: 71 },
    });
    const completedJob = (runId: number, id: number, options: { name?: string; checkRun?: string | null; attempt?: number } = {}) =>
      deliver({ event: 'workflow_job', payload: workflowJob(runId, 'completed', { id, ...options }) });
    /** The `workflow_run` delivery of attempt 1 of run `runId` in the api repository, completed. */
    const completedRun = (runId: number) =>
      deliver({
        event: 'workflow_run',
        payload: {
          action: 'completed',
          workflow_run: { id: runId, run_attempt: 1, run_started_at: new Date(Date.now() - 60_000).toISOString(), status: 'completed' },
          repository: { id: 734201, name: 'api', full_name: `${OWNER}/api`, owner: { login: OWNER } },
          installation: { id: 71 },
        },
      });
    /** Run and job ids of their own: the revocation schedule outlives a test file in workerd's storage. */
    const freshId = () => 100_000 + Math.floor(Math.random() * 1_000_000_000);
    /** A job's OIDC token claims: run `runId`, and check run `checkRunId` unless it is an older GHES token without one. */
    const jobClaims = (runId: number, checkRunId: number | string | undefined, attempt = 1) => ({
      ref: 'refs/heads/release',
      run_id: String(runId),
      run_attempt: String(attempt),
      ...(checkRunId === undefined ? {} : { check_run_id: String(checkRunId) }),
    });
    /** A GitHub token for a job, known by its SHA-256 as the fake GitHub API knows it. */
    const githubTokenFor = async (runId: number, checkRunId?: number | string, attempt?: number) => {
      const result = await postToken(
        broker,
        exchangeForm(await ci.sign(ciClaims(ci.url, broker.issuer, jobClaims(runId, checkRunId, attempt))), { requested_token_type: GITHUB_TOKEN_TYPE }),
      );
      expect(result.status).toBe(200);
      return sha256Hex(result.body['access_token'] as string);
    };
    const keywayTokenFor = async (runId: number, checkRunId?: number | string, attempt?: number) => {
      const result = await postToken(broker, exchangeForm(await ci.sign(ciClaims(ci.url, broker.issuer, jobClaims(runId, checkRunId, attempt)))));
      expect(result.status).toBe(200);
      return result.body['access_token'] as string;
    };
    const githubRevoked = async (hash: string) => (await github.tokens()).find((token) => token.sha256 === hash)?.revoked;
    /** Waits for the revocation, which runs on the schedule's own timer (Node) or alarm (Workers), now rather than at the TTL. */
    const untilGitHubRevoked = async (hash: string) => {
      for (let attempt = 0; attempt < 50 && (await githubRevoked(hash)) !== true; attempt += 1) {
        await broker.auditUpkeep();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(await githubRevoked(hash)).toBe(true);
    };
    /** Whether keyway tokens are active, as an operator's introspection says (of the test's broker, unless told another). */
    const introspection = async (on: BrokerHarness = broker) => {
      const introspector = await auditorToken(on, people, 'olga@acme.dev', 'tokens:introspect');
      return async (...tokens: string[]) => {
        const active: boolean[] = [];
        for (const token of tokens) {
          const response = await on.request('/introspect', {
            method: 'POST',
            body: new URLSearchParams({ token }),
            headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${introspector}` },
          });
          expect(response.status).toBe(200);
          active.push(((await response.json()) as { active: boolean }).active);
        }
        return active;
      };
    };

    it("revokes the GitHub tokens of a workflow job when it completes, and no other job's or run's", async () => {
      const [run, job, sibling] = [freshId(), freshId(), freshId()];
      const [finishing, ofSibling, ofOtherRun] = [await githubTokenFor(run, job), await githubTokenFor(run, sibling), await githubTokenFor(run + 1, job)];
      expect(await githubRevoked(finishing)).toBe(false);

      expect((await deliver({ event: 'workflow_job', payload: workflowJob(run, 'in_progress', { id: job }) })).body['status']).toBe('ignored');
      expect(await completedJob(run, job)).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `1 GitHub tokens and 0 keyway tokens revoked: the workflow job ${job} of run ${run} completed` },
      });
      await untilGitHubRevoked(finishing);
      expect([await githubRevoked(ofSibling), await githubRevoked(ofOtherRun)]).toEqual([false, false]);
    });

    it("revokes the keyway tokens of a workflow job when it completes, and no other job's or run's, each once", async () => {
      const [run, job, sibling] = [freshId(), freshId(), freshId()];
      const [first, second, ofSibling, ofOtherRun] = [
        await keywayTokenFor(run, job),
        await keywayTokenFor(run, job),
        await keywayTokenFor(run, sibling),
        await keywayTokenFor(run + 1, job),
      ];
      const active = await introspection();
      expect(await active(first)).toEqual([true]);
      expect(await completedJob(run, job)).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `0 GitHub tokens and 2 keyway tokens revoked: the workflow job ${job} of run ${run} completed` },
      });
      expect(await active(first, second, ofSibling, ofOtherRun)).toEqual([false, false, true, true]);
      const revocationsOf = async (ended: number) =>
        (await broker.recentAuditEvents()).filter(
          (event) => event.reason === 'token_revoked' && event.detail?.endsWith(`: the workflow job ${ended} of run ${run} completed`),
        ).length;
      expect(await revocationsOf(job)).toBe(2);
      // The job's end told again (another body, so not a duplicate delivery): its tokens already revoked are left alone, with no second record each.
      expect(await completedJob(run, job, { name: 'release (retold)' })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `0 GitHub tokens and 0 keyway tokens revoked: the workflow job ${job} of run ${run} completed` },
      });
      expect(await revocationsOf(job)).toBe(2);
    });

    it("leaves alone another issuer's keyway and GitHub tokens whose claims name the job's repository, run and check run: those are not the ids GitHub gave", async () => {
      const [run, job] = [freshId(), freshId()];
      // An operator's own OIDC issuer, which may put anything in its claims, and policies reading them (so they are recorded).
      const lookalike = freshIssuer(issuerBase(), 'webhooks-lookalike');
      const match = `match: { repository_id: "734201", run_id: "${run}", check_run_id: "${job}" }`;
      await broker.close();
      broker = await startBroker(
        {},
        {
          'lookalike.yaml': `version: 1\nissuer: { kind: oidc, url: "${lookalike.url}" }\n${match}\ngrant: { audience: https://deploy.acme.dev }\n`,
          'lookalike-github.yaml': `version: 1\nissuer: { kind: oidc, url: "${lookalike.url}" }\n${match}\ngrant:\n  audience: https://release.acme.dev\n  github: { owner: ${OWNER}, owner_id: "1200934", repositories: [keyway-policies], permissions: { contents: read } }\n  ttl: 10m\n`,
        },
      );
      const ofGitHub = await keywayTokenFor(run, job);
      const lookalikeToken = async () => lookalike.sign(ciClaims(lookalike.url, broker.issuer, jobClaims(run, job)));
      const ofLookalike = await postToken(broker, exchangeForm(await lookalikeToken()));
      expect(ofLookalike.status).toBe(200);
      const githubOfLookalike = await postToken(broker, exchangeForm(await lookalikeToken(), { requested_token_type: GITHUB_TOKEN_TYPE }));
      expect(githubOfLookalike.status, JSON.stringify(await broker.auditEvent(githubOfLookalike.body['audit_event_id'] as string))).toBe(200);
      expect(await completedJob(run, job)).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `0 GitHub tokens and 1 keyway tokens revoked: the workflow job ${job} of run ${run} completed` },
      });
      expect(await (await introspection())(ofGitHub, ofLookalike.body['access_token'] as string)).toEqual([false, true]);
      expect(await githubRevoked(await sha256Hex(githubOfLookalike.body['access_token'] as string))).toBe(false);
    });

    it("leaves alone another GitHub deployment's tokens whose claims name the job's repository, run and check run: its ids are of its own counters", async () => {
      const [run, job] = [freshId(), freshId()];
      // A GitHub Actions issuer of another deployment than the App's (a GitHub Enterprise Server beside github.com): the broker
      // trusts it, and its jobs' repository and run ids are numbered apart from the App's, so they can equal a job's here.
      const server = freshIssuer(issuerBase().replace('//127.0.0.1:', '//localhost:'), 'webhooks-other-deployment');
      const match = `match: { repository_id: "734201", run_id: "${run}" }`;
      await broker.close();
      broker = await startBroker(
        {},
        {
          'server.yaml': `version: 1\nissuer: { kind: github, url: "${server.url}" }\n${match}\ngrant: { audience: https://deploy.acme.dev }\n`,
          'server-github.yaml': `version: 1\nissuer: { kind: github, url: "${server.url}" }\n${match}\ngrant:\n  audience: https://release.acme.dev\n  github: { owner: ${OWNER}, owner_id: "1200934", repositories: [keyway-policies], permissions: { contents: read } }\n  ttl: 10m\n`,
        },
      );
      const serverToken = async () => server.sign(ciClaims(server.url, broker.issuer, jobClaims(run, job)));
      const ofServer = await postToken(broker, exchangeForm(await serverToken()));
      expect(ofServer.status, JSON.stringify(ofServer.body)).toBe(200);
      const githubOfServer = await postToken(broker, exchangeForm(await serverToken(), { requested_token_type: GITHUB_TOKEN_TYPE }));
      expect(githubOfServer.status, JSON.stringify(githubOfServer.body)).toBe(200);
      const ofApp = await keywayTokenFor(run, job);
      expect(await completedJob(run, job)).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `0 GitHub tokens and 1 keyway tokens revoked: the workflow job ${job} of run ${run} completed` },
      });
      expect(await (await introspection())(ofApp, ofServer.body['access_token'] as string)).toEqual([false, true]);
      expect(await githubRevoked(await sha256Hex(githubOfServer.body['access_token'] as string))).toBe(false);
      // The job that ended was the App's deployment's: the other's job of those numbers still exchanges, the ended one's does not.
      expect((await postToken(broker, exchangeForm(await serverToken()))).status).toBe(200);
      const refused = await postToken(broker, exchangeForm(await ci.sign(ciClaims(ci.url, broker.issuer, jobClaims(run, job)))));
      expect(await broker.auditEvent(refused.body['audit_event_id'] as string)).toMatchObject({ reason: 'ci_work_ended' });
    });

    it("acts on no completion of another GitHub deployment's repository, which a second GitHub's App signing with the same secret names by its own counters", async () => {
      const [run, job] = [freshId(), freshId()];
      const token = await keywayTokenFor(run, job);
      // The repository's REST URL, signed with the body: the App's GitHub serves it under its API, a GitHub Enterprise
      // Server under its own.
      const repositoryAt = (api: string) => `${api}/repos/${OWNER}/api`;
      const elsewhere = 'https://ghes.acme.dev/api/v3';
      const ofElsewhere = (base: ReturnType<typeof workflowJob>) => ({ ...base, repository: { ...base.repository, url: repositoryAt(elsewhere) } });
      expect(await deliver({ event: 'workflow_job', payload: ofElsewhere(workflowJob(run, 'completed', { id: job })) })).toMatchObject({
        status: 200,
        body: { status: 'ignored', detail: expect.stringContaining("not of the App's GitHub") },
      });
      const runOfElsewhere = { action: 'completed', workflow_run: { id: run, run_attempt: 1 }, repository: { id: 734201, url: repositoryAt(elsewhere) } };
      expect(await deliver({ event: 'workflow_run', payload: runOfElsewhere })).toMatchObject({ status: 200, body: { status: 'ignored' } });
      // A URL that does not parse names no GitHub: not the App's either.
      const unparsed = workflowJob(run, 'completed', { id: job });
      expect(await deliver({ event: 'workflow_job', payload: { ...unparsed, repository: { ...unparsed.repository, url: 'https://[acme' } } })).toMatchObject({
        status: 200,
        body: { status: 'ignored', detail: expect.stringContaining('named by no URL') },
      });
      expect(await (await introspection())(token)).toEqual([true]);
      expect((await postToken(broker, exchangeForm(await ci.sign(ciClaims(ci.url, broker.issuer, jobClaims(run, job)))))).status).toBe(200);
      // The same completion from the App's own GitHub ends the job.
      const ofApp = workflowJob(run, 'completed', { id: job });
      expect(
        await deliver({ event: 'workflow_job', payload: { ...ofApp, repository: { ...ofApp.repository, url: repositoryAt(github.apiUrl) } } }),
      ).toMatchObject({
        status: 200,
        body: { status: 'handled' },
      });
      expect(await (await introspection())(token)).toEqual([false]);
    });

    it("without an App, ends the jobs of the GitHub whose repository a completion names, and no other GitHub's of the same numbers", async () => {
      const [run, job] = [freshId(), freshId()];
      // Two GitHub deployments (two GitHub Enterprise Servers, or one and github.com), each numbering its repositories and runs
      // from its own counters, both trusted, their webhooks sent here under the one secret, and no App.
      const server = freshIssuer(issuerBase().replace('//127.0.0.1:', '//localhost:'), 'webhooks-no-app-other');
      await broker.close();
      broker = await start(
        {
          'deploy.yaml': deployPolicy(ci.url, 'production'),
          'server.yaml': `version: 1\nissuer: { kind: github, url: "${server.url}" }\nmatch: { repository_id: "734201", run_id: "${run}" }\ngrant: { audience: https://deploy.acme.dev }\n`,
          'ops/olga.yaml': operatorPolicy(people, HARNESS_ISSUER, 'olga@acme.dev', ['tokens:introspect']),
        },
        { settings: { KEYWAY_GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET }, ownState: true },
      );
      const exchangeOf = async (issuer: TestIssuer) =>
        postToken(broker, exchangeForm(await issuer.sign(ciClaims(issuer.url, broker.issuer, jobClaims(run, job)))));
      const [ofCi, ofServer] = [await exchangeOf(ci), await exchangeOf(server)];
      expect([ofCi.status, ofServer.status]).toEqual([200, 200]);
      const tokens = [ofCi.body['access_token'] as string, ofServer.body['access_token'] as string];
      /** The repository's REST URL on the GitHub of `issuer` (a GitHub Enterprise Server serves both on its host). */
      const on = (issuer: TestIssuer) => ({ id: 734201, url: `${new URL(issuer.url).origin}/api/v3/repos/${OWNER}/api` });
      const jobDone = workflowJob(run, 'completed', { id: job });
      expect(await deliver({ event: 'workflow_job', payload: { ...jobDone, repository: { ...jobDone.repository, ...on(ci) } } })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `1 keyway tokens revoked: the workflow job ${job} of run ${run} completed` },
      });
      const active = await introspection();
      expect(await active(...tokens)).toEqual([false, true]);
      const again = await exchangeOf(server);
      expect(again.status).toBe(200);
      const ofServerJob = [tokens[1] as string, again.body['access_token'] as string];
      const refused = await exchangeOf(ci);
      expect(await broker.auditEvent(refused.body['audit_event_id'] as string)).toMatchObject({ reason: 'ci_work_ended' });
      // A completion whose repository names no GitHub (no URL, or one without a host) is of no known deployment: nothing ends.
      const runDone = { action: 'completed', workflow_run: { id: run, run_attempt: 1 } };
      for (const repository of [{ id: 734201 }, { id: 734201, url: 'mailto:api@acme.dev' }]) {
        expect(await deliver({ event: 'workflow_run', payload: { ...runDone, repository } })).toMatchObject({
          status: 200,
          body: { status: 'ignored', detail: expect.stringContaining('named by no URL') },
        });
      }
      expect(await active(...ofServerJob)).toEqual([true, true]);
      expect(await deliver({ event: 'workflow_run', payload: { ...runDone, repository: on(server) } })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `2 keyway tokens revoked: the workflow run ${run} completed` },
      });
      expect(await active(...ofServerJob)).toEqual([false, false]);
      const refusedOnServer = await exchangeOf(server);
      expect(await broker.auditEvent(refusedOnServer.body['audit_event_id'] as string)).toMatchObject({ reason: 'ci_work_ended' });
    });

    /**
     * Restarts the test's broker with a policy granting GitHub tokens (one, or a map) to a delegated exchange of a job on the
     * delegated branch, its actor token a job's of the test's GitHub issuer or of `lookalike`, an operator's own OIDC issuer
     * that may put GitHub's run ids in its claims.
     */
    const delegatingBroker = async (lookalike: TestIssuer) => {
      await broker.close();
      broker = await startBroker(
        {},
        {
          'delegated-github.yaml': `version: 1
issuer: { kind: github, url: "${ci.url}" }
match: { repository_id: "734201", ref: refs/heads/delegated }
match_actor: { iss: ["${ci.url}", "${lookalike.url}"], repository_id: "734201" }
grant:
  audience: https://release.acme.dev
  github: { owner: ${OWNER}, owner_id: "1200934", repositories: [keyway-policies], permissions: { contents: read } }
  ttl: 10m
`,
          'lookalike.yaml': `version: 1\nissuer: { kind: oidc, url: "${lookalike.url}" }\nmatch: { repository_id: "734201" }\ngrant: { audience: https://lookalike.acme.dev }\n`,
        },
      );
    };
    /** A job's OIDC token, of the test's issuer unless told another: check run `checkRunId` of run `runId`, attempt 1 unless told another. */
    const jobToken = (runId: number, checkRunId: number, { of = ci, ref = 'refs/heads/release', attempt = 1 } = {}) =>
      of.sign(ciClaims(of.url, broker.issuer, { ...jobClaims(runId, checkRunId, attempt), ref }));
    /**
     * The SHA-256 of the GitHub token (with `map`, of the one-owner map's token) granted to the subject job on the delegated
     * branch, with the actor job's token as the actor_token (RFC 8693).
     */
    const delegatedGitHubToken = async (subject: { run: number; job: number }, actor: Promise<string>, { map = false } = {}) => {
      const asked: Record<string, string> = map
        ? { requested_token_type: GITHUB_TOKEN_MAP_TYPE, resource: `${new URL(github.apiUrl).origin}/${POLICY_REPO.owner}/${POLICY_REPO.name}` }
        : { requested_token_type: GITHUB_TOKEN_TYPE };
      const subjectToken = await jobToken(subject.run, subject.job, { ref: 'refs/heads/delegated' });
      const answer = await postToken(broker, exchangeForm(subjectToken, { actor_token: await actor, actor_token_type: ID_TOKEN, ...asked }));
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      const tokens = answer.body['github_tokens'] as Record<string, { access_token: string }> | undefined;
      return sha256Hex(tokens === undefined ? (answer.body['access_token'] as string) : tokens[OWNER]!.access_token);
    };

    it("revokes a job's keyway tokens, its own and one it is the actor of, when it completes after the live set stopped trusting its issuer; another issuer's grant under its ids stays", async () => {
      const [run, job] = [freshId(), freshId()];
      const lookalike = freshIssuer(issuerBase(), 'webhooks-lookalike');
      const match = `match: { repository_id: "734201", run_id: "${run}", check_run_id: "${job}" }`;
      await broker.close();
      broker = await startBroker(
        {},
        {
          'lookalike.yaml': `version: 1\nissuer: { kind: oidc, url: "${lookalike.url}" }\n${match}\ngrant: { audience: https://deploy.acme.dev }\n`,
          'lookalike-delegated.yaml': `version: 1\nissuer: { kind: oidc, url: "${lookalike.url}" }\n${match}\nmatch_actor: { iss: "${ci.url}", repository_id: "734201" }\ngrant: { audience: https://delegated.acme.dev }\n`,
        },
      );
      const ofGitHub = await keywayTokenFor(run, job);
      const lookalikeToken = async () => lookalike.sign(ciClaims(lookalike.url, broker.issuer, jobClaims(run, job)));
      const ofLookalike = await postToken(broker, exchangeForm(await lookalikeToken()));
      expect(ofLookalike.status).toBe(200);
      const delegated = await postToken(broker, exchangeForm(await lookalikeToken(), { actor_token: await jobToken(run, job), actor_token_type: ID_TOKEN }));
      expect(delegated.status, JSON.stringify(delegated.body)).toBe(200);
      const active = await introspection();

      // An incident: the live set switches to one that trusts neither CI issuer.
      const untrusting = sha(`untrust-${run}`);
      await putPolicies(untrusting, { 'ops/olga.yaml': operatorPolicy(people, HARNESS_ISSUER, 'olga@acme.dev', [HEALTH_READ_SCOPE, 'tokens:introspect']) });
      await moveMain(untrusting);
      expect(await deliver(pushOf(untrusting))).toMatchObject({ status: 200, body: { status: 'handled' } });
      await expectRefusal(broker, await postToken(broker, exchangeForm(await jobToken(run, job))), { error: 'invalid_request', reason: 'issuer_untrusted' });

      expect(await completedJob(run, job)).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `0 GitHub tokens and 2 keyway tokens revoked: the workflow job ${job} of run ${run} completed` },
      });
      const [githubJti, delegatedJti] = [ofGitHub, delegated.body['access_token'] as string].map((token) => decodeJwt(token).jti);
      expect(await active(ofGitHub, delegated.body['access_token'] as string, ofLookalike.body['access_token'] as string)).toEqual([false, false, true]);
      const records = (await broker.recentAuditEvents()).filter((event) => event.reason === 'token_revoked');
      for (const jti of [githubJti, delegatedJti])
        expect(records.filter((event) => event.detail === `revoked keyway token ${jti}: the workflow job ${job} of run ${run} completed`)).toHaveLength(1);
    });

    it("revokes a delegated GitHub token, one or a map, once when its actor's job completes, though the subject's job runs on; a sibling job's end leaves it", async () => {
      await delegatingBroker(freshIssuer(issuerBase(), 'webhooks-lookalike'));
      const before = (await github.calls()).length;
      const [subjectRun, actorRun] = [freshId(), freshId()];
      const subject = { run: subjectRun, job: subjectRun + 1 };
      const [actorJob, siblingJob] = [actorRun + 1, actorRun + 2];
      const one = await delegatedGitHubToken(subject, jobToken(actorRun, actorJob));
      const ofMap = await delegatedGitHubToken(subject, jobToken(actorRun, actorJob), { map: true });
      const bySibling = await delegatedGitHubToken(subject, jobToken(actorRun, siblingJob));
      const detail = (count: number, job: number, run: number) =>
        `${count} GitHub tokens and 0 keyway tokens revoked: the workflow job ${job} of run ${run} completed`;

      expect(await completedJob(actorRun, actorJob)).toMatchObject({ status: 200, body: { status: 'handled', detail: detail(2, actorJob, actorRun) } });
      await untilGitHubRevoked(one);
      await untilGitHubRevoked(ofMap);
      expect(await githubRevoked(bySibling)).toBe(false);
      // The subject's job ends too: the token its sibling-actor grant holds goes, those already revoked are not made due again.
      expect(await completedJob(subjectRun, subject.job)).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: detail(1, subject.job, subjectRun) },
      });
      await untilGitHubRevoked(bySibling);
      // One DELETE /installation/token per token, each while it was live: none asked twice.
      const revocations = (await github.calls()).slice(before).filter((call) => call.method === 'DELETE' && call.path.endsWith('/installation/token'));
      expect(revocations.map((call) => call.auth).sort()).toEqual([one, ofMap, bySibling].map((hash) => `token:${hash.slice(0, 12)}`).sort());
    });

    it("revokes a delegated GitHub token when its actor's run attempt completes; one whose actor is of the run's re-run stays", async () => {
      await delegatingBroker(freshIssuer(issuerBase(), 'webhooks-lookalike'));
      const [subjectRun, actorRun] = [freshId(), freshId()];
      const subject = { run: subjectRun, job: subjectRun + 1 };
      const ofAttempt = await delegatedGitHubToken(subject, jobToken(actorRun, actorRun + 1));
      const ofRerun = await delegatedGitHubToken(subject, jobToken(actorRun, actorRun + 2, { attempt: 2 }));
      const attemptCompleted = {
        action: 'completed',
        workflow_run: { id: actorRun, run_attempt: 1, run_started_at: new Date(Date.now() - 60_000).toISOString(), status: 'completed' },
        repository: { id: 734201, name: 'api', full_name: `${OWNER}/api`, owner: { login: OWNER } },
        installation: { id: 71 },
      };
      expect(await deliver({ event: 'workflow_run', payload: attemptCompleted })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `1 GitHub tokens and 0 keyway tokens revoked: the workflow run ${actorRun} completed` },
      });
      await untilGitHubRevoked(ofAttempt);
      expect(await githubRevoked(ofRerun)).toBe(false);
    });

    it("leaves a delegated GitHub token whose actor is another issuer's, naming the job's run and check run, to its TTL: those are not the ids GitHub gave", async () => {
      const lookalike = freshIssuer(issuerBase(), 'webhooks-lookalike');
      await delegatingBroker(lookalike);
      const [subjectRun, actorRun] = [freshId(), freshId()];
      const subject = { run: subjectRun, job: subjectRun + 1 };
      const actorJob = actorRun + 1;
      const byGitHub = await delegatedGitHubToken(subject, jobToken(actorRun, actorJob));
      const byLookalike = await delegatedGitHubToken(subject, jobToken(actorRun, actorJob, { of: lookalike }));
      expect(await completedJob(actorRun, actorJob)).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `1 GitHub tokens and 0 keyway tokens revoked: the workflow job ${actorJob} of run ${actorRun} completed` },
      });
      await untilGitHubRevoked(byGitHub);
      expect(await githubRevoked(byLookalike)).toBe(false);
    });

    // Node only: 10,000 exchanges take minutes in workerd. The index the job's end reads there, in every audit shard, is the
    // one the renamed repository's job below reaches on both runtimes.
    it.runIf(runtime === 'Node')(
      "revokes a job's first keyway token when it completes, though more than 10,000 were granted to its run after it",
      async () => {
        // Its run's jobs may ask as fast as the test can sign: the limits are no part of this.
        await broker.close();
        const unlimited = Object.fromEntries(
          ['GLOBAL', 'CLIENT', 'SUBJECT'].flatMap((limit) => [
            [`KEYWAY_RATE_LIMIT_${limit}_PER_MINUTE`, '100000000'],
            [`KEYWAY_RATE_LIMIT_${limit}_BURST`, '100000000'],
          ]),
        );
        broker = await startBroker(unlimited);
        const [run, job, sibling] = [freshId(), freshId(), freshId()];
        const first = await keywayTokenFor(run, job);
        // More than the 20 pages of 500 of its repository's grants a job's end used to read, newest first: the job's own
        // later grants, or (cheaper to revoke here) a busy sibling's, bury its first.
        const later = 10_001;
        for (let done = 0; done < later; done += 500) {
          const claims = Array.from({ length: Math.min(500, later - done) }, () => ciClaims(ci.url, broker.issuer, jobClaims(run, sibling)));
          const answers = await Promise.all((await ci.signMany(claims)).map(async (token) => (await postToken(broker, exchangeForm(token))).status));
          expect(answers.filter((status) => status !== 200)).toEqual([]);
        }
        const latest = await keywayTokenFor(run, job);
        expect(await completedJob(run, job)).toMatchObject({
          status: 200,
          body: { status: 'handled', detail: `0 GitHub tokens and 2 keyway tokens revoked: the workflow job ${job} of run ${run} completed` },
        });
        expect(await (await introspection())(first, latest)).toEqual([false, false]);
      },
      300_000,
    );

    it('revokes the keyway tokens of a job whose repository was renamed and transferred before it completed: the ids name the run, not the name', async () => {
      const [run, job] = [freshId(), freshId()];
      const token = await keywayTokenFor(run, job);
      const completed = workflowJob(run, 'completed', { id: job });
      const moved = { ...completed, repository: { id: 734201, name: 'api-v2', full_name: 'octo-org/api-v2', owner: { login: 'octo-org' } } };
      expect(await deliver({ event: 'workflow_job', payload: moved })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `0 GitHub tokens and 1 keyway tokens revoked: the workflow job ${job} of run ${run} completed` },
      });
      expect(await (await introspection())(token)).toEqual([false]);
    });

    it("is not kept from revoking a job's tokens by a copy of its signed body sent first under another event name (X-GitHub-Event is not signed)", async () => {
      const [run, job] = [freshId(), freshId()];
      const token = await keywayTokenFor(run, job);
      const completed = workflowJob(run, 'completed', { id: job });
      // A copy of the delivery's body and signature (a proxy's log; GitHub's list of recent deliveries, after a first delivery
      // that failed), sent as a ping before GitHub's redelivery: the HMAC holds, since it covers the body alone.
      expect(await deliver({ event: 'ping', payload: completed })).toMatchObject({ status: 200, body: { status: 'handled', detail: 'pong' } });
      expect(await deliver({ event: 'workflow_job', payload: completed })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `0 GitHub tokens and 1 keyway tokens revoked: the workflow job ${job} of run ${run} completed` },
      });
      expect(await (await introspection())(token)).toEqual([false]);
      // GitHub's own copy, sent again, is still a duplicate.
      expect(await deliver({ event: 'workflow_job', payload: completed })).toMatchObject({ status: 200, body: { status: 'duplicate' } });
    });

    it("still ends a job's GitHub tokens when the store of completions is down, and fails the delivery so it can be sent again", async () => {
      const [run, job] = [freshId(), freshId()];
      const githubToken = await githubTokenFor(run, job);
      await broker.setReplayGuardDown(true);
      try {
        expect((await completedJob(run, job)).status).toBe(503);
      } finally {
        await broker.setReplayGuardDown(false);
      }
      await untilGitHubRevoked(githubToken);
    });

    it("revokes only the finished job's tokens in a matrix run: the other job's GitHub and keyway tokens stay live until it completes", async () => {
      // Two jobs of one run in parallel (a matrix build), each with its own check run and its own tokens.
      const [run, jobA, jobB] = [freshId(), freshId(), freshId()];
      const githubA = await githubTokenFor(run, jobA);
      const githubB = await githubTokenFor(run, jobB);
      const [keywayA, keywayB] = [await keywayTokenFor(run, jobA), await keywayTokenFor(run, jobB)];
      const active = await introspection();

      expect(await completedJob(run, jobA, { name: 'test (node 20)' })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `1 GitHub tokens and 1 keyway tokens revoked: the workflow job ${jobA} of run ${run} completed` },
      });
      await untilGitHubRevoked(githubA);
      expect(await active(keywayA, keywayB)).toEqual([false, true]);
      // Job B is still running: its GitHub API calls must keep working.
      expect(await githubRevoked(githubB)).toBe(false);

      expect(await completedJob(run, jobB, { name: 'test (node 22)' })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `1 GitHub tokens and 1 keyway tokens revoked: the workflow job ${jobB} of run ${run} completed` },
      });
      await untilGitHubRevoked(githubB);
      expect(await active(keywayB)).toEqual([false]);
    });

    it('still revokes a token without check_run_id (older GHES) when any job of its run completes', async () => {
      const [run, job, finishing] = [freshId(), freshId(), freshId()];
      const [githubOld, keywayOld] = [await githubTokenFor(run), await keywayTokenFor(run)];
      const [githubJob, keywayJob] = [await githubTokenFor(run, job), await keywayTokenFor(run, job)];
      const active = await introspection();

      // Another job of the run completes: the tokens without check_run_id cannot be told apart from its own, so they go.
      expect(await completedJob(run, finishing)).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `1 GitHub tokens and 1 keyway tokens revoked: the workflow job ${finishing} of run ${run} completed` },
      });
      await untilGitHubRevoked(githubOld);
      expect(await active(keywayOld, keywayJob)).toEqual([false, true]);
      expect(await githubRevoked(githubJob)).toBe(false);
    });

    it('ends only the tokens without check_run_id for a job whose payload has no usable check_run_url; a GHES check run URL is read', async () => {
      const [run, job] = [freshId(), freshId()];
      const [githubOld, keywayOld] = [await githubTokenFor(run), await keywayTokenFor(run)];
      const [githubJob, keywayJob] = [await githubTokenFor(run, job), await keywayTokenFor(run, job)];
      const active = await introspection();
      const unmatched = ' (no usable check_run_url: only tokens without check_run_id)';

      // This job may be the one that holds githubJob and keywayJob, but nothing says so: they are left to their TTL.
      const [noUrl, notACheckRun] = [freshId(), freshId()];
      expect(await completedJob(run, noUrl, { checkRun: null })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `1 GitHub tokens and 1 keyway tokens revoked: the workflow job ${noUrl} of run ${run} completed${unmatched}` },
      });
      await untilGitHubRevoked(githubOld);
      expect(await active(keywayOld, keywayJob)).toEqual([false, true]);
      for (const checkRun of [
        `${checkRunUrl(job)}x`,
        `${checkRunUrl(job)}/annotations`,
        `https://api.github.com/repos/${OWNER}/api/check-suites/${job}`,
        // The check run's path in the query, not the URL's path; a check run id with a leading zero.
        `https://api.github.com/repos/${OWNER}/api/check-suites/${job}?next=/check-runs/${job}`,
        `https://api.github.com/repos/${OWNER}/api/check-runs/0${job}`,
        'not a url',
      ]) {
        expect(await completedJob(run, notACheckRun, { checkRun })).toMatchObject({
          status: 200,
          body: { detail: `0 GitHub tokens and 0 keyway tokens revoked: the workflow job ${notACheckRun} of run ${run} completed${unmatched}` },
        });
      }
      expect(await githubRevoked(githubJob)).toBe(false);
      expect(await active(keywayJob)).toEqual([true]);

      // Its own completion, from GitHub Enterprise Server: the check run is read from the path under its API base.
      expect(await completedJob(run, job, { checkRun: checkRunUrl(job, 'https://github.acme.dev/api/v3') })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `1 GitHub tokens and 1 keyway tokens revoked: the workflow job ${job} of run ${run} completed` },
      });
      await untilGitHubRevoked(githubJob);
      expect(await active(keywayJob)).toEqual([false]);
    });

    it("refuses a job's token exchanged after its completion was told, and after its run's attempt's, while other jobs and a re-run's still exchange", async () => {
      const [run, late, sibling, rerun] = [freshId(), freshId(), freshId(), freshId()];
      expect(await completedJob(run, late)).toMatchObject({ status: 200, body: { status: 'handled' } });
      // The job's OIDC token is still young enough to verify, but the job is over: no token of any kind for it.
      for (const requested of [{}, { requested_token_type: GITHUB_TOKEN_TYPE }] as Record<string, string>[]) {
        const refused = await postToken(broker, exchangeForm(await ci.sign(ciClaims(ci.url, broker.issuer, jobClaims(run, late))), requested));
        expect(refused).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
        expect(refused.body).not.toHaveProperty('access_token');
        expect(await broker.auditEvent(refused.body['audit_event_id'] as string)).toMatchObject({
          decision: 'denied',
          reason: 'ci_work_ended',
          detail: `the job (check run ${late}) of run ${run} attempt 1 completed (GitHub's webhook said so) before this request`,
        });
      }
      // Its sibling, still running, and a token without check_run_id (older GHES: which job is not known) still exchange.
      await keywayTokenFor(run, sibling);
      await keywayTokenFor(run);
      // The attempt's end: none of its jobs' tokens exchanges any more; a re-run's (attempt 2) does.
      expect(await completedRun(run)).toMatchObject({ status: 200, body: { status: 'handled' } });
      for (const claims of [jobClaims(run, sibling), jobClaims(run, undefined)]) {
        const refused = await postToken(broker, exchangeForm(await ci.sign(ciClaims(ci.url, broker.issuer, claims))));
        expect(refused.status).toBe(400);
        expect(await broker.auditEvent(refused.body['audit_event_id'] as string)).toMatchObject({ reason: 'ci_work_ended' });
      }
      await keywayTokenFor(run, rerun, 2);
      // Another run of the repository, and the same ids in another repository (which no policy here grants), are not touched.
      await keywayTokenFor(run + 1, late);
      const elsewhere = await postToken(
        broker,
        exchangeForm(await ci.sign(ciClaims(ci.url, broker.issuer, { ...jobClaims(run, late), repository_id: '734202' }))),
      );
      expect(await broker.auditEvent(elsewhere.body['audit_event_id'] as string)).toMatchObject({ reason: 'no_policy_matched' });
    });

    it('issues no token while whether the job completed cannot be read: 503, audited, no token', async () => {
      const token = await ci.sign(ciClaims(ci.url, broker.issuer, jobClaims(freshId(), freshId())));
      await broker.setReplayGuardDown(true);
      try {
        const answer = await postToken(broker, exchangeForm(token));
        expect(answer).toMatchObject({ status: 503, body: { error: 'temporarily_unavailable' } });
        expect(answer.body).not.toHaveProperty('access_token');
        expect(await broker.auditEvent(answer.body['audit_event_id'] as string)).toMatchObject({
          decision: 'error',
          reason: 'replay_guard_unavailable',
          detail: expect.stringMatching(/^whether the CI job completed could not be checked: /),
        });
      } finally {
        await broker.setReplayGuardDown(false);
      }
    });

    it("revokes every token of a run's attempt when it completes, one whose job's completion was never told among them; a re-run's stay", async () => {
      const [run, untold, rerun] = [freshId(), freshId(), freshId()];
      const [githubUntold, keywayUntold] = [await githubTokenFor(run, untold), await keywayTokenFor(run, untold)];
      const [githubOld, keywayOld] = [await githubTokenFor(run), await keywayTokenFor(run)];
      const [githubOther, keywayOther] = [await githubTokenFor(run + 1, untold), await keywayTokenFor(run + 1, untold)];
      // A re-run of the run already under way (attempt 2) when attempt 1's completion is delivered, late.
      const [githubRerun, keywayRerun] = [await githubTokenFor(run, rerun, 2), await keywayTokenFor(run, rerun, 2)];
      const active = await introspection();
      expect(await active(keywayUntold, keywayOld)).toEqual([true, true]);
      const workflowRun = (action: string, attempt = 1) => ({
        action,
        workflow_run: {
          id: run,
          run_attempt: attempt,
          run_started_at: new Date(Date.now() - 60_000).toISOString(),
          status: action === 'completed' ? 'completed' : 'in_progress',
        },
        repository: { id: 734201, name: 'api', full_name: `${OWNER}/api`, owner: { login: OWNER } },
        installation: { id: 71 },
      });
      expect((await deliver({ event: 'workflow_run', payload: workflowRun('in_progress') })).body['status']).toBe('ignored');
      expect(await deliver({ event: 'workflow_run', payload: workflowRun('completed') })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `2 GitHub tokens and 2 keyway tokens revoked: the workflow run ${run} completed` },
      });
      await untilGitHubRevoked(githubOld);
      await untilGitHubRevoked(githubUntold);
      expect(await active(keywayOld, keywayUntold, keywayOther, keywayRerun)).toEqual([false, false, true, true]);
      expect([await githubRevoked(githubOther), await githubRevoked(githubRerun)]).toEqual([false, false]);
      const records = (await broker.recentAuditEvents()).filter((event) => event.detail?.endsWith(`: the workflow run ${run} completed`));
      expect(records.map((event) => event.reason)).toEqual(['token_revoked', 'token_revoked']);
      // The re-run's own completion ends its tokens.
      expect(await deliver({ event: 'workflow_run', payload: workflowRun('completed', 2) })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `1 GitHub tokens and 1 keyway tokens revoked: the workflow run ${run} completed` },
      });
      await untilGitHubRevoked(githubRerun);
      expect(await active(keywayRerun)).toEqual([false]);
    });

    it('records and revokes each keyway token once when its job and its run complete in deliveries that arrive at once', async () => {
      for (let round = 0; round < 3; round += 1) {
        const [run, job, sibling] = [freshId(), freshId(), freshId()];
        const tokens = [await keywayTokenFor(run, job), await keywayTokenFor(run, job), await keywayTokenFor(run, sibling)];
        const answers = await Promise.all([completedJob(run, job), completedRun(run)]);
        expect(answers.map((answer) => [answer.status, answer.body['status']])).toEqual([
          [200, 'handled'],
          [200, 'handled'],
        ]);
        // Between them, each token revoked once: the job's two by either delivery, its sibling's by the run's.
        const counted = answers.map((answer) => Number(/ and (\d+) keyway tokens revoked/.exec(String(answer.body['detail']))?.[1]));
        expect(counted.reduce((sum, count) => sum + count, 0)).toBe(3);
        const events = await broker.recentAuditEvents();
        const recordsOf = (token: string) =>
          events.filter((event) => event.reason === 'token_revoked' && event.detail?.startsWith(`revoked keyway token ${String(decodeJwt(token).jti)}: `))
            .length;
        expect(tokens.map(recordsOf)).toEqual([1, 1, 1]);
        expect(await (await introspection())(...tokens)).toEqual([false, false, false]);
      }
    });

    it("revokes a keyway token at its run's end when its job's delivery took it and failed, as a redelivery of the job's does", async () => {
      // The audit log refuses every append (in every shard, on Workers: the name says audit_events): the job's delivery takes
      // its tokens, then cannot record their revocation.
      const auditDown = async (down: boolean) =>
        broker.tamper(
          down
            ? "CREATE TRIGGER audit_events_down BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'the audit log is down'); END"
            : 'DROP TRIGGER audit_events_down',
          [],
        );
      const active = await introspection();
      const [run, job] = [freshId(), freshId()];
      const token = await keywayTokenFor(run, job);
      await auditDown(true);
      try {
        expect((await completedJob(run, job)).status).toBe(503);
      } finally {
        await auditDown(false);
      }
      expect(await active(token)).toEqual([true]);
      // GitHub sends a failed delivery again only when asked: the run's end, within the minute, is what ends the token.
      expect(await completedRun(run)).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `0 GitHub tokens and 1 keyway tokens revoked: the workflow run ${run} completed` },
      });
      expect(await active(token)).toEqual([false]);

      // The failed job's delivery, sent again at once, is not answered as handled with its token left live.
      const [later, laterJob] = [freshId(), freshId()];
      const laterToken = await keywayTokenFor(later, laterJob);
      await auditDown(true);
      try {
        expect((await completedJob(later, laterJob)).status).toBe(503);
      } finally {
        await auditDown(false);
      }
      expect(await completedJob(later, laterJob)).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `0 GitHub tokens and 1 keyway tokens revoked: the workflow job ${laterJob} of run ${later} completed` },
      });
      expect(await active(laterToken)).toEqual([false]);
      const events = await broker.recentAuditEvents();
      const recordsOf = (jti: unknown) =>
        events.filter((event) => event.reason === 'token_revoked' && event.detail?.startsWith(`revoked keyway token ${String(jti)}: `));
      expect([recordsOf(decodeJwt(token).jti).length, recordsOf(decodeJwt(laterToken).jti).length]).toEqual([1, 1]);
    });

    // Node only: on Workers the revocations are in shards of their own, which tamper does not reach.
    it.runIf(runtime === 'Node')(
      "says a keyway token it revoked under the record of its run's delivery, which took it, recorded it and failed to revoke it",
      async () => {
        // Every write of a revocation (held until the token's exp, minutes away) fails; a reservation (held for a minute) is made.
        const revocationsDown = async (down: boolean) =>
          broker.tamper(
            down
              ? "CREATE TRIGGER revocations_down BEFORE INSERT ON replay_claims WHEN NEW.expires_at > CAST(strftime('%s', 'now') AS INTEGER) + 300 BEGIN SELECT RAISE(ABORT, 'the revocation list is down'); END"
              : 'DROP TRIGGER revocations_down',
            [],
          );
        const [run, job] = [freshId(), freshId()];
        const token = await keywayTokenFor(run, job);
        await revocationsDown(true);
        try {
          expect((await completedRun(run)).status).toBe(503);
        } finally {
          await revocationsDown(false);
        }
        const recordsOf = async (jti: unknown) =>
          (await broker.recentAuditEvents()).filter(
            (event) => event.reason === 'token_revoked' && event.detail?.startsWith(`revoked keyway token ${String(jti)}: `),
          );
        const [taken] = await recordsOf(decodeJwt(token).jti);
        expect(taken?.detail).toMatch(new RegExp(`: the workflow run ${run} completed$`));
        expect(await (await introspection())(token)).toEqual([true]);
        // The job's delivery, within the run's delivery's lease: it revokes the token under that record, and writes none of its own.
        expect(await completedJob(run, job)).toMatchObject({
          status: 200,
          body: {
            status: 'handled',
            detail: `0 GitHub tokens and 1 keyway tokens (1 under another delivery's record) revoked: the workflow job ${job} of run ${run} completed`,
          },
        });
        expect(await (await introspection())(token)).toEqual([false]);
        expect((await recordsOf(decodeJwt(token).jti)).map((event) => event.id)).toEqual([taken?.id]);
      },
    );

    it('counts each GitHub token once when its job and its run complete in deliveries that arrive at once, however their clocks disagree', async () => {
      // Each reading of the broker's clock a millisecond before the one before, while the deliveries are handled: whichever
      // makes the tokens due second does so at a time before the first's, as two isolates' (or processes') clocks may.
      let backwards: number | undefined;
      let readings = 0;
      await broker.close();
      broker = await startBroker({}, {}, undefined, () => (backwards === undefined ? Date.now() : backwards - ++readings));
      const [run, job, sibling] = [freshId(), freshId(), freshId()];
      const tokens = [await githubTokenFor(run, job), await githubTokenFor(run, job), await githubTokenFor(run, sibling)];
      backwards = Date.now();
      const answers = await Promise.all([completedJob(run, job), completedRun(run)]);
      backwards = undefined;
      expect(answers.map((answer) => [answer.status, answer.body['status']])).toEqual([
        [200, 'handled'],
        [200, 'handled'],
      ]);
      // Between them, each token counted once: the job's two by either delivery, its sibling's by the run's.
      const counted = answers.map((answer) => Number(/^(\d+) GitHub tokens /.exec(String(answer.body['detail']))?.[1] ?? NaN));
      expect(counted.reduce((sum, count) => sum + count, 0)).toBe(3);
      for (const token of tokens) await untilGitHubRevoked(token);
    });

    it('ends every token of a run whose completion names no attempt (a payload without run_attempt), whichever attempt the token is of', async () => {
      const [run, job] = [freshId(), freshId()];
      const [githubToken, keywayToken] = [await githubTokenFor(run, job, 2), await keywayTokenFor(run, job, 2)];
      const completed = {
        action: 'completed',
        workflow_run: { id: run, run_started_at: new Date(Date.now() - 60_000).toISOString(), status: 'completed' },
        repository: { id: 734201, name: 'api', full_name: `${OWNER}/api`, owner: { login: OWNER } },
        installation: { id: 71 },
      };
      expect(await deliver({ event: 'workflow_run', payload: completed })).toMatchObject({
        status: 200,
        body: { status: 'handled', detail: `1 GitHub tokens and 1 keyway tokens revoked: the workflow run ${run} completed` },
      });
      await untilGitHubRevoked(githubToken);
      expect(await (await introspection())(keywayToken)).toEqual([false]);
    });

    it("leaves a re-run's tokens without check_run_id to its own attempt: a late job completion of the attempt before does not end them", async () => {
      const [run, earlier, own] = [freshId(), freshId(), freshId()];
      const [githubRerun, keywayRerun] = [await githubTokenFor(run, undefined, 2), await keywayTokenFor(run, undefined, 2)];
      const active = await introspection();
      expect(await completedJob(run, earlier, { attempt: 1 })).toMatchObject({
        status: 200,
        body: { detail: `0 GitHub tokens and 0 keyway tokens revoked: the workflow job ${earlier} of run ${run} completed` },
      });
      expect([await githubRevoked(githubRerun), ...(await active(keywayRerun))]).toEqual([false, true]);
      expect(await completedJob(run, own, { attempt: 2 })).toMatchObject({
        status: 200,
        body: { detail: `1 GitHub tokens and 1 keyway tokens revoked: the workflow job ${own} of run ${run} completed` },
      });
      await untilGitHubRevoked(githubRerun);
      expect(await active(keywayRerun)).toEqual([false]);
    });

    it('treats a check_run_id that names no check run (empty, padded) as none: any job of its run ends the token', async () => {
      const [run, finishing] = [freshId(), freshId()];
      const padded = [await githubTokenFor(run, `0${finishing}`), await githubTokenFor(run, '')];
      const [keywayPadded, keywayEmpty, keywayTrailing] = [
        await keywayTokenFor(run, `0${finishing}`),
        await keywayTokenFor(run, ' '),
        await keywayTokenFor(run, `${finishing} `),
      ];
      const active = await introspection();
      expect(await completedJob(run, freshId())).toMatchObject({
        status: 200,
        body: { detail: expect.stringMatching(/^2 GitHub tokens and 3 keyway tokens revoked/) },
      });
      for (const hash of padded) await untilGitHubRevoked(hash);
      expect(await active(keywayPadded, keywayEmpty, keywayTrailing)).toEqual([false, false, false]);
    });

    it('switches the live set on a push to the default branch, and keeps it when the pushed set is broken', async () => {
      // Before the push replaces the set that has the operator's policy: the token outlives it.
      operator = await auditorToken(broker, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
      await expectRefusal(broker, await exchange({ environment: 'qa' }), NO_POLICY);
      const good = sha('push-good');
      await putPolicies(good, { 'deploy.yaml': deployPolicy(ci.url, 'qa'), 'guard.yaml': guardPolicy(ci.url) });
      await moveMain(good);
      const pushed = await deliver(pushOf(good));
      expect(pushed).toMatchObject({ status: 200, body: { status: 'handled' } });
      expect((await exchange({ environment: 'qa' })).status).toBe(200);
      await expectRefusal(broker, await exchange({ environment: 'production' }), NO_POLICY);
      expect(await health()).toMatchObject({ status: 'ok', policies: 2, policy_reload: { ok: true, source: `github ${OWNER}/${POLICY_REPO.name}@${good}` } });
      expect(await publicHealth()).toEqual({ status: 'ok' });

      // A push to another branch changes nothing.
      const other = sha('push-other');
      await putPolicies(other, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      expect((await deliver({ event: 'push', payload: payloads.push(POLICY_REPO, { ref: 'refs/heads/feature', after: other }) })).body['status']).toBe(
        'ignored',
      );
      expect((await exchange({ environment: 'qa' })).status).toBe(200);

      // A broken set is refused: the good one keeps serving, /healthz says why.
      const broken = sha('push-broken');
      await putPolicies(broken, { 'deploy.yaml': brokenPolicy(ci.url), 'guard.yaml': guardPolicy(ci.url) });
      await moveMain(broken);
      expect(await deliver(pushOf(broken))).toMatchObject({ status: 200 });
      expect((await exchange({ environment: 'qa' })).status).toBe(200);
      const status = await health();
      expect(status).toMatchObject({ status: 'degraded', policies: 2, policy_reload: { ok: false, source: `github ${OWNER}/${POLICY_REPO.name}@${broken}` } });
      expect(await publicHealth()).toEqual({ status: 'degraded' });
      expect(JSON.stringify((status['policy_reload'] as { problems: string[] }).problems)).toContain('deploy.yaml:9:3 unknown field grant.lifetime');

      // …and the next review says so.
      const base = sha('after-broken-base');
      const head = sha('after-broken-head');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'qa') });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'qa'), 'guard.yaml': guardPolicy(ci.url) });
      const before = (await checkRuns()).length;
      await deliver({ event: 'pull_request', payload: payloads.pullRequest(POLICY_REPO, { number: 10, baseSha: base, headSha: head }) });
      const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
      expect(run.output.summary).toContain('**The live policy set did not switch**');
      expect(run.output.summary).toContain(broken);

      // An old push handled again (one no longer remembered, here told apart by its `before`) cannot bring an old set back:
      // the branch head is read when the push is handled.
      const old = await deliver({
        event: 'push',
        payload: { ...payloads.push(POLICY_REPO, { ref: 'refs/heads/main', after: good }), before: sha('push-old-before') },
      });
      expect(old).toMatchObject({ status: 200, body: { status: 'handled' } });
      expect((await health())['policy_reload']).toMatchObject({ ok: false, source: `github ${OWNER}/${POLICY_REPO.name}@${broken}` });
    });

    it('keeps the set serving, and says why, when a pushed policy file is not text keyway reads (not UTF-8, too large, a submodule): not a delivery to send again', async () => {
      operator = await auditorToken(broker, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
      const unreadable = [
        { label: 'latin1', file: { text: '', base64: btoa('description: caf\xe9\n') }, problem: 'is not UTF-8 text' },
        {
          label: 'large',
          // In base64, more than the GitHub client reads of one answer: it was taken for GitHub failing.
          file: { text: `# ${'x'.repeat(2 * POLICY_FETCH_LIMITS.fileBytes)}\n` },
          problem: `is larger than ${POLICY_FETCH_LIMITS.fileBytes} bytes`,
        },
        // GitHub lists a submodule as a file of size 0; read, it is a submodule, which was taken for GitHub answering wrong.
        { label: 'submodule', file: { text: '', submodule: 'https://github.com/acme/notes.git' }, problem: 'is a submodule, not a file' },
      ];
      for (const { label, file, problem } of unreadable) {
        // The push withdraws production's grant, beside a file keyway cannot read: the set before it serves on, not unseen.
        const head = sha(`unreadable ${label}`);
        await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'qa'), 'guard.yaml': guardPolicy(ci.url) });
        await github.putFile({ owner: OWNER, repo: POLICY_REPO.name, path: `${POLICY_DIR}/notes.yaml`, ref: head, ...file });
        await moveMain(head);
        expect(await deliver(pushOf(head))).toMatchObject({ status: 200, body: { status: 'handled' } });
        expect((await exchange({ environment: 'production' })).status).toBe(200);
        const status = await health();
        expect(status).toMatchObject({ status: 'degraded', policy_reload: { ok: false, source: `github ${OWNER}/${POLICY_REPO.name}@${head}` } });
        expect(JSON.stringify(status['policy_reload'])).toContain(`${POLICY_DIR}/notes.yaml at ${head} ${problem}`);
      }
    });

    it('keeps the set serving, and says why, when a pushed policy directory lists more than keyway reads of one answer: not a delivery to send again', async () => {
      operator = await auditorToken(broker, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
      const head = sha('crowded');
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'qa'), 'guard.yaml': guardPolicy(ci.url) });
      // Some 2,500 entries: GitHub's listing of them is over the 256 KiB the GitHub client reads of one answer.
      const names = Array.from({ length: 2500 }, (_, index) => `notes-${String(index).padStart(5, '0')}-${'n'.repeat(40)}.txt`);
      for (let start = 0; start < names.length; start += 100) {
        await Promise.all(names.slice(start, start + 100).map((name) => putPolicies(head, { [name]: '' })));
      }
      await moveMain(head);
      expect(await deliver(pushOf(head))).toMatchObject({ status: 200, body: { status: 'handled' } });
      expect((await exchange({ environment: 'production' })).status).toBe(200);
      const status = await health();
      expect(status).toMatchObject({ status: 'degraded', policy_reload: { ok: false, source: `github ${OWNER}/${POLICY_REPO.name}@${head}` } });
      expect(JSON.stringify(status['policy_reload'])).toContain(`${POLICY_DIR} at ${head} is larger than keyway reads`);
    });

    it("does not switch to a push's set when the branch moved while its files were read: it reads the new head, so a later push's set, adopted first, stays", async () => {
      operator = await auditorToken(broker, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
      const slow = sha('race-slow');
      await putPolicies(slow, { 'deploy.yaml': deployPolicy(ci.url, 'qa'), 'guard.yaml': guardPolicy(ci.url) });
      await moveMain(slow);
      // The first push's handler reads the head, then GitHub is slow to list its files…
      const reads = await github.holdReads(slow);
      let first;
      try {
        first = deliver(pushOf(slow));
        await reads.held();
        // …while its revert is pushed, and that push's delivery is handled first.
        const revert = sha('race-revert');
        await putPolicies(revert, { 'deploy.yaml': deployPolicy(ci.url, 'uat'), 'guard.yaml': guardPolicy(ci.url) });
        await moveMain(revert);
        const later = await deliver(pushOf(revert));
        expect(later).toMatchObject({ status: 200, body: { status: 'handled', detail: `live set switched to ${revert} (2 policies)` } });
      } finally {
        await reads.release();
      }
      // The slow delivery found the branch moved, and took the new head's set, not its own commit's.
      expect(await first).toMatchObject({ status: 200, body: { status: 'handled', detail: `live set switched to ${sha('race-revert')} (2 policies)` } });
      expect((await exchange({ environment: 'uat' })).status).toBe(200);
      await expectRefusal(broker, await exchange({ environment: 'qa' }), NO_POLICY);
      expect(await health()).toMatchObject({ status: 'ok', policy_reload: { ok: true, source: `github ${OWNER}/${POLICY_REPO.name}@${sha('race-revert')}` } });
    });

    it("switches to the branch's new head when it moved while a push's files were read, though that later push is never delivered", async () => {
      operator = await auditorToken(broker, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
      const granting = sha('moved-qa');
      await putPolicies(granting, { 'deploy.yaml': deployPolicy(ci.url, 'qa'), 'guard.yaml': guardPolicy(ci.url) });
      await moveMain(granting);
      expect(await deliver(pushOf(granting))).toMatchObject({
        body: { status: 'handled' },
      });
      expect((await exchange({ environment: 'qa' })).status).toBe(200);
      // The grant is reverted; while the revert's files are read, another commit lands, whose delivery fails or never comes.
      const [revert, unrelated] = [sha('moved-revert'), sha('moved-unrelated')];
      await putPolicies(revert, { 'deploy.yaml': deployPolicy(ci.url, 'uat'), 'guard.yaml': guardPolicy(ci.url) });
      await putPolicies(unrelated, { 'deploy.yaml': deployPolicy(ci.url, 'uat'), 'guard.yaml': guardPolicy(ci.url) });
      await moveMain(revert);
      const reads = await github.holdReads(revert);
      let delivered;
      try {
        delivered = deliver(pushOf(revert));
        await reads.held();
        await moveMain(unrelated);
      } finally {
        await reads.release();
      }
      expect(await delivered).toMatchObject({ status: 200, body: { status: 'handled', detail: `live set switched to ${unrelated} (2 policies)` } });
      await expectRefusal(broker, await exchange({ environment: 'qa' }), NO_POLICY);
      expect((await exchange({ environment: 'uat' })).status).toBe(200);
    });

    it('reads a pushed set of many policy files a few at a time, not one by one, and adopts them in full', async () => {
      operator = await auditorToken(broker, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
      const many = sha('many-files');
      const environments = Array.from({ length: 24 }, (_, index) => `env-${String(index).padStart(2, '0')}`);
      await putPolicies(many, {
        'guard.yaml': guardPolicy(ci.url),
        ...Object.fromEntries(environments.map((environment) => [`deploy-${environment}.yaml`, deployPolicy(ci.url, environment)])),
      });
      await moveMain(many);
      const reads = await github.holdReads(many, '.yaml');
      let delivered;
      let waiting;
      try {
        delivered = deliver(pushOf(many));
        // One by one, a single file read would wait here; at once without bound, all 25.
        await reads.held(2);
        await new Promise((resolve) => setTimeout(resolve, 300));
        waiting = await reads.waiting();
      } finally {
        await reads.release();
      }
      expect(waiting).toBeGreaterThanOrEqual(2);
      expect(waiting).toBeLessThanOrEqual(POLICY_FETCH_CONCURRENCY);
      expect(await delivered).toMatchObject({ status: 200, body: { status: 'handled', detail: `live set switched to ${many} (25 policies)` } });
      expect((await exchange({ environment: 'env-23' })).status).toBe(200);
      await expectRefusal(broker, await exchange({ environment: 'env-24' }), NO_POLICY);
    });

    it('follows the policy repository by its id: a push or pull request from another repository under its name changes nothing', async () => {
      operator = await auditorToken(broker, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
      const healthBefore = await health();
      // The repository deleted and re-created under its name (by whoever got the name): another id, the same owner/name.
      const impostor = { ...POLICY_REPO, id: 9999 };
      const planted = sha('impostor-push');
      await putPolicies(planted, { 'deploy.yaml': deployPolicy(ci.url, 'qa'), 'guard.yaml': guardPolicy(ci.url) });
      await moveMain(planted);
      const [base, head] = [sha('impostor-base'), sha('impostor-head')];
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'staging') });
      const [callsBefore, runsBefore] = [(await github.calls()).length, (await checkRuns()).length];

      const pushed = await deliver({ event: 'push', payload: payloads.push(impostor, { ref: 'refs/heads/main', after: planted }) });
      const reviewed = await deliver({ event: 'pull_request', payload: payloads.pullRequest(impostor, { number: 40, baseSha: base, headSha: head }) });
      for (const refused of [pushed, reviewed]) {
        expect(refused).toMatchObject({ status: 200, body: { status: 'ignored' } });
        expect(refused.body['detail']).toMatch(/^refused: repository acme\/keyway-policies has id 9999, but the policy repository's is 4242/);
      }
      await expectRefusal(broker, await exchange({ environment: 'qa' }), NO_POLICY);
      expect(await health()).toEqual(healthBefore);
      expect((await github.calls()).length).toBe(callsBefore);
      expect((await checkRuns()).length).toBe(runsBefore);

      // A push GitHub sent for the right id, handled once the name leads to a re-created repository: its contents are never read.
      const contentReads = async () => (await github.calls()).filter((call) => call.path.includes('/contents/')).length;
      const readsBefore = await contentReads();
      await installApp(impostor.id);
      try {
        const late = await deliver(pushOf(planted));
        expect(late).toMatchObject({ status: 503, body: { error: 'temporarily_unavailable' } });
        expect(await contentReads()).toBe(readsBefore);
        expect((await github.calls()).filter((call) => call.path.endsWith('/access_tokens')).at(-1)).toMatchObject({
          body: { repository_ids: [POLICY_REPO_ID] },
          status: 422,
        });
      } finally {
        await installApp(POLICY_REPO_ID);
      }
      await expectRefusal(broker, await exchange({ environment: 'qa' }), NO_POLICY);
      expect(await health()).toEqual(healthBefore);
    });

    it("refuses, and reports as degraded, a push or pull request of the policy repository under another name (renamed or transferred): never ignored as another repository's", async () => {
      operator = await auditorToken(broker, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
      // The policy repository (its id) renamed, and transferred: a push that withdraws a grant must not be dropped unseen.
      const withdrawn = sha('moved-push');
      await putPolicies(withdrawn, { 'deploy.yaml': deployPolicy(ci.url, 'qa'), 'guard.yaml': guardPolicy(ci.url) });
      const [base, head] = [sha('moved-base'), sha('moved-head')];
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'staging') });
      for (const moved of [
        { owner: OWNER, name: 'keyway-policies-renamed', id: POLICY_REPO_ID },
        { owner: 'other-org', name: POLICY_REPO.name, id: POLICY_REPO_ID },
      ]) {
        const [callsBefore, runsBefore] = [(await github.calls()).length, (await checkRuns()).length];
        const pushed = await deliver({ event: 'push', payload: payloads.push(moved, { ref: 'refs/heads/main', after: withdrawn }) });
        const reviewed = await deliver({ event: 'pull_request', payload: payloads.pullRequest(moved, { number: 41, baseSha: base, headSha: head }) });
        for (const refused of [pushed, reviewed]) {
          expect(refused).toMatchObject({ status: 200, body: { status: 'ignored' } });
          expect(refused.body['detail']).toBe(
            `refused: the policy repository (id ${POLICY_REPO_ID}) is now named ${moved.owner}/${moved.name}, not ${OWNER}/${POLICY_REPO.name} ` +
              '(KEYWAY_GITHUB_POLICY_REPOSITORY): renamed or transferred, it is not followed until the setting names it',
          );
        }
        expect((await github.calls()).length).toBe(callsBefore);
        expect((await checkRuns()).length).toBe(runsBefore);
        expect((await exchange({ environment: 'production' })).status).toBe(200);
        const status = await health();
        expect(status).toMatchObject({
          status: 'degraded',
          policy_reload: {
            ok: false,
            source: `github ${moved.owner}/${moved.name} refs/heads/main`,
            problems: [expect.stringContaining(`is now named ${moved.owner}/${moved.name}`)],
          },
        });
        expect(await publicHealth()).toEqual({ status: 'degraded' });
      }
    });

    it("verifies another App's deliveries with that App's own secret, and takes only installation and job events from it", async () => {
      const fromSecond = { secret: SECOND_SECRET, headers: { 'x-github-hook-installation-target-id': second.appId } };
      expect(await deliver({ event: 'installation', payload: payloads.installation(OWNER, 'added'), ...fromSecond })).toMatchObject({
        status: 200,
        body: { status: 'handled' },
      });
      // Its secret is no good for the primary App's deliveries, nor the primary's for its deliveries.
      expect(await deliver({ event: 'ping', payload: { zen: 'second alone', hook_id: 2 }, secret: SECOND_SECRET })).toMatchObject({ status: 401 });
      expect(await deliver({ event: 'ping', payload: { zen: 'primary as second', hook_id: 3 }, headers: fromSecond.headers })).toMatchObject({ status: 401 });
      // A pull_request from it is the primary App's to review: no check run from this copy.
      const checkRuns = async () => (await github.calls()).filter((call) => call.path.endsWith('/check-runs')).length;
      const before = await checkRuns();
      const pullRequest = payloads.pullRequest(POLICY_REPO, { number: 99, baseSha: sha('second-base'), headSha: sha('second-head') });
      expect(await deliver({ event: 'pull_request', payload: pullRequest, ...fromSecond })).toMatchObject({ status: 202, body: { status: 'ignored' } });
      expect(await checkRuns()).toBe(before);
    });

    it('refreshes the installation cache on installation events', async () => {
      const lookups = async () => (await github.calls()).filter((call) => call.path === `/orgs/${OWNER}/installation`).length;
      const review = async (n: number) => {
        const base = sha(`install-base-${n}`);
        const head = sha(`install-head-${n}`);
        await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'qa') });
        await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, `qa${n}`) });
        await deliver({ event: 'pull_request', payload: payloads.pullRequest(POLICY_REPO, { number: 20 + n, baseSha: base, headSha: head }) });
      };
      await review(1);
      const cached = await lookups();
      await review(2);
      expect(await lookups()).toBe(cached);
      expect(
        await deliver({
          event: 'installation_repositories',
          payload: { ...payloads.installation(OWNER, 'added'), repositories_added: [], repositories_removed: [] },
        }),
      ).toMatchObject({ status: 200, body: { status: 'handled' } });
      await review(3);
      expect(await lookups()).toBe(cached + 1);
      expect(await deliver({ event: 'installation', payload: payloads.installation(OWNER, 'new_permissions_accepted') })).toMatchObject({
        status: 200,
        body: { status: 'handled' },
      });
      await review(4);
      expect(await lookups()).toBe(cached + 2);
    });

    it('forgets what it cached under both logins when an account the App is installed on is renamed (installation_target)', async () => {
      // umbrella (account 7310) and umbrella-labs (7320) both installed the App; each keeps a policy in its repository app.
      const legacy = { id: 7301, owner: 'umbrella', ownerId: 7310, repositories: [{ id: 731001, name: 'app' }], permissions: { contents: 'read' } };
      const labs = { id: 7302, owner: 'umbrella-labs', ownerId: 7320, repositories: [{ id: 732001, name: 'app' }], permissions: { contents: 'read' } };
      await github.install(legacy);
      await github.install(labs);
      const policyOf = (repositoryId: number) =>
        `version: 1\nissuer: { kind: github, url: "${ci.url}" }\nmatch: { repository_id: "${repositoryId}", ref: refs/heads/main }\n` +
        'grant:\n  github: { repositories: [umbrella/app], permissions: { contents: read } }\n';
      await github.putFile({ owner: 'umbrella', repo: 'app', path: '.github/keyway/release.yaml', text: policyOf(731001) });
      const ask = async (account: { readonly ownerId: number; readonly repositories: readonly { readonly id: number }[] }) => {
        const repositoryId = String(account.repositories[0]!.id);
        const claims = ciClaims(ci.url, broker.issuer, {
          sub: `repo:umbrella/app:ref:refs/heads/main:${account.ownerId}`,
          repository: 'umbrella/app',
          repository_id: repositoryId,
          repository_owner: 'umbrella',
          repository_owner_id: String(account.ownerId),
          ref: 'refs/heads/main',
        });
        const resource = `${new URL(github.apiUrl).origin}/umbrella/app`;
        return postToken(broker, exchangeForm(await ci.sign(claims), { requested_token_type: GITHUB_TOKEN_TYPE, scope: 'policy:release', resource }));
      };
      // umbrella's job is granted, and the App's installation under the login umbrella (account 7310's) is cached.
      expect(await ask(legacy)).toMatchObject({ status: 200, body: { scope: 'contents:read metadata:read' } });

      // umbrella renames itself umbrella-legacy and umbrella-labs takes the login umbrella: no installation changed, so
      // GitHub sends each account's installation_target renamed, and nothing else.
      await github.install({ ...legacy, owner: 'umbrella-legacy' });
      await github.install({ ...labs, owner: 'umbrella' });
      await github.putFile({ owner: 'umbrella', repo: 'app', path: '.github/keyway/release.yaml', text: policyOf(732001) });
      // Until keyway hears of it, the login leads to the cached installation of the other account: refused, never read there.
      const stale = await expectRefusal(broker, await ask(labs), NO_POLICY);
      expect(stale.detail).toContain('umbrella is the account 7310, not 7320: it is not read under that name');

      for (const account of [
        { from: 'umbrella', to: 'umbrella-legacy', id: legacy.ownerId },
        { from: 'umbrella-labs', to: 'umbrella', id: labs.ownerId },
      ]) {
        expect(await deliver({ event: 'installation_target', payload: payloads.installationTarget(account) })).toMatchObject({
          status: 200,
          body: { status: 'handled', detail: `caches of ${account.from} and ${account.to} refreshed` },
        });
      }
      // The account that holds the login now is served at once from its own repository, its refusal forgotten.
      const granted = await ask(labs);
      expect(granted).toMatchObject({ status: 200, body: { scope: 'contents:read metadata:read' } });
      const hash = await sha256Hex(granted.body['access_token'] as string);
      expect((await github.tokens()).find((token) => token.sha256 === hash)).toMatchObject({ repositories: ['app'], revoked: false });
      expect(await broker.auditEvent(granted.body['audit_event_id'] as string)).toMatchObject({
        decision: 'granted',
        github: { installation_id: labs.id },
      });
    });

    describe('repository-owned policies (.github/keyway/NAME.yaml)', () => {
      const repositoryPolicy = (grant: string, match = 'match: { repository_id: "734201", ref: refs/heads/main }') =>
        `version: 1\nissuer: { kind: github, url: "${ci.url}" }\n${match}\ngrant:\n${grant}\n`;
      const putRepositoryPolicy = (name: string, text: string) => github.putFile({ owner: OWNER, repo: 'api', path: `.github/keyway/${name}.yaml`, text });
      const repositoryUrl = (path: string) => `${new URL(github.apiUrl).origin}/${path}`;
      const ask = async (scope: string, resource: string | string[] = repositoryUrl(`${OWNER}/api`), overrides: Record<string, unknown> = {}) =>
        postToken(
          broker,
          exchangeForm(await ci.sign(ciClaims(ci.url, broker.issuer, overrides)), { requested_token_type: GITHUB_TOKEN_TYPE, scope, resource }),
        );
      const tokenRequests = async () =>
        (await github.calls())
          .filter((call) => call.path.endsWith('/access_tokens'))
          .map((call) => call.body as { repositories: string[]; permissions: Record<string, string> });

      it('grants a GitHub token for the repository that holds the policy, under the central guardrails, and caches the policy', async () => {
        await putRepositoryPolicy('release', repositoryPolicy('  github: { repositories: [acme/api], permissions: { contents: read } }'));
        const contentsCalls = async () => (await github.calls()).filter((call) => call.path.endsWith('/contents/.github/keyway/release.yaml')).length;
        const before = await contentsCalls();
        const granted = await ask('policy:release contents:read');
        expect(granted.status).toBe(200);
        expect(granted.body).toMatchObject({ issued_token_type: GITHUB_TOKEN_TYPE, scope: 'contents:read metadata:read' });
        const hash = await sha256Hex(granted.body['access_token'] as string);
        expect((await github.tokens()).find((token) => token.sha256 === hash)).toMatchObject({
          revoked: false,
          repositories: ['api'],
          permissions: { contents: 'read', metadata: 'read' },
        });
        const event = await broker.auditEvent(granted.body['audit_event_id'] as string);
        expect(event).toMatchObject({ decision: 'granted', policy: { granted_by: `${OWNER}/api/.github/keyway/release` } });
        // The central guardrail holds for a repository's policy too.
        const guarded = await ask('policy:release contents:read', repositoryUrl(`${OWNER}/api`), { event_name: 'pull_request_target' });
        const refusal = await expectRefusal(broker, guarded, { error: 'invalid_request', reason: 'denied_by_policy' });
        expect(refusal).toMatchObject({ policy: { denied_by: ['guard'] } });
        // Fetched once, then from the cache.
        expect((await contentsCalls()) - before).toBe(1);
        // Asking beyond the policy is refused before GitHub is asked for anything.
        const requests = (await tokenRequests()).length;
        await expectRefusal(broker, await ask('policy:release contents:write'), { error: 'invalid_scope', reason: 'github_permission_not_granted' });
        expect((await tokenRequests()).length).toBe(requests);
      });

      it("tries a central guardrail in audit mode on a repository's own policy, as on the central set's: the record says what it would deny", async () => {
        await broker.close();
        const trial = `version: 1\neffect: deny\nmode: audit\nissuer: { kind: github, url: "${ci.url}" }\nmatch: { ref: refs/heads/main }\n`;
        broker = await startBroker({}, { 'trial.yaml': trial });
        await putRepositoryPolicy('trial', repositoryPolicy('  github: { repositories: [acme/api], permissions: { contents: read } }'));
        const granted = await ask('policy:trial');
        expect(granted.status).toBe(200);
        const event = await broker.auditEvent(granted.body['audit_event_id'] as string);
        expect(event?.policy).toMatchObject({ granted_by: `${OWNER}/api/.github/keyway/trial`, audit_mode: [{ policy: 'trial', would: 'deny' }] });
      });

      it('refuses a repository policy that grants another repository or a keyway JWT, or one that does not exist', async () => {
        await putRepositoryPolicy('sneaky', repositoryPolicy(`  github: { repositories: [${OWNER}/${POLICY_REPO.name}], permissions: { contents: read } }`));
        await putRepositoryPolicy('jwt', repositoryPolicy('  audience: https://deploy.acme.dev'));
        const before = await tokenRequests();
        for (const [scope, resource] of [
          ['policy:sneaky', repositoryUrl(`${OWNER}/api`)],
          ['policy:sneaky contents:read', repositoryUrl(`${OWNER}/${POLICY_REPO.name}`)],
          ['policy:jwt', repositoryUrl(`${OWNER}/api`)],
          ['policy:missing', repositoryUrl(`${OWNER}/api`)],
        ] as const) {
          await expectRefusal(broker, await ask(scope, resource), NO_POLICY);
        }
        const sneaky = await ask('policy:sneaky');
        expect((await broker.auditEvent(sneaky.body['audit_event_id'] as string))?.detail).toMatch(/can only grant acme\/api, not acme\/keyway-policies/);
        // No token was asked of GitHub for anything but reading the policies (contents: read on the repository named).
        const asked = (await tokenRequests()).slice(before.length);
        for (const request of asked) expect(request.permissions).toEqual({ contents: 'read' });
        // A repository's own policy is asked for with exactly one repository, and a policy name that is a path is malformed.
        const twoRepositories = await ask('policy:release', [repositoryUrl(`${OWNER}/api`), repositoryUrl(`${OWNER}/${POLICY_REPO.name}`)]);
        await expectRefusal(broker, twoRepositories, { error: 'invalid_target', reason: 'github_repository_not_granted' });
        await expectRefusal(broker, await ask('policy:../release'), { error: 'invalid_request', reason: 'malformed_request' });
      });

      it('refuses a repository policy file larger than keyway reads as one that does not load, and keeps the refusal: not GitHub failing', async () => {
        const grant = '  github: { repositories: [acme/api], permissions: { contents: read } }';
        // 200 KiB: its base64 in GitHub's answer is more than the GitHub client reads of one answer.
        await putRepositoryPolicy('bulky', `${repositoryPolicy(grant)}${'# padding\n'.repeat(20 * 1024)}`);
        const contentsCalls = async () => (await github.calls()).filter((call) => call.path.endsWith('/contents/.github/keyway/bulky.yaml')).length;
        const before = await contentsCalls();
        const refused = await ask('policy:bulky');
        await expectRefusal(broker, refused, NO_POLICY);
        expect((await broker.auditEvent(refused.body['audit_event_id'] as string))?.detail).toMatch(
          /^acme\/api\/\.github\/keyway\/bulky\.yaml is larger than keyway reads \(a file of over 184320 bytes/,
        );
        await expectRefusal(broker, await ask('policy:bulky'), NO_POLICY);
        expect((await contentsCalls()) - before).toBe(1);
      });

      it("reads a repository's own policy again after a push to its default branch: a revert withdraws access at once, not within the cache's minute", async () => {
        const grant = '  github: { repositories: [acme/api], permissions: { contents: read } }';
        await putRepositoryPolicy('revert', repositoryPolicy(grant));
        expect((await ask('policy:revert')).status).toBe(200);
        // Reverted to grant jobs of the release branch alone: the copy cached a moment ago still grants main's.
        await putRepositoryPolicy('revert', repositoryPolicy(grant, 'match: { repository_id: "734201", ref: refs/heads/release }'));
        expect((await ask('policy:revert')).status).toBe(200);
        const push = (ref: string): Delivery => ({
          event: 'push',
          payload: payloads.push({ owner: OWNER, name: 'api', id: 734201 }, { ref, after: sha(`revert ${ref.slice(-4)}`) }),
        });
        // The exchange reads the default branch only: a push to another changes nothing it reads.
        expect(await deliver(push('refs/heads/feature'))).toMatchObject({ status: 200, body: { status: 'ignored', detail: 'not a push to main' } });
        expect((await ask('policy:revert')).status).toBe(200);
        expect(await deliver(push('refs/heads/main'))).toMatchObject({
          status: 200,
          body: { status: 'handled', detail: `the policies of ${OWNER}/api are read again at their next exchange` },
        });
        await expectRefusal(broker, await ask('policy:revert'), NO_POLICY);

        // The policy repository's own policies too, on the push that switches the live set.
        const central = repositoryUrl(`${OWNER}/${POLICY_REPO.name}`);
        const putOwn = (text: string) => github.putFile({ owner: OWNER, repo: POLICY_REPO.name, path: '.github/keyway/revert.yaml', text });
        await putOwn(repositoryPolicy(`  github: { repositories: [${OWNER}/${POLICY_REPO.name}], permissions: { contents: read } }`));
        expect((await ask('policy:revert', central)).status).toBe(200);
        await putOwn(
          repositoryPolicy(`  github: { repositories: [${OWNER}/${POLICY_REPO.name}], permissions: { contents: read } }`, 'match: { ref: refs/heads/release }'),
        );
        const head = sha('revert central');
        await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'production'), 'guard.yaml': guardPolicy(ci.url) });
        await moveMain(head);
        expect(await deliver(pushOf(head))).toMatchObject({ status: 200, body: { status: 'handled' } });
        await expectRefusal(broker, await ask('policy:revert', central), NO_POLICY);
      });

      it('records a repository policy and its token under the names GitHub gives them, whatever case a request writes them in, its own or a later one', async () => {
        // The policy's own spelling is its writer's to choose too.
        await putRepositoryPolicy('casing', repositoryPolicy('  github: { repositories: [Acme/API], permissions: { contents: read } }'));
        // Case is the caller's to choose (GitHub's names ignore it): the first request's must not name the policy in the log,
        // for its own grant nor for every other caller's while the policy is cached, where a search by policy would miss them.
        for (const written of ['ACME/Api', `${OWNER}/api`]) {
          const granted = await ask('policy:casing', repositoryUrl(written));
          expect(granted.status).toBe(200);
          const event = await broker.auditEvent(granted.body['audit_event_id'] as string);
          expect(event?.policy).toMatchObject({ granted_by: `${OWNER}/api/.github/keyway/casing` });
          // The token's record too: an auditor asking what acme's tokens were finds this one.
          expect(event?.github).toMatchObject({ owner: OWNER, repositories: ['api'] });
        }
      });

      it("refuses a repository policy granting checks: write, which the App holds: its token could overwrite keyway's own review", async () => {
        await putRepositoryPolicy('checks', repositoryPolicy('  github: { repositories: [acme/api], permissions: { contents: read, checks: write } }'));
        const before = (await tokenRequests()).length;
        const refused = await expectRefusal(broker, await ask('policy:checks'), NO_POLICY);
        expect(refused.detail).toContain("a repository's own policy cannot grant checks write, whatever KEYWAY_REPOSITORY_POLICY_PERMISSIONS says");
        // One token, to read the policy (contents: read); none with checks.
        expect((await tokenRequests()).slice(before)).toEqual([{ repositories: ['api'], permissions: { contents: 'read' } }]);
      });

      it('refuses policy:NAME.test, a policy test file the review never lists, as malformed before reading it', async () => {
        // A grant to a job of any branch: loaded as policy:wide.test, it would serve though no review ever showed it.
        const wide = repositoryPolicy('  github: { repositories: [acme/api], permissions: { contents: read } }', 'match: { repository_id: "734201" }');
        await putRepositoryPolicy('wide.test', wide);
        const reads = async () => (await github.calls()).filter((call) => call.path.endsWith('/contents/.github/keyway/wide.test.yaml')).length;
        const before = await reads();
        for (const scope of ['policy:wide.test', 'policy:wide.test contents:read']) {
          const refused = await expectRefusal(broker, await ask(scope, repositoryUrl(`${OWNER}/api`), { ref: 'refs/heads/feature' }), {
            error: 'invalid_request',
            reason: 'malformed_request',
          });
          expect(refused.detail).toMatch(/policy:wide\.test names a policy test \(wide\.test\.yaml\), not a policy/);
        }
        expect(await reads()).toBe(before);
        // …as the review does not list it: a pull request adding it changes no policy file.
        const head = sha('own-test-file');
        await github.putFile({ owner: OWNER, repo: 'api', path: '.github/keyway/wide.test.yaml', ref: head, text: wide });
        const reviewed = await deliver({
          event: 'pull_request',
          payload: payloads.pullRequest({ owner: OWNER, name: 'api', id: 734201 }, { number: 43, baseSha: sha('own-test-base'), headSha: head }),
        });
        expect(reviewed).toMatchObject({ status: 200, body: { status: 'ignored', detail: 'pull request 43 changes no policy file under .github/keyway' } });
      });

      it("reviews a pull request that changes a repository's own policies, held to what they may grant", async () => {
        const base = sha('own-base');
        const head = sha('own-head');
        const put = (ref: string, text: string) => github.putFile({ owner: OWNER, repo: 'api', path: '.github/keyway/release.yaml', ref, text });
        await put(base, repositoryPolicy('  github: { repositories: [acme/api], permissions: { contents: read } }'));
        // Line 5 asks for another repository.
        await put(head, repositoryPolicy(`  github: { repositories: [acme/api, ${OWNER}/${POLICY_REPO.name}], permissions: { contents: read } }`));
        const before = (await checkRuns()).length;
        const handled = await deliver({
          event: 'pull_request',
          payload: payloads.pullRequest({ owner: OWNER, name: 'api', id: 734201 }, { number: 40, baseSha: base, headSha: head }),
        });
        expect(handled).toMatchObject({ status: 200, body: { status: 'handled' } });
        const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
        expect(run).toMatchObject({ head_sha: head, conclusion: 'failure' });
        expect(run.output.annotations).toContainEqual(
          expect.objectContaining({
            path: '.github/keyway/release.yaml',
            start_line: 5,
            annotation_level: 'failure',
            message: expect.stringMatching(/can only grant acme\/api, not acme\/keyway-policies/),
          }),
        );
        // The same change narrowed back passes, with no impact replay (that is for the central set).
        await put(sha('own-good'), repositoryPolicy('  github: { repositories: [acme/api], permissions: { contents: read, issues: read } }'));
        await deliver({
          event: 'pull_request',
          payload: payloads.pullRequest({ owner: OWNER, name: 'api', id: 734201 }, { number: 41, baseSha: base, headSha: sha('own-good') }),
        });
        const [good] = (await checkRuns()).slice(before + 1) as [CheckRunBody];
        expect(good).toMatchObject({ head_sha: sha('own-good'), conclusion: 'success' });
        expect(good.output.summary).not.toContain('Impact replay');
      });

      it("reviews a repository's own policies under the id GitHub sent: a pull request of a repository since deleted, its name taken again, reads nothing of the new one", async () => {
        const [base, head] = [sha('gone-base'), sha('gone-head')];
        const put = (ref: string, permissions: string) =>
          github.putFile({
            owner: OWNER,
            repo: 'api',
            path: '.github/keyway/release.yaml',
            ref,
            text: repositoryPolicy(`  github: { repositories: [acme/api], permissions: { ${permissions} } }`),
          });
        await put(base, 'contents: read');
        await put(head, 'contents: read, issues: read');
        const [callsBefore, runsBefore] = [(await github.calls()).length, (await checkRuns()).length];
        // acme/api is 734201 now; the pull request was of the repository 9999 that held the name before.
        const late = await deliver({
          event: 'pull_request',
          payload: payloads.pullRequest({ owner: OWNER, name: 'api', id: 9999 }, { number: 44, baseSha: base, headSha: head }),
        });
        expect(late).toMatchObject({ status: 503, body: { error: 'temporarily_unavailable' } });
        const calls = (await github.calls()).slice(callsBefore);
        expect(calls.filter((call) => call.path.includes('/contents/') || call.path.includes('/check-runs'))).toEqual([]);
        expect(calls.filter((call) => call.path.endsWith('/access_tokens'))).toMatchObject([{ body: { repository_ids: [9999] }, status: 422 }]);
        expect((await checkRuns()).length).toBe(runsBefore);
      });

      it("fails the review of a repository policy granting beyond the operator's ceiling or naming an issuer it does not allow", async () => {
        const base = sha('own-base');
        const head = sha('own-escalate');
        const put = (path: string, text: string) => github.putFile({ owner: OWNER, repo: 'api', path: `.github/keyway/${path}`, ref: head, text });
        // Line 5 asks for administration; line 2 of the other names an issuer the central set does not trust.
        await put('release.yaml', repositoryPolicy('  github: { repositories: [acme/api], permissions: { contents: read, administration: write } }'));
        const readOnly = repositoryPolicy('  github: { repositories: [acme/api], permissions: { contents: read } }');
        await put('other.yaml', readOnly.replace(ci.url, 'https://ghe.elsewhere.example/_services/token'));
        const before = (await checkRuns()).length;
        await deliver({
          event: 'pull_request',
          payload: payloads.pullRequest({ owner: OWNER, name: 'api', id: 734201 }, { number: 42, baseSha: base, headSha: head }),
        });
        const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
        expect(run).toMatchObject({ head_sha: head, conclusion: 'failure' });
        const failure = (path: string, line: number, message: RegExp) =>
          expect.objectContaining({ path: `.github/keyway/${path}`, start_line: line, annotation_level: 'failure', message: expect.stringMatching(message) });
        expect(run.output.annotations).toContainEqual(failure('release.yaml', 5, /may grant administration not at all, not write/));
        expect(run.output.annotations).toContainEqual(failure('other.yaml', 2, /is not an issuer the operator allows repository policies to name/));
      });

      it('fails the review of a repository policy of more regexes than keyway estimates as it loads, as the exchange refuses it: each file is bounded alone', async () => {
        const head = sha('own-regexes');
        const grant = '  github: { repositories: [acme/api], permissions: { contents: read } }';
        const tags = (count: number) => Array.from({ length: count }, (_, n) => `{ regex: "refs/tags/v${n}\\\\.[0-9]+" }`).join(', ');
        const put = (path: string, count: number) =>
          github.putFile({
            owner: OWNER,
            repo: 'api',
            path: `.github/keyway/${path}`,
            ref: head,
            text: repositoryPolicy(grant, `match: { repository_id: "734201", ref: [${tags(count)}] }`),
          });
        // 33 regexes on line 3 of one; 32 in each of two others, which an exchange loads one at a time.
        await put('release.yaml', 33);
        await put('one.yaml', 32);
        await put('two.yaml', 32);
        const before = (await checkRuns()).length;
        await deliver({
          event: 'pull_request',
          payload: payloads.pullRequest({ owner: OWNER, name: 'api', id: 734201 }, { number: 45, baseSha: sha('own-base'), headSha: head }),
        });
        const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
        expect(run).toMatchObject({ head_sha: head, conclusion: 'failure' });
        const failures = run.output.annotations.filter((annotation) => annotation.annotation_level === 'failure');
        expect(failures).toEqual([
          expect.objectContaining({
            path: '.github/keyway/release.yaml',
            start_line: 3,
            message: expect.stringMatching(/^the regexes of this policy are 33, of \d+ characters together: more than the 32 regexes or 2048 characters/),
          }),
        ]);
      });

      it("fails the review of a fork's pull request past the review's limits without compiling it: more files than it reads, or more regexes together", async () => {
        const grant = '  github: { repositories: [acme/api], permissions: { contents: read } }';
        const fork = { owner: 'mallory', name: 'api', id: 9_998 };
        const review = async (number: number, head: string, files: number, regexes: number) => {
          const tags = Array.from({ length: regexes }, (_, n) => `{ regex: "refs/tags/v${n}\\\\.[0-9]+" }`).join(', ');
          for (let n = 0; n < files; n++) {
            const text = repositoryPolicy(grant, `match: { repository_id: "734201", ref: [${tags}] }`);
            await github.putFile({ owner: OWNER, repo: 'api', path: `.github/keyway/p${n}.yaml`, ref: head, text });
          }
          const [runs, calls] = [(await checkRuns()).length, (await github.calls()).length];
          const payload = payloads.pullRequest(
            { owner: OWNER, name: 'api', id: 734201 },
            { number, baseSha: sha('limits-base'), headSha: head, author: 'mallory', fork },
          );
          expect(await deliver({ event: 'pull_request', payload })).toMatchObject({ status: 200, body: { status: 'handled' } });
          const [run] = (await checkRuns()).slice(runs) as [CheckRunBody];
          const read = (await github.calls()).slice(calls).filter((call) => /\/contents\/\.github\/keyway\/p\d+\.yaml$/.test(call.path));
          return { run, read: read.length };
        };
        // 65 files of one regex each: refused from the listing, before any file is read.
        const many = await review(46, sha('limits-files'), 65, 1);
        expect(many.run).toMatchObject({
          conclusion: 'failure',
          output: { title: 'too large to review: the proposed policies hold 65 files, at most 64', annotations: [] },
        });
        expect(many.run.output.summary).toMatch(
          /^\*\*keyway does not review this change:\*\* the proposed policies under \.github\/keyway hold 65 files, at most 64\. It reviews at most 64 files, 131072 characters, 128 regexes, 8192 characters of regexes on either side/,
        );
        expect(many.read).toBe(0);
        // Five files of 32 regexes each, every one within what an exchange loads alone: 160 regexes together.
        const regexes = await review(47, sha('limits-regexes'), 5, 32);
        expect(regexes.run).toMatchObject({
          conclusion: 'failure',
          output: { title: 'too large to review: the proposed policies hold 160 regexes, at most 128' },
        });
        expect(regexes.read).toBe(5);
      });

      it("warns in the review of a repository policy naming another GitHub deployment's issuer: it loads, and never grants", async () => {
        // A GitHub Actions issuer of another deployment than the App's (the fake GitHub on 127.0.0.1), which the central set trusts.
        const server = freshIssuer(issuerBase().replace('//127.0.0.1:', '//localhost:'), 'webhooks-server');
        broker.close();
        broker = await startBroker(
          {},
          {
            'server.yaml': `version: 1\nissuer: { kind: github, url: "${server.url}" }\nmatch: { repository_owner_id: "1200934" }\ngrant: { audience: https://deploy.acme.dev }\n`,
          },
        );
        const head = sha('own-server');
        const ownPolicy = repositoryPolicy('  github: { repositories: [acme/api], permissions: { contents: read } }').replace(ci.url, server.url);
        await github.putFile({ owner: OWNER, repo: 'api', path: '.github/keyway/server.yaml', ref: head, text: ownPolicy });
        const before = (await checkRuns()).length;
        await deliver({
          event: 'pull_request',
          payload: payloads.pullRequest({ owner: OWNER, name: 'api', id: 734201 }, { number: 45, baseSha: sha('own-base'), headSha: head }),
        });
        const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
        expect(run).toMatchObject({ head_sha: head, conclusion: 'success' });
        expect(run.output.annotations).toContainEqual(
          expect.objectContaining({
            path: '.github/keyway/server.yaml',
            start_line: 5,
            annotation_level: 'warning',
            message: expect.stringMatching(
              /is a GitHub issuer of localhost, which numbers its accounts apart: this policy never grants its jobs a GitHub token/,
            ),
          }),
        );
      });
    });

    it('answers 503 and forgets the delivery when GitHub fails, so a redelivery is handled', async () => {
      const base = sha('down-base');
      const head = sha('down-head');
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'qa') });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'uat') });
      const delivery = {
        event: 'pull_request',
        payload: payloads.pullRequest(POLICY_REPO, { number: 30, baseSha: base, headSha: head }),
        id: crypto.randomUUID(),
      };
      await github.setDown(true);
      try {
        expect(await deliver(delivery)).toMatchObject({ status: 503, body: { error: 'temporarily_unavailable' } });
      } finally {
        await github.setDown(false);
      }
      const before = (await checkRuns()).length;
      expect(await deliver(delivery)).toMatchObject({ status: 200, body: { status: 'handled' } });
      expect((await checkRuns()).length).toBe(before + 1);
    });

    /** A copy of `payload` with the field at the dotted `path` set to `value`, or left out when `value` is undefined. */
    const reshaped = (payload: object, path: string, value: unknown): Record<string, unknown> => {
      const copy = structuredClone(payload) as Record<string, unknown>;
      const [field, ...above] = path.split('.').reverse();
      const parent = above.reverse().reduce((at, key) => at[key] as Record<string, unknown>, copy);
      if (value === undefined) delete parent[field as string];
      else parent[field as string] = value;
      return copy;
    };

    it('refuses a signed payload without the fields its handler reads, or of other types than GitHub sends (400, the field named): nothing acted on, nothing remembered', async () => {
      const lines: { level: string; message: string; fields: Readonly<Record<string, unknown>> }[] = [];
      const record =
        (level: string) =>
        (message: string, fields: Readonly<Record<string, unknown>> = {}) =>
          void lines.push({ level, message, fields });
      await broker.close();
      broker = await startBroker({}, {}, { info: record('info'), warn: record('warn'), error: record('error') });
      operator = await auditorToken(broker, people, 'olga@acme.dev', HEALTH_READ_SCOPE);
      // Well-formed, each would act: a push switching the live set to qa, a pull request getting a check run, a job's end revoking its tokens.
      const pushed = sha('shape-push');
      await putPolicies(pushed, { 'deploy.yaml': deployPolicy(ci.url, 'qa'), 'guard.yaml': guardPolicy(ci.url) });
      await moveMain(pushed);
      const [base, head] = [sha('shape-base'), sha('shape-head')];
      await putPolicies(base, { 'deploy.yaml': deployPolicy(ci.url, 'production') });
      await putPolicies(head, { 'deploy.yaml': deployPolicy(ci.url, 'staging') });
      const [run, job] = [freshId(), freshId()];
      const [githubToken, keywayToken] = [await githubTokenFor(run, job), await keywayTokenFor(run, job)];
      const push = payloads.push(POLICY_REPO, { ref: 'refs/heads/main', after: pushed });
      const pullRequest = payloads.pullRequest(POLICY_REPO, { number: 41, baseSha: base, headSha: head });
      const jobEnded = workflowJob(run, 'completed', { id: job });
      const runEnded = { action: 'completed', workflow_run: { id: run, run_attempt: 1 }, repository: { id: 734201, name: 'api' } };
      const installation = payloads.installation(OWNER, 'created');
      const renamed = payloads.installationTarget({ from: OWNER, to: 'acme-corp', id: 1200934 });
      const malformed: readonly { event: string; payload: unknown; problem: string }[] = [
        { event: 'ping', payload: [{ zen: 'Keep it logically awesome.' }], problem: 'the ping payload is not a JSON object' },
        { event: 'pull_request', payload: [pullRequest], problem: 'the pull_request payload is not a JSON object' },
        { event: 'pull_request', payload: reshaped(pullRequest, 'repository', undefined), problem: 'the pull_request payload has no repository' },
        { event: 'pull_request', payload: reshaped(pullRequest, 'pull_request.base', undefined), problem: 'the pull_request payload has no pull_request.base' },
        {
          event: 'pull_request',
          payload: reshaped(pullRequest, 'pull_request', [pullRequest.pull_request]),
          problem: "the pull_request payload's pull_request is not an object",
        },
        {
          event: 'pull_request',
          payload: reshaped(pullRequest, 'repository.id', String(POLICY_REPO_ID)),
          problem: "the pull_request payload's repository.id is not a number",
        },
        {
          event: 'pull_request',
          payload: reshaped(pullRequest, 'repository.owner', null),
          problem: "the pull_request payload's repository.owner is not an object",
        },
        {
          event: 'pull_request',
          payload: reshaped(pullRequest, 'pull_request.head.sha', 7),
          problem: "the pull_request payload's pull_request.head.sha is not a string",
        },
        {
          event: 'pull_request',
          payload: reshaped(pullRequest, 'pull_request.base.sha', 'main'),
          problem: "the pull_request payload's pull_request.base.sha is not a commit SHA (40 or 64 lowercase hex digits)",
        },
        {
          event: 'pull_request',
          payload: reshaped(pullRequest, 'pull_request.head.repo', {}),
          problem: 'the pull_request payload has no pull_request.head.repo.id',
        },
        {
          event: 'pull_request',
          payload: reshaped(pullRequest, 'pull_request.number', 41.5),
          problem: "the pull_request payload's pull_request.number is not a positive whole number",
        },
        {
          event: 'pull_request',
          payload: { ...pullRequest, action: 'edited', changes: { base: 'main' } },
          problem: "the pull_request payload's changes.base is not an object",
        },
        { event: 'push', payload: reshaped(push, 'repository', undefined), problem: 'the push payload has no repository' },
        { event: 'push', payload: reshaped(push, 'repository', [push.repository]), problem: "the push payload's repository is not an object" },
        { event: 'push', payload: reshaped(push, 'deleted', 'false'), problem: "the push payload's deleted is not a boolean" },
        { event: 'push', payload: reshaped(push, 'ref', null), problem: "the push payload's ref is not a string" },
        { event: 'push', payload: reshaped(push, 'repository.default_branch', undefined), problem: 'the push payload has no repository.default_branch' },
        { event: 'installation', payload: reshaped(installation, 'installation', OWNER), problem: "the installation payload's installation is not an object" },
        {
          event: 'installation',
          payload: reshaped(installation, 'installation.account', [OWNER]),
          problem: "the installation payload's installation.account is not an object",
        },
        {
          event: 'installation',
          payload: reshaped(installation, 'installation.account.login', 7),
          problem: "the installation payload's installation.account.login is not a string",
        },
        {
          event: 'installation_repositories',
          payload: reshaped(installation, 'installation', undefined),
          problem: 'the installation_repositories payload has no installation',
        },
        { event: 'installation_target', payload: reshaped(renamed, 'account', undefined), problem: 'the installation_target payload has no account' },
        {
          event: 'installation_target',
          payload: reshaped(renamed, 'changes.login.from', 7),
          problem: "the installation_target payload's changes.login.from is not a string",
        },
        {
          event: 'workflow_job',
          payload: reshaped(jobEnded, 'workflow_job.check_run_url', job),
          problem: "the workflow_job payload's workflow_job.check_run_url is not a string",
        },
        {
          event: 'workflow_job',
          payload: reshaped(jobEnded, 'workflow_job.id', String(job)),
          problem: "the workflow_job payload's workflow_job.id is not a number",
        },
        {
          event: 'workflow_job',
          payload: reshaped(jobEnded, 'workflow_job.run_id', undefined),
          problem: 'the workflow_job payload has no workflow_job.run_id',
        },
        {
          event: 'workflow_job',
          payload: reshaped(jobEnded, 'workflow_job.run_attempt', '1'),
          problem: "the workflow_job payload's workflow_job.run_attempt is not a number",
        },
        { event: 'workflow_job', payload: reshaped(jobEnded, 'repository', undefined), problem: 'the workflow_job payload has no repository' },
        {
          event: 'workflow_run',
          payload: reshaped(runEnded, 'workflow_run.id', String(run)),
          problem: "the workflow_run payload's workflow_run.id is not a number",
        },
        {
          event: 'workflow_run',
          payload: reshaped(runEnded, 'workflow_run', [runEnded.workflow_run]),
          problem: "the workflow_run payload's workflow_run is not an object",
        },
        { event: 'workflow_run', payload: reshaped(runEnded, 'repository.id', undefined), problem: 'the workflow_run payload has no repository.id' },
      ];
      const [healthBefore, callsBefore] = [await health(), (await github.calls()).length];

      for (const { event, payload, problem } of malformed) {
        const delivery = { event, payload, id: crypto.randomUUID() };
        const refused = { status: 400, body: { error: 'invalid_request', error_description: problem } };
        expect(await deliver(delivery)).toEqual({ id: delivery.id, ...refused });
        // Never claimed: GitHub's redelivery, or the same body again, is refused alike, not called a duplicate.
        expect(await deliver(delivery)).toEqual({ id: delivery.id, ...refused });
      }
      expect((await github.calls()).slice(callsBefore)).toEqual([]);
      expect(await health()).toEqual(healthBefore);
      await expectRefusal(broker, await exchange({ environment: 'qa' }), NO_POLICY);
      expect(await (await introspection())(keywayToken)).toEqual([true]);
      expect(await githubRevoked(githubToken)).toBe(false);
      // An input refused, logged as such (a warning, never an error), naming the field, never its value.
      expect(lines.filter((line) => line.level === 'error')).toEqual([]);
      expect(
        lines.filter((line) => line.message === 'github webhook payload refused').map(({ level, fields }) => ({ level, problem: fields['problem'] })),
      ).toEqual(
        malformed.flatMap(({ problem }) => [
          { level: 'warn', problem },
          { level: 'warn', problem },
        ]),
      );

      // Well-formed, the same deliveries act (the job's first: the pushed set has no policy for the introspecting operator).
      expect(await deliver({ event: 'workflow_job', payload: jobEnded })).toMatchObject({ status: 200, body: { status: 'handled' } });
      expect(await (await introspection())(keywayToken)).toEqual([false]);
      await untilGitHubRevoked(githubToken);
      expect(await deliver({ event: 'push', payload: push })).toMatchObject({ status: 200, body: { status: 'handled' } });
      expect((await exchange({ environment: 'qa' })).status).toBe(200);
      expect(await deliver({ event: 'pull_request', payload: pullRequest })).toMatchObject({ status: 200, body: { status: 'handled' } });
    });

    it('acknowledges an event named after a built-in property of JavaScript objects (202), as any other it does not act on', async () => {
      for (const event of ['constructor', '__proto__']) {
        expect(await deliver({ event, payload: { zen: 'Half measures are as bad as nothing at all.' } })).toMatchObject({
          status: 202,
          body: { status: 'ignored', event },
        });
      }
    });

    // A separate broker: a policy that takes a GitHub Actions job as the actor of another's exchange (RFC 8693).
    describe(`a finished job's token as an actor on ${runtime}`, () => {
      let broker: BrokerHarness;
      let ci: TestIssuer;
      /** An operator's own OIDC issuer, which may put anything in its claims, GitHub's run ids among them. */
      let lookalike: TestIssuer;
      /** A Forgejo instance: its jobs' tokens carry GitHub's claim names, `repository_id` and `run_id` among them, with its own ids. */
      let forgejo: TestIssuer;
      /** A second GitHub issuer (an enterprise's own, `kind: github`). */
      let enterprise: TestIssuer;
      beforeAll(async () => {
        ci = freshIssuer(issuerBase(), 'webhooks-actor');
        enterprise = freshIssuer(issuerBase(), 'webhooks-actor-enterprise');
        lookalike = freshIssuer(issuerBase(), 'webhooks-actor-lookalike');
        forgejo = new TestIssuer(`${await newTestSite(issuerBase())}/api/actions`);
        const forgejoPolicy = (actor: string) =>
          `version: 1\nissuer: { kind: forgejo, url: "${forgejo.url}" }\nmatch: { repository_owner_id: "1200934", repository_id: "734201" }\n${actor}grant: { audience: https://forgejo${actor === '' ? '' : '-delegated'}.acme.dev }\n`;
        const delegatedTo = (actorIssuer: string, subjectIssuer = ci.url) => `version: 1
issuer: { kind: github, url: "${subjectIssuer}" }
match: { repository_owner_id: "1200934", repository_id: "734201", environment: staging }
match_actor:
  iss: "${actorIssuer}"
  repository_id: "734201"
grant:
  audience: https://delegated.acme.dev
`;
        broker = await start(
          {
            'delegated.yaml': delegatedTo(ci.url),
            'delegated-lookalike.yaml': delegatedTo(lookalike.url),
            'delegated-enterprise.yaml': delegatedTo(ci.url, enterprise.url),
            // A job's own token, no actor: for the jobs in production.
            'plain.yaml': `version: 1\nissuer: { kind: github, url: "${ci.url}" }\nmatch: { repository_owner_id: "1200934", repository_id: "734201", environment: production }\ngrant: { audience: https://plain.acme.dev }\n`,
            'lookalike.yaml': `version: 1\nissuer: { kind: oidc, url: "${lookalike.url}" }\nmatch: { repository_id: "734201" }\ngrant: { audience: https://lookalike.acme.dev }\n`,
            // A Forgejo job's own token, and one with a GitHub Actions job's as its actor.
            'forgejo.yaml': forgejoPolicy(''),
            'forgejo-delegated.yaml': forgejoPolicy(`match_actor: { iss: "${ci.url}", repository_id: "734201" }\n`),
            'ops/olga.yaml': operatorPolicy(people, HARNESS_ISSUER, 'olga@acme.dev', ['tokens:introspect']),
          },
          { settings: { KEYWAY_GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET }, ownState: true },
        );
      });
      afterAll(() => broker.close());

      /** A job's OIDC token, of `issuer`: check run `checkRun` of run `run`, attempt 1, in `environment`. */
      const jobToken = (run: number, checkRun: number, { environment = 'staging', issuer = ci } = {}) =>
        issuer.sign(ciClaims(issuer.url, broker.issuer, { environment, run_id: String(run), run_attempt: '1', check_run_id: String(checkRun) }));
      /** A keyway token for the subject job's token, with the actor job's token as the actor_token (RFC 8693). */
      const delegatedToken = async (subject: Promise<string>, actor: Promise<string>) => {
        const answer = await postToken(broker, exchangeForm(await subject, { actor_token: await actor, actor_token_type: ID_TOKEN }));
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        return { token: answer.body['access_token'] as string, auditEventId: answer.body['audit_event_id'] as string };
      };
      /** The api repository on the GitHub of the jobs (a GitHub Enterprise Server's, on the host of its jobs' issuer), as its deliveries name it. */
      const repository = () => ({
        id: 734201,
        name: 'api',
        full_name: `${OWNER}/api`,
        owner: { login: OWNER },
        url: `${new URL(ci.url).origin}/api/v3/repos/${OWNER}/api`,
      });
      /** Job `checkRun` of run `run` completed, as GitHub tells it. */
      const jobCompleted = async (run: number, checkRun: number) => {
        const { init } = await deliveryRequest({
          event: 'workflow_job',
          payload: { ...workflowJob(run, 'completed', { id: checkRun }), repository: repository() },
        });
        const response = await broker.request('/webhooks/github', init);
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const revoked = (count: number, run: number, checkRun: number) => ({
        status: 200,
        body: { status: 'handled', detail: `${count} keyway tokens revoked: the workflow job ${checkRun} of run ${run} completed` },
      });
      /** Attempt 1 of run `run` completed, as GitHub tells it. */
      const runCompleted = async (run: number) => {
        const { init } = await deliveryRequest({
          event: 'workflow_run',
          payload: {
            action: 'completed',
            workflow_run: { id: run, run_attempt: 1, run_started_at: new Date(Date.now() - 60_000).toISOString(), status: 'completed' },
            repository: repository(),
            installation: { id: 71 },
          },
        });
        const response = await broker.request('/webhooks/github', init);
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };

      it("revokes a delegated keyway token when its actor's job completes, though the subject's job runs on; another job's tokens stay", async () => {
        const [subjectRun, actorRun] = [freshId(), freshId()];
        const [actorJob, siblingJob] = [actorRun + 1, actorRun + 2];
        const delegated = await delegatedToken(jobToken(subjectRun, subjectRun + 1), jobToken(actorRun, actorJob));
        // The record keeps the run ids of the actor's token beside its issuer and subject.
        expect((await broker.auditEvent(delegated.auditEventId))?.actor?.run).toEqual({
          repository_id: '734201',
          run_id: String(actorRun),
          check_run_id: String(actorJob),
          run_attempt: '1',
        });
        const bySibling = await delegatedToken(jobToken(subjectRun, subjectRun + 1), jobToken(actorRun, siblingJob));
        const plain = await postToken(broker, exchangeForm(await jobToken(actorRun, siblingJob, { environment: 'production' })));
        expect(plain.status).toBe(200);
        expect(await jobCompleted(actorRun, actorJob)).toMatchObject(revoked(1, actorRun, actorJob));
        expect(await (await introspection(broker))(delegated.token, bySibling.token, plain.body['access_token'] as string)).toEqual([false, true, true]);
      });

      it("leaves a delegated token whose actor is another issuer's, naming the job's run and check run, to its TTL: those are not the ids GitHub gave", async () => {
        const [subjectRun, actorRun] = [freshId(), freshId()];
        const actorJob = actorRun + 1;
        const subject = () => jobToken(subjectRun, subjectRun + 1);
        const byGitHub = await delegatedToken(subject(), jobToken(actorRun, actorJob));
        const byLookalike = await delegatedToken(subject(), jobToken(actorRun, actorJob, { issuer: lookalike }));
        expect(await jobCompleted(actorRun, actorJob)).toMatchObject(revoked(1, actorRun, actorJob));
        expect(await (await introspection(broker))(byGitHub.token, byLookalike.token)).toEqual([false, true]);
      });

      it("revokes a delegated keyway token when its GitHub actor's job completes, though its subject, another issuer's, names the same run ids; that issuer's own grant under them stays", async () => {
        const run = freshId();
        const job = run + 1;
        // A Forgejo job whose repository and run ids are those of the GitHub Actions job: Forgejo numbers its own.
        const forgejoJob = () =>
          forgejo.sign(forgejoToken(forgejo.url, broker.issuer, { repository_owner_id: '1200934', repository_id: '734201', run_id: String(run) }));
        const delegated = await delegatedToken(forgejoJob(), jobToken(run, job));
        expect(await broker.auditEvent(delegated.auditEventId)).toMatchObject({
          issuer: forgejo.url,
          claims: { repository_id: '734201', run_id: String(run) },
          actor: { issuer: ci.url, run: { repository_id: '734201', run_id: String(run), check_run_id: String(job) } },
        });
        const own = await postToken(broker, exchangeForm(await forgejoJob()));
        expect(own.status, JSON.stringify(own.body)).toBe(200);
        const active = await introspection(broker);
        expect(await jobCompleted(run, job)).toMatchObject(revoked(1, run, job));
        expect(await active(delegated.token, own.body['access_token'] as string)).toEqual([false, true]);
        // Nor does the end of the GitHub run those ids name end the Forgejo job's own grant: not the ids GitHub gave it.
        expect(await runCompleted(run)).toMatchObject({ status: 200, body: { status: 'handled' } });
        expect(await active(own.body['access_token'] as string)).toEqual([true]);
      });

      it('revokes a delegated keyway token once when its subject and its actor, of two GitHub issuers, both name the job that completed', async () => {
        const run = freshId();
        const job = run + 1;
        const delegated = await delegatedToken(jobToken(run, job, { issuer: enterprise }), jobToken(run, job));
        expect(await jobCompleted(run, job)).toMatchObject(revoked(1, run, job));
        expect(await (await introspection(broker))(delegated.token)).toEqual([false]);
        const records = (await broker.recentAuditEvents()).filter((event) => event.detail?.endsWith(`: the workflow job ${job} of run ${run} completed`));
        expect(records.map((event) => event.reason)).toEqual(['token_revoked']);
      });

      it("grants to an actor of the subject's own run, of another job or its own, and revokes the token when the actor's job completes", async () => {
        const run = freshId();
        const [subjectJob, actorJob, bothJob] = [run + 1, run + 2, run + 3];
        const delegated = await delegatedToken(jobToken(run, subjectJob), jobToken(run, actorJob));
        const ofOneJob = await delegatedToken(jobToken(run, bothJob), jobToken(run, bothJob));
        const active = await introspection(broker);
        expect(await jobCompleted(run, actorJob)).toMatchObject(revoked(1, run, actorJob));
        expect(await active(delegated.token, ofOneJob.token)).toEqual([false, true]);
        expect(await jobCompleted(run, bothJob)).toMatchObject(revoked(1, run, bothJob));
        expect(await active(ofOneJob.token)).toEqual([false]);
      });

      it("refuses a finished job's OIDC token as the actor_token of another job's exchange, as it does as the subject", async () => {
        const run = 100_000 + Math.floor(Math.random() * 1_000_000_000);
        const job = (checkRun: number) => ({ environment: 'staging', run_id: String(run), run_attempt: '1', check_run_id: String(checkRun) });
        const { init } = await deliveryRequest({
          event: 'workflow_job',
          payload: {
            action: 'completed',
            workflow_job: {
              id: run + 1,
              run_id: run,
              run_attempt: 1,
              status: 'completed',
              check_run_url: `https://api.github.com/repos/${OWNER}/api/check-runs/${run + 1}`,
            },
            repository: repository(),
            installation: { id: 71 },
          },
        });
        expect((await broker.request('/webhooks/github', init)).status).toBe(200);
        const finished = await ci.sign(ciClaims(ci.url, broker.issuer, job(run + 1)));
        const running = await ci.sign(ciClaims(ci.url, broker.issuer, job(run + 2)));
        const delegated = (actor: string) => postToken(broker, exchangeForm(running, { actor_token: actor, actor_token_type: ID_TOKEN }));
        expect((await delegated(await ci.sign(ciClaims(ci.url, broker.issuer, job(run + 3))))).status).toBe(200);
        const refused = await delegated(finished);
        expect(refused).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
        expect(refused.body).not.toHaveProperty('access_token');
        expect(await broker.auditEvent(refused.body['audit_event_id'] as string)).toMatchObject({
          reason: 'ci_work_ended',
          detail: `actor_token: the job (check run ${run + 1}) of run ${run} attempt 1 completed (GitHub's webhook said so) before this request`,
        });
        // The finished job's token minted for an audience no policy accepts is answered alike: an ended job's refusal must not
        // tell a stranger (who can end a job of their own) which audiences the policies accept.
        const elsewhere = await delegated(await ci.sign(ciClaims(ci.url, 'https://nobody-accepts.example', job(run + 1))));
        expect({ status: elsewhere.status, error: elsewhere.body['error'], description: elsewhere.body['error_description'] }).toEqual({
          status: refused.status,
          error: refused.body['error'],
          description: refused.body['error_description'],
        });
        expect(await broker.auditEvent(elsewhere.body['audit_event_id'] as string)).toMatchObject({ reason: 'ci_work_ended' });
      });
    });
  });
}

/** What a runtime-specific test needs to stand up the policy repository on the fake GitHub API. */
export async function policyRepositoryOnFakeGitHub(fakeGitHubBase: string, issuer: string) {
  const github = await FakeGitHub.create(fakeGitHubBase);
  await github.install({
    id: 72,
    owner: OWNER,
    ownerId: 1200934,
    repositories: [{ id: POLICY_REPO_ID, name: POLICY_REPO.name }],
    permissions: { contents: 'read', checks: 'write' },
  });
  const settings = {
    ...github.settings,
    KEYWAY_GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
    KEYWAY_GITHUB_POLICY_REPOSITORY: `${POLICY_REPO.owner}/${POLICY_REPO.name}`,
    KEYWAY_GITHUB_POLICY_REPOSITORY_ID: String(POLICY_REPO_ID),
    KEYWAY_GITHUB_POLICY_PATH: POLICY_DIR,
  };
  /** Commits `environment`'s deploy policy and the guardrail, points main at it, and returns the push delivery. */
  const commit = async (label: string, environment: string): Promise<Delivery> => {
    const head = sha(label);
    for (const [path, text] of Object.entries({ 'deploy.yaml': deployPolicy(issuer, environment), 'guard.yaml': guardPolicy(issuer) })) {
      await github.putFile({ owner: POLICY_REPO.owner, repo: POLICY_REPO.name, path: `${POLICY_DIR}/${path}`, ref: head, text });
    }
    await github.setBranch({ owner: POLICY_REPO.owner, repo: POLICY_REPO.name, branch: 'main', sha: head });
    return { event: 'push', payload: payloads.push(POLICY_REPO, { ref: 'refs/heads/main', after: head }) };
  };
  return { github, settings, commit, initialPolicies: { 'deploy.yaml': deployPolicy(issuer, 'production'), 'guard.yaml': guardPolicy(issuer) } };
}
