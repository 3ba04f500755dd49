import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { loadPolicies, type PolicyFile } from '../../src/core/policy/load-policies.ts';
import { WorkerLivePolicies } from '../../src/runtimes/workers/live-policies.ts';

const options = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: true };
const file = (name: string): PolicyFile => ({
  path: `live/${name}.yaml`,
  text: `version: 1\nissuer: "https://ci.example"\nmatch: { sub: ${name} }\ngrant: { audience: https://a.example }\n`,
});

/** An isolate whose KeywayState answers as `livePolicyState` does, on a clock the test moves, checking every 5 s. */
function isolate(livePolicyState: (known: number) => Promise<unknown>) {
  const clock = { now: 0 };
  const live = new WorkerLivePolicies(
    () => ({ livePolicyState }) as never,
    loadPolicies([file('bundled')], options),
    options,
    silentLogger,
    () => clock.now,
    5,
  );
  const serving = () => live.current.policies.map((policy) => policy.id);
  return { clock, live, serving };
}

describe("a Worker isolate's live policy set", () => {
  it('is never taken back to an older version by a check asked before a newer one and answered after it', async () => {
    // The KeywayState object's answers, released by the test in the order it chooses.
    const pending: ((state: { version: number; files: PolicyFile[] }) => void)[] = [];
    const { clock, live, serving } = isolate(() => new Promise((resolve) => pending.push(resolve)));
    const before = live.refreshIfStale();
    clock.now = 10_000;
    const after = live.refreshIfStale();
    pending[1]?.({ version: 6, files: [file('v6')] });
    await after;
    expect(serving()).toEqual(['live/v6']);
    pending[0]?.({ version: 5, files: [file('v5')] });
    await before;
    expect(serving()).toEqual(['live/v6']);
  });

  it('follows the state object back to an earlier version (recovered to a bookmark), and on to the next push', async () => {
    let stored: { version: number; files: PolicyFile[] } = { version: 8, files: [file('v8')] };
    const { clock, live, serving } = isolate(async (known) => (known === stored.version ? { version: known } : stored));
    const next = async () => {
      clock.now += 10_000;
      await live.refreshIfStale();
      return serving();
    };
    expect(await next()).toEqual(['live/v8']);
    stored = { version: 6, files: [file('v6')] };
    expect(await next()).toEqual(['live/v6']);
    stored = { version: 7, files: [file('v7')] };
    expect(await next()).toEqual(['live/v7']);
  });
});
