// Values globalSetup provides to tests (test/support/global-setup.ts).
declare module 'vitest' {
  export interface ProvidedContext {
    testIssuerBase: string;
    fakeGitHubBase: string;
    fakeUpstreamBase: string;
    fuzzRuns: { seed: number; runs: number };
  }
}

export {};
