import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reason } from '../../src/core/errors/reasons.ts';
import { DpopKey } from '../support/dpop-key.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, expectRefusal, freshIssuer, ID_TOKEN, postToken, type BrokerHarness, type StartBroker, type TokenResponse } from './exchange-suite.ts';

/** RFC 8693 delegation (`actor_token`, `match_actor`, `act`, `may_act`): a deploy orchestrator acting for a pipeline, on Node and in workerd. */
export function delegationSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`delegation on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let ci: TestIssuer;
    let orchestrators: TestIssuer;
    let stranger: TestIssuer;
    let githubActors: TestIssuer;
    const now = () => Math.floor(Date.now() / 1000);
    const sign = (issuer: TestIssuer, sub: string, claims: Record<string, unknown> = {}) =>
      issuer.sign({ iss: issuer.url, aud: broker.issuer, sub, iat: now(), exp: now() + 300, jti: crypto.randomUUID(), ...claims }, { alg: 'ES256' });
    const pipeline = (claims: Record<string, unknown> = {}) => sign(ci, 'svc-pipeline', claims);
    const orchestrator = (claims: Record<string, unknown> = {}) => sign(orchestrators, 'deploy-orchestrator', claims);
    const delegated = async (subject: string, actor: string) => postToken(broker, exchangeForm(subject, { actor_token: actor, actor_token_type: ID_TOKEN }));
    const refused = async (subject: string, actor: string | undefined, reason: Reason) =>
      expectRefusal(broker, actor === undefined ? await postToken(broker, exchangeForm(subject)) : await delegated(subject, actor), {
        error: 'invalid_request',
        reason,
      });

    beforeAll(async () => {
      ci = freshIssuer(issuerBase(), 'deleg-ci');
      orchestrators = freshIssuer(issuerBase(), 'deleg-orch');
      stranger = freshIssuer(issuerBase(), 'deleg-stranger');
      githubActors = freshIssuer(issuerBase(), 'deleg-github');
      await Promise.all([ci.rotate({ alg: 'ES256' }), orchestrators.rotate({ alg: 'ES256' }), stranger.rotate({ alg: 'ES256' })]);
      const issuer = (at: TestIssuer) => `{ kind: oidc, url: "${at.url}", extra_algorithms: [ES256] }`;
      const github = `{ kind: github, url: "${githubActors.url}" }`;
      broker = await start({
        'deploy/delegated.yaml': `version: 1\nissuer: ${issuer(ci)}\nmatch: { sub: svc-pipeline }\nmatch_actor:\n  iss: "${orchestrators.url}"\n  sub: deploy-orchestrator\ngrant: { audience: https://deploy.example }\n`,
        'deploy/direct.yaml': `version: 1\nissuer: ${issuer(ci)}\nmatch: { sub: svc-direct }\ngrant: { audience: https://direct.example }\n`,
        'deploy/guard.yaml': `version: 1\neffect: deny\nissuer: ${issuer(ci)}\nmatch: { env: frozen }\n`,
        // A guardrail over the actor, as policies/reference.md shows: the subject's match reads the subject token only.
        'deploy/actor-guard.yaml': `version: 1\neffect: deny\nissuer: ${issuer(ci)}\nmatch:\n  sub: { exists: true }\nmatch_actor:\n  iss: "${orchestrators.url}"\n  event_name: [pull_request_target, issue_comment]\n`,
        // The orchestrator's workflow on main, in each pattern's own way: anything before the `@`, the ref after it.
        'release/by-glob.yaml': `version: 1\nissuer: ${issuer(ci)}\nmatch: { sub: svc-release-glob }\nmatch_actor:\n  iss: "${orchestrators.url}"\n  job_workflow_ref: { glob: "acme/orchestrator/**@refs/heads/main" }\ngrant: { audience: https://release.example }\n`,
        'release/by-regex.yaml': `version: 1\nissuer: ${issuer(ci)}\nmatch: { sub: svc-release-regex }\nmatch_actor:\n  iss: "${orchestrators.url}"\n  job_workflow_ref: { regex: "acme/orchestrator/\\\\.github/workflows/.*@refs/heads/main" }\ngrant: { audience: https://release.example }\n`,
        // An orchestrator on a GitHub-kind issuer, and a guardrail on a repository it retired, named in another case than GitHub's.
        'github-actor/own.yaml': `version: 1\nissuer: ${github}\nmatch:\n  repository_owner_id: "1200934"\n  repository_id: "734201"\ngrant: { audience: https://github-actor.example }\n`,
        'github-actor/delegated.yaml': `version: 1\nissuer: ${issuer(ci)}\nmatch: { sub: svc-github-actor }\nmatch_actor:\n  iss: "${githubActors.url}"\n  repository_owner_id: "1200934"\ngrant: { audience: https://github-actor.example }\n`,
        'github-actor/retired.yaml': `version: 1\neffect: deny\nissuer: ${issuer(ci)}\nmatch:\n  sub: { exists: true }\nmatch_actor:\n  iss: "${githubActors.url}"\n  repository: acme/Orchestrator\n`,
        // An orchestrator whose sub joins its workflow ref as a field (GitHub's include_claim_keys).
        'release/by-sub.yaml': `version: 1\nissuer: ${issuer(ci)}\nmatch: { sub: svc-release-sub }\nmatch_actor:\n  iss: "${orchestrators.url}"\n  sub: { glob: "repo:acme/orchestrator:job_workflow_ref:acme/orchestrator/**@refs/heads/main" }\ngrant: { audience: https://release.example }\n`,
        // The orchestrator's issuer is trusted because a policy names it; its own tokens get nothing from the pipeline's policy.
        'orchestrator/own.yaml': `version: 1\nissuer: ${issuer(orchestrators)}\nmatch: { sub: deploy-orchestrator }\ngrant: { audience: https://orchestrator.example }\n`,
      });
    });
    afterAll(() => broker.close());

    it('issues a token for the pipeline that names the orchestrator in act, and records the actor', async () => {
      const result = await delegated(await pipeline(), await orchestrator());
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      const claims = decodeJwt(result.body['access_token'] as string);
      expect(claims).toMatchObject({ aud: 'https://deploy.example', src_sub: 'svc-pipeline', act: { iss: orchestrators.url, sub: 'deploy-orchestrator' } });
      expect(claims['act']).not.toHaveProperty('act');
      expect(await broker.auditEvent(result.body['audit_event_id'] as string)).toMatchObject({
        decision: 'granted',
        actor: { issuer: orchestrators.url, subject: 'deploy-orchestrator', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
      });
    });

    it('grants a policy with match_actor only to its actor, and a policy without it to no actor at all', async () => {
      await refused(await pipeline(), undefined, 'no_policy_matched');
      await refused(await pipeline(), await sign(orchestrators, 'someone-else'), 'no_policy_matched');
      expect((await postToken(broker, exchangeForm(await sign(ci, 'svc-direct')))).status).toBe(200);
      await refused(await sign(ci, 'svc-direct'), await orchestrator(), 'no_policy_matched');
    });

    it('compares the actor’s claims exactly: a sub differing only in case is another actor', async () => {
      await refused(await pipeline(), await sign(orchestrators, 'Deploy-Orchestrator'), 'no_policy_matched');
    });

    it('compares an actor’s claims as its issuer’s preset does, as match does: a deny on acme/Orchestrator holds acme/orchestrator', async () => {
      const actor = (repository: string) => githubActors.sign(ciClaims(githubActors.url, broker.issuer, { repository }));
      const subject = () => sign(ci, 'svc-github-actor');
      for (const repository of ['acme/Orchestrator', 'acme/orchestrator', 'ACME/ORCHESTRATOR']) {
        await refused(await subject(), await actor(repository), 'denied_by_policy');
      }
      const other = await delegated(await subject(), await actor('acme/api'));
      expect(other.status, JSON.stringify(other.body)).toBe(200);
    });

    it('holds an actor’s workflow ref to its pattern’s @, as match does: a branch named x@refs/heads/main is not main', async () => {
      const workflow = 'acme/orchestrator/.github/workflows/deploy.yml';
      for (const sub of ['svc-release-glob', 'svc-release-regex']) {
        const onMain = await delegated(await sign(ci, sub), await orchestrator({ job_workflow_ref: `${workflow}@refs/heads/main` }));
        expect(onMain.status, JSON.stringify(onMain.body)).toBe(200);
        // Git allows @ in a branch name, and anyone who can push may create this one, without main's protection.
        await refused(await sign(ci, sub), await orchestrator({ job_workflow_ref: `${workflow}@refs/heads/evil@refs/heads/main` }), 'no_policy_matched');
      }
      // An actor's customised sub holds its workflow ref as a field, read at that @ too.
      const customised = (ref: string) => sign(orchestrators, `repo:acme/orchestrator:job_workflow_ref:${workflow}@${ref}`);
      const bySub = await delegated(await sign(ci, 'svc-release-sub'), await customised('refs/heads/main'));
      expect(bySub.status, JSON.stringify(bySub.body)).toBe(200);
      await refused(await sign(ci, 'svc-release-sub'), await customised('refs/heads/evil@refs/heads/main'), 'no_policy_matched');
    });

    it('keeps deny guardrails in force for delegated requests', async () => {
      await refused(await pipeline({ env: 'frozen' }), await orchestrator(), 'denied_by_policy');
    });

    it('holds an actor to a deny guardrail that names it in match_actor, and that guardrail to actors alone', async () => {
      await refused(await pipeline(), await orchestrator({ event_name: 'issue_comment' }), 'denied_by_policy');
      expect((await delegated(await pipeline(), await orchestrator({ event_name: 'push' }))).status).toBe(200);
      // The same claim on the subject is not the actor's: that guardrail's match_actor reads the actor token only.
      expect((await delegated(await pipeline({ event_name: 'issue_comment' }), await orchestrator())).status).toBe(200);
      expect((await postToken(broker, exchangeForm(await sign(ci, 'svc-direct', { event_name: 'issue_comment' })))).status).toBe(200);
    });

    it("honours the subject's may_act: the actor it names may act, another may not", async () => {
      const named = await delegated(await pipeline({ may_act: { iss: orchestrators.url, sub: 'deploy-orchestrator' } }), await orchestrator());
      expect(named.status, JSON.stringify(named.body)).toBe(200);
      await refused(await pipeline({ may_act: { sub: 'release-bot' } }), await orchestrator(), 'actor_not_permitted');
      await refused(await pipeline({ may_act: { iss: stranger.url, sub: 'deploy-orchestrator' } }), await orchestrator(), 'actor_not_permitted');
      // A may_act without iss names a party of the subject token's own issuer, not the same sub signed by any trusted issuer.
      await refused(await pipeline({ may_act: { sub: 'deploy-orchestrator' } }), await orchestrator(), 'actor_not_permitted');
      // A may_act that is not an object names no one (RFC 8693 §4.4 makes it a JSON object): no actor may act, not any.
      for (const mayAct of ['deploy-orchestrator', null, ['deploy-orchestrator']]) {
        await refused(await pipeline({ may_act: mayAct }), await orchestrator(), 'actor_not_permitted');
      }
    });

    it('nests the actors the subject token already names, and refuses a chain deeper than four', async () => {
      const prior = { sub: 'release-bot', iss: 'https://bots.example', act: { sub: 'alice' } };
      const result = await delegated(await pipeline({ act: prior }), await orchestrator());
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      expect(decodeJwt(result.body['access_token'] as string)['act']).toEqual({ iss: orchestrators.url, sub: 'deploy-orchestrator', act: prior });
      const deep = { sub: 'a', act: { sub: 'b', act: { sub: 'c', act: { sub: 'd' } } } };
      await refused(await pipeline({ act: deep }), await orchestrator(), 'actor_chain_too_deep');
      await refused(await pipeline({ act: { sub: 42 } }), await orchestrator(), 'claims_invalid');
    });

    it('takes an actor token bound to a key (cnf) only with a DPoP proof of that key, never as a bearer token', async () => {
      const key = await DpopKey.generate();
      const boundActor = (cnf: Record<string, string> = { jkt: key.jkt }) => orchestrator({ cnf });
      const send = async (actor: string, proofOf?: DpopKey): Promise<TokenResponse> => {
        const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
        if (proofOf !== undefined) headers['dpop'] = await proofOf.proof('POST', `${broker.issuer}/token`);
        const response = await broker.request('/token', {
          method: 'POST',
          body: exchangeForm(await pipeline(), { actor_token: actor, actor_token_type: ID_TOKEN }),
          headers,
        });
        return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
      };
      const bound = { error: 'invalid_dpop_proof', reason: 'actor_token_bound' } as const;
      const bearer = await expectRefusal(broker, await send(await boundActor()), bound);
      expect(bearer.detail).toBe('the actor token is bound to a key (cnf.jkt) this request has no DPoP proof of');
      await expectRefusal(broker, await send(await boundActor(), await DpopKey.generate()), bound);
      const otherMethod = await expectRefusal(broker, await send(await boundActor({ 'x5t#S256': 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' }), key), bound);
      expect(otherMethod.detail).toBe('the actor token is bound (cnf) by a method other than a DPoP key thumbprint');
      // With a proof of the actor's key the delegation is granted, and the token issued is bound to that key.
      const proven = await send(await boundActor(), key);
      expect(proven.status, JSON.stringify(proven.body)).toBe(200);
      expect(decodeJwt(proven.body['access_token'] as string)).toMatchObject({ cnf: { jkt: key.jkt }, act: { sub: 'deploy-orchestrator' } });
    });

    it('verifies the actor token as a subject token, and names it in the refusal', async () => {
      const untrusted = await refused(await pipeline(), await sign(stranger, 'deploy-orchestrator'), 'issuer_untrusted');
      expect(untrusted.detail).toMatch(/^actor_token: /);
      await refused(await pipeline(), await orchestrator({ iat: now() - 600, exp: now() - 300 }), 'token_expired');
      await refused(
        await pipeline(),
        await orchestrators.sign({ iss: orchestrators.url, aud: broker.issuer, sub: 'x', iat: now(), exp: now() + 60 }, { key: 'foreign', alg: 'ES256' }),
        'signature_invalid',
      );
      const elsewhere = await refused(await pipeline(), await orchestrator({ aud: 'https://elsewhere.example' }), 'audience_mismatch');
      expect(elsewhere.detail).toMatch(/^actor_token: /);
      await expectRefusal(broker, await delegated(await pipeline(), 'garbage'), { error: 'invalid_request', reason: 'token_malformed' });
    });
  });
}
