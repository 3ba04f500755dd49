import { Hono, type Context } from 'hono';
import { operatorAuth, type OwnTokens } from '../middleware/operator-auth.ts';
import type { AlertStore } from '../../features/alerts/alert-store.ts';
import { allRecords } from '../../core/audit/all-records.ts';
import type { AuditLog, AuditRecord } from '../../core/audit/audit-event.ts';
import type { ChainReads } from '../../core/audit/sharded-audit-log.ts';
import type { AuditShardsApi } from '../../core/audit/audit-shards.ts';
import { ROOT_CHECKPOINT_POSITION, rootCheckpointPosition } from '../../core/audit/root-checkpoint.ts';
import { AuditQueryError, parseAuditQuery, parseAuditStatsQuery, QUERY_LIMITS, type AuditPage, type AuditQuery } from '../../core/audit/audit-query.ts';
import type { KeywayAuthVariables } from '../middleware/keyway-auth.ts';
import type { KeyRing } from '../../core/mint/key-ring.ts';
import { CSV_HEADER, csvRow } from '../../core/audit/csv.ts';
import { toRecordJson } from '../../core/audit/record-json.ts';
import { ndjsonLine } from '../../core/audit/ndjson-line.ts';
import { explainAuditEvent } from '../../core/policy/explain-audit-event.ts';
import type { PolicySet } from '../../core/policy/policy-set.ts';
import type { Logger } from '../../core/log.ts';
import { logExplained, POLICY_EXPLAIN_SCOPE } from './policy-explain.ts';

export interface AuditApiDeps {
  /** The broker's issuer: the audience and issuer of the tokens that may read the log. */
  readonly issuer: string;
  readonly audit: AuditLog;
  /**
   * The hash chain checkpoints and a `shard=` export read: the one chain (Node) for no name, or on a
   * sharded log (Workers) the shard named; undefined where the name names none.
   */
  readonly chain: (shard: string | undefined) => ChainReads | undefined;
  /** A sharded log's chains and root checkpoints (Workers). */
  readonly shards?: AuditShardsApi;
  readonly alerts: AlertStore;
  readonly keys: () => KeyRing;
  readonly now: () => number;
  /** The policy set loaded now: what `GET /v1/audit/events/:id/explanation` and the page's event view explain with. */
  readonly policies: () => PolicySet;
  /** Where each explanation names the operator who asked for it. */
  readonly log: Logger;
}

/** The scope a keyway token needs to read the audit log. */
export const AUDIT_READ_SCOPE = 'audit:read';
const EXPORT_PAGE = 500;
const NO_STORE = { 'Cache-Control': 'no-store' } as const;

/** A query auditors got wrong (400); anything else is not the caller's (a shard that cannot be read now: the app's 503). */
function invalid(c: Context, error: unknown): Response {
  if (!(error instanceof AuditQueryError)) throw error;
  return c.json({ error: 'invalid_request', error_description: error.message }, 400, NO_STORE);
}

/**
 * `/v1/audit`: the log for auditors. Reading needs a keyway access token for this broker
 * (`aud` = its issuer) with scope `audit:read`; checkpoints are public, so anyone can keep
 * them and hold the log to them later.
 */
