import { describe, expect, it } from 'vitest';
import { githubDeploymentOf } from '../../src/core/claims/github-run.ts';
import { readGitHubAppSettings } from '../../src/features/github/app/github-settings.ts';

const app = { KEYWAY_GITHUB_APP_ID: '1', KEYWAY_GITHUB_APP_PRIVATE_KEY: '-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----' };

describe("the App's GitHub deployment", () => {
  // Read once from KEYWAY_GITHUB_API_URL however it is spelt, and the same as its jobs' issuer names: the exchange, the proxy,
  // the webhooks and the policy loader all take this one value.
  it.each([
    ['https://api.github.com', 'https://token.actions.githubusercontent.com'],
    ['https://API.GitHub.com./', 'https://token.actions.githubusercontent.com/acme'],
    ['https://ghes.acme.dev/api/v3/', 'https://ghes.acme.dev/_services/token'],
    ['https://GHES.acme.dev./api/v3//', 'https://ghes.acme.dev:443/_services/token'],
    ['https://api.acme.ghe.com', 'https://token.actions.acme.ghe.com'],
  ])('is read from %s as from its issuer %s', (apiUrl, issuer) => {
    const settings = readGitHubAppSettings({ ...app, KEYWAY_GITHUB_API_URL: apiUrl });
    expect(settings?.deployment).toBe(githubDeploymentOf(issuer));
    expect(settings?.deployment).toBe(githubDeploymentOf(settings?.apiUrl ?? ''));
  });

  it("is github.com's without KEYWAY_GITHUB_API_URL", () => {
    expect(readGitHubAppSettings(app)?.deployment).toBe('github.com');
  });
});
