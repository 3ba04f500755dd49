import { KeywayError } from './keyway-error.ts';
import { REASONS, type Refusal } from './reasons.ts';

/** What a refused caller is told beyond the reason, when the operator allows it (`diagnostics: claim-names`). */
export interface RefusalDiagnostics {
  /** Names of the claims that failed for the closest allow policy; never their values or the policy's patterns. */
  readonly failed_claims: readonly string[];
  /** Ids of the deny guardrails that fired. */
  readonly denied_by: readonly string[];
}

/**
 * A refusal at any step of the exchange; its code is the refusal's reason code. `detail` is for
 * the audit log; the caller only sees it when `detailIsPublic`, or sees `publicDetail` when that is set.
 */
export class ExchangeError extends KeywayError {
  override readonly name: string = 'ExchangeError';
  readonly reason: Refusal;
  readonly detailIsPublic: boolean;
  readonly diagnostics: RefusalDiagnostics | undefined;
  /** What the caller is told when it is neither the detail nor the reason's description (e.g. the detail's public part, with the owner refused). */
  readonly publicDetail: string | undefined;

  constructor(
    reason: Refusal,
    detail: string,
    options: { public?: boolean; publicDetail?: string; cause?: unknown; diagnostics?: RefusalDiagnostics | undefined } = {},
  ) {
    super(detail, { cause: options.cause });
    this.reason = reason;
    this.detailIsPublic = options.public ?? false;
    this.publicDetail = options.publicDetail;
    this.diagnostics = options.diagnostics;
  }

  /** What the caller is told: the public detail, or the reason's public description. */
  get publicDescription(): string {
    return this.publicDetail ?? (this.detailIsPublic ? this.message : REASONS[this.reason].description);
  }

  get code(): Refusal {
    return this.reason;
  }
}
