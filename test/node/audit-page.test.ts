import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { auditorPolicies, auditorToken } from '../suites/audit-api-suite.ts';
import { exchangeForm, freshIssuer, suitePolicies, type BrokerClient } from '../suites/exchange-suite.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { OWN_URL_ISSUER, testConfig, writeTree } from './node-harness.ts';

/** Debian's Chromium, which .ci/run installs; playwright-core drives it and brings no browser of its own. */
const CHROMIUM = '/usr/bin/chromium';
const HOSTILE_AGENT = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">';

describe('the /audit page in a real browser', () => {
  let broker: NodeBroker;
  let browser: BrowserContext;
  let github: TestIssuer;
  let people: TestIssuer;
  let harness: BrokerClient;
  let token: string;
  const granted: string[] = [];

  beforeAll(async () => {
    github = freshIssuer(inject('testIssuerBase'), 'page-gh');
    people = freshIssuer(inject('testIssuerBase'), 'page-people');
    const policies = (files: Record<string, string>, root?: string) =>
      writeTree(Object.fromEntries(Object.entries(files).map(([path, text]) => [`policies/${path}`, text])), root);
    const root = policies(suitePolicies(github, freshIssuer(inject('testIssuerBase'), 'page-oidc')));
    broker = await startNodeBroker(testConfig(root, { issuer: OWN_URL_ISSUER }), { log: silentLogger });
    // Auditors' tokens have the broker itself as audience, whose port is known once it listens.
    const issuer = broker.config.issuer;
    // carol reads the log and the policies' patterns, so her event view holds the explanation.
    const carol = auditorPolicies(people, issuer)
      ['auditors/alice.yaml']?.replace('alice@acme.dev', 'carol@acme.dev')
      .replace('[audit:read]', '[audit:read, policy:explain]');
    policies({ ...auditorPolicies(people, issuer), 'auditors/carol.yaml': carol ?? '' }, root);
    expect(broker.reloadPolicies()).toMatchObject({ ok: true });

    const post = async (subjectToken: string, userAgent = 'keyway-test') => {
      const response = await fetch(`${broker.url}/token`, {
        method: 'POST',
        body: exchangeForm(subjectToken),
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': userAgent },
      });
      return (await response.json()) as { audit_event_id: string; access_token?: string };
    };
    for (const sha of ['aaa111', 'bbb222', 'ccc333']) granted.push((await post(await github.sign(ciClaims(github.url, issuer, { sha })))).audit_event_id);
    await post(await github.sign(ciClaims(github.url, issuer, { ref: 'refs/heads/feature' })));
    await post(await github.sign(ciClaims(github.url, issuer, { sub: 'repo:evil/x:ref:refs/heads/main' }), { key: 'foreign' }), HOSTILE_AGENT);
    harness = { issuer, request: (path, init) => fetch(`${broker.url}${path}`, init) };
    token = await auditorToken(harness, people);

    browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'keyway-chromium-')), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await broker?.close();
  });

  it('signs a person in, searches, charts, shows an event and its alerts, and escapes what attackers wrote', async () => {
    const page = await browser.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => void dialogs.push(dialog.message()));

    const refused = await page.goto(`${broker.url}/audit`);
    expect(refused?.status()).toBe(401);
    expect(refused?.headers()['content-security-policy']).toContain("default-src 'none'");
    await page.fill('textarea[name=token]', 'not.a.token');
    await page.click('button[type=submit]');
    expect(await page.textContent('[data-testid=problem]')).toContain('not valid');

    await page.fill('textarea[name=token]', token);
    await page.click('button[type=submit]');
    await page.waitForURL(`${broker.url}/audit`);
    expect(await page.textContent('[data-testid=who]')).toMatch(/#alice@acme\.dev$/);
    const cookie = (await browser.cookies(broker.url)).find((candidate) => candidate.name === 'keyway_audit');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict' });

    // Everything so far: three grants to acme/api (and alice's own exchange, and her sign-in's session), one refusal, one forgery, and the refused sign-in.
    const chartCount = async (decision: string) =>
      (
        await page
          .locator(`[data-testid=chart] rect[data-decision=${decision}]`)
          .evaluateAll((rects) => rects.map((rect) => Number(rect.getAttribute('data-count'))))
      ).reduce((a, b) => a + b, 0);
    expect(await chartCount('granted')).toBe(5);
    expect(await chartCount('denied')).toBe(3);
    expect(await page.locator('[data-testid=alerts] tr[data-rule=first_policy_exchange]').count()).toBe(2);

    await page.selectOption('select[name=decision]', 'granted');
    await page.fill('input[name=repository]', 'acme/api');
    await page.click('form.search button[type=submit]');
    await page.waitForURL(/decision=granted/);
    expect(new URL(page.url()).searchParams.get('repository')).toBe('acme/api');
    const rows = page.locator('[data-testid=results] tbody tr');
    expect(await rows.evaluateAll((list) => list.map((row) => row.getAttribute('data-event-id')))).toEqual([...granted].reverse());
    expect(await page.locator('[data-testid=results] tbody .decision').allTextContents()).toEqual(['granted', 'granted', 'granted']);
    expect(await chartCount('granted')).toBe(3);
    expect(await chartCount('denied')).toBe(0);
    expect(await page.inputValue('input[name=repository]')).toBe('acme/api');

    await rows.first().locator('a').click();
    await page.waitForURL(`${broker.url}/audit/events/${granted[2]}`);
    expect(await page.textContent('[data-field=id]')).toBe(granted[2]);
    expect(await page.textContent('[data-claim=sha]')).toBe('ccc333');
    expect(await page.textContent('[data-field="granted by"]')).toBe('deploy/production');

    await page.goto(`${broker.url}/audit?reason=signature_invalid`);
    expect(await page.textContent('[data-testid=results] tbody tr td:nth-child(4)')).toBe('repo:evil/x:ref:refs/heads/main (claimed)');
    await page.locator('[data-testid=results] tbody tr a').first().click();
    await page.waitForURL(/\/audit\/events\//);
    expect(await page.textContent('[data-field="user agent"]')).toBe(HOSTILE_AGENT);
    expect(await page.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned)).toBeUndefined();
    expect(await page.locator('main script, main img').count()).toBe(0);

    await page.goto(`${broker.url}/audit?since=last%20week`);
    expect(await page.textContent('[data-testid=problem]')).toContain('since must be');

    await page.click('header button[type=submit]');
    await page.waitForURL(`${broker.url}/audit/sign-in`);
    const after = await page.goto(`${broker.url}/audit`);
    expect(after?.status()).toBe(401);
    expect(dialogs).toEqual([]);
  }, 60_000);

  it('shows the identity inventory tab: counts per identity, sortable, filterable', async () => {
    const page = await browser.newPage();
    await page.goto(`${broker.url}/audit/sign-in`);
    await page.fill('textarea[name=token]', token);
    await page.click('button[type=submit]');
    await page.waitForURL(`${broker.url}/audit`);
    await page.click('header nav a[href="/audit/inventory"]');
    await page.waitForURL(`${broker.url}/audit/inventory`);
    const row = page.locator('[data-testid=inventory] tr[data-identity="acme/api"]');
    expect(await row.locator('[data-field=grants]').textContent()).toBe('3');
    expect(await row.locator('[data-field=denials]').textContent()).toBe('1');
    expect(await row.locator('[data-field=granted]').textContent()).toContain('deploy:write ×3');
    expect(await page.locator('[data-testid=inventory] tr[data-identity="alice@acme.dev"] [data-field=grants]').textContent()).toBe('1');

    await page.click('[data-testid=inventory] th a:text("grants")');
    await page.waitForURL(/sort=grants/);
    // alice's sessions (signed in and out) are an identity of the broker's too, as many grants as acme/api's: the order of a tie is the ports'.
    const grants = (await page.locator('[data-testid=inventory] tbody tr [data-field=grants]').allTextContents()).map(Number);
    expect(grants).toEqual([...grants].sort((a, b) => b - a));
    expect(grants[0]).toBe(3);
    await page.fill('input[name=repository]', 'acme/api');
    await page.click('form.search button[type=submit]');
    await page.waitForURL(/repository=acme/);
    expect(await page.locator('[data-testid=inventory] tbody tr').evaluateAll((rows) => rows.map((tr) => tr.getAttribute('data-identity')))).toEqual([
      'acme/api',
    ]);
    const bad = await page.goto(`${broker.url}/audit/inventory?since=last%20week`);
    expect(bad?.status()).toBe(400);
    expect(await page.textContent('[data-testid=problem]')).toContain('since must be');
    expect(await page.locator('main script').count()).toBe(0);
  }, 60_000);

  it('shows bidi overrides and zero-width characters an attacker put in a record as visible escapes on every view', async () => {
    const issuer = broker.config.issuer;
    const post = (subjectToken: string) =>
      fetch(`${broker.url}/token`, { method: 'POST', body: exchangeForm(subjectToken), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    // Reversed by U+202E, `dorp` reads as `prod`; U+200B makes the subject differ from one an auditor trusts, unseen.
    const jti = crypto.randomUUID();
    const reused = await github.sign(ciClaims(github.url, issuer, { jti, sub: 'repo:acme/\u202Edorp\u200B:environment:production' }));
    expect((await post(reused)).status).toBe(200);
    // Presented again: the subject_token_replayed alert names the subject.
    await post(reused);
    // A repository no policy grants: the inventory's identity, and the explanation's recorded value.
    const refused = (await (await post(await github.sign(ciClaims(github.url, issuer, { jti, repository: 'acme/\u202Eipa\u200B' })))).json()) as {
      audit_event_id: string;
    };

    const page = await browser.newPage();
    await page.goto(`${broker.url}/audit/sign-in`);
    await page.fill('textarea[name=token]', await auditorToken(harness, people, 'carol@acme.dev', 'audit:read policy:explain'));
    await page.click('button[type=submit]');
    await page.waitForURL(`${broker.url}/audit`);
    // The HTML the broker sent for the page `act` opens, and the text the browser shows: escapes, never the characters themselves.
    const opened = async (path: string, act: () => Promise<unknown>) => {
      const [answer] = await Promise.all([page.waitForResponse((response) => new URL(response.url()).pathname === path), act()]);
      await page.waitForLoadState();
      for (const seen of [await answer.text(), await page.textContent('body')]) expect(seen).not.toMatch(/[\u202E\u200B]/);
    };
    const SUBJECT = 'repo:acme/\\u202edorp\\u200b:environment:production';
    const REPOSITORY = 'acme/\\u202eipa\\u200b';

    await page.fill('input[name=jti]', jti);
    await opened('/audit', () => page.click('form.search button[type=submit]'));
    expect(await page.locator('[data-testid=results] tbody td:nth-child(4)').allTextContents()).toContain(SUBJECT);
    expect(await page.locator('[data-testid=results] tbody td:nth-child(5)').allTextContents()).toContain(REPOSITORY);
    expect(await page.textContent('[data-testid=alerts] tr[data-rule=subject_token_replayed]')).toContain(SUBJECT);

    await opened(`/audit/events/${refused.audit_event_id}`, () => page.click(`[data-testid=results] tr[data-event-id="${refused.audit_event_id}"] a`));
    expect(await page.textContent('[data-claim=repository]')).toBe(REPOSITORY);
    // The record as JSON, still JSON: the escape is JSON's own.
    const json = JSON.parse((await page.textContent('[data-testid=event-detail] pre')) ?? '') as { claims: { repository: string } };
    expect(json.claims.repository).toBe('acme/\u202Eipa\u200B');
    expect(await page.locator('[data-testid=event-explanation] tr[data-claim=repository] td').last().textContent()).toBe(REPOSITORY);

    await opened('/audit/inventory', () => page.click('header nav a[href="/audit/inventory"]'));
    expect(await page.locator('[data-testid=inventory] tbody td:first-child').allTextContents()).toContain(REPOSITORY);
  }, 60_000);
});
