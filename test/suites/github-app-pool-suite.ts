import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeGitHub } from '../support/fake-github.ts';
import type { LogFields, Logger } from '../../src/core/log.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { expectRefusal, freshIssuer, postToken, type BrokerHarness, type StartBroker } from './exchange-suite.ts';
import { ACME_INSTALLATION, githubForm } from './github-exchange-suite.ts';

/** Two grants for acme/api: contents (any App will do) and checks (GitHub lets only the App that made a check run update it). */
function poolPolicies(issuer: TestIssuer): Record<string, string> {
  const header = `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\n`;
  return {
    'github/contents.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/main }\ngrant:\n  github: { repositories: [acme/api], permissions: { contents: read } }\n`,
    'github/checks.yaml': `${header}match: { repository_id: "734201", ref: refs/heads/checks }\ngrant:\n  github: { repositories: [acme/api], permissions: { checks: write } }\n`,
  };
}

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
      await appA.install(ACME_INSTALLATION);
      await appB.install({ ...ACME_INSTALLATION, id: 6150 });
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
