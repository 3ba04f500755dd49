import { describe, expect, it } from 'vitest';
import { FailureBackoff, retryAfter } from '../../src/runtimes/failure-backoff.ts';

/** A backoff over a clock the test sets, with every failure it reports. */
function backoff() {
  const backoff = new FailureBackoff();
  const reported: { failures: number; waitMs: number }[] = [];
  let clock = 0;
  const attempt = (startedAt: number, outcome: 'fails' | 'succeeds', failsAt = startedAt) =>
    backoff.attempt(
      startedAt,
      () => (outcome === 'fails' ? failsAt : clock),
      async () => {
        clock = failsAt;
        if (outcome === 'fails') throw new Error('down');
        return 'served';
      },
      (_error, failure) => reported.push({ ...failure }),
    );
  return { attempt, reported };
}

describe('FailureBackoff', () => {
  it('doubles the wait with each failure in a row from 1 s, and waits at most a minute however many follow', async () => {
    const { attempt, reported } = backoff();
    let at = 0;
    for (let failure = 0; failure < 9; failure += 1) {
      const answer = await attempt(at, 'fails');
      expect(answer).toEqual({ waitMs: reported.at(-1)?.waitMs });
      at += reported.at(-1)?.waitMs ?? 0;
    }
    expect(reported.map(({ waitMs }) => waitMs)).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    expect(reported.map(({ failures }) => failures)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Retry-After in whole seconds, rounded up: never sooner than the wait.
    expect([retryAfter(60_000), retryAfter(1500), retryAfter(1)]).toEqual(['60', '2', '1']);
  });

  it('tells a request within the wait how long is left, without trying; tries again once it has passed', async () => {
    const { attempt, reported } = backoff();
    await attempt(10_000, 'fails');
    expect(await attempt(10_400, 'succeeds')).toEqual({ waitMs: 600 });
    expect(await attempt(10_999, 'succeeds')).toEqual({ waitMs: 1 });
    expect(reported).toHaveLength(1);
    expect(await attempt(11_000, 'succeeds')).toEqual({ value: 'served' });
  });

  it('counts the failures of tries begun together once, and one begun after the counted failure again', async () => {
    const { attempt, reported } = backoff();
    // Three requests arrive together, the last in the very ms the first's failure is counted; their tries fail one after another.
    await Promise.all([attempt(0, 'fails', 50), attempt(20, 'fails', 60), attempt(50, 'fails', 70)]);
    expect(reported).toEqual([{ failures: 1, waitMs: 1000 }]);
    // One that arrived after the failure was counted is its own failure: the wait doubles from when it failed.
    await attempt(1050, 'fails', 1100);
    expect(reported.at(-1)).toEqual({ failures: 2, waitMs: 2000 });
    expect(await attempt(3099, 'succeeds')).toEqual({ waitMs: 1 });
  });

  it('starts again from 1 s after a try succeeds', async () => {
    const { attempt, reported } = backoff();
    await attempt(0, 'fails');
    await attempt(1000, 'fails');
    expect(await attempt(3000, 'succeeds')).toEqual({ value: 'served' });
    // The next request is tried at once, and its failure waits the first wait again.
    expect(await attempt(3001, 'fails')).toEqual({ waitMs: 1000 });
    expect(reported.at(-1)).toEqual({ failures: 1, waitMs: 1000 });
  });

  it('serves at once after a try that succeeded, though one begun with it failed first and set a wait', async () => {
    const { attempt } = backoff();
    const [failed, succeeded] = await Promise.all([attempt(0, 'fails', 10), attempt(0, 'succeeds', 20)]);
    expect([failed, succeeded]).toEqual([{ waitMs: 1000 }, { value: 'served' }]);
    expect(await attempt(30, 'succeeds')).toEqual({ value: 'served' });
  });
});
