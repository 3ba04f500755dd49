import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FakeGitHub } from '../support/fake-github.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { ACME_INSTALLATION, githubForm } from '../suites/github-exchange-suite.ts';
import { expectRefusal, freshIssuer, postToken, type BrokerHarness } from '../suites/exchange-suite.ts';
import { cpuMsSince } from './cpu-time.ts';
import { startNodeHarness } from './node-harness.ts';

/** Two organisations that publish guardrails, each with a repository of its own. */
const ORGS = {
  vandelay: { id: 8201, ownerId: 8200, repo: { id: 820001, name: 'latex' }, dotGithub: 820002 },
  kramerica: { id: 8301, ownerId: 8300, repo: { id: 830001, name: 'bladder' }, dotGithub: 830002 },
} as const;
type Org = keyof typeof ORGS;

/**
 * 128 alternatives of a class each, every class a character no other class of the file names: as a regex some 10 ms to
 * estimate (each class's runs are read), little to match; as a glob, characters to compare.
 */
const alternatives = (n: number): string => Array.from({ length: 128 }, (_, k) => `[${String.fromCodePoint(0x100 + ((n * 128 + k) % 0xd000))}]`).join('|');

/** `head`, then `ref` entries of as many such regexes (or globs) as fit in `bytes`. */
function patternFile(head: string, kind: 'regex' | 'glob', bytes: number): string {
  let text = head;
  for (let n = 0; ; n++) {
    const entry = `    - { ${kind}: "${alternatives(n)}" }\n`;
    if (Buffer.byteLength(text + entry) > bytes) return text;
    text += entry;
  }
}

// Each regex of a repository's own policy file, or of its organisation's guardrails, was estimated as the files loaded, while
// the exchange that fetched them waited, before any bound on them could refuse them: 236 such regexes in a file of 180 KiB
// took 2.2-3.5 s of the thread that serves /token, 10-15 times what the same file of globs takes. On Node only, in CPU time:
// the broker runs in this process.
describe("loading a repository's own policy file, or its organisation's guardrails, of many regexes", () => {
  let broker: BrokerHarness;
  let issuer: TestIssuer;
  let github: FakeGitHub;

  beforeAll(async () => {
    issuer = freshIssuer(inject('testIssuerBase'), 'regex-load-cost');
    github = await FakeGitHub.create(inject('fakeGitHubBase'));
    await github.install(ACME_INSTALLATION);
    const header = `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\n`;
    const grant = (repository: string) => `grant:\n  github: { repositories: [${repository}], permissions: { contents: read } }\n`;
    const put = (owner: string, repo: string, path: string, text: string) => github.putFile({ owner, repo, path, text });
    const many = `${header}${grant('acme/api')}match:\n  repository_id: "734201"\n  ref:\n    - refs/heads/main\n`;
    await put('acme', 'api', '.github/keyway/plain.yaml', `${header}match: { repository_id: "734201", ref: refs/heads/main }\n${grant('acme/api')}`);
    await put('acme', 'api', '.github/keyway/regexes.yaml', patternFile(many, 'regex', 180 * 1024));
    await put('acme', 'api', '.github/keyway/globs.yaml', patternFile(many, 'glob', 180 * 1024));
    for (const [org, spec] of Object.entries(ORGS)) {
      await github.install({
        id: spec.id,
        owner: org,
        ownerId: spec.ownerId,
        repositories: [spec.repo, { id: spec.dotGithub, name: '.github' }],
        permissions: { contents: 'read', metadata: 'read' },
      });
      const own = `${header}match: { repository_id: "${spec.repo.id}", ref: refs/heads/main }\n${grant(`${org}/${spec.repo.name}`)}`;
      await put(org, spec.repo.name, '.github/keyway/release.yaml', own);
      const kind = org === 'vandelay' ? 'regex' : 'glob';
      for (const name of ['a', 'b'])
        await put(org, '.github', `keyway/guardrails/${name}.yaml`, patternFile(`${header}effect: deny\nmatch:\n  ref:\n`, kind, 90 * 1024));
    }
    // The central set trusts the issuer, as it must for a repository's policy to name it.
    const central = `${header}match: { repository_id: "734201", ref: refs/heads/central }\ngrant: { audience: https://deploy.acme.dev }\n`;
    broker = await startNodeHarness(
      { 'central.yaml': central },
      {
        settings: {
          ...github.settings,
          KEYWAY_RATE_LIMIT_REPOSITORY_POLICY_BURST: '100',
          KEYWAY_REPOSITORY_POLICY_ORG_GUARDRAILS: Object.entries(ORGS)
            .map(([org, spec]) => `${org}:${spec.ownerId}:${spec.dotGithub}`)
            .join(','),
        },
      },
    );
  });
  afterAll(() => broker?.close());

  let caller = 0;
  /** One exchange of a main-branch job of `repository` for `policy`, by a caller of its own, and the CPU time it took. */
  const exchange = async (owner: 'acme' | Org, policy: string) => {
    caller += 1;
    const { name, id } = owner === 'acme' ? { name: 'api', id: 734201 } : ORGS[owner].repo;
    const ownerId = owner === 'acme' ? ACME_INSTALLATION.ownerId : ORGS[owner].ownerId;
    const repository = `${owner}/${name}`;
    const claims = { sub: `repo:${repository}:ref:refs/heads/main:cost-${caller}`, repository, repository_id: `${id}`, repository_owner: owner };
    const token = await issuer.sign(ciClaims(issuer.url, broker.issuer, { ...claims, repository_owner_id: `${ownerId}` }));
    const started = process.cpuUsage();
    const result = await postToken(broker, githubForm(token, { scope: `policy:${policy}`, resource: `${new URL(github.apiUrl).origin}/${repository}` }));
    return { ms: cpuMsSince(started), result };
  };

  it('refuses a file of more regexes than the bound, taking about what the same file of globs takes to load', async () => {
    // The exchange's path once through, and the same file of globs: what reading 180 KiB of policy costs.
    expect((await exchange('acme', 'plain')).result.status).toBe(200);
    const globs = await exchange('acme', 'globs');
    expect(globs.result.status).toBe(200);
    const regexes = await exchange('acme', 'regexes');
    const event = await expectRefusal(broker, regexes.result, { status: 400, error: 'invalid_request', reason: 'no_policy_matched' });
    // The fifth regex passes the characters four at the longest hold.
    expect(event.detail).toMatch(
      /regexes\.yaml:13:9 the regexes of this policy are 236, of \d+ characters together: more than the 32 regexes or 2048 characters/,
    );
    // Refused before any estimate, 0.3-0.5 times what the globs took; estimated, 10-15 times.
    expect(regexes.ms / globs.ms).toBeLessThan(3);
  });

  it("refuses an organisation's policies when its guardrails together write more regexes than the bound, taking about what its guardrails of globs take", async () => {
    const globs = await exchange('kramerica', 'release');
    expect(globs.result.status).toBe(200);
    const regexes = await exchange('vandelay', 'release');
    const event = await expectRefusal(broker, regexes.result, { status: 503, error: 'temporarily_unavailable', reason: 'org_guardrails_unusable' });
    // The fifth regex of the first file passes the characters four at the longest hold.
    expect(event.detail).toMatch(/a\.yaml:10:9 the regexes of the organisation's guardrails are 238, of \d+ characters together/);
    // 0.5-0.7 times; estimated, 6.5 times.
    expect(regexes.ms / globs.ms).toBeLessThan(3);
  });
});
