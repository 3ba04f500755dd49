import { decodeJwt } from 'jose';
import { sha256Hex } from '../../core/mint/sha256-hex.ts';
import type { CiTokenSource } from './ci-token-sources.ts';

export interface RefreshOptions {
  /** A token closer than this to its `exp` is replaced before it is used: the broker's clock may be ahead, the call may be slow. */
  readonly refreshBeforeSeconds: number;
  readonly now?: () => number;
  /** Told each time a token is read, for the job log: its SHA-256 and expiry, never the token. */
  readonly onRead?: (read: { readonly sha256: string; readonly expiresAt: Date | undefined }) => void;
}

/**
 * The job's CI token for `audience`, read again from `source` when the one held is about to
 * expire (GitHub's ID tokens live about five minutes; a long job needs fresh ones). Concurrent
 * callers share one read. A token without `exp` is read again for every call.
 */
export function refreshingCiToken(source: CiTokenSource, audience: string, options: RefreshOptions): () => Promise<string> {
  const now = options.now ?? Date.now;
  let held: { readonly token: string; readonly expiresAtMs: number | undefined } | undefined;
  let reading: Promise<string> | undefined;
  const fresh = (): boolean => held !== undefined && held.expiresAtMs !== undefined && held.expiresAtMs - options.refreshBeforeSeconds * 1000 > now();

  return async () => {
    if (fresh()) return (held as { token: string }).token;
    reading ??= source
      .read(audience)
      .then((token) => {
        const exp = decodeJwt(token).exp;
        held = { token, expiresAtMs: exp === undefined ? undefined : exp * 1000 };
        options.onRead?.({ sha256: sha256Hex(token), expiresAt: exp === undefined ? undefined : new Date(exp * 1000) });
        return token;
      })
      .finally(() => {
        reading = undefined;
      });
    return reading;
  };
}
