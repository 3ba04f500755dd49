import type { TestProject } from 'vitest/node';
import { startTestIssuerServer } from './test-issuer-server.ts';

/** One test issuer server per test project, reached over loopback HTTP from Node and workerd tests. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startTestIssuerServer();
  project.provide('testIssuerBase', server.base);
  return () => server.close();
}
