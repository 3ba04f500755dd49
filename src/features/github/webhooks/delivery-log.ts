/**
 * Deliveries claimed and handled, by the SHA-256 of their event's name and signed body: GitHub
 * redelivers, and a captured signed body can be sent again. The key is what the HMAC covers and the
 * event it means something under, never the unsigned `X-GitHub-Delivery` header: a replay under a
 * fresh id is still the same delivery, and neither a forged id nor the body sent under another event
 * name can stand in for (and so suppress) another delivery.
 */
export interface DeliveryLog {
  /**
   * Claims the delivery for handling; false when it was handled before, or another copy claimed it
   * less than DELIVERY_LEASE_SECONDS ago and has not finished (then it is not handled again). A
   * claim older than that which never finished belongs to a handler that died: it is taken over.
   */
  claim(key: string, event: string, now: number): Promise<boolean>;
  /** Marks a claimed delivery handled: from now on every copy of it is a duplicate. */
  finish(key: string, now: number): Promise<void>;
  /** Forgets a claimed delivery whose handling failed, so a redelivery is handled. */
  release(key: string): Promise<void>;
}

/** How long a delivery is remembered. Handlers are safe to run again after that (see docs/github-app.md). */
export const DELIVERY_MEMORY_DAYS = 30;

/**
 * How long an unfinished claim holds off other copies. GitHub gives up on a delivery after 10 s (and
 * a Worker may be cancelled then); a handler is bounded by its GitHub calls' deadlines. A handler
 * still running after this is taken for dead: its delivery may run twice, which handlers bear.
 */
export const DELIVERY_LEASE_SECONDS = 120;