export function auditRoutes(deps: AuditApiDeps, own: OwnTokens): Hono<{ Variables: KeywayAuthVariables }> {
  const api = new Hono<{ Variables: KeywayAuthVariables }>();

  const chainOf = (c: Context): ChainReads | Response => {
    const shard = c.req.query('shard');
    const chain = deps.chain(shard === '' ? undefined : shard);
    if (chain !== undefined) return chain;
    const description =
      shard === undefined
        ? 'this audit log is sharded: name a shard (shard=0, 1, ... or legacy; GET /v1/audit/shards lists them)'
        : `shard ${JSON.stringify(shard.slice(0, 64))} is not one of this audit log's`;
    return c.json({ error: 'invalid_request', error_description: description }, 400, NO_STORE);
  };

  api.get('/checkpoints', async (c) => {
    const chain = chainOf(c);
    if (chain instanceof Response) return chain;
    const after = Number(c.req.query('after') ?? '0');
    const limit = Number(c.req.query('limit') ?? String(QUERY_LIMITS.maxPage));
    if (!Number.isSafeInteger(after) || after < 0 || !Number.isInteger(limit) || limit < 1 || limit > QUERY_LIMITS.maxPage) {
      return c.json({ error: 'invalid_request', error_description: `after is a seq, limit from 1 to ${QUERY_LIMITS.maxPage}` }, 400);
    }
    const checkpoints = await chain.checkpoints(after, limit + 1);
    const page = checkpoints.slice(0, limit);
    const last = page.at(-1);
    return c.json({ checkpoints: page, ...(checkpoints.length > limit && last !== undefined ? { next_cursor: String(last.seq) } : {}) }, 200, NO_STORE);
  });
  api.get('/checkpoints/latest', async (c) => {
    const chain = chainOf(c);
    if (chain instanceof Response) return chain;
    const latest = await chain.latestCheckpoint();
    return latest === undefined ? c.json({ error: 'not_found' }, 404) : c.json(latest, 200, NO_STORE);
  });

  // Public like the checkpoints: a sharded log's root checkpoints, each signing every chain's head.
  api.get('/root-checkpoints', async (c) => {
    const { shards } = deps;
    if (shards === undefined) return c.json({ error: 'not_found', error_description: 'this audit log is one chain: it has no root checkpoints' }, 404);
    const after = c.req.query('after') ?? '';
    const limit = Number(c.req.query('limit') ?? String(QUERY_LIMITS.maxPage));
    if ((after !== '' && !ROOT_CHECKPOINT_POSITION.test(after)) || !Number.isInteger(limit) || limit < 1 || limit > QUERY_LIMITS.maxPage) {
      return c.json({ error: 'invalid_request', error_description: `after is a next_cursor this API returned, limit from 1 to ${QUERY_LIMITS.maxPage}` }, 400);
    }
    const roots = await shards.roots(after, limit + 1);
    const page = roots.slice(0, limit);
    const last = page.at(-1);
    const next = roots.length > limit && last !== undefined ? { next_cursor: rootCheckpointPosition(last) } : {};
    return c.json({ root_checkpoints: page, ...next }, 200, NO_STORE);
  });
  api.get('/root-checkpoints/latest', async (c) => {
    const latest = await deps.shards?.latestRoot();
    return latest === undefined ? c.json({ error: 'not_found' }, 404) : c.json(latest, 200, NO_STORE);
  });

  // Public like the checkpoints: every key that ever signed one, removed keys included (their
  // private parts are destroyed). For checkpoints only: access tokens verify against the JWKS.
  api.get('/keys', (c) => c.json(deps.keys().checkpointKeys, 200, NO_STORE));

  // It shows every policy's patterns, as POST /v1/policy/explain does: for the same operators, logged the same way. Mounted
  // before the audit:read check below, which would otherwise verify the token first and claim its DPoP proof, so that this
  // check refused the same proof as replayed: one verification per request.
  api.get('/events/:id/explanation', operatorAuth(own, [AUDIT_READ_SCOPE, POLICY_EXPLAIN_SCOPE]), async (c) => {
    logExplained(deps.log, c.get('keywayToken'), c.req.param('id'));
    const event = await deps.audit.get(c.req.param('id'));
    if (event === undefined) return c.json({ error: 'not_found' }, 404, NO_STORE);
    return c.json(explainAuditEvent(event, deps.policies(), deps.issuer), 200, NO_STORE);
  });

  api.use('*', operatorAuth(own, [AUDIT_READ_SCOPE]));

  api.get('/shards', async (c) => {
    const { shards } = deps;
    if (shards === undefined) return c.json({ error: 'not_found', error_description: 'this audit log is one chain' }, 404, NO_STORE);
    return c.json({ shards: await shards.chains() }, 200, NO_STORE);
  });

  api.get('/events', async (c) => {
    let page: AuditPage;
    try {
      page = await deps.audit.query(parseAuditQuery(new URL(c.req.url).searchParams, deps.now()));
    } catch (error) {
      return invalid(c, error);
    }
    return c.json({ events: page.records.map(toRecordJson), ...(page.next === undefined ? {} : { next_cursor: page.next }) }, 200, NO_STORE);
  });

  api.get('/events/:id', async (c) => {
    let record: AuditRecord | undefined;
    try {
      record = await deps.audit.record(c.req.param('id'));
    } catch (error) {
      return invalid(c, error);
    }
    return record === undefined ? c.json({ error: 'not_found' }, 404, NO_STORE) : c.json(toRecordJson(record), 200, NO_STORE);
  });

  api.get('/export', async (c) => {
    let query: AuditQuery;
    const params = new URL(c.req.url).searchParams;
    const format = params.get('format') ?? 'ndjson';
    // One chain of a sharded log, in chain order, as `audit verify` reads it; the whole log otherwise.
    const chain = params.has('shard') ? chainOf(c) : deps.audit;
    if (chain instanceof Response) return chain;
    try {
      if (format !== 'ndjson' && format !== 'csv') throw new AuditQueryError('format must be ndjson or csv');
      params.delete('format');
      params.delete('shard');
      query = { ...parseAuditQuery(params, deps.now(), 'asc'), limit: EXPORT_PAGE };
    } catch (error) {
      return invalid(c, error);
    }
    const records = allRecords(chain, query);
    let first: IteratorResult<AuditRecord> | undefined;
    try {
      // The first page is read before the answer starts: a cursor the store refuses is a 400, not a broken stream.
      first = await records.next();
    } catch (error) {
      return invalid(c, error);
    }
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        if (format === 'csv') controller.enqueue(encoder.encode(CSV_HEADER));
      },
      async pull(controller) {
        const next = first ?? (await records.next());
        first = undefined;
        if (next.done === true) return controller.close();
        controller.enqueue(encoder.encode(format === 'csv' ? csvRow(next.value) : ndjsonLine(toRecordJson(next.value))));
      },
      async cancel() {
        await records.return(undefined);
      },
    });
    return new Response(body, {
      headers: {
        ...NO_STORE,
        'Content-Type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson',
        'Content-Disposition': `attachment; filename="keyway-audit.${format === 'csv' ? 'csv' : 'ndjson'}"`,
      },
    });
  });

  api.get('/stats', async (c) => {
    try {
      return c.json(await deps.audit.stats(parseAuditStatsQuery(new URL(c.req.url).searchParams, deps.now())), 200, NO_STORE);
    } catch (error) {
      return invalid(c, error);
    }
  });

  api.get('/alerts', async (c) => {
    const limit = Number(c.req.query('limit') ?? '50');
    if (!Number.isInteger(limit) || limit < 1 || limit > QUERY_LIMITS.maxPage)
      return c.json({ error: 'invalid_request', error_description: `limit must be from 1 to ${QUERY_LIMITS.maxPage}` }, 400);
    return c.json({ alerts: await deps.alerts.alerts(limit) }, 200, NO_STORE);
  });

  return api;
}
