import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FakeGitHub } from '../support/fake-github.ts';
import { deliveryRequest, payloads, WEBHOOK_SECRET } from '../support/github-webhook-delivery.ts';
import { freshIssuer, type BrokerHarness } from '../suites/exchange-suite.ts';
import { cpuMsSince } from './cpu-time.ts';
import { startNodeHarness } from './node-harness.ts';

const OWNER = 'acme';
const REPO = { owner: OWNER, name: 'api', id: 734201 };
const FORK = { owner: 'mallory', name: 'api', id: 9_997 };
const sha = (label: string): string => Buffer.from(label.padEnd(20, '.').slice(0, 20)).toString('hex');

/**
 * 128 alternatives of a class each, every class a character no other regex of the set names, 511 characters: some milliseconds
 * to estimate as its file compiles (and again as it is linted), little to match.
 */
const alternatives = (n: number): string => Array.from({ length: 128 }, (_, k) => `[${String.fromCodePoint(0x100 + ((n * 128 + k) % 0xd000))}]`).join('|');

/** The `ref` lines of policy file `n`: four such regexes. */
const fourRegexes = (n: number): string => [0, 1, 2, 3].map((k) => `    - { regex: "${alternatives(n * 4 + k)}" }`).join('\n');

/** The CPU time of the delivery of a fork's pull request to `repo` (the broker runs in this process), and the check run it made. */
async function timedReview(
  broker: BrokerHarness,
  github: FakeGitHub,
  repo: { readonly owner: string; readonly name: string; readonly id: number },
  pull: { readonly number: number; readonly baseSha: string; readonly headSha: string },
) {
  const runs = (await github.checkRuns()).length;
  const { init } = await deliveryRequest({
    event: 'pull_request',
    payload: payloads.pullRequest(repo, { ...pull, author: 'mallory', fork: { ...FORK, name: repo.name } }),
  });
  const started = process.cpuUsage();
  const response = await broker.request('/webhooks/github', init);
  const ms = cpuMsSince(started);
  expect(response.status).toBe(200);
  const [run] = (await github.checkRuns()).slice(runs);
  return { ms, run };
}

// The review of a pull request changing a repository's own policies runs on the webhook's request, on the thread that serves
// /token. Each file within what an exchange loads alone (4 such regexes, 2,044 characters) took some 40 ms of it to compile and
// lint: 50 files 2.1 s, the 500 a directory may hold 11 s, at every push of a fork's pull request. On Node only, in CPU time:
// the broker runs in this process.
describe("the review of a fork's pull request to a repository's own policies of many files, each within what an exchange loads", () => {
  let broker: BrokerHarness;
  let github: FakeGitHub;
  let issuer: string;

  beforeAll(async () => {
    github = await FakeGitHub.create(inject('fakeGitHubBase'));
    await github.install({
      id: 71,
      owner: OWNER,
      ownerId: 1200934,
      repositories: [{ id: REPO.id, name: REPO.name }],
      permissions: { contents: 'read', checks: 'write' },
    });
    issuer = freshIssuer(inject('testIssuerBase'), 'review-cost').url;
    const central = `version: 1\nissuer: { kind: github, url: "${issuer}" }\nmatch: { repository_id: "734201", ref: refs/heads/central }\ngrant: { audience: https://deploy.acme.dev }\n`;
    broker = await startNodeHarness({ 'central.yaml': central }, { settings: { ...github.settings, KEYWAY_GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET } });
  });
  afterAll(() => broker?.close());

  /** `files` policy files of 4 such regexes each at `head`, then the fork's pull request's review, timed. */
  const review = async (number: number, files: number) => {
    const head = sha(`review-cost-${number}`);
    for (let n = 0; n < files; n++) {
      const text = `version: 1\nissuer: { kind: github, url: "${issuer}" }\nmatch:\n  repository_id: "734201"\n  ref:\n${fourRegexes(n)}\ngrant:\n  github: { repositories: [acme/api], permissions: { contents: read } }\n`;
      await github.putFile({ owner: OWNER, repo: REPO.name, path: `.github/keyway/p${n}.yaml`, ref: head, text });
    }
    return timedReview(broker, github, REPO, { number, baseSha: sha('review-cost-base'), headSha: head });
  };

  it('refuses more files than the review reads from their listing, in a sliver of what compiling them took', async () => {
    const { ms, run } = await review(1, 200);
    expect(run).toMatchObject({ conclusion: 'failure', output: { title: 'too large to review: the proposed policies hold 200 files, at most 64' } });
    // 60 ms; compiled and linted, 6.5 s.
    expect(ms).toBeLessThan(800);
  }, 120_000);

  it('refuses files within the count of more regexes together than the review compiles, before compiling any', async () => {
    const { ms, run } = await review(2, 50);
    expect(run).toMatchObject({
      conclusion: 'failure',
      output: { title: 'too large to review: the proposed policies hold 200 regexes, at most 128; 102200 characters of regexes, at most 8192' },
    });
    // Fetched and counted, 170 ms; compiled and linted, 1-2 s.
    expect(ms).toBeLessThan(600);
  }, 120_000);
});

