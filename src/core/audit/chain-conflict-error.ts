import { KeywayError } from '../errors/keyway-error.ts';

/** A chain problem the log refuses to write, or to sign or prune over: records that do not hold. */
export class ChainConflictError extends KeywayError {
  override readonly name = 'ChainConflictError';
  readonly code = 'audit_chain_conflict';
}
