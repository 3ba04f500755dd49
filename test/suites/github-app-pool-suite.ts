import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeGitHub } from '../support/fake-github.ts';
import type { LogFields, Logger } from '../../src/core/log.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { expectRefusal, freshIssuer, postToken, type BrokerHarness, type StartBroker } from './exchange-suite.ts';
import { ACME_INSTALLATION, githubForm } from './github-exchange-suite.ts';

/**
 * Three grants for acme/api: contents (any App will do), checks (GitHub lets only the App that made a check run update it)
 * and commit statuses (never the primary App's, which writes keyway's policy reviews).
 */
function poolPolicies(issuer: TestIssuer): Record<string, string> {
  const header = `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\n`;
  return {
    'github/contents.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/main }\ngrant:\n  github: { repositories: [acme/api], permissions: { contents: read } }\n`,
    'github/checks.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/checks }\ngrant:\n  github: { repositories: [acme/api], permissions: { checks: write } }\n`,
    'github/statuses.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/statuses }\ngrant:\n  github: { repositories: [acme/api], permissions: { checks: read, statuses: write } }\n`,
    'github/single.yaml': `${header}single_use: true\nmatch: { repository_id: "734201", ref: refs/heads/single }\ngrant:\n  github: { repositories: [acme/api], permissions: { contents: read } }\n`,
  };
}

/** The installation both Apps have on acme, with commit statuses too. */
const INSTALLATION = { ...ACME_INSTALLATION, permissions: { ...ACME_INSTALLATION.permissions, statuses: 'write' } };

