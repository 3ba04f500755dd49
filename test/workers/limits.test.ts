import { createExecutionContext } from 'cloudflare:test';
import { describe, expect, inject, it } from 'vitest';
import type { LogFields } from '../../src/core/log.ts';
import { createWorkerBroker, type WorkerEnv } from '../../src/runtimes/workers/worker-broker.ts';
import { limitsSuite } from '../suites/limits-suite.ts';
import { exchangeForm, freshIssuer, postToken, suitePolicies } from '../suites/exchange-suite.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { startWorkersHarness, workerEnv } from './workers-harness.ts';

limitsSuite('Workers (workerd)', startWorkersHarness, () => inject('testIssuerBase'));

describe('rate limits on Workers when the limiter cannot be reached', () => {
  it('lets the request through and logs it: a limit sheds load, it does not decide who gets a token', async () => {
    const github = freshIssuer(inject('testIssuerBase'), 'limits-down');
    const files = Object.entries(suitePolicies(github, freshIssuer(inject('testIssuerBase'), 'limits-down-oidc'))).map(([path, text]) => ({ path, text }));
    const logged: { message: string; fields: LogFields }[] = [];
    const keep = (message: string, fields: LogFields = {}) => void logged.push({ message, fields });
    // One token per identity: the second exchange is refused while the limiter answers.
    const tight = { ...workerEnv, KEYWAY_RATE_LIMIT_SUBJECT_PER_MINUTE: '1', KEYWAY_RATE_LIMIT_SUBJECT_BURST: '1' };
    const twice = async (env: WorkerEnv) => {
      const broker = await createWorkerBroker(env, files, { log: { info: keep, warn: keep, error: keep } });
      const request = async (path: string, init?: RequestInit) => {
        const sent = new Request(`${env.KEYWAY_ISSUER}${path}`, init);
        sent.headers.set('cf-connecting-ip', '203.0.113.7');
        return broker.app.fetch(sent, env, createExecutionContext());
      };
      const client = { issuer: env.KEYWAY_ISSUER, request };
      const exchange = async () => postToken(client, exchangeForm(await github.sign(ciClaims(github.url, env.KEYWAY_ISSUER))));
      return [await exchange(), await exchange()];
    };
    expect((await twice(tight)).map((answer) => answer.status)).toEqual([200, 429]);
    expect(logged.filter((line) => line.message.startsWith('rate limiter'))).toEqual([]);

    // The limiter's binding names objects that do not hold buckets: every call to it fails, as one that cannot be reached does.
    const unreachable = { ...tight, LIMITS: workerEnv.REPLAY as unknown as WorkerEnv['LIMITS'] };
    const answers = await twice(unreachable);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
    for (const answer of answers) expect(answer.body['access_token']).toBeTypeOf('string');
    const failures = logged.filter((line) => line.message === 'rate limiter unavailable; request let through');
    // Each exchange asks the client, global and subject limits.
    expect(failures.map((line) => line.fields['limit'])).toEqual(['client', 'global', 'subject', 'client', 'global', 'subject']);
    expect(failures.every((line) => typeof line.fields['error'] === 'string')).toBe(true);
  });
});
