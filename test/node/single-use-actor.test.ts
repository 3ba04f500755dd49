/**
 * Single use (forced for azure-devops, whose tokens Entra ID takes too) is the promise that "whoever presents a token second, the
 * job or someone who caught it, is refused as replayed" (docs/ci/azure-devops.md): that must hold whether the token comes back
 * as the subject or as the actor_token of a delegated request.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AZURE_DEVOPS_ORG, azureDevopsToken } from '../support/ci-token-fixtures.ts';
import { exchangeForm, expectRefusal, freshIssuer, ID_TOKEN, postToken, type BrokerHarness } from '../suites/exchange-suite.ts';
import { newTestSite, TestIssuer } from '../support/test-issuer.ts';
import { startNodeHarness } from './node-harness.ts';

describe('a single-use token presented as the actor of a delegated request', () => {
  let broker: BrokerHarness;
  let azure: TestIssuer;
  let ci: TestIssuer;
  const now = () => Math.floor(Date.now() / 1000);
  const pipeline = () => ci.sign({ iss: ci.url, aud: broker.issuer, sub: 'svc-pipeline', iat: now(), exp: now() + 300, jti: crypto.randomUUID() });

  beforeAll(async () => {
    azure = new TestIssuer(`${await newTestSite(inject('testIssuerBase'))}/${AZURE_DEVOPS_ORG}`);
    ci = freshIssuer(inject('testIssuerBase'), 'single-use-actor');
    const azureIssuer = `{ kind: azure-devops, url: "${azure.url}" }`;
    broker = await startNodeHarness({
      'azure/deploy.yaml': `version: 1\nissuer: ${azureIssuer}\nmatch:\n  prj_id: 271ef6f7-5998-4b0f-86fb-4b54d9129990\n  def_id: "1"\ngrant: { audience: https://deploy.acme.example }\n`,
      'pipeline/delegated.yaml':
        `version: 1\nissuer: "${ci.url}"\nmatch: { sub: svc-pipeline }\nmatch_actor:\n  iss: "${azure.url}"\n  prj_id: 271ef6f7-5998-4b0f-86fb-4b54d9129990\n  def_id: "1"\n` +
        'grant: { audience: https://release.acme.example }\n',
      'pipeline/delegated-single.yaml':
        `version: 1\nissuer: "${ci.url}"\nsingle_use: true\nmatch: { sub: svc-single }\nmatch_actor:\n  iss: "${azure.url}"\n  prj_id: 271ef6f7-5998-4b0f-86fb-4b54d9129990\n  def_id: "1"\n` +
        'grant: { audience: https://release.acme.example }\n',
    });
  });
  afterAll(() => broker.close());

  it('uses up a single-use (azure-devops) token as an actor too: one exchanged as the subject is refused as the actor afterwards', async () => {
    const token = await azure.sign(azureDevopsToken(azure.url));
    expect((await postToken(broker, exchangeForm(token))).status).toBe(200);
    // The same token, second time, as the subject: refused as replayed (as docs/ci/azure-devops.md promises).
    await expectRefusal(broker, await postToken(broker, exchangeForm(token)), { error: 'invalid_request', reason: 'replayed' });
    // ... and second time as the actor of a delegated request: "whoever presents a token second ... is refused".
    const asActor = await postToken(broker, exchangeForm(await pipeline(), { actor_token: token, actor_token_type: ID_TOKEN }));
    await expectRefusal(broker, asActor, { error: 'invalid_request', reason: 'replayed' });
  });

  it('uses up a single-use token the first time it is the actor: a second delegated request with it, or an exchange of it as the subject, is refused', async () => {
    const token = await azure.sign(azureDevopsToken(azure.url));
    const delegated = async () => postToken(broker, exchangeForm(await pipeline(), { actor_token: token, actor_token_type: ID_TOKEN }));
    expect((await delegated()).status).toBe(200);
    await expectRefusal(broker, await delegated(), { error: 'invalid_request', reason: 'replayed' });
    await expectRefusal(broker, await postToken(broker, exchangeForm(token)), { error: 'invalid_request', reason: 'replayed' });
  });

  it("leaves a single-use subject token unused when the request's actor token is refused as replayed: the retry with a new actor token is granted", async () => {
    const subject = await ci.sign({ iss: ci.url, aud: broker.issuer, sub: 'svc-single', iat: now(), exp: now() + 300, jti: crypto.randomUUID() });
    const delegated = async (actor: string) => postToken(broker, exchangeForm(subject, { actor_token: actor, actor_token_type: ID_TOKEN }));
    const used = await azure.sign(azureDevopsToken(azure.url));
    expect((await postToken(broker, exchangeForm(used))).status).toBe(200);
    await expectRefusal(broker, await delegated(used), { error: 'invalid_request', reason: 'replayed' });
    const retry = await delegated(await azure.sign(azureDevopsToken(azure.url)));
    expect(retry.status, JSON.stringify(retry.body)).toBe(200);
    await expectRefusal(broker, await delegated(await azure.sign(azureDevopsToken(azure.url))), { error: 'invalid_request', reason: 'replayed' });
  });
});
