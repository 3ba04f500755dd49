import { describe, expect, it } from 'vitest';
import { keyLifeCycle, planKeyRing, type KeyRingPlan } from '../../src/core/mint/key-life-cycle.ts';
import type { SigningKeyInfo } from '../../src/core/mint/key-store.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);
const cycle = keyLifeCycle({ rotationDays: 1 }, 3600);
const key = (kid: string, state: SigningKeyInfo['state'], times: Partial<SigningKeyInfo> & { createdAt: number }): SigningKeyInfo => ({
  kid,
  alg: 'ES256',
  state,
  publicJwk: { kty: 'EC', kid },
  ...times,
});
const upkeep = (now: number): KeyRingPlan => ({ now, cycle, rotate: false, upkeep: true });

/** The store contract walks a rotation that runs on time; these are the rounds that do not. */
describe('planKeyRing, the schedule of a rotation', () => {
  it('publishes the next key a lead time before the current one has signed for the rotation period, counted from when it began to sign', () => {
    // Published as a next key 7 minutes before it signed: its period runs from its activation, not its publication.
    const keys = [key('current', 'current', { createdAt: T0 - 7 * MINUTE, activatedAt: T0 })];
    const due = T0 + DAY;
    expect(planKeyRing(keys, upkeep(due - cycle.leadMs - 1), 'fresh')).toEqual([]);
    expect(planKeyRing(keys, upkeep(due - cycle.leadMs), 'fresh')).toEqual([{ kind: 'publish', kid: 'fresh', activatesAt: due }]);
  });

  it('publishes a lead time ahead of its signing still when upkeep comes late (a broker that was down): never a key that signs at once', () => {
    const keys = [key('current', 'current', { createdAt: T0 })];
    const late = T0 + DAY + 60 * MINUTE;
    expect(planKeyRing(keys, upkeep(late), 'fresh')).toEqual([{ kind: 'publish', kid: 'fresh', activatesAt: late + cycle.leadMs }]);
  });

  it('lets a next key stored without its activation time (an older keyway) sign only a lead time after it was published', () => {
    const keys = [key('current', 'current', { createdAt: T0 }), key('next', 'next', { createdAt: T0 + MINUTE })];
    expect(planKeyRing(keys, upkeep(T0 + MINUTE + cycle.leadMs - 1), 'fresh')).toEqual([]);
    expect(planKeyRing(keys, upkeep(T0 + MINUTE + cycle.leadMs), 'fresh')).toEqual([
      { kind: 'retire', kid: 'current' },
      { kind: 'activate', kid: 'next' },
    ]);
  });

  it('plans only the rotation asked for without upkeep (the CLI): a due next key is left for the broker, one already at its earliest is not rescheduled', () => {
    const created = T0 + MINUTE;
    const keys = [key('current', 'current', { createdAt: T0 }), key('next', 'next', { createdAt: created, activatesAt: created + cycle.leadMs })];
    const asked = (now: number): KeyRingPlan => ({ now, cycle, rotate: true, upkeep: false });
    expect(planKeyRing(keys, asked(created + 1), 'fresh')).toEqual([]);
    expect(planKeyRing(keys, asked(created + cycle.leadMs + MINUTE), 'fresh')).toEqual([]);
  });
});
