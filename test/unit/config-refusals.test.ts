import { describe, expect, it } from 'vitest';
import { readBrokerSettings } from '../../src/config/broker-settings.ts';
import { readMasterKeys } from '../../src/core/secrets/master-keys.ts';
import { ConfigError } from '../../src/core/settings/read-settings.ts';
import { leaked } from '../support/secret-files.ts';

const SECRET = 'Ht5vLq9Wz3Nc7Rx1Kp8d';
const KEY = '-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----';
const APP = { KEYWAY_GITHUB_APP_ID: '1', KEYWAY_GITHUB_APP_PRIVATE_KEY: KEY };

/** The message a start-up refusal prints, from the settings both runtimes read. */
function refusal(env: Record<string, string>): string {
  try {
    readBrokerSettings({ KEYWAY_ISSUER: 'https://keyway.example.com', ...env });
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected the settings to be refused');
}

describe('a setting that can carry a secret, refused at start-up', () => {
  it.each([
    ['the issuer with a password in it', { KEYWAY_ISSUER: `https://admin:${SECRET}@keyway.example.com` }, /^KEYWAY_ISSUER must be an origin .*no credentials/],
    ["another setting's secret as the issuer", { KEYWAY_ISSUER: SECRET }, /^KEYWAY_ISSUER is not a URL$/],
    [
      'the GitHub API URL with a token as its password',
      { ...APP, KEYWAY_GITHUB_API_URL: `https://x-access-token:${SECRET}@ghe.example.com/api/v3` },
      /^KEYWAY_GITHUB_API_URL must be a URL without credentials, query or fragment$/,
    ],
    [
      'the GitHub API URL with a token as its user name alone',
      { ...APP, KEYWAY_GITHUB_API_URL: `https://${SECRET}@ghe.example.com/api/v3` },
      /^KEYWAY_GITHUB_API_URL must be a URL without credentials, query or fragment$/,
    ],
    [
      'the GitHub API URL with a token as its password and no user name',
      { ...APP, KEYWAY_GITHUB_API_URL: `https://:${SECRET}@ghe.example.com/api/v3` },
      /^KEYWAY_GITHUB_API_URL must be a URL without credentials, query or fragment$/,
    ],
    [
      'the GitHub API URL with a token in its fragment',
      { ...APP, KEYWAY_GITHUB_API_URL: `https://ghe.example.com/api/v3#${SECRET}` },
      /^KEYWAY_GITHUB_API_URL must be a URL without credentials, query or fragment$/,
    ],
    [
      'the GitHub API URL with a token in its query',
      { ...APP, KEYWAY_GITHUB_API_URL: `https://ghe.example.com/api/v3?access_token=${SECRET}` },
      /^KEYWAY_GITHUB_API_URL must be a URL without credentials, query or fragment$/,
    ],
    ["another setting's secret as the GitHub API URL", { ...APP, KEYWAY_GITHUB_API_URL: SECRET }, /^KEYWAY_GITHUB_API_URL must be a URL/],
  ])('%s: names the setting and the problem, never the value', (_, env, message) => {
    const refused = refusal(env);
    expect(leaked(refused, [SECRET])).toEqual([]);
    expect(refused).toMatch(message);
  });
});

describe('a key setting that is not base64 of its length', () => {
  // 41 base64 characters: no whole number of bytes, which atob refuses with a DOMException of its own.
  const truncated = `${SECRET}${SECRET}X`;

  it('is a configuration error naming the setting, never the key', () => {
    const refused = refusal({ KEYWAY_DPOP_NONCE_KEY: truncated });
    expect(leaked(refused, [SECRET])).toEqual([]);
    expect(refused).toMatch(/^KEYWAY_DPOP_NONCE_KEY is not base64/);
    expect(() => readMasterKeys({ KEYWAY_MASTER_KEY: truncated })).toThrow(ConfigError);
  });
});
