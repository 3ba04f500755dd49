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
              bindings: { KEYWAY_ISSUER: 'https://keyway.test', KEYWAY_ALLOW_HTTP_LOOPBACK: '1' },
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
