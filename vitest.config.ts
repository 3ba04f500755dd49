import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { randomBytes } from 'node:crypto';
import { defineConfig } from 'vitest/config';

const globalSetup = ['./test/support/global-setup.ts'];

/**
 * Every test asserts something (one that asserts nothing passes whatever the code does). A poll waits up to 10 s for
 * what it expects, not vitest's 1 s: on a loaded machine an exchange round trip alone can take longer than that.
 */
const expect = { requireAssertions: true, poll: { timeout: 10_000 } };

/** A test master key (a Worker secret in production), generated per run: signing keys are sealed under it. */
const masterKey = randomBytes(32).toString('base64');
/** The master key before it (KEYWAY_MASTER_KEY_PREVIOUS), as after a change of master key: what it MACed or sealed still holds. */
const previousMasterKey = randomBytes(32).toString('base64');

/** Tests inside workerd with real bindings: wrangler.toml's, with `bindings` over them. */
function workersProject(name: string, include: string[], bindings: Record<string, string> = {}) {
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: './wrangler.toml' },
        miniflare: {
          bindings: {
            KEYWAY_ISSUER: 'https://keyway.test',
            KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
            KEYWAY_MASTER_KEY: masterKey,
            KEYWAY_MASTER_KEY_PREVIOUS: previousMasterKey,
            ...bindings,
          },
        },
      }),
    ],
    test: {
      name,
      include,
      globalSetup: [...globalSetup, './test/workers/bundle-policies.ts'],
      expect,
      testTimeout: 20_000,
      hookTimeout: 20_000,
    },
  };
}

/**
 * Three projects, one run: `node` runs the unit tests and the real Node broker over HTTP;
 * `workers` runs the unit tests again, and the Worker broker, inside workerd with real bindings;
 * `workers-retention`, in a workerd of its own, what the Durable Objects do with an audit retention set.
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
          expect,
          testTimeout: 20_000,
          hookTimeout: 20_000,
        },
      },
      workersProject('workers', ['test/unit/**/*.test.ts', 'test/workers/**/*.test.ts']),
      // The Durable Objects read their settings from their bindings, not from the env a test hands the broker.
      workersProject('workers-retention', ['test/workers-retention/**/*.test.ts'], { KEYWAY_AUDIT_RETENTION_DAYS: '1' }),
    ],
  },
});
