import type { Alert } from './alert.ts';
import { SIGNATURE_HEADER } from './sign-webhook.ts';

export interface WebhookTarget {
  readonly url: string;
  readonly attempts: number;
  readonly backoffMs: number;
  readonly timeoutMs: number;
  readonly fetch: typeof fetch;
  /** The broker's issuer, so receivers know which broker speaks. */
  readonly broker: string;
  readonly sign: (body: string) => Promise<string>;
}

/**
 * POSTs one alert as signed JSON, retrying a failure (a network error, a timeout, any
 * non-2xx answer) after backoffMs, 2 × backoffMs, … up to `attempts` tries in all. Redirects
 * are not followed. Returns whether it was delivered and how many attempts it took.
 */
export async function deliverWebhook(alert: Alert, target: WebhookTarget): Promise<{ delivered: boolean; attempts: number }> {
  const { id, time, rule, summary, event_id, details } = alert;
  const body = JSON.stringify({ type: 'keyway.alert', broker: target.broker, id, time, rule, summary, event_id, details });
  const signature = await target.sign(body);
  for (let attempt = 1; attempt <= target.attempts; attempt += 1) {
    try {
      const response = await target.fetch(target.url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signature, 'keyway-alert-id': alert.id, 'user-agent': 'keyway-alerts' },
        redirect: 'manual',
        signal: AbortSignal.timeout(target.timeoutMs),
      });
      await response.body?.cancel();
      if (response.status >= 200 && response.status < 300) return { delivered: true, attempts: attempt };
    } catch {
      // A network error or timeout: retried like an error answer.
    }
    if (attempt < target.attempts) await new Promise((resolve) => setTimeout(resolve, target.backoffMs * 2 ** (attempt - 1)));
  }
  return { delivered: false, attempts: target.attempts };
}
