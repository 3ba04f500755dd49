import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCloudDiscovery } from '../../src/features/cloud/check-discovery.ts';
import { startNodeBroker, type NodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { serveOnLoopback } from '../support/serve-on-loopback.ts';
import { BROKER_ISSUER, OWN_URL_ISSUER, runProcess, startNodeHarness, testConfig, writeTree } from './node-harness.ts';
import type { BrokerHarness } from '../suites/exchange-suite.ts';

const cli = (args: readonly string[]) => runProcess(process.execPath, ['src/cli/main.ts', 'cloud', 'check', ...args], { env: { PATH: process.env['PATH'] } });

const POLICY = 'version: 1\nissuer: github\nmatch: { repository_owner_id: "1200934", repository_id: "734201" }\ngrant: { audience: https://deploy.acme.dev }\n';

describe("the broker's discovery, as AWS, Google Cloud and Azure read it", () => {
  let harness: BrokerHarness;
  let broker: NodeBroker;
  beforeAll(async () => {
    harness = await startNodeHarness({ 'deploy.yaml': POLICY });
    broker = await startNodeBroker(testConfig(writeTree({ 'policies/deploy.yaml': POLICY }), { issuer: OWN_URL_ISSUER }));
  });
  afterAll(async () => {
    await harness?.close();
    await broker?.close();
  });

  it('carries every field each cloud requires, and a key of each algorithm: nothing is missing for any cloud', async () => {
    const metadata = await (await harness.request('/.well-known/openid-configuration')).json();
    const jwks = await harness.request('/.well-known/jwks.json');
    expect(metadata).toMatchObject({
      issuer: BROKER_ISSUER,
      jwks_uri: `${BROKER_ISSUER}/.well-known/jwks.json`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256', 'RS256'],
      claims_supported: expect.arrayContaining(['sub', 'aud', 'https://aws.amazon.com/tags']),
    });
    const findings = checkCloudDiscovery(
      { issuer: BROKER_ISSUER, metadata, jwks: await jwks.json(), jwksCacheControl: jwks.headers.get('cache-control'), jwksMilliseconds: 20 },
      ['aws', 'gcp', 'azure'],
    );
    expect(findings).toEqual([
      { cloud: 'aws', problems: [] },
      { cloud: 'gcp', problems: [] },
      { cloud: 'azure', problems: [] },
    ]);
  });

  it('keyway cloud check fetches a running broker as a cloud does: on plain loopback HTTP it names only the https and port rules', async () => {
    const result = await cli(['--url', broker.config.issuer, '--json']);
    expect(result.code, result.stderr).toBe(1);
    const { clouds } = JSON.parse(result.stdout) as { clouds: { cloud: string; problems: string[] }[] };
    const https = ['the issuer is not an https URL', 'jwks_uri is missing or not an https URL'];
    expect(clouds).toEqual([
      { cloud: 'aws', problems: [...https, 'AWS takes no port, query or fragment in the issuer'] },
      { cloud: 'gcp', problems: https },
      { cloud: 'azure', problems: https },
    ]);
  });

  it('names, per cloud, what a discovery document and JWKS lack', async () => {
    const app = new Hono();
    let base = '';
    app.get('/.well-known/openid-configuration', (c) => c.json({ issuer: `${base}/`, jwks_uri: `${base}/jwks`, response_types_supported: [] }));
    app.get('/jwks', (c) => {
      c.header('Cache-Control', 'no-store');
      return c.json({ keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', alg: 'ES256', use: 'sig' }] });
    });
    const served = await serveOnLoopback(app.fetch);
    base = served.base;
    try {
      const result = await cli(['--url', base, '--cloud', 'azure']);
      expect(result.code).toBe(1);
      expect(result.stdout).toContain('azure: ');
      for (const problem of [
        `the discovery document's issuer "${base}/" is not "${base}", byte for byte`,
        'response_types_supported does not list id_token',
        'subject_types_supported is missing',
        'claims_supported does not list sub and aud',
        'a JWKS key has no kid',
        'the JWKS Cache-Control ("no-store") does not let a cloud cache the keys for a while',
        'id_token_signing_alg_values_supported does not list RS256',
        'the JWKS has no RS256 signing key, which azure needs',
      ]) {
        expect(result.stdout).toContain(problem);
      }
      expect(result.stdout).not.toContain('aws:');
      expect((await cli(['--url', base, '--cloud', 'oci'])).code).toBe(2);
    } finally {
      await served.close();
    }
  });
});
