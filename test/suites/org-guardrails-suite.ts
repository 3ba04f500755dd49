import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeGitHub } from '../support/fake-github.ts';
import { deliveryRequest, payloads, WEBHOOK_SECRET, type Delivery } from '../support/github-webhook-delivery.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { expectRefusal, freshIssuer, postToken, type BrokerHarness, type StartBroker } from './exchange-suite.ts';
import { githubForm } from './github-exchange-suite.ts';

/** Organisations on the fake GitHub: each with one repository holding its own policy, and its `.github` repository. */
const ORGS = {
  acme: { installation: 8101, ownerId: 1200934, repo: { id: 734201, name: 'api' }, dotGithub: 8101_01 },
  globex: { installation: 8102, ownerId: 3300, repo: { id: 880001, name: 'web' }, dotGithub: 8102_01 },
  initech: { installation: 8103, ownerId: 4400, repo: { id: 890001, name: 'tps' }, dotGithub: 8103_01 },
  // The operator pinned .github 8104_01; the one GitHub now has under the name was re-created (another id).
  hooli: { installation: 8104, ownerId: 5500, repo: { id: 900001, name: 'nucleus' }, dotGithub: 8104_02 },
  // The operator pinned account 6600; the account under the name now is another (the organisation was renamed and its name taken).
  umbrella: { installation: 8105, ownerId: 6611, repo: { id: 910001, name: 'hive' }, dotGithub: 8105_01 },
  // Publishes an allow policy among its guardrails: a widening, refused.
  soylent: { installation: 8106, ownerId: 7700, repo: { id: 920001, name: 'green' }, dotGithub: 8106_01 },
  // Publishes no guardrail at all (the directory deleted).
  wayne: { installation: 8107, ownerId: 8800, repo: { id: 930001, name: 'cave' }, dotGithub: 8107_01 },
  // Read while GitHub is rate limiting.
  stark: { installation: 8108, ownerId: 9900, repo: { id: 940001, name: 'suit' }, dotGithub: 8108_01 },
  // Publishes a guardrail that would take the central guardrail's place, in audit mode.
  cyberdyne: { installation: 8109, ownerId: 9911, repo: { id: 950001, name: 'skynet' }, dotGithub: 8109_01 },
  // Adds a guardrail and pushes it.
  tyrell: { installation: 8110, ownerId: 9922, repo: { id: 960001, name: 'nexus' }, dotGithub: 8110_01 },
  // Publishes one guardrail as a file and another as a symlink (which the contents API lists as `symlink`).
  oscorp: { installation: 8111, ownerId: 9933, repo: { id: 970001, name: 'glider' }, dotGithub: 8111_01 },
  // Publishes more policy text than keyway holds in memory for one directory, in files each below the loader's limit.
  lexcorp: { installation: 8112, ownerId: 9944, repo: { id: 980001, name: 'tower' }, dotGithub: 8112_01 },
  // Renames itself (same account, same repositories) while pinned under its old name.
  wonka: { installation: 8113, ownerId: 9955, repo: { id: 990001, name: 'factory' }, dotGithub: 8113_01 },
  // Publishes its guardrail as Hosted-Runners.YAML, a name that ends like a policy file in another case.
  weyland: { installation: 8114, ownerId: 9966, repo: { id: 991001, name: 'nostromo' }, dotGithub: 8114_01 },
  // Publishes two guardrails whose regexes each load alone, and together cost more than one regex at the limit may.
  initrode: { installation: 8115, ownerId: 9977, repo: { id: 992001, name: 'staplers' }, dotGithub: 8115_01 },
  // Publishes two guardrails whose regexes, few and cheap in each, are together more than keyway estimates as they load.
  vandelay: { installation: 8116, ownerId: 9988, repo: { id: 993001, name: 'latex' }, dotGithub: 8116_01 },
} as const;
type Org = keyof typeof ORGS;
const PINS: Record<Org, string> = {
  acme: `acme:${ORGS.acme.ownerId}:${ORGS.acme.dotGithub}`,
  globex: `globex:${ORGS.globex.ownerId}:${ORGS.globex.dotGithub}`,
  initech: `initech:${ORGS.initech.ownerId}:${ORGS.initech.dotGithub}`,
  hooli: `hooli:${ORGS.hooli.ownerId}:810401`,
  umbrella: `umbrella:6600:${ORGS.umbrella.dotGithub}`,
  soylent: `soylent:${ORGS.soylent.ownerId}:${ORGS.soylent.dotGithub}`,
  wayne: `wayne:${ORGS.wayne.ownerId}:${ORGS.wayne.dotGithub}`,
  stark: `stark:${ORGS.stark.ownerId}:${ORGS.stark.dotGithub}`,
  cyberdyne: `cyberdyne:${ORGS.cyberdyne.ownerId}:${ORGS.cyberdyne.dotGithub}`,
  tyrell: `tyrell:${ORGS.tyrell.ownerId}:${ORGS.tyrell.dotGithub}`,
  oscorp: `oscorp:${ORGS.oscorp.ownerId}:${ORGS.oscorp.dotGithub}`,
  lexcorp: `lexcorp:${ORGS.lexcorp.ownerId}:${ORGS.lexcorp.dotGithub}`,
  wonka: `wonka:${ORGS.wonka.ownerId}:${ORGS.wonka.dotGithub}`,
  weyland: `weyland:${ORGS.weyland.ownerId}:${ORGS.weyland.dotGithub}`,
  initrode: `initrode:${ORGS.initrode.ownerId}:${ORGS.initrode.dotGithub}`,
  vandelay: `vandelay:${ORGS.vandelay.ownerId}:${ORGS.vandelay.dotGithub}`,
};

