import { readInteger, type SettingsSource } from '../settings/read-settings.ts';
import type { RateLimit } from './token-bucket.ts';

/** The /token rate limits; a limit set to 0 per minute is off. */
export interface LimitSettings {
  /** Every request to /token, before its body is read. */
  readonly global: RateLimit;
  /** Per client network (an IPv4 address, an IPv6 /64), before the body is read. */
  readonly client: RateLimit;
  /** Per verified issuer + subject, after the subject token verified. */
  readonly subject: RateLimit;
  /** Per verified issuer + subject: fetches of repository-owned policies from GitHub (cache misses only). */
  readonly repositoryPolicy: RateLimit;
  /**
   * Audit records of refusals whose subject token did not verify, per audit chain (a shard on Workers, the broker's one
   * chain on Node): what strangers can make keyway store.
   */
  readonly unverified: RateLimit;
  /**
   * Audit records of refusals of verified callers that no allow policy matched, per issuer and account (the preset's
   * first tenant claim, else the subject): what a stranger that a shared issuer vouches for can make keyway store.
   */
  readonly tenantRefusals: RateLimit;
}

const DEFAULTS = {
  global: { perMinute: 60_000, burst: 2_000 },
  client: { perMinute: 6_000, burst: 1_000 },
  subject: { perMinute: 600, burst: 300 },
  repository_policy: { perMinute: 10, burst: 20 },
  unverified: { perMinute: 120, burst: 1_000 },
  tenant_refusals: { perMinute: 120, burst: 1_000 },
} as const;

export function readLimitSettings(env: SettingsSource): LimitSettings {
  const read = (name: keyof typeof DEFAULTS): RateLimit => {
    const prefix = `KEYWAY_RATE_LIMIT_${name.toUpperCase()}`;
    return {
      name,
      perMinute: readInteger(env, `${prefix}_PER_MINUTE`, DEFAULTS[name].perMinute, 0, 100_000_000),
      burst: readInteger(env, `${prefix}_BURST`, DEFAULTS[name].burst, 1, 100_000_000),
    };
  };
  return {
    global: read('global'),
    client: read('client'),
    subject: read('subject'),
    repositoryPolicy: read('repository_policy'),
    unverified: read('unverified'),
    tenantRefusals: read('tenant_refusals'),
  };
}
