import { readInteger, type SettingsSource } from '../settings/read-settings.ts';
import type { KeyTransition, SigningKeyInfo } from './key-store.ts';

/** The JWKS response's `Cache-Control: max-age`: how long a relying party may keep a key set. */
export const JWKS_MAX_AGE_SECONDS = 300;
/** How often every broker process reloads its key ring from the store (Node timer; Workers per isolate). */
export const KEY_RING_REFRESH_SECONDS = 60;
/**
 * How old a Node process's key ring may be before it is served no more without a reload: one refresh period (the key
 * timer's) and a grace for that round to end. A round that failed (a lock held too long) is made up by the next request's
 * reload; a ring that cannot be reloaded is served at most this long. So a key withdrawn elsewhere may still sign for this
 * long after its withdrawal, and no longer (a Workers isolate's ring: one refresh period).
 */
export const KEY_RING_SERVED_MS = (KEY_RING_REFRESH_SECONDS + 15) * 1000;
/** Clock difference tolerated between broker processes and relying parties. */
export const KEY_CLOCK_SKEW_SECONDS = 60;

export interface KeySettings {
  /** KEYWAY_KEY_ROTATION_DAYS: a new key signs this long after the current one started; 0 rotates only on demand. */
  readonly rotationDays: number;
}

export function readKeySettings(env: SettingsSource): KeySettings {
  return { rotationDays: readInteger(env, 'KEYWAY_KEY_ROTATION_DAYS', 30, 0, 3650) };
}

/** The life cycle's spans, in milliseconds. */
export interface KeyLifeCycle {
  readonly rotationMs: number;
  /**
   * How long a next key is published before it may sign. The rule: every process serves it
   * within one refresh, and a JWKS fetched just before that is cached for at most max-age, so
   * by `publish + refresh + max-age (+ skew)` no relying party holds a key set without it and
   * none ever meets a token with an unknown kid.
   */
  readonly leadMs: number;
  /**
   * How long a retired key stays published. A process that has not refreshed yet may sign
   * with it for up to one refresh after it was retired, and those tokens live up to the
   * maximum TTL; the skew covers relying parties' clocks.
   */
  readonly retainMs: number;
}

export function keyLifeCycle(settings: KeySettings, maxTtlSeconds: number): KeyLifeCycle {
  return {
    rotationMs: settings.rotationDays * 86_400_000,
    leadMs: (JWKS_MAX_AGE_SECONDS + KEY_RING_REFRESH_SECONDS + KEY_CLOCK_SKEW_SECONDS) * 1000,
    retainMs: (maxTtlSeconds + KEY_RING_REFRESH_SECONDS + KEY_CLOCK_SKEW_SECONDS) * 1000,
  };
}

/** What one round of key upkeep asks of the store. */
export interface KeyRingPlan {
  readonly now: number;
  readonly cycle: KeyLifeCycle;
  /** Start a rotation now (`keyway keys rotate`), besides what the schedule asks for. */
  readonly rotate: boolean;
  /**
   * The scheduled part: activate a due next key, remove retired keys whose tokens have all
   * expired, publish the next key when the schedule nears. Without it (the CLI), only the
   * on-demand rotation is planned and the broker's own upkeep carries it out.
   */
  readonly upkeep: boolean;
}

/**
 * The transitions one round of upkeep makes, in order, given the keys as they are. Pure: the
 * store runs it inside its transaction. `candidateKid` names the fresh key a `publish` uses.
 */
export function planKeyRing(keys: readonly SigningKeyInfo[], plan: KeyRingPlan, candidateKid: string): KeyTransition[] {
  const { now, cycle } = plan;
  const current = keys.find((key) => key.state === 'current');
  if (current === undefined) return [];
  const transitions: KeyTransition[] = [];
  const existing = keys.find((key) => key.state === 'next');
  let next = existing === undefined ? undefined : { kid: existing.kid, activatesAt: existing.activatesAt ?? existing.createdAt + cycle.leadMs };

  if (plan.rotate) {
    if (next === undefined) {
      next = { kid: candidateKid, activatesAt: now + cycle.leadMs };
      transitions.push({ kind: 'publish', ...next });
    } else if (existing !== undefined) {
      // Bring the pending key forward, never earlier than a lead time after it was published.
      const earliest = Math.max(existing.createdAt + cycle.leadMs, now);
      if (earliest < next.activatesAt) {
        next = { kid: next.kid, activatesAt: earliest };
        transitions.push({ kind: 'reschedule', ...next });
      }
    }
  }
  if (!plan.upkeep) return transitions;

  let signingSince = current.activatedAt ?? current.createdAt;
  if (next !== undefined && next.activatesAt <= now) {
    transitions.push({ kind: 'retire', kid: current.kid }, { kind: 'activate', kid: next.kid });
    signingSince = now;
    next = undefined;
  }
  for (const key of keys) {
    if (key.state === 'retired' && (key.retiredAt ?? key.createdAt) + cycle.retainMs <= now) transitions.push({ kind: 'remove', kid: key.kid });
  }
  if (next === undefined && cycle.rotationMs > 0) {
    const due = signingSince + cycle.rotationMs;
    if (now >= due - cycle.leadMs) transitions.push({ kind: 'publish', kid: candidateKid, activatesAt: Math.max(due, now + cycle.leadMs) });
  }
  return transitions;
}

/**
 * The transitions withdrawing `kid` makes, given the keys of its ring as they are: undefined when no key has that kid,
 * none when it is removed already. A current key is withdrawn first and its replacement activated at once (the next
 * key, or `candidateKid` published for the purpose), so the ring never holds two current keys nor, after, none.
 */
export function planWithdrawal(keys: readonly SigningKeyInfo[], kid: string, now: number, candidateKid: string): KeyTransition[] | undefined {
  const key = keys.find((each) => each.kid === kid);
  if (key === undefined) return undefined;
  if (key.state === 'removed') return [];
  const transitions: KeyTransition[] = [{ kind: 'withdraw', kid }];
  if (key.state !== 'current') return transitions;
  const next = keys.find((each) => each.alg === key.alg && each.state === 'next');
  if (next === undefined) transitions.push({ kind: 'publish', kid: candidateKid, activatesAt: now });
  transitions.push({ kind: 'activate', kid: next?.kid ?? candidateKid });
  return transitions;
}
