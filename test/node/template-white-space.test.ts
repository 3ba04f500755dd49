import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { exchangeForm, expectRefusal, freshIssuer, postToken, type BrokerHarness } from '../suites/exchange-suite.ts';
import type { TestIssuer } from '../support/test-issuer.ts';
import { startNodeHarness } from './node-harness.ts';

/**
 * A claim a template's space delimits is read downstream by splitting on white space, and Python's str.split(), Go's
 * strings.Fields and JavaScript's /\s/ split on every character Unicode calls white space, not on U+0020 alone. U+1680
 * OGHAM SPACE MARK is one of them, and the only one besides controls and line separators that no normal form turns into
 * a space, so the normalization rule alone let it through.
 */
describe('a claim value holding white space other than U+0020, placed in a template that a space delimits', () => {
  let broker: BrokerHarness;
  let people: TestIssuer;

  const token = async (sub: string, team: string) => {
    const now = Math.floor(Date.now() / 1000);
    return people.sign({ iss: people.url, aud: broker.issuer, sub, iat: now, exp: now + 300, jti: crypto.randomUUID(), team });
  };

  beforeAll(async () => {
    people = freshIssuer(inject('testIssuerBase'), 'white-space');
    broker = await startNodeHarness({
      // The service reads `groups` as a space-separated list: the grant puts the caller in team-<team> and deployers.
      'groups.yaml': `version: 1
issuer: "${people.url}"
match: { sub: svc-groups }
grant:
  audience: https://groups.example
  claims:
    groups: "team-{team} deployers"
`,
      'colons.yaml': `version: 1
issuer: "${people.url}"
match: { sub: svc-colons }
grant:
  audience: https://colons.example
  subject: "team:{team}"
`,
    });
  });
  afterAll(async () => broker?.close());

  it('is refused as template_value_forbidden, naming U+1680, where the groups claim read as a group the grant never named', async () => {
    const fine = await postToken(broker, exchangeForm(await token('svc-groups', 'ops')));
    expect(fine.status, JSON.stringify(fine.body)).toBe(200);
    expect(decodeJwt(fine.body['access_token'] as string)['groups']).toBe('team-ops deployers');

    const ascii = await postToken(broker, exchangeForm(await token('svc-groups', 'ops admins')));
    const spaced = await expectRefusal(broker, ascii, { error: 'invalid_request', reason: 'template_value_forbidden' });
    expect(spaced.detail).toBe('groups grant.claims.groups: {team} holds " ", a delimiter of the template');

    const ogham = await postToken(broker, exchangeForm(await token('svc-groups', 'ops\u1680admins')));
    const groups = ogham.body['access_token'] === undefined ? undefined : String(decodeJwt(ogham.body['access_token'] as string)['groups']);
    expect(groups?.split(/\s/u), 'the groups a downstream split reads').toBeUndefined();
    const event = await expectRefusal(broker, ogham, { error: 'invalid_request', reason: 'template_value_forbidden' });
    expect(event.detail).toBe('groups grant.claims.groups: {team} holds U+1680, white space where the template is delimited by a space');
  });

  it('still places U+1680 where no white space delimits the template', async () => {
    const result = await postToken(broker, exchangeForm(await token('svc-colons', 'ops\u1680eu')));
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    expect(decodeJwt(result.body['access_token'] as string)['sub']).toBe('team:ops\u1680eu');
  });
});
