import { Hono, type Context, type HonoRequest } from 'hono';
import { operatorAuth, type OwnTokens } from '../middleware/operator-auth.ts';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from '../../core/log.ts';
import type { RecordsWithoutMac } from '../../core/audit/record-mac.ts';
import type { KeywayAuthVariables } from '../middleware/keyway-auth.ts';
import { staticBearer } from '../middleware/static-bearer.ts';

/** What a restore wrote: how many of each, and the records after a chain's newest checkpoint that no MAC vouches for. */
export interface RestoredSummary {
  readonly schema_version: number;
  readonly records: number;
  readonly head_seq?: number;
  readonly checkpoints: number;
  readonly signing_keys: number;
  /** The audit shards restored, from a sharded export. */
  readonly shards?: number;
  readonly records_without_mac?: readonly RecordsWithoutMac[];
}

/** A restore's answer: what was written, or why nothing was. */
export type StateRestoreResult =
  | { readonly ok: true; readonly restored: RestoredSummary }
  | { readonly ok: false; readonly problem: string; readonly message: string };

export interface BackupApiDeps {
  /** The whole state as one JSON text, read in one transaction; undefined when it is larger than `maxBytes`. */
  readonly exportState: () => Promise<string | undefined>;
  /** `keptRoots`: root checkpoints the operator kept apart from the export (what GET /v1/audit/root-checkpoints answered), as given. */
  readonly restoreState: (text: string, keptRoots?: string) => Promise<StateRestoreResult>;
  /** KEYWAY_RESTORE_TOKEN: without it, restore is refused. */
  readonly restoreToken: string | undefined;
  readonly maxBytes: number;
  readonly log: Logger;
  readonly clientIp: (c: Context) => string | undefined;
}

/** The scope a keyway token needs to export the whole state: it is everything but the master key. */
export const BACKUP_READ_SCOPE = 'backup:read';
const NO_STORE = { 'Cache-Control': 'no-store' } as const;

/**
 * `/v1/backup` (Workers): `GET` exports the state Durable Object (audit log and checkpoints,
 * sealed signing keys, live policy set, sealed GitHub revocation schedule) for a keyway token with
 * scope `backup:read`. `POST /restore` writes such an export into a fresh deployment; a fresh one
 * cannot have minted the token that would authorise it, so it takes the KEYWAY_RESTORE_TOKEN secret
 * instead, and is refused while that is unset. The export is the body, or the `export` part of a
 * multipart form whose `roots` part holds root checkpoints kept apart from it, a witness it must agree with.
 */
/** The shortest KEYWAY_RESTORE_TOKEN restore takes: 32 characters, what `openssl rand -hex 16` gives (the runbook says `-hex 32`). */
const MIN_RESTORE_TOKEN_LENGTH = 32;
const RESTORE_TOKEN_TOO_SHORT = `restore is disabled: KEYWAY_RESTORE_TOKEN is shorter than ${MIN_RESTORE_TOKEN_LENGTH} characters, too short to resist guessing (openssl rand -hex 32)`;

