import type { TestProject } from 'vitest/node';
import { startFakeGitHubServer } from './fake-github-server.ts';
import { startTestIssuerServer } from './test-issuer-server.ts';

/** One test issuer server and one fake GitHub API per test project, reached over loopback HTTP from Node and workerd tests. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startTestIssuerServer();
  const github = await startFakeGitHubServer();
  project.provide('testIssuerBase', server.base);
  project.provide('fakeGitHubBase', github.base);
  // The shared suites (test/suites) run their tests in a random order: this seed replays one (`--sequence.seed=N`).
  console.log(`${project.name}: shared suites shuffled with seed ${project.config.sequence.seed}`);
  return async () => {
    await server.close();
    await github.close();
  };
}
