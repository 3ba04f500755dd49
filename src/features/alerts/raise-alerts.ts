import { UsageCatchingUpError, type UsageRow } from '../../core/audit/inventory.ts';
import { monotonicFactory } from 'ulid';
import type { AuditEvent, AuditLog, ChainLink } from '../../core/audit/audit-event.ts';
import { pooledRandom } from '../../core/mint/pooled-random.ts';
import { errorText, type Logger } from '../../core/log.ts';
import type { PolicySet } from '../../core/policy/policy-set.ts';
import type { AlertStore } from './alert-store.ts';
import type { AlertDraft, AlertRule } from './alert.ts';
import { staleGrantDrafts } from './stale-grants.ts';
import type { AlertSettings } from './alert-settings.ts';
import { deliverWebhook, type WebhookTarget } from './deliver-webhook.ts';
import { evaluateAlerts } from './evaluate-alerts.ts';
import { networkOf } from '../../core/limits/network-of.ts';

export interface AlertDeps {
  readonly store: AlertStore;
  readonly settings: AlertSettings;
  readonly policies: () => PolicySet;
  readonly webhook: WebhookTarget | undefined;
  readonly now: () => number;
  readonly log: Logger;
  /** The audit log, for `stale_grant`: its usage over the last days, and its oldest record; and the chain each record is in. */
  readonly audit?: Pick<AuditLog, 'usage' | 'query' | 'shardOf'>;
}

const nextId = monotonicFactory(pooledRandom);
/** `stale_grant` looks at the log at most this often per process, after an answered exchange. */
export const STALE_GRANT_CHECK_MS = 3_600_000;
const DAY = 86_400_000;
/**
 * Deliveries of one rule under way at once per process; beyond this an alert of that rule is stored and shown, but not
 * sent. Per rule: a stranger raises denial bursts at will (a made-up subject per forged token), and a flood of them held
 * by a slow receiver must not take the place of a replayed token's alert.
 */
export const MAX_DELIVERIES_IN_FLIGHT = 32;

/**
 * Runs the alert rules on an event that is already durable, stores what they raise and sends
 * it to the webhook. Called after the exchange has answered (waitUntil on Workers): a slow
 * receiver or a failing rule never delays or changes a token response.
 */
export function alertRaiser(deps: AlertDeps): (event: AuditEvent, link: ChainLink) => Promise<void> {
  const inFlight = new Map<AlertRule, number>();
  const deliver = async (alert: Parameters<typeof deliverWebhook>[0], target: WebhookTarget) => {
    const under = inFlight.get(alert.rule) ?? 0;
    if (under >= MAX_DELIVERIES_IN_FLIGHT) {
      deps.log.warn('alert webhook queue full; alert stored but not sent', { alert_id: alert.id, rule: alert.rule });
      await deps.store.setDelivery(alert.id, 'failed', 0);
      return;
    }
    inFlight.set(alert.rule, under + 1);
    try {
      const result = await deliverWebhook(alert, target);
      if (!result.delivered) deps.log.warn('alert webhook failed after every attempt', { alert_id: alert.id, attempts: result.attempts });
      await deps.store.setDelivery(alert.id, result.delivered ? 'delivered' : 'failed', result.attempts);
    } finally {
      inFlight.set(alert.rule, (inFlight.get(alert.rule) ?? 1) - 1);
    }
  };

  /**
   * When `stale_grant` may read the log again: an hour after it last read the usage; while the log does not cover the
   * period, once its oldest record is `staleGrantDays` old (records are appended after it or pruned from the front, so it
   * cannot sooner); while the roll-up catches up, after the refusal's Retry-After. Until then no exchange reads the log
   * for this rule (a young log, one pruned to fewer days than the rule's, or one catching up would otherwise be read
   * after every exchange: on Workers, an RPC to every shard).
   */
  let staleNextRead = Number.NEGATIVE_INFINITY;
  /** `stale_grant`, once an hour at most, and only once the log goes back the whole period: before that, unused proves nothing. */
  const staleGrants = async (): Promise<Omit<AlertDraft, 'id' | 'time' | 'event_id'>[]> => {
    const now = deps.now();
    const { audit, settings } = deps;
    if (audit === undefined || !settings.rules.has('stale_grant') || now < staleNextRead) return [];
    const since = now - settings.staleGrantDays * DAY;
    const [oldest] = (await audit.query({ order: 'asc', limit: 1 })).records;
    if (oldest === undefined) return [];
    const oldestTime = Date.parse(oldest.event.time);
    if (oldestTime > since) {
      staleNextRead = oldestTime + settings.staleGrantDays * DAY;
      return [];
    }
    let usage: UsageRow[];
    try {
      usage = await audit.usage({ since, until: now });
    } catch (error) {
      // Until the roll-up has caught up, unused proves nothing either.
      if (error instanceof UsageCatchingUpError) {
        staleNextRead = now + UsageCatchingUpError.RETRY_AFTER_SECONDS * 1000;
        return [];
      }
      throw error;
    }
    staleNextRead = now + STALE_GRANT_CHECK_MS;
    return staleGrantDrafts(deps.policies(), usage, now, settings.staleGrantDays);
  };

  return async (event, link) => {
    const { settings } = deps;
    if (settings.rules.size === 0) return;
    // Let the response leave before any of this runs.
    await new Promise((resolve) => setTimeout(resolve, 0));
    try {
      const ip = event.request.client_ip;
      const network = ip === undefined ? undefined : networkOf(ip, settings.networkPrefixV4, settings.networkPrefixV6);
      const facts = await deps.store.observe(event, link, {
        windowStart: Date.parse(event.time) - settings.burstWindowSeconds * 1000,
        ...(network === undefined ? {} : { network }),
      });
      const shard = deps.audit?.shardOf?.(event);
      const drafts = [...evaluateAlerts(event, facts, deps.policies(), settings, shard), ...(await staleGrants())];
      if (drafts.length === 0) return;
      const time = new Date(deps.now()).toISOString();
      const stored = await deps.store.addAlerts(
        drafts.map((draft) => ({ ...draft, id: nextId(), time, event_id: event.id })),
        deps.webhook === undefined ? 'none' : 'pending',
      );
      for (const alert of stored) deps.log.warn('audit alert', { alert_id: alert.id, rule: alert.rule, summary: alert.summary, event_id: alert.event_id });
      const { webhook } = deps;
      if (webhook !== undefined) await Promise.all(stored.map((alert) => deliver(alert, webhook)));
    } catch (error) {
      deps.log.error('alert evaluation failed', { event_id: event.id, error: errorText(error) });
    }
  };
}
