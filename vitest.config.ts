import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';

const globalSetup = ['./test/support/global-setup.ts'];

/**
 * Two projects, one run: `node` runs the unit tests and the real Node broker over HTTP;
 * `workers` runs the unit tests again, and the Worker broker, inside workerd with real bindings.
 */
export default defineConfig({
  test: {
    reporters: ['default', ['json', { outputFile: '.vitest/results.json' }]],
    // cloudflare/workers-sdk#14736: the workers pool's Durable Object wrapper reports every rejecting RPC a
    // second time as unhandled, even when the test awaits and handles the rejection. The caller always
    // receives the rejection too, so only that duplicate (a remote Durable Object error) is dropped.
    onUnhandledError: (error) => !('durableObjectId' in error && (error as { remote?: unknown }).remote === true),
    projects: [
      {
        test: {
          name: 'node',
          include: ['test/unit/**/*.test.ts', 'test/node/**/*.test.ts'],
          globalSetup,
          testTimeout: 20_000,
          hookTimeout: 20_000,
        },
      },
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: './wrangler.toml' },
            miniflare: {
              // A fixed test master key: GitHub tokens awaiting revocation are sealed under it.
              bindings: { KEYWAY_ISSUER: 'https://keyway.test', KEYWAY_ALLOW_HTTP_LOOPBACK: '1', KEYWAY_MASTER_KEY: 'dGVzdCBtYXN0ZXIga2V5IGZvciB3b3JrZXJzIHRlc3Q' },
            },
          }),
        ],
        test: {
          name: 'workers',
          include: ['test/unit/**/*.test.ts', 'test/workers/**/*.test.ts'],
          globalSetup: [...globalSetup, './test/workers/bundle-policies.ts'],
          testTimeout: 20_000,
          hookTimeout: 20_000,
        },
      },
    ],
  },
});
