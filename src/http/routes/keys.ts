import { Hono, type Context } from 'hono';
import * as v from 'valibot';
import { operatorAuth, type OwnTokens } from '../middleware/operator-auth.ts';
import type { Logger } from '../../core/log.ts';
import type { KeywayAuthVariables } from '../middleware/keyway-auth.ts';
import { rotateSigningKeys, withdrawSigningKey, type KeyOperationRecord, type SigningKeyOperationDeps } from '../../core/revocation/signing-key-operations.ts';
import { keyJson, rotationJson, withdrawalJson } from '../../core/mint/key-json.ts';
import { jsonBodyLimit, noRequestBody, readJsonBody } from './json-request-body.ts';
import { requestContext } from '../request-context.ts';
import { errorText } from '../../core/log.ts';

/** The issuer is `own`'s, as for every route that takes the broker's tokens. */
export interface KeyApiDeps extends Omit<SigningKeyOperationDeps, 'issuer'> {
  readonly log: Logger;
  /** The client's address as the deployment finds it, for the records of withdrawals and rotations. */
  readonly clientIp: (c: Context) => string | undefined;
}

/** Scopes a keyway token needs: to list the signing keys, to start a rotation, and to withdraw a key. */
export const KEYS_READ_SCOPE = 'keys:read';
export const KEYS_ROTATE_SCOPE = 'keys:rotate';
export const KEYS_WITHDRAW_SCOPE = 'keys:withdraw';
const NO_STORE = { 'Cache-Control': 'no-store' } as const;
/** `POST /v1/keys/withdraw`'s body: the kid of the key, as `GET /v1/keys` lists it (an RFC 7638 thumbprint: 43 characters). */
const KID_BODY = v.strictObject({
  kid: v.pipe(
    v.string('kid must be a string'),
    v.minLength(1, 'kid is empty'),
    v.maxLength(128, 'kid is longer than 128 characters'),
    v.regex(/^[\w-]+$/, 'kid is not a key id: base64url characters only'),
  ),
});
const KID_BODY_BYTES = 1024;

/**
 * `/v1/keys`: the signing key ring for operators, the remote form of `keyway keys list`,
 * `keyway keys rotate` and `keyway keys withdraw` (the only on-demand forms on Workers). Needs a keyway access token
 * for this broker (`aud` = its issuer) with scope `keys:read`, `keys:rotate` or `keys:withdraw`.
 */
export function keyRoutes(deps: KeyApiDeps, own: OwnTokens): Hono<{ Variables: KeywayAuthVariables }> {
  const api = new Hono<{ Variables: KeywayAuthVariables }>();
  const allow = (scope: string) => operatorAuth(own, [scope]);
  const operations: SigningKeyOperationDeps = { ...deps, issuer: own.issuer };
  // Done, but its record could not be written (the audit log is unavailable): said, never answered as a success.
  const unrecorded = (c: Context, done: string) =>
    c.json(
      {
        error: 'temporarily_unavailable',
        error_description: `${done}, but the audit log is unavailable and its record was not written; retry later to record it`,
      },
      503,
      NO_STORE,
    );

  api.get('/', allow(KEYS_READ_SCOPE), async (c) =>
    c.json({ keys: (await deps.store.describeKeys()).map((key) => keyJson(key, deps.cycle.retainMs)) }, 200, NO_STORE),
  );

  // The key store failed (a lock held past its timeout, a disk error): its transaction rolled back, so nothing changed.
  const storeUnavailable = (c: Context, error: unknown, nothing: string) => {
    deps.log.error('signing key store unavailable', { request_id: c.get('requestId'), error: errorText(error) });
    return c.json({ error: 'temporarily_unavailable', error_description: `the signing key store is unavailable: nothing was ${nothing}; retry later` }, 503, {
      ...NO_STORE,
      'Retry-After': '5',
    });
  };

  api.post('/rotate', allow(KEYS_ROTATE_SCOPE), noRequestBody(), async (c) => {
    const caller = c.get('keywayToken');
    let rotation: Awaited<ReturnType<typeof rotateSigningKeys>>;
    try {
      rotation = await rotateSigningKeys(operations, { token: caller }, requestContext(c, deps.clientIp));
    } catch (error) {
      return storeUnavailable(c, error, 'rotated');
    }
    const { transitions, record } = rotation;
    deps.log.info('signing key rotation requested', { by: caller.sub, policy: caller.client_id, jti: caller.jti, transitions, ...recordFields(record) });
    if ('unrecorded' in record) return unrecorded(c, 'the rotation was started');
    return c.json(rotationJson(transitions, await deps.store.describeKeys(), deps.cycle.retainMs), 200, NO_STORE);
  });

  api.post('/withdraw', allow(KEYS_WITHDRAW_SCOPE), jsonBodyLimit(KID_BODY_BYTES), async (c) => {
    const body = await readJsonBody(c, KID_BODY);
    if (!body.ok) return body.answer;
    const { kid } = body.value;
    const caller = c.get('keywayToken');
    let withdrawn: Awaited<ReturnType<typeof withdrawSigningKey>>;
    try {
      withdrawn = await withdrawSigningKey(operations, kid, { token: caller }, requestContext(c, deps.clientIp));
    } catch (error) {
      return storeUnavailable(c, error, 'withdrawn');
    }
    const { withdrawal, record } = withdrawn;
    // Logged as a warning whatever came of it: someone believes a signing key leaked.
    deps.log.warn('signing key withdrawal requested', {
      by: caller.sub,
      policy: caller.client_id,
      jti: caller.jti,
      kid,
      status: withdrawal.status,
      ...(withdrawal.status === 'withdrawn' ? { transitions: withdrawal.transitions } : {}),
      ...(record === undefined ? {} : recordFields(record)),
    });
    if (withdrawal.status === 'unknown')
      return c.json({ error: 'not_found', error_description: 'the broker holds no signing key with this kid (keyway keys list shows them)' }, 404, NO_STORE);
    if (record !== undefined && 'unrecorded' in record)
      return unrecorded(c, withdrawal.status === 'withdrawn' ? 'the key was withdrawn' : 'the key was removed already, and nothing changed');
    return c.json(withdrawalJson(withdrawal, await deps.store.describeKeys(), deps.cycle.retainMs), 200, NO_STORE);
  });
  return api;
}

/** What the log line says of the record: its id, or why there is none. */
function recordFields(record: KeyOperationRecord): Record<string, string> {
  return 'unrecorded' in record ? { audit_unavailable: record.unrecorded } : { audit_event_id: record.auditEventId };
}
