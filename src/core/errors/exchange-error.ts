import { KeywayError } from './keyway-error.ts';
import type { Refusal } from './reasons.ts';

/**
 * A refusal at any step of the exchange; its code is the refusal's reason code. `detail` is for
 * the audit log; the caller only sees it when `detailIsPublic`.
 */
export class ExchangeError extends KeywayError {
  override readonly name: string = 'ExchangeError';
  readonly reason: Refusal;
  readonly detailIsPublic: boolean;

  constructor(reason: Refusal, detail: string, options: { public?: boolean; cause?: unknown } = {}) {
    super(detail, { cause: options.cause });
    this.reason = reason;
    this.detailIsPublic = options.public ?? false;
  }

  get code(): Refusal {
    return this.reason;
  }
}
