import type { TestProject } from 'vitest/node';
import { startFakeGitHubServer } from './fake-github-server.ts';
import { startTestIssuerServer } from './test-issuer-server.ts';
import { startFakeUpstreamServer } from './fake-upstream-server.ts';

/** One test issuer server, one fake GitHub API and one fake proxy upstream per test project, reached over loopback HTTP from Node and workerd tests. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startTestIssuerServer();
  const github = await startFakeGitHubServer();
  const upstream = await startFakeUpstreamServer();
  project.provide('testIssuerBase', server.base);
  project.provide('fakeGitHubBase', github.base);
  project.provide('fakeUpstreamBase', upstream.base);
  // The shared suites (test/suites) run their tests in a random order: this seed replays one (`--sequence.seed=N`).
  console.log(`${project.name}: shared suites shuffled with seed ${project.config.sequence.seed}`);
  return async () => {
    await server.close();
    await github.close();
    await upstream.close();
  };
}