const CENTRAL = { owner: OWNER, name: 'keyway-policies', id: 734_300 };

// The central policy repository's review is the operator's and holds no set-wide regex bound: a real set may be thousands of
// policies. But a fork's pull request is anyone's, when the repository is public: 200 proposed files of four long regexes each
// took some 6.5 s of the thread that serves /token to compile and lint, at every push.
describe("the review of a fork's pull request to the central policy repository proposing many regex-heavy files", () => {
  let broker: BrokerHarness;
  let github: FakeGitHub;
  let issuer: string;
  const policy = (regexes: string): string =>
    `version: 1\nissuer: { kind: github, url: "${issuer}" }\nmatch:\n  repository_id: "734201"\n  ref:\n${regexes}\ngrant: { audience: https://deploy.acme.dev }\n`;

  beforeAll(async () => {
    github = await FakeGitHub.create(inject('fakeGitHubBase'));
    await github.install({
      id: 73,
      owner: OWNER,
      ownerId: 1200934,
      repositories: [{ id: CENTRAL.id, name: CENTRAL.name }],
      permissions: { contents: 'read', checks: 'write' },
    });
    issuer = freshIssuer(inject('testIssuerBase'), 'central-review-cost').url;
    const settings = {
      ...github.settings,
      KEYWAY_GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
      KEYWAY_GITHUB_POLICY_REPOSITORY: `${CENTRAL.owner}/${CENTRAL.name}`,
      KEYWAY_GITHUB_POLICY_REPOSITORY_ID: String(CENTRAL.id),
      KEYWAY_GITHUB_POLICY_PATH: 'policies',
    };
    const base = policy('    - refs/heads/main');
    await github.putFile({ owner: OWNER, repo: CENTRAL.name, path: 'policies/deploy.yaml', ref: sha('central-cost-base'), text: base });
    broker = await startNodeHarness({ 'deploy.yaml': base }, { settings });
  });
  afterAll(() => broker?.close());

  /** `files` policy files of 4 such regexes each beside the base's one, then the fork's pull request's review, timed. */
  const review = async (number: number, files: number) => {
    const head = sha(`central-cost-${number}`);
    await github.putFile({ owner: OWNER, repo: CENTRAL.name, path: 'policies/deploy.yaml', ref: head, text: policy('    - refs/heads/main') });
    for (let n = 0; n < files; n++) {
      await github.putFile({ owner: OWNER, repo: CENTRAL.name, path: `policies/p${n}.yaml`, ref: head, text: policy(fourRegexes(n)) });
    }
    return timedReview(broker, github, CENTRAL, { number, baseSha: sha('central-cost-base'), headSha: head });
  };

  it('refuses more files beyond the base than the review reads from their listing, in a sliver of what compiling them took', async () => {
    const { ms, run } = await review(1, 200);
    expect(run).toMatchObject({ conclusion: 'failure', output: { title: 'too large to review: the proposed policies hold 201 files, at most 65' } });
    // 95 ms; compiled and linted, 7.8 s.
    expect(ms).toBeLessThan(800);
  }, 120_000);

  it('refuses files within the count of more regexes beyond the base than the review compiles, before compiling any', async () => {
    const { ms, run } = await review(2, 50);
    expect(run).toMatchObject({
      conclusion: 'failure',
      output: { title: 'too large to review: the proposed policies hold 200 regexes, at most 128; 102200 characters of regexes, at most 8192' },
    });
    // Fetched and counted, 210 ms; compiled and linted, 950 ms.
    expect(ms).toBeLessThan(600);
  }, 120_000);
});
