import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { IssuerUnavailableError } from '../../src/core/verify/jwks-cache.ts';
import { silentLogger } from '../../src/core/log.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { freshIssuer } from '../suites/exchange-suite.ts';
import { testConfig, writeTree } from './node-harness.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/**
 * The lifetimes the README promises for cached issuer keys, in the cache the broker builds with
 * its defaults (no policy passed in), written out here in plain numbers so a changed default
 * shows. Time is the broker's clock, moved by the test.
 */
describe('JWKS cache lifetimes, as the broker runs them', () => {
  const clock = { now: Date.now() };
  let broker: NodeBroker;

  beforeAll(async () => {
    const root = writeTree({});
    mkdirSync(join(root, 'policies'));
    broker = await startNodeBroker(testConfig(root), { log: silentLogger, now: () => clock.now });
  });
  afterAll(() => broker.close());

  /** A fresh issuer sending `cacheControl` with its JWKS, and the broker's cache asked for its keys. */
  async function setup(cacheControl: string) {
    const issuer = freshIssuer(inject('testIssuerBase'), 'lifetimes');
    await issuer.settings({ cacheControl });
    return { issuer, keysFor: () => broker.jwks.keysFor(issuer.url), jwksFetches: async () => (await issuer.hits()).jwks };
  }

  it('keeps keys 10 minutes when the issuer sends no max-age', async () => {
    const { keysFor, jwksFetches } = await setup('public');
    await keysFor();
    clock.now += 10 * MINUTE - 1;
    await keysFor();
    expect(await jwksFetches()).toBe(1);
    clock.now += 1;
    await keysFor();
    expect(await jwksFetches()).toBe(2);
  });

  it('keeps keys 24 hours at most, whatever max-age the issuer sends', async () => {
    const { keysFor, jwksFetches } = await setup('public, max-age=31536000');
    await keysFor();
    clock.now += 24 * HOUR - 1;
    await keysFor();
    expect(await jwksFetches()).toBe(1);
    clock.now += 1;
    await keysFor();
    expect(await jwksFetches()).toBe(2);
  });

  it('keeps verifying with cached keys for 6 hours past their freshness while the issuer is down, and not a moment longer', async () => {
    const { issuer, keysFor } = await setup('public, max-age=600');
    const keys = await keysFor();
    await issuer.settings({ down: true });
    clock.now += 10 * MINUTE;
    expect(await keysFor()).toBe(keys);
    clock.now += 6 * HOUR - 1;
    expect(await keysFor()).toBe(keys);
    clock.now += 1;
    await expect(keysFor()).rejects.toThrow(IssuerUnavailableError);
  });
});
