/**
 * Deliveries already handled, by the SHA-256 of their signed body: GitHub redelivers, and a
 * captured signed body can be sent again. The key is what the HMAC covers, never the unsigned
 * `X-GitHub-Delivery` header: a replay under a fresh id is still the same body, and a forged id
 * cannot stand in for (and so suppress) another delivery.
 */
export interface DeliveryLog {
  /** Records the delivery; false when it was recorded before (then it is not handled again). */
  claim(bodySha256: string, event: string, now: number): Promise<boolean>;
  /** Forgets a claimed delivery whose handling failed, so a redelivery is handled. */
  release(bodySha256: string): Promise<void>;
}

/** How long a delivery is remembered. Handlers are safe to run again after that (see the README). */
export const DELIVERY_MEMORY_DAYS = 30;
