import { Hono } from 'hono';
import * as v from 'valibot';
import { operatorAuth, type OwnTokens } from '../middleware/operator-auth.ts';
import type { Logger } from '../../core/log.ts';
import type { KeywayAuthVariables } from '../middleware/keyway-auth.ts';
import type { KeyLifeCycle } from '../../core/mint/key-life-cycle.ts';
import type { KeyStore } from '../../core/mint/key-store.ts';
import { keyJson, rotationJson, withdrawalJson } from '../../core/mint/key-json.ts';
import { jsonBodyLimit, readJsonBody } from './json-request-body.ts';

export interface KeyApiDeps {
  readonly store: KeyStore;
  readonly cycle: KeyLifeCycle;
  readonly now: () => number;
  readonly log: Logger;
  /** What the serving process does at once after a withdrawal: reload its key ring (the others do within a refresh period). */
  readonly withdrawn?: () => Promise<void>;
}

/** Scopes a keyway token needs: to list the signing keys, to start a rotation, and to withdraw a key. */
export const KEYS_READ_SCOPE = 'keys:read';
export const KEYS_ROTATE_SCOPE = 'keys:rotate';
export const KEYS_WITHDRAW_SCOPE = 'keys:withdraw';
const NO_STORE = { 'Cache-Control': 'no-store' } as const;
/** `POST /v1/keys/withdraw`'s body: the kid of the key, as `GET /v1/keys` lists it (an RFC 7638 thumbprint: 43 characters). */
const KID_BODY = v.strictObject({
  kid: v.pipe(v.string('kid must be a string'), v.minLength(1, 'kid is empty'), v.maxLength(128, 'kid is longer than 128 characters')),
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

  api.get('/', allow(KEYS_READ_SCOPE), async (c) =>
    c.json({ keys: (await deps.store.describeKeys()).map((key) => keyJson(key, deps.cycle.retainMs)) }, 200, NO_STORE),
  );

  api.post('/rotate', allow(KEYS_ROTATE_SCOPE), async (c) => {
    const caller = c.get('keywayToken');
    const transitions = await deps.store.advanceKeys({ now: deps.now(), cycle: deps.cycle, rotate: true, upkeep: false });
    deps.log.info('signing key rotation requested', { by: caller.sub, policy: caller.client_id, jti: caller.jti, transitions });
    return c.json(rotationJson(transitions, await deps.store.describeKeys(), deps.cycle.retainMs), 200, NO_STORE);
  });

  api.post('/withdraw', allow(KEYS_WITHDRAW_SCOPE), jsonBodyLimit(KID_BODY_BYTES), async (c) => {
    const body = await readJsonBody(c, KID_BODY);
    if (!body.ok) return body.answer;
    const { kid } = body.value;
    const caller = c.get('keywayToken');
    const withdrawal = await deps.store.withdrawKey(kid, deps.now());
    // Logged as a warning whatever came of it: someone believes a signing key leaked.
    deps.log.warn('signing key withdrawal requested', {
      by: caller.sub,
      policy: caller.client_id,
      jti: caller.jti,
      kid,
      status: withdrawal.status,
      ...(withdrawal.status === 'withdrawn' ? { transitions: withdrawal.transitions } : {}),
    });
    if (withdrawal.status === 'unknown')
      return c.json({ error: 'not_found', error_description: 'the broker holds no signing key with this kid (keyway keys list shows them)' }, 404, NO_STORE);
    if (withdrawal.status === 'withdrawn') await deps.withdrawn?.();
    return c.json(withdrawalJson(withdrawal, await deps.store.describeKeys(), deps.cycle.retainMs), 200, NO_STORE);
  });
  return api;
}
