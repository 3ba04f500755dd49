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
function isolate(livePolicyState: (known: string) => Promise<unknown>) {
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
    const pending: ((state: { stamp: string; files: PolicyFile[] }) => void)[] = [];
    const { clock, live, serving } = isolate(() => new Promise((resolve) => pending.push(resolve)));
    const before = live.refreshIfStale();
    clock.now = 10_000;
    const after = live.refreshIfStale();
    pending[1]?.({ stamp: '6@60', files: [file('v6')] });
    await after;
    expect(serving()).toEqual(['live/v6']);
    pending[0]?.({ stamp: '5@50', files: [file('v5')] });
    await before;
    expect(serving()).toEqual(['live/v6']);
  });

  it('follows the state object back to an earlier version (recovered to a bookmark), and on to the next push', async () => {
    const { next, store } = polled();
    store({ stamp: '8@80', files: [file('v8')] });
    expect(await next()).toEqual(['live/v8']);
    store({ stamp: '6@60', files: [file('v6')] });
    expect(await next()).toEqual(['live/v6']);
    store({ stamp: '7@70', files: [file('v7')] });
    expect(await next()).toEqual(['live/v7']);
  });

  it('takes a push that reuses the version it serves (the state object recovered to before it, then pushed to again)', async () => {
    const { next, store } = polled();
    store({ stamp: '7@70', files: [file('v7')] });
    expect(await next()).toEqual(['live/v7']);
    // Recovered to version 6, then a new push saved as version 7 again, with other files.
    store({ stamp: '7@95', files: [file('v7-again')] });
    expect(await next()).toEqual(['live/v7-again']);
  });

  it('serves the bundled set again when the state object is recovered to before the first push', async () => {
    const { next, store } = polled();
    store({ stamp: '1@10', files: [file('v1')] });
    expect(await next()).toEqual(['live/v1']);
    store({ stamp: '' });
    expect(await next()).toEqual(['live/bundled']);
  });
});

/** An isolate polling a state object that sends files only when the stamp the isolate holds is not the stored one, as KeywayState does. */
function polled() {
  let stored: { stamp: string; files?: PolicyFile[] } = { stamp: '' };
  const { clock, live, serving } = isolate(async (known) => (known === stored.stamp ? { stamp: known } : stored));
  return {
    store: (state: typeof stored) => {
      stored = state;
    },
    next: async () => {
      clock.now += 10_000;
      await live.refreshIfStale();
      return serving();
    },
  };
}
