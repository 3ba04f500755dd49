import { Hono } from 'hono';
import { operatorAuth, type OwnTokens } from '../middleware/operator-auth.ts';
import type { Logger } from '../../core/log.ts';
import type { KeywayAuthVariables } from '../middleware/keyway-auth.ts';
import type { KeyLifeCycle } from '../../core/mint/key-life-cycle.ts';
import type { KeyStore } from '../../core/mint/key-store.ts';
import { keyJson, rotationJson } from '../../core/mint/key-json.ts';

export interface KeyApiDeps {
  readonly store: KeyStore;
  readonly cycle: KeyLifeCycle;
  readonly now: () => number;
  readonly log: Logger;
}

/** Scopes a keyway token needs: to list the signing keys, and to start a rotation. */
export const KEYS_READ_SCOPE = 'keys:read';
export const KEYS_ROTATE_SCOPE = 'keys:rotate';
const NO_STORE = { 'Cache-Control': 'no-store' } as const;

/**
 * `/v1/keys`: the signing key ring for operators, the remote form of `keyway keys list` and
 * `keyway keys rotate` (the only on-demand rotation on Workers). Needs a keyway access token
 * for this broker (`aud` = its issuer) with scope `keys:read` or `keys:rotate`.
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
  return api;
}
