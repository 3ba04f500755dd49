import { describe, expect, inject, it } from 'vitest';
import { readAlertSettings } from '../../src/features/alerts/alert-settings.ts';
import { addressRefusal, ForbiddenAddressError } from '../../src/core/outbound/outbound-address.ts';
import { outboundFetch } from '../../src/core/outbound/outbound-fetch.ts';
import { checkOutboundUrl, OutboundUrlError } from '../../src/core/outbound/check-outbound-url.ts';
import { loadPolicies, PolicyLoadError } from '../../src/core/policy/load-policies.ts';
import { ConfigError } from '../../src/core/settings/read-settings.ts';
import { freshIssuer } from '../suites/exchange-suite.ts';

const NEVER = [
  ['127.0.0.1', 'loopback'],
  ['127.8.9.10', 'loopback'],
  ['::1', 'loopback'],
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['169.254.169.254', 'linkLocal'],
  ['::ffff:169.254.169.254', 'linkLocal'],
  ['fe80::1', 'linkLocal'],
  ['10.0.0.1', 'private'],
  ['172.16.5.4', 'private'],
  ['192.168.1.1', 'private'],
  ['::ffff:10.0.0.1', 'private'],
  ['fd00::1', 'uniqueLocal'],
  ['fc00::1', 'uniqueLocal'],
  ['100.64.0.1', 'carrierGradeNat'],
  ['100.127.255.254', 'carrierGradeNat'],
  ['0.0.0.0', 'unspecified'],
  ['::', 'unspecified'],
  ['224.0.0.1', 'multicast'],
  ['ff02::1', 'multicast'],
  ['255.255.255.255', 'broadcast'],
  ['192.0.2.1', 'reserved'],
  ['240.0.0.1', 'reserved'],
  ['2001:db8::1', 'reserved'],
  ['64:ff9b::a9fe:a9fe', 'rfc6052'],
  ['2002:a9fe:a9fe::', '6to4'],
  ['2001:0:4136:e378::1', 'teredo'],
  ['::7f00:1', 'ipv4Compatible'],
  ['fec0::1', 'deprecatedSiteLocal'],
] as const;

const PUBLIC = ['8.8.8.8', '1.1.1.1', '140.82.112.3', '100.128.0.1', '172.32.0.1', '2606:4700:4700::1111', '2001:4860:4860::8888', '::ffff:8.8.8.8'];

describe('which addresses the broker connects to', () => {
  it.each(NEVER)('refuses %s (%s), with or without the loopback switch unless it is loopback', (address, range) => {
    const hint = range === 'loopback' ? ' (loopback only with KEYWAY_ALLOW_HTTP_LOOPBACK=1, for development)' : '';
    expect(addressRefusal(address, false)).toBe(`${address} is in the ${range} range; the broker only connects to public addresses${hint}`);
    if (range === 'loopback') expect(addressRefusal(address, true)).toBeUndefined();
    else expect(addressRefusal(address, true)).toBeDefined();
  });

  it.each(['168.63.129.16', '::ffff:168.63.129.16'])(
    "refuses %s, Azure's WireServer: a public address that is every Azure VM's own host service",
    (address) => {
      expect(addressRefusal(address, true)).toBe(`${address} is a cloud host's own service; the broker only connects to public addresses`);
    },
  );

  it.each(PUBLIC)('connects to the public address %s', (address) => {
    expect(addressRefusal(address, false)).toBeUndefined();
  });

  it('refuses what is not an IP address', () => {
    expect(addressRefusal('localhost', true)).toBe('localhost is not an IP address');
  });
});