/** A pool of GitHub Apps against the fake GitHub API's shared base, each App with its own rate limit. Runs on Node and inside workerd. */
export function githubAppPoolSuite(runtime: string, start: StartBroker, issuerBase: () => string, githubBase: () => string): void {
  describe(`a pool of GitHub Apps on ${runtime}`, () => {
    let issuer: TestIssuer;
    let appA: FakeGitHub;
    let appB: FakeGitHub;
    let broker: BrokerHarness | undefined;
    /** How far the broker's clock runs ahead of the real one, to reach an App's reset without waiting for it. */
    let clockAheadMs = 0;
    /** What the broker logged, line by line. */
    const logged: { level: string; message: string; fields: LogFields | undefined }[] = [];
    const log: Logger = {
      info: (message, fields) => logged.push({ level: 'info', message, fields }),
      warn: (message, fields) => logged.push({ level: 'warn', message, fields }),
      error: (message, fields) => logged.push({ level: 'error', message, fields }),
    };

    beforeAll(async () => {
      issuer = freshIssuer(issuerBase(), 'github-pool');
      appA = await FakeGitHub.create(githubBase());
      appB = await FakeGitHub.create(githubBase());
      await appA.install(INSTALLATION);
      await appB.install({ ...INSTALLATION, id: 6150 });
    });
    afterEach(async () => {
      await broker?.close();
      broker = undefined;
      clockAheadMs = 0;
      logged.length = 0;
    });

    const pool = (second: Record<string, string>) =>
      start(poolPolicies(issuer), {
        settings: {
          KEYWAY_GITHUB_APP_ID: appA.appId,
          KEYWAY_GITHUB_APP_PRIVATE_KEY: appA.privateKeyPem,
          KEYWAY_GITHUB_API_URL: appA.sharedApiUrl,
          ...second,
        },
        now: () => Date.now() + clockAheadMs,
        log,
      });
    const mint = async (ref = 'refs/heads/main') => postToken(broker!, githubForm(await issuer.sign(ciClaims(issuer.url, broker!.issuer, { ref }))));
    /** The App that minted a granted exchange's token, by its audit record. */
    const mintedBy = async (ref = 'refs/heads/main'): Promise<string | undefined> => {
      const granted = await mint(ref);
      expect(granted.status, JSON.stringify(granted.body)).toBe(200);
      return (await broker!.auditEvent(granted.body['audit_event_id'] as string))?.github?.app_id;
    };
    const tokenRequests = async (app: FakeGitHub) => (await app.calls()).filter((call) => call.path.endsWith('/access_tokens')).length;

    it('mints from the App with the most headroom, as GitHub last reported it', async () => {
      await appA.setQuota({ remaining: 100, resetInSeconds: 3600 });
      await appB.setQuota({ remaining: 4000, resetInSeconds: 3600 });
      broker = await pool(appB.poolSettings(2));
      // Nothing known yet: the first App; then the one not heard from; then the one with the most left.
      expect([await mintedBy(), await mintedBy(), await mintedBy(), await mintedBy()]).toEqual([appA.appId, appB.appId, appB.appId, appB.appId]);
      // The logs show each App's quota as GitHub reported it.
      const quotas = logged.filter((line) => line.message === 'github app quota').map((line) => [line.fields?.['app_id'], line.fields?.['remaining']]);
      expect(quotas[0]).toEqual([appA.appId, 98]);
      expect(quotas.at(-1)?.[0]).toBe(appB.appId);
      expect(quotas.at(-1)?.[1]).toBeLessThan(4000);
      // On Node, /metrics shows them too (Workers keep no metrics: the logs carry the same facts).
      if (runtime === 'Node') {
        const metrics = await (await broker.request('/metrics')).text();
        expect(metrics).toContain(`keyway_github_app_rate_limit_remaining{app="${appA.appId}"} ${quotas[0]?.[1]}`);
        expect(metrics).toContain(`keyway_github_app_rate_limit_remaining{app="${appB.appId}"} ${quotas.at(-1)?.[1]}`);
      }
    });

    it('backs off an App GitHub rate limits and retries another within the request, then returns to it once its window resets', async () => {
      await appA.setQuota({ remaining: 100, resetInSeconds: 3600 });
      await appB.setQuota({ remaining: 4000, resetInSeconds: 3600 });
      broker = await pool(appB.poolSettings(2));
      expect([await mintedBy(), await mintedBy()]).toEqual([appA.appId, appB.appId]);

      await appB.setQuota({ remaining: 0, resetInSeconds: 30 });
      const bTried = await (async () => (await appB.calls()).length)();
      expect(await mintedBy()).toBe(appA.appId);
      const [refused] = (await appB.calls()).slice(bTried);
      expect(refused).toMatchObject({ status: 403 });
      // Left out while it is limited: asked nothing more.
      const bAfter = (await appB.calls()).length;
      expect(await mintedBy()).toBe(appA.appId);
      expect((await appB.calls()).length).toBe(bAfter);

      // Its window resets: it has the most headroom again.
      await appB.setQuota({ remaining: 5000, resetInSeconds: 3600 });
      clockAheadMs = 31_000;
      expect(await mintedBy()).toBe(appB.appId);
    });

    it('keeps checks tokens on the primary App, even with less headroom, and refuses rather than switch when it is limited', async () => {
      await appA.setQuota({ remaining: 50, resetInSeconds: 3600 });
      await appB.setQuota({ remaining: 4000, resetInSeconds: 3600 });
      broker = await pool(appB.poolSettings(2));
      expect([await mintedBy(), await mintedBy()]).toEqual([appA.appId, appB.appId]);
      expect(await mintedBy('refs/heads/checks')).toBe(appA.appId);

      await appA.setQuota({ remaining: 0, resetInSeconds: 3600 });
      const before = await tokenRequests(appB);
      const refused = await mint('refs/heads/checks');
      await expectRefusal(broker, refused, { status: 503, error: 'temporarily_unavailable', reason: 'github_unavailable' });
      expect(await tokenRequests(appB)).toBe(before);
    });

    it("never mints a token that sets commit statuses from the primary App: its status would pass for keyway's policy review", async () => {
      await appA.setQuota({ remaining: 4000, resetInSeconds: 3600 });
      await appB.setQuota({ remaining: 100, resetInSeconds: 3600 });
      broker = await pool(appB.poolSettings(2));
      // Nothing known of either App yet, and then the primary with the most headroom: the second App all the same.
      const granted = await mint('refs/heads/statuses');
      expect(granted.status, JSON.stringify(granted.body)).toBe(200);
      expect((await broker.auditEvent(granted.body['audit_event_id'] as string))?.github?.app_id).toBe(appB.appId);
      expect(await mintedBy('refs/heads/statuses')).toBe(appB.appId);
      expect(await mintedBy()).toBe(appA.appId);
      // GitHub attributes a status to the App whose token set it, so a required check pinned to the App that writes the
      // review is not satisfied by one the job names after it.
      const sha = 'a'.repeat(40);
      expect(await appB.setCommitStatus(granted.body['access_token'] as string, 'acme/api', sha, { state: 'success', context: 'keyway policy review' })).toBe(
        201,
      );
      expect(await appB.statuses()).toEqual([{ repository: 'acme/api', sha, state: 'success', context: 'keyway policy review', appId: appB.appId }]);
      expect(await appA.statuses()).toEqual([]);

      // The second App limited: refused, rather than minted by the primary.
      await appB.setQuota({ remaining: 0, resetInSeconds: 3600 });
      const asked = await tokenRequests(appA);
      await expectRefusal(broker, await mint('refs/heads/statuses'), { status: 503, error: 'temporarily_unavailable', reason: 'github_unavailable' });
      const event = await expectRefusal(broker, await mint('refs/heads/statuses'), {
        status: 503,
        error: 'temporarily_unavailable',
        reason: 'github_unavailable',
      });
      expect(event.detail).toContain(
        `every GitHub App but the primary, which writes keyway's policy reviews and so never mints statuses: write, is left out for now: App ${appB.appId} rate limited until`,
      );
      expect(await tokenRequests(appA)).toBe(asked);
      await broker.close();

      // With one App there is no other: it mints them, and a required check pinned to it cannot tell its review from a job's status.
      broker = await start(poolPolicies(issuer), {
        settings: { KEYWAY_GITHUB_APP_ID: appA.appId, KEYWAY_GITHUB_APP_PRIVATE_KEY: appA.privateKeyPem, KEYWAY_GITHUB_API_URL: appA.sharedApiUrl },
      });
      expect(await mintedBy('refs/heads/statuses')).toBe(appA.appId);
    });

    it('leaves a single-use token unused while every App is left out: nothing is asked of GitHub, and the token is granted once its window resets', async () => {
      await appA.setQuota({ remaining: 0, resetInSeconds: 30 });
      broker = await pool({});
      const unavailable = { status: 503, error: 'temporarily_unavailable', reason: 'github_unavailable' } as const;
      // GitHub answers that the App's quota is spent: it is left out until its window resets.
      await expectRefusal(broker, await mint(), unavailable);
      const asked = (await appA.calls()).length;
      const token = await issuer.sign(ciClaims(issuer.url, broker.issuer, { ref: 'refs/heads/single' }));
      const refused = await expectRefusal(broker, await postToken(broker, githubForm(token)), unavailable);
      expect(refused.detail).toContain(`every GitHub App is left out for now: App ${appA.appId} rate limited until`);
      await expectRefusal(broker, await postToken(broker, githubForm(token)), unavailable);
      expect((await appA.calls()).length).toBe(asked);
      // Its window resets: the token, never used, is granted, once.
      await appA.setQuota({ remaining: 5000, resetInSeconds: 3600 });
      clockAheadMs = 31_000;
      const granted = await postToken(broker, githubForm(token));
      expect(granted.status, JSON.stringify(granted.body)).toBe(200);
      await expectRefusal(broker, await postToken(broker, githubForm(token)), { error: 'invalid_request', reason: 'replayed' });
    });

    it('leaves out an App whose id GitHub does not know, and refuses with an audited reason when no App is left', async () => {
      await appA.setQuota({ remaining: 4000, resetInSeconds: 3600 });
      broker = await pool({ KEYWAY_GITHUB_APP_2_ID: '999', KEYWAY_GITHUB_APP_2_PRIVATE_KEY: appB.privateKeyPem });
      // The unknown App is tried once it is the one not heard from, refused (401), and the request goes on with the other.
      expect([await mintedBy(), await mintedBy(), await mintedBy()]).toEqual([appA.appId, appA.appId, appA.appId]);
      expect(
        logged.filter((line) => line.message === 'github app left out').map((line) => [line.level, line.fields?.['app_id'], line.fields?.['why']]),
      ).toEqual([['error', '999', 'key refused by GitHub']]);
      await broker.close();

      broker = await start(poolPolicies(issuer), {
        settings: { KEYWAY_GITHUB_APP_ID: '999', KEYWAY_GITHUB_APP_PRIVATE_KEY: appB.privateKeyPem, KEYWAY_GITHUB_API_URL: appA.sharedApiUrl },
      });
      const refused = await mint();
      const event = await expectRefusal(broker, refused, { status: 503, error: 'temporarily_unavailable', reason: 'github_refused' });
      expect(event.detail).toContain('answered 401: A JSON web token could not be decoded');
    });
  });
}
