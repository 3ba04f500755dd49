import { Hono, type Context } from 'hono';
import type { AlertStore } from '../../features/alerts/alert-store.ts';
import { allRecords } from '../../core/audit/all-records.ts';
import type { AuditStore } from '../../core/audit/audit-event.ts';
import { AuditQueryError, parseAuditQuery, parseAuditStatsQuery, QUERY_LIMITS, type AuditQuery } from '../../core/audit/audit-query.ts';
import { keywayAuth } from '../middleware/keyway-auth.ts';
import { ownKeys } from '../middleware/own-keys.ts';
import type { KeyRing } from '../../core/mint/key-ring.ts';
import { CSV_HEADER, csvRow } from '../../core/audit/csv.ts';
import { toRecordJson } from '../../core/audit/record-json.ts';
import { explainAuditEvent } from '../../core/policy/explain-audit-event.ts';
import type { PolicySet } from '../../core/policy/policy-set.ts';

export interface AuditApiDeps {
  /** The broker's issuer: the audience and issuer of the tokens that may read the log. */
  readonly issuer: string;
  readonly audit: AuditStore;
  readonly alerts: AlertStore;
  readonly keys: () => KeyRing;
  readonly now: () => number;
  /** The policy set loaded now: what `GET /v1/audit/events/:id/explanation` and the page's event view explain with. */
  readonly policies: () => PolicySet;
}

/** The scope a keyway token needs to read the audit log. */
export const AUDIT_READ_SCOPE = 'audit:read';
const EXPORT_PAGE = 500;
const NO_STORE = { 'Cache-Control': 'no-store' } as const;

function invalid(c: Context, error: unknown): Response {
  if (!(error instanceof AuditQueryError)) throw error;
  return c.json({ error: 'invalid_request', error_description: error.message }, 400, NO_STORE);
}

/**
 * `/v1/audit`: the log for auditors. Reading needs a keyway access token for this broker
 * (`aud` = its issuer) with scope `audit:read`; checkpoints are public, so anyone can keep
 * them and hold the log to them later.
 */
export function auditRoutes(deps: AuditApiDeps): Hono {
  const api = new Hono();

  api.get('/checkpoints', async (c) => {
    const after = Number(c.req.query('after') ?? '0');
    const limit = Number(c.req.query('limit') ?? String(QUERY_LIMITS.maxPage));
    if (!Number.isSafeInteger(after) || after < 0 || !Number.isInteger(limit) || limit < 1 || limit > QUERY_LIMITS.maxPage) {
      return c.json({ error: 'invalid_request', error_description: `after is a seq, limit from 1 to ${QUERY_LIMITS.maxPage}` }, 400);
    }
    const checkpoints = await deps.audit.checkpoints(after, limit + 1);
    const page = checkpoints.slice(0, limit);
    const last = page.at(-1);
    return c.json({ checkpoints: page, ...(checkpoints.length > limit && last !== undefined ? { next_cursor: String(last.seq) } : {}) }, 200, NO_STORE);
  });
  api.get('/checkpoints/latest', async (c) => {
    const latest = await deps.audit.latestCheckpoint();
    return latest === undefined ? c.json({ error: 'not_found' }, 404) : c.json(latest, 200, NO_STORE);
  });

  // Public like the checkpoints: every key that ever signed one, removed keys included (their
  // private parts are destroyed). For checkpoints only: access tokens verify against the JWKS.
  api.get('/keys', (c) => c.json(deps.keys().checkpointKeys, 200, NO_STORE));

  api.use('*', keywayAuth({ issuer: deps.issuer, audience: deps.issuer, scopes: [AUDIT_READ_SCOPE], keys: ownKeys(deps.keys) }));

  api.get('/events', async (c) => {
    let query: AuditQuery;
    try {
      query = parseAuditQuery(new URL(c.req.url).searchParams, deps.now());
    } catch (error) {
      return invalid(c, error);
    }
    const page = await deps.audit.query(query);
    return c.json({ events: page.records.map(toRecordJson), ...(page.next === undefined ? {} : { next_cursor: String(page.next) }) }, 200, NO_STORE);
  });

  api.get('/events/:id', async (c) => {
    const record = await deps.audit.record(c.req.param('id'));
    return record === undefined ? c.json({ error: 'not_found' }, 404, NO_STORE) : c.json(toRecordJson(record), 200, NO_STORE);
  });

  api.get('/events/:id/explanation', async (c) => {
    const event = await deps.audit.get(c.req.param('id'));
    if (event === undefined) return c.json({ error: 'not_found' }, 404, NO_STORE);
    return c.json(explainAuditEvent(event, deps.policies(), deps.issuer), 200, NO_STORE);
  });

  api.get('/export', async (c) => {
    let query: AuditQuery;
    const params = new URL(c.req.url).searchParams;
    const format = params.get('format') ?? 'ndjson';
    try {
      if (format !== 'ndjson' && format !== 'csv') throw new AuditQueryError('format must be ndjson or csv');
      params.delete('format');
      query = { ...parseAuditQuery(params, deps.now(), 'asc'), limit: EXPORT_PAGE };
    } catch (error) {
      return invalid(c, error);
    }
    const records = allRecords(deps.audit, query);
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        if (format === 'csv') controller.enqueue(encoder.encode(CSV_HEADER));
      },
      async pull(controller) {
        const next = await records.next();
        if (next.done === true) return controller.close();
        controller.enqueue(encoder.encode(format === 'csv' ? csvRow(next.value) : `${JSON.stringify(toRecordJson(next.value))}\n`));
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