describe('outbound URLs whose host is written as an IP address', () => {
  it.each([
    'https://169.254.169.254/latest/meta-data/',
    'https://127.0.0.1:8443/ci',
    'https://[::ffff:127.0.0.1]/ci',
    'https://[::1]/ci',
    'https://0x7f.1/ci',
    'https://2130706433/ci',
    'https://[fd00::1]/ci',
    'https://10.0.0.1/ci',
    'https://100.64.0.1/ci',
    'https://0.0.0.0/ci',
  ])('refuses %s', (url) => {
    expect(() => checkOutboundUrl(url, false)).toThrow(OutboundUrlError);
    expect(() => checkOutboundUrl(url, false)).toThrow(/range; the broker only connects to public addresses/);
  });

  it.each([
    ['https://ci@oidc.example.com/', /must not carry credentials/],
    ['https://:pw@oidc.example.com/', /must not carry credentials/],
    ['ftp://oidc.example.com/', /must use https/],
    ['file:///etc/passwd', /must use https/],
    ['http://localhost:8787/ci', /set KEYWAY_ALLOW_HTTP_LOOPBACK=1 to allow/],
  ])('refuses %s whatever its host', (url, message) => {
    expect(() => checkOutboundUrl(url, false)).toThrow(message);
  });

  it('takes loopback, and only loopback, with the development switch on', () => {
    expect(checkOutboundUrl('http://127.0.0.1:8787/ci', true).host).toBe('127.0.0.1:8787');
    expect(checkOutboundUrl('https://[::ffff:127.0.0.1]/ci', true).hostname).toBe('[::ffff:7f00:1]');
    expect(() => checkOutboundUrl('https://169.254.169.254/', true)).toThrow(/169\.254\.169\.254 is in the linkLocal range/);
    expect(() => checkOutboundUrl('https://192.168.0.10/', true)).toThrow(/192\.168\.0\.10 is in the private range/);
  });

  it('leaves a name to be judged by what it resolves to, when the connection is made', () => {
    expect(checkOutboundUrl('https://token.actions.githubusercontent.com', false).hostname).toBe('token.actions.githubusercontent.com');
    expect(checkOutboundUrl('https://localhost:8443/ci', false).hostname).toBe('localhost');
  });

  it('reports a policy naming such an issuer as a problem when the policies load', () => {
    const text = 'version: 1\nissuer: "https://169.254.169.254/latest"\nmatch: { sub: x }\ngrant: { audience: https://a.example }\n';
    const file = { path: 'metadata.yaml', text };
    let problems: readonly { message: string }[] = [];
    try {
      loadPolicies([file], { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: true });
    } catch (error) {
      if (!(error instanceof PolicyLoadError)) throw error;
      problems = error.problems;
    }
    expect(problems.map((problem) => problem.message)).toEqual([
      'https://169.254.169.254/latest: 169.254.169.254 is in the linkLocal range; the broker only connects to public addresses',
    ]);
  });

  it('refuses an alert webhook URL written as such an address when the settings are read', () => {
    expect(() => readAlertSettings({ KEYWAY_ALERT_WEBHOOK_URL: 'https://169.254.169.254/hook' }, true)).toThrow(ConfigError);
    expect(() => readAlertSettings({ KEYWAY_ALERT_WEBHOOK_URL: 'https://[fd00::5]/hook' }, true)).toThrow(/fd00::5 is in the uniqueLocal range/);
    expect(readAlertSettings({ KEYWAY_ALERT_WEBHOOK_URL: 'http://127.0.0.1:9/hook' }, true).webhookUrl).toBe('http://127.0.0.1:9/hook');
  });

  it('is refused by the outbound fetch before any connection, and reaches loopback only with the switch on', async () => {
    const issuer = freshIssuer(inject('testIssuerBase'), 'literal');
    const discovery = `${issuer.url}/.well-known/openid-configuration`;
    const refusing = outboundFetch((input, init) => fetch(input, init), false);
    await expect(refusing(discovery)).rejects.toThrow(ForbiddenAddressError);
    await expect(refusing(new Request(discovery))).rejects.toThrow(/127\.0\.0\.1 is in the loopback range/);
    expect((await issuer.hits()).discovery).toBe(0);

    const developing = outboundFetch((input, init) => fetch(input, init), true);
    expect((await developing(discovery)).status).toBe(200);
    expect((await issuer.hits()).discovery).toBe(1);
  });

  it('never follows a redirect, whatever the caller asked: the 3xx is the answer', async () => {
    const issuer = freshIssuer(inject('testIssuerBase'), 'redirect');
    const outbound = outboundFetch((input, init) => fetch(input, init), true);
    const redirecting = `${issuer.url}/redirect-to-trap`;
    for (const answer of [
      await outbound(redirecting),
      await outbound(redirecting, { redirect: 'follow' }),
      await outbound(new Request(redirecting, { redirect: 'follow' })),
    ]) {
      expect(answer.status).toBe(302);
      expect(answer.headers.get('location')).toBe(`${issuer.url}/trap/redirected`);
      await answer.body?.cancel();
    }
    expect((await issuer.hits()).trap).toBe(0);
  });
});
