import { literalHostRefusal } from '../../core/outbound/outbound-address.ts';
import { isLoopbackHttpUrl } from '../../core/outbound/loopback-http-url.ts';
import { ConfigError, readInteger, type SettingsSource } from '../../core/settings/read-settings.ts';
import { ALERT_RULES, type AlertRule } from './alert.ts';

export interface AlertSettings {
  /** KEYWAY_ALERT_RULES: the rules that run; default all. */
  readonly rules: ReadonlySet<AlertRule>;
  /** KEYWAY_ALERT_BURST_THRESHOLD: denials within the window that make a burst. */
  readonly burstThreshold: number;
  readonly burstWindowSeconds: number;
  /** Prefix lengths that make a client address a network, for `new_network`. */
  readonly networkPrefixV4: number;
  readonly networkPrefixV6: number;
  /** KEYWAY_ALERT_STALE_GRANT_DAYS: a policy or grant element unused this long raises `stale_grant`. */
  readonly staleGrantDays: number;
  /** KEYWAY_ALERT_WEBHOOK_URL: where alerts are POSTed, signed; none means stored and shown only. */
  readonly webhookUrl: string | undefined;
  /** Attempts per alert, the first included. */
  readonly webhookAttempts: number;
  /** Wait before the first retry; doubled before each next one. */
  readonly webhookBackoffMs: number;
}

function readRules(env: SettingsSource): ReadonlySet<AlertRule> {
  const value = env['KEYWAY_ALERT_RULES'];
  if (value === undefined || value === '' || value === 'all') return new Set(ALERT_RULES);
  if (value === 'none') return new Set();
  const names = String(value)
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  // A blank value (a space, a lone comma) named no rule and so ran none, as `none` does, with no word at start.
  if (names.length === 0) throw new ConfigError('KEYWAY_ALERT_RULES names no rule: write all, none, or rule names');
  const unknown = names.filter((name) => !(ALERT_RULES as readonly string[]).includes(name));
  if (unknown.length > 0)
    throw new ConfigError(`KEYWAY_ALERT_RULES names unknown rules: ${unknown.join(', ')} (known: ${ALERT_RULES.join(', ')}, or all, or none)`);
  return new Set(names as AlertRule[]);
}

export function readAlertSettings(env: SettingsSource, allowHttpLoopback: boolean): AlertSettings {
  const webhook = env['KEYWAY_ALERT_WEBHOOK_URL'];
  let webhookUrl: string | undefined;
  if (webhook !== undefined && webhook !== '') {
    if (typeof webhook !== 'string' || !URL.canParse(webhook)) throw new ConfigError('KEYWAY_ALERT_WEBHOOK_URL is not a URL');
    const url = new URL(webhook);
    if (url.protocol !== 'https:' && !(allowHttpLoopback && isLoopbackHttpUrl(url))) {
      throw new ConfigError('KEYWAY_ALERT_WEBHOOK_URL must use https (http only on loopback with KEYWAY_ALLOW_HTTP_LOOPBACK=1)');
    }
    // Deliveries would be refused anyway (outbound-fetch.ts); saying so at start-up beats a failed delivery per alert.
    const refusal = literalHostRefusal(url, allowHttpLoopback);
    if (refusal !== undefined) throw new ConfigError(`KEYWAY_ALERT_WEBHOOK_URL: ${refusal}`);
    webhookUrl = webhook;
  }
  return {
    rules: readRules(env),
    burstThreshold: readInteger(env, 'KEYWAY_ALERT_BURST_THRESHOLD', 10, 2, 100_000),
    burstWindowSeconds: readInteger(env, 'KEYWAY_ALERT_BURST_WINDOW_SECONDS', 300, 10, 86_400),
    networkPrefixV4: readInteger(env, 'KEYWAY_ALERT_NETWORK_PREFIX_V4', 24, 8, 32),
    networkPrefixV6: readInteger(env, 'KEYWAY_ALERT_NETWORK_PREFIX_V6', 48, 16, 128),
    staleGrantDays: readInteger(env, 'KEYWAY_ALERT_STALE_GRANT_DAYS', 90, 1, 3650),
    webhookUrl,
    webhookAttempts: readInteger(env, 'KEYWAY_ALERT_WEBHOOK_ATTEMPTS', 4, 1, 10),
    webhookBackoffMs: readInteger(env, 'KEYWAY_ALERT_WEBHOOK_BACKOFF_MS', 1000, 10, 60_000),
  };
}
