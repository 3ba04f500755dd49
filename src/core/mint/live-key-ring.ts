import { KeyRing } from './key-ring.ts';
import type { KeyStore } from './key-store.ts';

/**
 * A process's view of the key ring, reloaded from the store so a rotation made by another
 * process (the Workers cron, `keyway keys rotate`, a second Node process) reaches it within
 * KEY_RING_REFRESH_SECONDS — the span the life cycle's lead and retain times allow for.
 */
export class LiveKeyRing {
  readonly #store: KeyStore;
  #ring: KeyRing;
  #loadedAt: number;
  /** Loads begun, and the number of the one whose ring is in use. */
  #loads = 0;
  #installed = 0;

  private constructor(store: KeyStore, ring: KeyRing, loadedAt: number) {
    this.#store = store;
    this.#ring = ring;
    this.#loadedAt = loadedAt;
  }

  static async open(store: KeyStore, now: number): Promise<LiveKeyRing> {
    return new LiveKeyRing(store, await KeyRing.open(store, now), now);
  }

  get ring(): KeyRing {
    return this.#ring;
  }

  /**
   * Reloads the ring. Loads may overlap (the key timer's, a withdrawal's, a request's once the ring is old) and end in any
   * order: one that began before the ring in use was loaded is dropped, so a key withdrawn between them is never put back.
   */
  async refresh(now: number): Promise<KeyRing> {
    const load = ++this.#loads;
    const ring = await KeyRing.from(await this.#store.listKeys());
    if (load > this.#installed) {
      this.#ring = ring;
      this.#loadedAt = now;
      this.#installed = load;
    }
    return this.#ring;
  }

  /** Whether the ring was last loaded `ms` or longer before `now`. */
  isOlderThan(now: number, ms: number): boolean {
    return this.age(now) >= ms;
  }

  /** How long before `now` the ring was last loaded, in ms. */
  age(now: number): number {
    return now - this.#loadedAt;
  }
}
