/** Deliveries already handled, by `X-GitHub-Delivery`: GitHub redelivers, and a signed body can be sent again. */
export interface DeliveryLog {
  /** Records the delivery; false when it was recorded before (then it is not handled again). */
  claim(id: string, event: string, now: number): Promise<boolean>;
  /** Forgets a claimed delivery whose handling failed, so a redelivery is handled. */
  release(id: string): Promise<void>;
}

/** How long a delivery id is remembered. Handlers are safe to run again after that (see the README). */
export const DELIVERY_MEMORY_DAYS = 30;
