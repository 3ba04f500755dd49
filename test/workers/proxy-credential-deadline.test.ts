import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { keywayState } from '../../src/runtimes/workers/keyway-state.ts';
import { createWorkerBroker } from '../../src/runtimes/workers/worker-broker.ts';
import { freshIssuer } from '../suites/exchange-suite.ts';
import { ACME_INSTALLATION } from '../suites/github-exchange-suite.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { ownStateNamespace, workerEnv } from './workers-harness.ts';

describe('proxy mode on Workers: a GitHub credential still being minted at the deadline', () => {
  it('is handed to waitUntil with the 504: the token GitHub minted after it is on the revocation schedule and on record once the request’s context settles', async () => {
    const issuer = freshIssuer(inject('testIssuerBase'), 'proxy-credential-deadline-workers');
    const github = await FakeGitHub.create(inject('fakeGitHubBase'));
    // GitHub mints the token, then answers a second after the upstream's one-second deadline.
    await github.install({ ...ACME_INSTALLATION, tokenDelayMs: 2000 });
    const states = ownStateNamespace();
    const env = {
      ...workerEnv,
      ...github.settings,
      KEYWAY_PROXY_UPSTREAMS: 'upstreams:\n  github:\n    auth: { kind: github-app }\n    limits: { timeout_seconds: 1 }\n',
      STATE: states,
      AUDIT: ownStateNamespace(workerEnv.AUDIT),
    };
    const policy = `version: 1
issuer: { kind: github, url: "${issuer.url}" }
match: { repository_owner_id: "1200934" }
grant:
  proxy: { upstream: github, allow: [{ method: GET, path: "/repos/{repository}/issues", permissions: { issues: read } }] }
`;
    const broker = await createWorkerBroker(env, [{ path: 'proxy/github.yaml', text: policy }], { log: silentLogger });
    const ctx = createExecutionContext();
    const headers = { authorization: `Bearer ${await issuer.sign(ciClaims(issuer.url, workerEnv.KEYWAY_ISSUER))}` };
    const response = await broker.app.fetch(new Request(`${workerEnv.KEYWAY_ISSUER}/proxy/github/repos/acme/api/issues`, { headers }), env, ctx);
    const body = (await response.json()) as Record<string, unknown>;
    expect(response.status, JSON.stringify(body)).toBe(504);
    // What the runtime keeps alive after the answer: no more than the request's waitUntil.
    await waitOnExecutionContext(ctx);

    const [minted, ...more] = await github.tokens();
    expect(more).toEqual([]);
    expect(minted?.revoked).toBe(false);
    const outcome = await broker.audit.log.get(body['audit_event_id'] as string);
    // Scheduled under the decision record's id, as every proxy installation token is.
    const scheduled = await keywayState(states).due(Date.now() + 3_600_000, 10);
    expect(scheduled.map(({ id, tokenSha256 }) => ({ id, tokenSha256 }))).toEqual([{ id: outcome?.proxy?.decision_id, tokenSha256: minted?.sha256 }]);
    // And named in the log, under the same decision.
    const { records } = await broker.audit.log.query({ limit: 50, order: 'desc', by: 'id' });
    const late = records.map(({ event }) => event).filter((event) => event.reason === 'proxy_credential_late');
    expect(late.map((event) => event.proxy)).toMatchObject([{ decision_id: outcome?.proxy?.decision_id, credential: { token_sha256: minted?.sha256 } }]);
  });
});
