import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FakeGitHub, type FakeInstallation } from '../support/fake-github.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { expectRefusal, freshIssuer, postToken, type BrokerHarness } from '../suites/exchange-suite.ts';
import { githubForm } from '../suites/github-exchange-suite.ts';
import { startNodeHarness } from './node-harness.ts';

describe('GitHub installation tokens: an answer that does not say which repositories it covers', () => {
  let broker: BrokerHarness;
  let issuer: TestIssuer;
  let github: FakeGitHub;

  beforeAll(async () => {
    issuer = freshIssuer(inject('testIssuerBase'), 'github-answer-scope');
    github = await FakeGitHub.create(inject('fakeGitHubBase'));
    broker = await startNodeHarness(
      {
        'github/api.yaml': `version: 1
issuer: { kind: github, url: "${issuer.url}" }
match: { repository_id: "734201" }
grant:
  github: { repositories: [acme/api], permissions: { contents: read } }
`,
      },
      { settings: github.settings },
    );
  });
  afterAll(() => broker?.close());

  const installation = (answer: Pick<FakeInstallation, 'tokenAnswerNamesNoRepository' | 'tokenAnswerForEveryRepository'>): FakeInstallation => ({
    id: 9310,
    owner: 'acme',
    ownerId: 1200934,
    repositories: [
      { id: 931001, name: 'api' },
      { id: 931002, name: 'secrets' },
    ],
    permissions: { contents: 'write', metadata: 'read' },
    ...answer,
  });
  /** Refused as GitHub's own failure (503 github_refused, recorded, no token), and the one token GitHub minted for it taken back at once. */
  const expectRefusedAndRevoked = async (): Promise<void> => {
    const mintedBefore = (await github.tokens()).length;
    const result = await postToken(broker, githubForm(await issuer.sign(ciClaims(issuer.url, broker.issuer))));
    const event = await expectRefusal(broker, result, { status: 503, error: 'temporarily_unavailable', reason: 'github_refused' });
    expect(event.detail).toContain('the token was revoked');
    // Minted, and taken back at once, as a token wider than asked is.
    const minted = (await github.tokens()).slice(mintedBefore);
    expect(minted.map((token) => token.revoked)).toEqual([true]);
  };

  it('hands out no token whose repositories GitHub did not name: it cannot be shown to be no wider than the policy grants', async () => {
    // GitHub's answer for a token of every repository of the installation: repository_selection all, and no list.
    await github.install(installation({ tokenAnswerNamesNoRepository: true, tokenAnswerForEveryRepository: true }));
    await expectRefusedAndRevoked();
    // No list, whatever the selection says.
    await github.install(installation({ tokenAnswerNamesNoRepository: true }));
    await expectRefusedAndRevoked();
  });

  it('hands out no token GitHub says is for every repository of the installation, whatever repositories it lists', async () => {
    await github.install(installation({ tokenAnswerForEveryRepository: true }));
    await expectRefusedAndRevoked();
  });
});
