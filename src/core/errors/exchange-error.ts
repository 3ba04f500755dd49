import { KeywayError } from './keyway-error.ts';
import type { Refusal } from './reasons.ts';

/** What a refused caller is told beyond the reason, when the operator allows it (`diagnostics: claim-names`). */
export interface RefusalDiagnostics {
  /** Names of the claims that failed for the closest allow policy; never their values or the policy's patterns. */
  readonly failed_claims: readonly string[];
  /** Ids of the deny guardrails that fired. */
  readonly denied_by: readonly string[];
}

/**
 * A refusal at any step of the exchange; its code is the refusal's reason code. `detail` is for
 * the audit log; the caller only sees it when `detailIsPublic`.
 */
export class ExchangeError extends KeywayError {
  override readonly name: string = 'ExchangeError';
  readonly reason: Refusal;
  readonly detailIsPublic: boolean;
  readonly diagnostics: RefusalDiagnostics | undefined;

  constructor(reason: Refusal, detail: string, options: { public?: boolean; cause?: unknown; diagnostics?: RefusalDiagnostics | undefined } = {}) {
    super(detail, { cause: options.cause });
    this.reason = reason;
    this.detailIsPublic = options.public ?? false;
    this.diagnostics = options.diagnostics;
  }

  get code(): Refusal {
    return this.reason;
  }
}