export function backupRoutes(deps: BackupApiDeps, own: OwnTokens): Hono<{ Variables: KeywayAuthVariables }> {
  const api = new Hono<{ Variables: KeywayAuthVariables }>();
  const restoreAuthorized = staticBearer(deps.restoreToken);

  api.get('/', operatorAuth(own, [BACKUP_READ_SCOPE]), async (c) => {
    const caller = c.get('keywayToken');
    const text = await deps.exportState();
    if (text === undefined) {
      deps.log.warn('state export refused: too large', { by: caller.sub, policy: caller.client_id, jti: caller.jti, max_bytes: deps.maxBytes });
      const description = `the state is larger than the ${deps.maxBytes} bytes one export holds: prune the audit log (KEYWAY_AUDIT_RETENTION_DAYS)`;
      return c.json({ error: 'request_too_large', error_description: description }, 413, NO_STORE);
    }
    deps.log.info('state exported', { by: caller.sub, policy: caller.client_id, jti: caller.jti, bytes: text.length });
    return c.body(text, 200, {
      ...NO_STORE,
      'Content-Type': 'application/json',
      'Content-Disposition': 'attachment; filename="keyway-state.json"',
    });
  });

  api.post(
    '/restore',
    async (c, next) => {
      if (restoreAuthorized === undefined) {
        return c.json({ error: 'access_denied', error_description: 'restore is disabled: KEYWAY_RESTORE_TOKEN is not set' }, 403, NO_STORE);
      }
      // The secret is all that guards a deployment waiting to be restored, from anywhere, for as long as it waits.
      if ((deps.restoreToken?.length ?? 0) < MIN_RESTORE_TOKEN_LENGTH) {
        return c.json({ error: 'access_denied', error_description: RESTORE_TOKEN_TOO_SHORT }, 403, NO_STORE);
      }
      const authorization = c.req.header('authorization');
      if (!(await restoreAuthorized(authorization))) {
        // No record (one would make the deployment no longer fresh), but a line: a guess at the secret that
        // guards a waiting deployment is what its operator watches for.
        deps.log.warn('state restore refused: not the restore token', {
          credential: authorization === undefined ? 'none' : 'wrong',
          client_ip: deps.clientIp(c) ?? null,
        });
        c.header('WWW-Authenticate', 'Bearer realm="keyway restore"');
        return c.json(
          { error: 'invalid_token', error_description: 'POST /v1/backup/restore needs Authorization: Bearer with KEYWAY_RESTORE_TOKEN' },
          401,
          NO_STORE,
        );
      }
      await next();
    },
    bodyLimit({
      maxSize: deps.maxBytes,
      onError: (c) => c.json({ error: 'request_too_large', error_description: `an export larger than ${deps.maxBytes} bytes is refused` }, 413, NO_STORE),
    }),
    async (c) => {
      const body = await restoreBody(c.req);
      const result: StateRestoreResult =
        typeof body === 'string' ? { ok: false, problem: 'malformed', message: body } : await deps.restoreState(body.text, body.keptRoots);
      if (!result.ok) {
        deps.log.warn('state restore refused', { problem: result.problem, error: result.message });
        const status = result.problem === 'not_fresh' || result.problem.startsWith('schema_') ? 409 : 400;
        return c.json({ error: 'invalid_request', error_description: result.message, problem: result.problem }, status, NO_STORE);
      }
      deps.log.warn('state restored from an export', { ...result.restored });
      return c.json({ restored: result.restored }, 200, NO_STORE);
    },
  );
  return api;
}

/**
 * The export, and the kept root checkpoints when the body is a form of the two; a string says what is wrong with the form.
 * A part given twice, or one of another name, is refused: keeping one, or ignoring it, would silently drop a witness or the export meant.
 */
async function restoreBody(request: HonoRequest): Promise<{ text: string; keptRoots?: string } | string> {
  if (!(request.header('content-type') ?? '').toLowerCase().startsWith('multipart/form-data')) return { text: await request.text() };
  const form = await request.parseBody({ all: true }).catch(() => undefined);
  // A part under another name (a misspelt `roots`) is refused: ignoring it would restore without the witness meant.
  const other = Object.keys(form ?? {}).find((name) => name !== 'export' && name !== 'roots');
  if (other !== undefined) return `a multipart restore holds an \`export\` part and a \`roots\` part only, not one named ${JSON.stringify(other.slice(0, 64))}`;
  const twice = (['export', 'roots'] as const).find((name) => Array.isArray(form?.[name]));
  if (twice !== undefined) return `a multipart restore holds one \`${twice}\` part, not several (kept root checkpoints go one after another in one part)`;
  const part = async (name: string) => {
    const value = form?.[name];
    return value === undefined || Array.isArray(value) ? undefined : typeof value === 'string' ? value : value.text();
  };
  const [text, keptRoots] = [await part('export'), await part('roots')];
  if (text === undefined) return 'a multipart restore holds the export in its `export` part (and the kept root checkpoints in `roots`)';
  return { text, ...(keptRoots === undefined ? {} : { keptRoots }) };
}
