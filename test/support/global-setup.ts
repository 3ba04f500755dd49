import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startFakeGitHubServer } from './fake-github-server.ts';
import { startTestIssuerServer } from './test-issuer-server.ts';
import { startFakeUpstreamServer } from './fake-upstream-server.ts';

/**
 * Every temporary directory a test or a broker it starts makes (data directories, exports, job working directories)
 * goes under one directory for the run, removed when the run ends: hundreds of them per run, which the tests do not
 * remove one by one, used to pile up in the system's. The test workers inherit TMPDIR, which `os.tmpdir()` reads; the
 * first project's setup makes the directory and the other reuses it, so paths stay short enough for a Unix socket.
 */
function runTemporaryDirectory(): (() => void) | undefined {
  if (process.env['KEYWAY_TEST_RUN_TMPDIR']) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'keyway-run-'));
  // Others may pass through to what a test opens to them (one runs a probe as nobody in a directory of its own), not list it.
  chmodSync(dir, 0o711);
  process.env['KEYWAY_TEST_RUN_TMPDIR'] = dir;
  process.env['TMPDIR'] = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}

/** Inputs each fuzzed property tries: KEYWAY_FUZZ_RUNS, or enough for `npm test` to meet the common mistakes in seconds. */
function fuzzRuns(): number {
  const runs = Number(process.env['KEYWAY_FUZZ_RUNS'] ?? 100);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`KEYWAY_FUZZ_RUNS must be a positive integer, not ${process.env['KEYWAY_FUZZ_RUNS']}`);
  return runs;
}

/** One test issuer server, one fake GitHub API and one fake proxy upstream per test project, reached over loopback HTTP from Node and workerd tests. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const removeRunTemporaryDirectory = runTemporaryDirectory();
  const server = await startTestIssuerServer();
  const github = await startFakeGitHubServer();
  const upstream = await startFakeUpstreamServer();
  project.provide('testIssuerBase', server.base);
  project.provide('fakeGitHubBase', github.base);
  project.provide('fakeUpstreamBase', upstream.base);
  // The shared suites (test/suites) run their tests in a random order and draw their fuzzed inputs from this seed: it
  // replays a run (`--sequence.seed=N`). KEYWAY_FUZZ_RUNS tries more inputs per property (`npm run fuzz`).
  project.provide('fuzzRuns', { seed: project.config.sequence.seed, runs: fuzzRuns() });
  console.log(`${project.name}: shared suites shuffled and fuzzed with seed ${project.config.sequence.seed}`);
  return async () => {
    await server.close();
    await github.close();
    await upstream.close();
    removeRunTemporaryDirectory?.();
  };
}
