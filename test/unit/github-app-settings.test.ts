import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/settings/read-settings.ts';
import { readGitHubAppSettings } from '../../src/features/github/app/github-settings.ts';
import { readGitHubWebhookSettings } from '../../src/features/github/webhooks/webhook-settings.ts';

const KEY = '-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----';
const PRIMARY = { KEYWAY_GITHUB_APP_ID: '1', KEYWAY_GITHUB_APP_PRIVATE_KEY: KEY };

describe('a pool of GitHub Apps in settings', () => {
  it('reads KEYWAY_GITHUB_APP_<n>_ID and _PRIVATE_KEY after the primary, in order', () => {
    const settings = readGitHubAppSettings({
      ...PRIMARY,
      KEYWAY_GITHUB_APP_3_ID: '3',
      KEYWAY_GITHUB_APP_3_PRIVATE_KEY: KEY.replaceAll('\n', '\\n'),
      KEYWAY_GITHUB_APP_2_ID: '2',
      KEYWAY_GITHUB_APP_2_PRIVATE_KEY: KEY,
    });
    expect(settings?.appId).toBe('1');
    expect(settings?.extraApps).toEqual([
      { appId: '2', privateKeyPem: KEY },
      { appId: '3', privateKeyPem: KEY },
    ]);
    expect(readGitHubAppSettings(PRIMARY)?.extraApps).toEqual([]);
  });

  it('refuses an id without its key, an App without the primary, and an App configured twice', () => {
    for (const env of [
      { ...PRIMARY, KEYWAY_GITHUB_APP_2_ID: '2' },
      { KEYWAY_GITHUB_APP_2_ID: '2', KEYWAY_GITHUB_APP_2_PRIVATE_KEY: KEY },
      { ...PRIMARY, KEYWAY_GITHUB_APP_2_ID: '1', KEYWAY_GITHUB_APP_2_PRIVATE_KEY: KEY },
      { ...PRIMARY, KEYWAY_GITHUB_APP_2_ID: '2', KEYWAY_GITHUB_APP_2_PRIVATE_KEY: 'not a key' },
    ]) {
      expect(() => readGitHubAppSettings(env), JSON.stringify(Object.keys(env))).toThrow(ConfigError);
    }
  });
});

describe("a pool App's webhook secret", () => {
  const WEBHOOK = { KEYWAY_GITHUB_WEBHOOK_SECRET: 'primary-webhook-secret-0123456789' };
  it('belongs to the App id beside it', () => {
    const settings = readGitHubWebhookSettings({
      ...WEBHOOK,
      KEYWAY_GITHUB_APP_2_ID: '2',
      KEYWAY_GITHUB_APP_2_WEBHOOK_SECRET: 'second-webhook-secret-0123456789',
    });
    expect(settings?.appSecrets).toEqual({ '2': 'second-webhook-secret-0123456789' });
    expect(readGitHubWebhookSettings(WEBHOOK)?.appSecrets).toEqual({});
  });

  it('refuses one without its App id, a short one, and one without the primary secret', () => {
    for (const env of [
      { ...WEBHOOK, KEYWAY_GITHUB_APP_2_WEBHOOK_SECRET: 'second-webhook-secret-0123456789' },
      { ...WEBHOOK, KEYWAY_GITHUB_APP_2_ID: '2', KEYWAY_GITHUB_APP_2_WEBHOOK_SECRET: 'short' },
      { KEYWAY_GITHUB_APP_2_ID: '2', KEYWAY_GITHUB_APP_2_WEBHOOK_SECRET: 'second-webhook-secret-0123456789' },
    ]) {
      expect(() => readGitHubWebhookSettings(env), JSON.stringify(Object.keys(env))).toThrow(ConfigError);
    }
  });
});