/** A pull request's commit on the fake GitHub. */
const sha = (label: string): string =>
  Array.from(new TextEncoder().encode(label.padEnd(20, '.').slice(0, 20)), (byte) => byte.toString(16).padStart(2, '0')).join('');

interface CheckRunBody {
  name: string;
  head_sha: string;
  conclusion: string;
  output: { title: string; summary: string; annotations: { path: string; start_line: number; annotation_level: string; message: string }[] };
}

/**
 * Organisation guardrails (`keyway/guardrails/*.yaml` in `<org>/.github`, KEYWAY_REPOSITORY_POLICY_ORG_GUARDRAILS) against the
 * real broker and the fake GitHub API on 127.0.0.1: they hold for that organisation's repository-owned policies on top of the
 * central guardrails, for no other organisation, only from the pinned repository, and fail closed. Runs on Node and in workerd.
 */
export function orgGuardrailsSuite(runtime: string, start: StartBroker, issuerBase: () => string, githubBase: () => string): void {
  describe(`organisation guardrails on ${runtime}: narrowing only, per organisation, pinned by id, fail closed`, () => {
    let broker: BrokerHarness;
    let issuer: TestIssuer;
    let github: FakeGitHub;

    const header = (): string => `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\n`;
    /** A repository's own policy for its main branch (`owner`: the organisation's name now). */
    const ownPolicy = (org: Org, owner: string = org): string =>
      `${header()}match: { repository_id: "${ORGS[org].repo.id}", ref: refs/heads/main }\n` +
      `grant:\n  github: { repositories: [${owner}/${ORGS[org].repo.name}], permissions: { contents: read } }\n`;
    const putGuardrail = (org: Org, name: string, text: string) => github.putFile({ owner: org, repo: '.github', path: `keyway/guardrails/${name}`, text });
    /** Self-hosted runners are refused: a required pin, written as a deny. */
    const hostedOnly = (): string => `${header()}effect: deny\nmatch:\n  runner_environment: { not: github-hosted }\n`;

    beforeAll(async () => {
      issuer = freshIssuer(issuerBase(), 'org-guardrails');
      github = await FakeGitHub.create(githubBase());
      for (const [org, spec] of Object.entries(ORGS)) {
        await github.install({
          id: spec.installation,
          owner: org,
          ownerId: spec.ownerId,
          repositories: [spec.repo, { id: spec.dotGithub, name: '.github' }],
          permissions: { contents: 'write', metadata: 'read', checks: 'write' },
        });
        await github.putFile({ owner: org, repo: spec.repo.name, path: '.github/keyway/release.yaml', text: ownPolicy(org as Org) });
      }
      await putGuardrail('acme', 'hosted-runners.yaml', hostedOnly());
      // globex denies every main-branch job: nothing of it may reach acme.
      await putGuardrail('globex', 'freeze.yaml', `${header()}effect: deny\nmatch: { ref: refs/heads/main }\n`);
      await putGuardrail('hooli', 'hosted-runners.yaml', hostedOnly());
      await putGuardrail('umbrella', 'hosted-runners.yaml', hostedOnly());
      // initech's guardrail (line 4) names a field the schema does not have.
      await putGuardrail('initech', 'hosted-runners.yaml', `${header()}effect: deny\nmatch: { runner_environment: { not: github-hosted } }\nlifetime: 5m\n`);
      await putGuardrail('stark', 'hosted-runners.yaml', hostedOnly());
      await putGuardrail('tyrell', 'hosted-runners.yaml', hostedOnly());
      await putGuardrail('wonka', 'hosted-runners.yaml', hostedOnly());
      await putGuardrail('weyland', 'Hosted-Runners.YAML', hostedOnly());
      // Each priced just under the limit one regex is held to: a branch of x's ending in `!` takes each some 20 ms on Node.
      for (const k of [14, 13])
        await putGuardrail('initrode', `dear-${k}.yaml`, `${header()}effect: deny\nmatch: { ref: { regex: "x{0,${k}}[^y]*[^y]*y" } }\n`);
      // Each denies branch names none of vandelay's jobs uses: 16 regexes and 17, each file within what one may write, 33 together.
      for (const [name, count] of [
        ['a', 16],
        ['b', 17],
      ] as const) {
        const regexes = Array.from({ length: count }, (_, n) => `{ regex: "refs/heads/${name}${n}-[0-9]+" }`).join(', ');
        await putGuardrail('vandelay', `${name}.yaml`, `${header()}effect: deny\nmatch: { ref: [${regexes}] }\n`);
      }
      await putGuardrail('oscorp', 'freeze-dev.yaml', `${header()}effect: deny\nmatch: { ref: refs/heads/dev }\n`);
      await github.putFile({ owner: 'oscorp', repo: '.github', path: 'keyway/guardrails/hosted-runners.yaml', text: hostedOnly(), symlink: true });
      // 47 guardrails of 180 KiB each (a comment pads them), each within what the GitHub client reads for one answer, 8.3 MiB together.
      const padded = `${hostedOnly()}# ${'x'.repeat(180 * 1024 - hostedOnly().length - 3)}\n`;
      for (let i = 0; i < 47; i += 1) await putGuardrail('lexcorp', `g${String(i).padStart(2, '0')}.yaml`, padded);
      await putGuardrail(
        'cyberdyne',
        'guard.yaml',
        `${header()}id: guard\neffect: deny\nmode: audit\nmatch:\n  event_name: [pull_request_target, workflow_run]\n`,
      );
      await putGuardrail('soylent', 'hosted-runners.yaml', hostedOnly());
      await putGuardrail(
        'soylent',
        'prt.yaml',
        `${header()}match: { event_name: pull_request_target }\ngrant:\n  github: { repositories: [soylent/green], permissions: { contents: read } }\n`,
      );
      const guard = `${header()}effect: deny\nmatch:\n  event_name: [pull_request_target, workflow_run]\n`;
      broker = await start(
        { 'guard.yaml': guard },
        {
          settings: {
            ...github.settings,
            KEYWAY_REPOSITORY_POLICY_ORG_GUARDRAILS: Object.values(PINS).join(','),
            KEYWAY_GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
          },
        },
      );
    });
    afterAll(() => broker.close());

    // Fetches are budgeted per verified caller: each test is a caller of its own.
    let caller = 0;
    beforeEach(() => {
      caller += 1;
    });
    const repositoryUrl = (org: Org, owner: string = org): string => `${new URL(github.apiUrl).origin}/${owner}/${ORGS[org].repo.name}`;
    /** An exchange for `org`'s repository policy, by a pipeline of that repository (`owner`: the organisation's name now). */
    const ask = async (org: Org, overrides: Record<string, unknown> = {}, owner: string = org) => {
      const { repo, ownerId } = ORGS[org];
      const claims = ciClaims(issuer.url, broker.issuer, {
        sub: `repo:${owner}/${repo.name}:ref:refs/heads/main:org-${caller}`,
        repository: `${owner}/${repo.name}`,
        repository_id: String(repo.id),
        repository_owner: owner,
        repository_owner_id: String(ownerId),
        ...overrides,
      });
      return postToken(broker, githubForm(await issuer.sign(claims), { scope: 'policy:release', resource: repositoryUrl(org, owner) }));
    };
    const guardrailReads = async (org: Org) =>
      (await github.calls()).filter((call) => call.path.startsWith(`/repositories/${ORGS[org].dotGithub}/contents/keyway/guardrails`)).length;
    const tokenRequests = async () => (await github.calls()).filter((call) => call.path.endsWith('/access_tokens') && call.status === 201).length;

    it("denies a repository-owned policy's grant when its organisation's guardrail matches, and grants when none does", async () => {
      const granted = await ask('acme');
      expect(granted).toMatchObject({ status: 200, body: { scope: 'contents:read metadata:read' } });
      expect(await broker.auditEvent(granted.body['audit_event_id'] as string)).toMatchObject({
        reason: 'granted',
        policy: { granted_by: 'acme/api/.github/keyway/release' },
      });
      const before = await tokenRequests();
      const refused = await ask('acme', { runner_environment: 'self-hosted' });
      const event = await expectRefusal(broker, refused, { error: 'invalid_request', reason: 'denied_by_policy' });
      expect(event.policy).toMatchObject({ denied_by: ['acme/.github/keyway/guardrails/hosted-runners'] });
      // Refused before GitHub minted anything: the only token asked for since is none.
      expect(await tokenRequests()).toBe(before);
    });

    it("cannot relax a central guardrail: it still holds beside the organisation's, and a guardrail that would take its id is refused", async () => {
      const refused = await ask('acme', { event_name: 'pull_request_target' });
      const event = await expectRefusal(broker, refused, { error: 'invalid_request', reason: 'denied_by_policy' });
      expect(event.policy).toMatchObject({ denied_by: ['guard'] });
      // cyberdyne's guardrail names itself `guard` in audit mode: refused, and with it every policy of cyberdyne.
      const shadowed = await ask('cyberdyne');
      const unusable = await expectRefusal(broker, shadowed, { status: 503, error: 'temporarily_unavailable', reason: 'org_guardrails_unusable' });
      expect(unusable.detail).toMatch(/takes its id from its path: remove id/);
    });

    it("applies an organisation's guardrails to its own repositories only: globex's freeze holds for globex, not for acme", async () => {
      const frozen = await ask('globex');
      const event = await expectRefusal(broker, frozen, { error: 'invalid_request', reason: 'denied_by_policy' });
      expect(event.policy).toMatchObject({ denied_by: ['globex/.github/keyway/guardrails/freeze'] });
      const acme = await ask('acme');
      expect(acme.status).toBe(200);
      const record = await broker.auditEvent(acme.body['audit_event_id'] as string);
      expect(record?.policy?.denied_by ?? []).toEqual([]);
      expect(record?.policy?.candidates).not.toContain('globex/.github/keyway/guardrails/freeze');
    });

    it('refuses every policy of an organisation whose guardrail does not load, with the problem in the audit record, and remembers it', async () => {
      const reads = await guardrailReads('initech');
      for (let i = 0; i < 2; i += 1) {
        const refused = await ask('initech');
        const event = await expectRefusal(broker, refused, { status: 503, error: 'temporarily_unavailable', reason: 'org_guardrails_unusable' });
        expect(event.decision).toBe('error');
        expect(event.detail).toMatch(/initech\/\.github\/keyway\/guardrails.*does not load.*lifetime/);
      }
      // Listed and read once (the directory, the file), then answered from the cache.
      expect((await guardrailReads('initech')) - reads).toBe(2);
    });

    it('refuses every policy of an organisation that publishes an allow policy as a guardrail, or no guardrail at all', async () => {
      const widened = await ask('soylent');
      const event = await expectRefusal(broker, widened, { status: 503, error: 'temporarily_unavailable', reason: 'org_guardrails_unusable' });
      expect(event.detail).toMatch(/prt\.yaml.*an organisation's guardrail is a deny policy/);
      const missing = await ask('wayne');
      const none = await expectRefusal(broker, missing, { status: 503, error: 'temporarily_unavailable', reason: 'org_guardrails_unusable' });
      expect(none.detail).toMatch(/wayne\/\.github\/keyway\/guardrails: no guardrail there/);
    });

    it('refuses every policy of an organisation with a guardrail that is a symlink: it is not skipped, which would drop its deny', async () => {
      const refused = await ask('oscorp', { runner_environment: 'self-hosted' });
      const event = await expectRefusal(broker, refused, { status: 503, error: 'temporarily_unavailable', reason: 'org_guardrails_unusable' });
      expect(event.detail).toMatch(/oscorp\/\.github\/keyway\/guardrails: keyway\/guardrails\/hosted-runners\.yaml is a symlink/);
    });

    it('refuses every policy of an organisation with a guardrail named .YAML: it is not passed over, which would drop its deny', async () => {
      const refused = await ask('weyland', { runner_environment: 'self-hosted' });
      const event = await expectRefusal(broker, refused, { status: 503, error: 'temporarily_unavailable', reason: 'org_guardrails_unusable' });
      expect(event.detail).toMatch(
        /weyland\/\.github\/keyway\/guardrails: keyway\/guardrails\/Hosted-Runners\.YAML: a policy file's name ends in \.yaml or \.yml, in lower case/,
      );
    });

    it('refuses every policy of an organisation whose guardrails hold more text than keyway reads for one directory', async () => {
      const refused = await ask('lexcorp');
      const event = await expectRefusal(broker, refused, { status: 503, error: 'temporarily_unavailable', reason: 'org_guardrails_unusable' });
      expect(event.detail).toMatch(/lexcorp\/\.github\/keyway\/guardrails: the policy files under keyway\/guardrails hold more than 8388608 characters/);
    });

    it('refuses every policy of an organisation whose guardrails each load but together hold more regex work than one regex at the limit', async () => {
      const refused = await ask('initrode');
      const event = await expectRefusal(broker, refused, { status: 503, error: 'temporarily_unavailable', reason: 'org_guardrails_unusable' });
      expect(event.detail).toMatch(
        /dear-14\.yaml.*the regexes of the organisation's guardrails together can try a value of 1024 characters in \d+ ways, more than the 16810000/,
      );
      expect(event.detail).not.toMatch(/the regexes of this policy/);
    });

    it("refuses every policy of an organisation whose guardrails together write more regexes than keyway estimates as they load, though each file's are few", async () => {
      const refused = await ask('vandelay');
      const event = await expectRefusal(broker, refused, { status: 503, error: 'temporarily_unavailable', reason: 'org_guardrails_unusable' });
      expect(event.detail).toMatch(
        /vandelay\/\.github\/keyway\/guardrails\/b\.yaml:4:\d+ the regexes of the organisation's guardrails are 33, of \d+ characters together: more than the 32 regexes or 2048 characters/,
      );
    });

    it('does not remember GitHub failing as broken guardrails: refused while it fails, granted once it answers', async () => {
      await github.setRateLimited(true);
      let limited;
      try {
        limited = await ask('stark');
      } finally {
        await github.setRateLimited(false);
      }
      const event = await expectRefusal(broker, limited, { status: 503, error: 'temporarily_unavailable', reason: 'github_unavailable' });
      expect(event.detail).toMatch(/^organisation guardrails stark\/\.github\/keyway\/guardrails: /);
      expect((await ask('stark')).status).toBe(200);
    });

    it('ignores a .github repository under the pinned name with another id: the organisation is refused, nothing of it is read', async () => {
      const reads = await guardrailReads('hooli');
      const refused = await ask('hooli');
      const event = await expectRefusal(broker, refused, { status: 503, error: 'temporarily_unavailable', reason: 'org_guardrails_unusable' });
      expect(event.detail).toMatch(/hooli\/\.github\/keyway\/guardrails/);
      expect(await guardrailReads('hooli')).toBe(reads);
    });

    it('ignores an organisation under the pinned name with another account id: refused, nothing of it is read', async () => {
      const reads = await guardrailReads('umbrella');
      const refused = await ask('umbrella');
      const event = await expectRefusal(broker, refused, { status: 503, error: 'temporarily_unavailable', reason: 'org_guardrails_unusable' });
      expect(event.detail).toMatch(/umbrella is the account 6611, not 6600/);
      expect(await guardrailReads('umbrella')).toBe(reads);
    });

    const deliver = async (delivery: Delivery) => {
      const { init } = await deliveryRequest(delivery);
      const response = await broker.request('/webhooks/github', init);
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };

    it('keeps applying the guardrails of an organisation that renamed itself: the pin is its account id and its .github id, not its name', async () => {
      const before = await expectRefusal(broker, await ask('wonka', { runner_environment: 'self-hosted' }), {
        error: 'invalid_request',
        reason: 'denied_by_policy',
      });
      expect(before.policy).toMatchObject({ denied_by: ['wonka/.github/keyway/guardrails/hosted-runners'] });
      // wonka becomes wonka-industries: the same installation, account and repositories, under the new name only.
      const { installation, ownerId, repo, dotGithub } = ORGS.wonka;
      await github.install({
        id: installation,
        owner: 'wonka-industries',
        ownerId,
        repositories: [repo, { id: dotGithub, name: '.github' }],
        permissions: { contents: 'write', metadata: 'read', checks: 'write' },
      });
      await github.putFile({ owner: 'wonka-industries', repo: repo.name, path: '.github/keyway/release.yaml', text: ownPolicy('wonka', 'wonka-industries') });
      await github.putFile({ owner: 'wonka-industries', repo: '.github', path: 'keyway/guardrails/hosted-runners.yaml', text: hostedOnly() });
      const after = await expectRefusal(broker, await ask('wonka', { runner_environment: 'self-hosted' }, 'wonka-industries'), {
        error: 'invalid_request',
        reason: 'denied_by_policy',
      });
      expect(after.policy).toMatchObject({ denied_by: ['wonka-industries/.github/keyway/guardrails/hosted-runners'] });
      expect((await ask('wonka', {}, 'wonka-industries')).status).toBe(200);
      // A push to its .github under the new name is the pinned repository's: its guardrails are read again.
      const push: Delivery = {
        event: 'push',
        payload: payloads.push({ owner: 'wonka-industries', name: '.github', id: dotGithub }, { ref: 'refs/heads/main', after: sha('wonka-push') }),
      };
      expect(await deliver(push)).toMatchObject({ status: 200, body: { status: 'handled' } });
    });

    it("reads an organisation's guardrails again after a push to its pinned .github, not one under its name with another id", async () => {
      expect((await ask('tyrell')).status).toBe(200);
      await putGuardrail('tyrell', 'freeze.yaml', `${header()}effect: deny\nmatch: { ref: refs/heads/main }\n`);
      const push = (id: number): Delivery => ({
        event: 'push',
        payload: payloads.push({ owner: 'tyrell', name: '.github', id }, { ref: 'refs/heads/main', after: sha('tyrell-freeze') }),
      });
      // Cached, and a push from another repository under the name changes nothing.
      const refused = await deliver(push(666));
      expect(refused).toMatchObject({ status: 200, body: { status: 'ignored' } });
      expect(String(refused.body['detail'])).toMatch(/has id 666, but the organisation's guardrail repository's is 811001/);
      expect((await ask('tyrell')).status).toBe(200);
      expect(await deliver(push(ORGS.tyrell.dotGithub))).toMatchObject({ status: 200, body: { status: 'handled' } });
      const frozen = await expectRefusal(broker, await ask('tyrell'), { error: 'invalid_request', reason: 'denied_by_policy' });
      expect(frozen.policy).toMatchObject({ denied_by: ['tyrell/.github/keyway/guardrails/freeze'] });
    });

    describe('review of a change to the guardrails', () => {
      /** The check runs published on acme/.github, oldest first, each as it stands now (created, then completed). */
      const checkRuns = async (): Promise<CheckRunBody[]> =>
        (await github.checkRuns()).filter((run) => run.repositoryId === ORGS.acme.dotGithub) as unknown as CheckRunBody[];
      const put = (ref: string, name: string, text: string) => github.putFile({ owner: 'acme', repo: '.github', path: `keyway/guardrails/${name}`, ref, text });
      const pullRequest = (
        number: number,
        base: string,
        head: string,
        { id = ORGS.acme.dotGithub, author = 'wile', ...by }: { id?: number; author?: string; action?: string; sender?: string } = {},
      ): Delivery => ({
        event: 'pull_request',
        payload: payloads.pullRequest({ owner: 'acme', name: '.github', id }, { number, baseSha: base, headSha: head, author, ...by }),
      });
      beforeAll(async () => {
        // wile may write to acme/.github; olivia owns it (admin).
        await github.setRole({ owner: 'acme', repo: '.github', username: 'wile', role: 'write' });
        await github.setRole({ owner: 'acme', repo: '.github', username: 'olivia', role: 'admin' });
      });

      it('publishes a check run on a pull request to the pinned .github: a widening fails on its line, a new deny passes and shows in the diff', async () => {
        const base = sha('guard-base');
        await put(base, 'hosted-runners.yaml', hostedOnly());
        const widening = sha('guard-widen');
        await put(widening, 'hosted-runners.yaml', hostedOnly());
        // Line 4 is the grant of an allow policy: a guardrail can only narrow.
        await put(
          widening,
          'prt.yaml',
          `${header()}match: { event_name: pull_request_target }\ngrant:\n  github: { repositories: [acme/api], permissions: { contents: read } }\n`,
        );
        const before = (await checkRuns()).length;
        expect(await deliver(pullRequest(51, base, widening))).toMatchObject({ status: 200, body: { status: 'handled' } });
        const [failed] = (await checkRuns()).slice(before) as [CheckRunBody];
        expect(failed).toMatchObject({ name: 'keyway organisation guardrail review', head_sha: widening, conclusion: 'failure' });
        expect(failed.output.annotations).toContainEqual(
          expect.objectContaining({
            path: 'keyway/guardrails/prt.yaml',
            start_line: 4,
            annotation_level: 'failure',
            message: expect.stringMatching(/an organisation's guardrail is a deny policy/),
          }),
        );
        const narrowing = sha('guard-narrow');
        await put(narrowing, 'hosted-runners.yaml', hostedOnly());
        await put(narrowing, 'no-dispatch.yaml', `${header()}effect: deny\nmatch: { event_name: workflow_dispatch }\n`);
        expect(await deliver(pullRequest(52, base, narrowing))).toMatchObject({ status: 200, body: { status: 'handled' } });
        const [passed] = (await checkRuns()).slice(before + 1) as [CheckRunBody];
        expect(passed).toMatchObject({ name: 'keyway organisation guardrail review', head_sha: narrowing, conclusion: 'success' });
        expect(passed.output.summary).toMatch(/\| `no-dispatch` \| \*\*added/);
        // wile may write, but the replay shows every acme repository's exchanges: for admins only.
        expect(passed.output.summary).toContain('No impact replay');
        expect(passed.output.summary).toContain('whose author, and whoever last pushed to or reopened it, has admin access');
      });

      it("replays the organisation's audited exchanges for an admin's pull request: what a new guardrail denies, what a removed one lets through", async () => {
        const dispatched = await ask('acme', { event_name: 'workflow_dispatch' });
        expect(dispatched.status).toBe(200);
        const selfHosted = await ask('acme', { runner_environment: 'self-hosted' });
        expect(selfHosted.status).toBe(400);
        // Another organisation's exchange, granted: none of acme's, never replayed for it.
        const stark = await ask('stark', { event_name: 'workflow_dispatch' });
        expect(stark.status).toBe(200);
        const base = sha('replay-base');
        await put(base, 'hosted-runners.yaml', hostedOnly());
        // The head drops hosted-runners and adds no-dispatch.
        const head = sha('replay-head');
        await put(head, 'no-dispatch.yaml', `${header()}effect: deny\nmatch: { event_name: workflow_dispatch }\n`);
        const before = (await checkRuns()).length;
        expect(await deliver(pullRequest(54, base, head, { author: 'olivia' }))).toMatchObject({ status: 200, body: { status: 'handled' } });
        const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
        expect(run).toMatchObject({ name: 'keyway organisation guardrail review', head_sha: head, conclusion: 'success' });
        expect(run.output.title).toMatch(/^would newly allow [1-9]\d*, newly deny [1-9]\d*/);
        const [allowedTable, deniedTable] = run.output.summary.split('**Newly denied**');
        expect(allowedTable).toContain(`\`${selfHosted.body['audit_event_id'] as string}\``);
        expect(deniedTable).toContain(`\`${dispatched.body['audit_event_id'] as string}\``);
        expect(run.output.summary).not.toContain(stark.body['audit_event_id'] as string);
      });

      it("withholds the replay from an admin's pull request that a writer pushed to or reopened: each who shaped its head must be an admin", async () => {
        const dispatched = await ask('acme', { event_name: 'workflow_dispatch' });
        expect(dispatched.status).toBe(200);
        const base = sha('shaped-base');
        await put(base, 'hosted-runners.yaml', hostedOnly());
        // wile (write) pushes a probe guardrail onto olivia's (admin) branch, or reopens her pull request with it.
        const head = sha('shaped-head');
        await put(head, 'hosted-runners.yaml', hostedOnly());
        await put(head, 'probe.yaml', `${header()}effect: deny\nmatch: { event_name: workflow_dispatch }\n`);
        const review = async (action: string, sender: string): Promise<CheckRunBody> => {
          const before = (await checkRuns()).length;
          expect(await deliver(pullRequest(56, base, head, { author: 'olivia', action, sender }))).toMatchObject({ status: 200, body: { status: 'handled' } });
          const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
          expect(run).toMatchObject({ name: 'keyway organisation guardrail review', head_sha: head, conclusion: 'success' });
          return run;
        };
        for (const [action, sender] of [
          ['synchronize', 'wile'],
          ['reopened', 'wile'],
          // A sender GitHub does not know (a deleted account) has no role: withheld too.
          ['synchronize', 'ghost'],
        ] as const) {
          const withheld = await review(action, sender);
          expect(withheld.output.summary).toContain('No impact replay');
          expect(withheld.output.title).not.toContain('would newly');
          expect(withheld.output.summary).not.toContain(dispatched.body['audit_event_id'] as string);
        }
        // The same head pushed by olivia herself: her replay.
        const replayed = await review('synchronize', 'olivia');
        expect(replayed.output.title).toMatch(/newly deny [1-9]\d*/);
        expect(replayed.output.summary).toContain(dispatched.body['audit_event_id'] as string);
      });

      it('fails the review of a change that removes every guardrail: the organisation would be refused', async () => {
        const base = sha('empty-base');
        await put(base, 'hosted-runners.yaml', hostedOnly());
        const head = sha('empty-head');
        const before = (await checkRuns()).length;
        expect(await deliver(pullRequest(55, base, head))).toMatchObject({ status: 200, body: { status: 'handled' } });
        const [run] = (await checkRuns()).slice(before) as [CheckRunBody];
        expect(run).toMatchObject({ name: 'keyway organisation guardrail review', head_sha: head, conclusion: 'failure' });
        expect(run.output.summary).toMatch(/keyway refuses every repository-owned policy of acme \(fail closed\)/);
      });

      it('reviews nothing of a .github repository under the pinned name with another id', async () => {
        const base = sha('other-base');
        const head = sha('other-head');
        await put(head, 'prt.yaml', `${header()}effect: deny\nmatch: { event_name: pull_request_target }\n`);
        const before = (await checkRuns()).length;
        const refused = await deliver(pullRequest(53, base, head, { id: 666, author: 'olivia' }));
        expect(refused).toMatchObject({ status: 200, body: { status: 'ignored' } });
        expect(String(refused.body['detail'])).toMatch(/has id 666, but the organisation's guardrail repository's is 810101/);
        expect((await checkRuns()).length).toBe(before);
      });
    });
  });
}
