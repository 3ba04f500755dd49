import type { AuditEvent, ChainLink } from '../audit/audit-event.ts';
import { SqliteAuditStore } from '../storage/sqlite-audit-store.ts';

interface Pending {
  readonly event: AuditEvent;
  readonly resolve: (link: ChainLink) => void;
  readonly reject: (error: unknown) => void;
}

const MAX_BATCH = 512;

/**
 * The Node audit log's single writer, with group commit: appends that arrive in the same turn
 * of the event loop are written in one transaction (one WAL fsync), and each caller is
 * answered only after that commit. If a batch fails, its events are retried one by one, so a
 * single bad event cannot take its neighbours' tokens with it.
 */
export class GroupCommitAuditStore extends SqliteAuditStore {
  #pending: Pending[] = [];
  #scheduled = false;

  override append(event: AuditEvent): Promise<ChainLink> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ event, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, MAX_BATCH);
      try {
        const links = await this.appendAll(batch.map((pending) => pending.event));
        batch.forEach((pending, index) => pending.resolve(links[index] as ChainLink));
      } catch (error) {
        if (batch.length === 1) batch[0]?.reject(error);
        else await this.#oneByOne(batch);
      }
    }
  }

  async #oneByOne(batch: readonly Pending[]): Promise<void> {
    for (const pending of batch) {
      try {
        const [link] = await this.appendAll([pending.event]);
        pending.resolve(link as ChainLink);
      } catch (error) {
        pending.reject(error);
      }
    }
  }
}
