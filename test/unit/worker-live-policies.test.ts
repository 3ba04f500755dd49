import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { loadPolicies, type PolicyFile } from '../../src/core/policy/load-policies.ts';
import { WorkerLivePolicies } from '../../src/runtimes/workers/live-policies.ts';

const options = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: true };
const file = (name: string): PolicyFile => ({
  path: `live/${name}.yaml`,
  text: `version: 1\nissuer: "https://ci.example"\nmatch: { sub: ${name} }\ngrant: { audience: https://a.example }\n`,
});

describe("a Worker isolate's live policy set", () => {
  it('is never taken back to an older version by a check asked before a newer one and answered after it', async () => {
    let clock = 0;
    // The KeywayState object's answers, released by the test in the order it chooses.
    const pending: ((state: { version: number; files: PolicyFile[] }) => void)[] = [];
    const stub = { livePolicyState: () => new Promise((resolve) => pending.push(resolve)) };
    const live = new WorkerLivePolicies(
      () => stub as never,
      loadPolicies([file('bundled')], options),
      options,
      silentLogger,
      () => clock,
      5,
    );
    const before = live.refreshIfStale();
    clock = 10_000;
    const after = live.refreshIfStale();
    pending[1]?.({ version: 6, files: [file('v6')] });
    await after;
    expect(live.current.policies.map((policy) => policy.id)).toEqual(['live/v6']);
    pending[0]?.({ version: 5, files: [file('v5')] });
    await before;
    expect(live.current.policies.map((policy) => policy.id)).toEqual(['live/v6']);
  });

  it('follows the state object back to an earlier version (recovered to a bookmark), and on to the next push', async () => {
    let clock = 0;
    let stored: { version: number; files: PolicyFile[] } = { version: 8, files: [file('v8')] };
    const stub = { livePolicyState: async (known: number) => (known === stored.version ? { version: known } : stored) };
    const live = new WorkerLivePolicies(
      () => stub as never,
      loadPolicies([file('bundled')], options),
      options,
      silentLogger,
      () => clock,
      5,
    );
    const serving = async () => {
      clock += 10_000;
      await live.refreshIfStale();
      return live.current.policies.map((policy) => policy.id);
    };
    expect(await serving()).toEqual(['live/v8']);
    stored = { version: 6, files: [file('v6')] };
    expect(await serving()).toEqual(['live/v6']);
    stored = { version: 7, files: [file('v7')] };
    expect(await serving()).toEqual(['live/v7']);
  });
});
