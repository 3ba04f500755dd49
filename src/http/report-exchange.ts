import type { Logger } from '../core/log.ts';
import type { BrokerMetrics } from '../features/metrics/broker-metrics.ts';
import type { ExchangeResult, RequestContext } from '../core/exchange/exchange-token.ts';

/**
 * One log line and the metrics for each answered exchange, with the status it was answered with.
 * Ids, codes and timings only: the subject token and the issued token never reach here.
 * Rate-limited refusals that were not audited are counted, not logged, so a flood cannot fill
 * the logs either.
 */
export function reportExchange(log: Logger, metrics: BrokerMetrics, context: RequestContext, result: ExchangeResult, status: number, seconds: number): void {
  const { outcome, append, recorded } = result;
  metrics.exchange(outcome.decision, outcome.reason, seconds);
  if (append !== undefined) metrics.auditAppend(append.outcome, append.seconds);
  if (outcome.limit !== undefined) metrics.rateLimited(outcome.limit, 'token');
  if (outcome.limit !== undefined && recorded === undefined) return;
  const event = recorded?.event;
  const fields = {
    request_id: context.requestId,
    status,
    decision: outcome.decision,
    reason: outcome.reason,
    ...(outcome.limit === undefined ? {} : { limit: outcome.limit }),
    ...(event === undefined ? {} : { audit_event_id: event.id }),
    ...(event?.issuer === undefined ? {} : { issuer: event.issuer, subject: event.subject }),
    ...(event?.policy?.granted_by === undefined ? {} : { policy: event.policy.granted_by }),
    ...(context.clientIp === undefined ? {} : { client_ip: context.clientIp }),
    duration_ms: round(seconds * 1000),
    ...(append === undefined ? {} : { audit_ms: round(append.seconds * 1000) }),
  };
  if (outcome.decision === 'error') log.warn('token exchange', fields);
  else log.info('token exchange', fields);
}

const round = (ms: number): number => Math.round(ms * 100) / 100;
