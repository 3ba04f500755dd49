import { Hono, type Context } from 'hono';
import { operatorAuth, type OwnTokens } from '../middleware/operator-auth.ts';
import { AuditQueryError } from '../../core/audit/audit-query.ts';
import { buildInventory, parseInventoryQuery, UsageCatchingUpError, type Inventory, type InventoryQuery } from '../../core/audit/inventory.ts';
import { INVENTORY_CSV_HEADER, inventoryCsvRow } from '../../core/audit/inventory-csv.ts';
import { ndjsonLine } from '../../core/audit/ndjson-line.ts';
import { AUDIT_READ_SCOPE, type AuditApiDeps } from './audit.ts';

const NO_STORE = { 'Cache-Control': 'no-store' } as const;
const FORMATS = { json: 'application/json', csv: 'text/csv; charset=utf-8', ndjson: 'application/x-ndjson' } as const;

/**
 * `GET /v1/inventory`: every CI identity seen in a window (30 days unless told), with what it was
 * granted and refused, for auditors (scope `audit:read`, as the log itself). Read through the
 * audit store's `usage`, so it covers whatever the store covers. No token, hash or jti appears in it.
 */
export function inventoryRoutes(deps: AuditApiDeps, own: OwnTokens): Hono {
  const api = new Hono();
  api.use('*', operatorAuth(own, [AUDIT_READ_SCOPE]));
  api.get('/', async (c) => {
    const params = new URL(c.req.url).searchParams;
    const format = params.get('format') ?? 'json';
    let query: InventoryQuery;
    try {
      if (!Object.hasOwn(FORMATS, format)) throw new AuditQueryError('format must be json, csv or ndjson');
      params.delete('format');
      query = parseInventoryQuery(params, deps.now());
    } catch (error) {
      if (!(error instanceof AuditQueryError)) throw error;
      return c.json({ error: 'invalid_request', error_description: error.message }, 400, NO_STORE);
    }
    let inventory: Inventory;
    try {
      inventory = buildInventory(await deps.audit.usage(query), query);
    } catch (error) {
      return catchingUp(c, error);
    }
    if (format === 'json') return c.json(inventory, 200, NO_STORE);
    const body = format === 'csv' ? INVENTORY_CSV_HEADER + inventory.identities.map(inventoryCsvRow).join('') : inventory.identities.map(ndjsonLine).join('');
    return c.body(body, 200, {
      ...NO_STORE,
      'Content-Type': FORMATS[format as keyof typeof FORMATS],
      'Content-Disposition': `attachment; filename="keyway-inventory.${format}"`,
    });
  });
  // What `keyway policy suggest --url` reads: the window's usage groups and the claims of its grants.
  api.get('/usage', async (c) => {
    let window: { since: number; until: number };
    try {
      const { since, until } = parseInventoryQuery(new URLSearchParams(pick(new URL(c.req.url).searchParams, ['since', 'until'])), deps.now());
      window = { since, until };
    } catch (error) {
      if (!(error instanceof AuditQueryError)) throw error;
      return c.json({ error: 'invalid_request', error_description: error.message }, 400, NO_STORE);
    }
    try {
      return c.json({ rows: await deps.audit.usage(window), claims: await deps.audit.claimUsage(window) }, 200, NO_STORE);
    } catch (error) {
      return catchingUp(c, error);
    }
  });
  return api;
}

/**
 * 503 while the usage roll-up catches up with the log (UsageCatchingUpError), saying how far it is: never counts short of
 * the records, and never a read that sums the backlog on the serving thread. Any other error is rethrown.
 */
function catchingUp(c: Context, error: unknown): Response {
  if (!(error instanceof UsageCatchingUpError)) throw error;
  return c.json({ error: 'temporarily_unavailable', error_description: error.message, usage_roll_up: error.progress }, 503, {
    ...NO_STORE,
    'Retry-After': String(UsageCatchingUpError.RETRY_AFTER_SECONDS),
  });
}

const pick = (params: URLSearchParams, names: readonly string[]) => [...params].filter(([name]) => names.includes(name));
