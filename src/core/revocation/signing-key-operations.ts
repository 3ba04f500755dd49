import type { AuditEvent, AuditLog } from '../audit/audit-event.ts';
import type { RequestContext } from '../exchange/exchange-token.ts';
import { errorText } from '../log.ts';
import type { KeyLifeCycle } from '../mint/key-life-cycle.ts';
import type { KeyStore, KeyTransition, KeyWithdrawal } from '../mint/key-store.ts';
import type { KeywayAccessToken } from '../mint/verify-access-token.ts';
import type { Reason } from '../errors/reasons.ts';
import { appendExamination, examinationRecord } from './examine-token.ts';

/** What an operator's withdrawal or rotation of the signing keys needs: the key store, and the audit log it is recorded in. */
export interface SigningKeyOperationDeps {
  readonly store: KeyStore;
  readonly cycle: KeyLifeCycle;
  readonly audit: AuditLog;
  /** The broker's issuer: the record names the operator as one of its tokens' subjects. */
  readonly issuer: string;
  readonly now: () => number;
  /** What the serving process does at once after a withdrawal, before the record is appended: reload its key ring. */
  readonly withdrawn?: () => Promise<void>;
}

/**
 * Who asked: an operator by its keyway token (`sub`, the policy that granted the token as `client_id`, its `jti`), named
 * as the record's subject; or `keyway keys` run on the data directory (`local`: the account that ran it, in the detail
 * alone, as no token vouches for it).
 */
export type KeyOperator = { readonly token: Pick<KeywayAccessToken, 'sub' | 'client_id' | 'jti'> } | { readonly local: string };

/**
 * Whether the operation's record is durable: its id, or why it is not. The operation stands either way: it is done
 * before its record is appended, so a failing audit log can never keep a compromised key in use.
 */
export type KeyOperationRecord = { readonly auditEventId: string } | { readonly unrecorded: string };

/**
 * Withdraws a signing key for an operator (KeyStore.withdrawKey), has the serving process reload its ring (a reload that
 * fails is said in the record), then records it (`signing_key_withdrawn`): who, which key, what came of it and the transitions made. A kid the store does not hold
 * changes nothing and is not recorded, as a revocation by a `jti` no grant issued is not.
 */
export async function withdrawSigningKey(
  deps: SigningKeyOperationDeps,
  kid: string,
  operator: KeyOperator,
  context: RequestContext,
): Promise<{ readonly withdrawal: KeyWithdrawal; readonly record?: KeyOperationRecord }> {
  const withdrawal = await deps.store.withdrawKey(kid, deps.now());
  if (withdrawal.status === 'unknown') return { withdrawal };
  // The withdrawal is durable: a ring that fails to reload now is not served long (as any ring that cannot be reloaded),
  // and the record must still be written.
  let notReloaded = '';
  if (withdrawal.status === 'withdrawn') {
    try {
      await deps.withdrawn?.();
    } catch (error) {
      notReloaded = `; the serving process's key ring did not reload at once (${errorText(error)}), and does at its next reload`;
    }
  }
  const { key } = withdrawal;
  const detail =
    withdrawal.status === 'withdrawn'
      ? `withdrew signing key ${key.kid} (${key.alg}) for ${asked(operator)}; transitions: ${transitionsText(withdrawal.transitions)}${notReloaded}`
      : `signing key ${key.kid} (${key.alg}) was ${key.withdrawnAt === undefined ? 'removed' : 'withdrawn'} already at ${isoOf(key.withdrawnAt ?? key.removedAt)}: nothing changed; asked by ${asked(operator)}`;
  const signingKey = { kid: key.kid, alg: key.alg, ...(key.withdrawnAt === undefined ? {} : { withdrawn_at: isoOf(key.withdrawnAt) }) };
  return { withdrawal, record: await record(deps, { reason: 'signing_key_withdrawn', detail, signingKey }, operator, context) };
}

/** Starts a rotation for an operator (as `keyway keys rotate` does), then records it (`signing_key_rotation_requested`) with the transitions made. */
export async function rotateSigningKeys(
  deps: SigningKeyOperationDeps,
  operator: KeyOperator,
  context: RequestContext,
): Promise<{ readonly transitions: readonly KeyTransition[]; readonly record: KeyOperationRecord }> {
  const transitions = await deps.store.advanceKeys({ now: deps.now(), cycle: deps.cycle, rotate: true, upkeep: false });
  const detail = `rotation of the signing keys requested by ${asked(operator)}; transitions: ${transitionsText(transitions)}`;
  return { transitions, record: await record(deps, { reason: 'signing_key_rotation_requested', detail }, operator, context) };
}

async function record(
  deps: SigningKeyOperationDeps,
  facts: { readonly reason: Reason; readonly detail: string; readonly signingKey?: AuditEvent['signing_key'] },
  operator: KeyOperator,
  context: RequestContext,
): Promise<KeyOperationRecord> {
  const caller = 'token' in operator ? { operator: operator.token.sub } : operator;
  const { reason, detail, signingKey } = facts;
  const event = {
    ...examinationRecord(deps, { caller, reason, detail, context, now: deps.now() }),
    ...(signingKey === undefined ? {} : { signing_key: signingKey }),
  };
  try {
    return { auditEventId: await appendExamination(deps, event) };
  } catch (error) {
    return { unrecorded: errorText(error) };
  }
}

const asked = (operator: KeyOperator) =>
  'token' in operator
    ? `operator ${operator.token.sub} (policy ${operator.token.client_id}, token ${operator.token.jti})`
    : `a keyway command on the data directory, run by ${operator.local}`;

const isoOf = (ms: number | undefined) => (ms === undefined ? 'an unknown time' : new Date(ms).toISOString());

function transitionsText(transitions: readonly KeyTransition[]): string {
  if (transitions.length === 0) return 'none';
  return transitions
    .map((transition) =>
      transition.kind === 'publish' || transition.kind === 'reschedule'
        ? `${transition.kind} ${transition.kid} (signs from ${isoOf(transition.activatesAt)})`
        : `${transition.kind} ${transition.kid}`,
    )
    .join(', ');
}
