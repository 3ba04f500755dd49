import { Hono, type Context, type NotFoundHandler } from 'hono';
import { AuditShardUnavailableError } from '../core/audit/sharded-audit-log.ts';
import { HTTPException } from 'hono/http-exception';
import { requestId, type RequestIdVariables } from 'hono/request-id';
import { errorText } from '../core/log.ts';
import type { ExchangeDeps } from '../core/exchange/exchange-token.ts';
import type { HealthReport } from '../core/policy/policy-health.ts';
import { auditPage } from './audit-page/audit-page.tsx';
import { auditRoutes, type AuditApiDeps } from './routes/audit.ts';
import { backupRoutes, type BackupApiDeps } from './routes/backup.ts';
import { discoveryRoutes } from './routes/discovery.ts';
import { healthRoutes } from './routes/health.ts';
import { inventoryRoutes } from './routes/inventory.ts';
import { keyRoutes, type KeyApiDeps } from './routes/keys.ts';
import { policyExplainRoutes } from './routes/policy-explain.ts';
import { policyWhoCanRoutes } from './routes/policy-who-can.ts';
import { tokenRoutes, type TokenRouteDeps } from './routes/token.ts';
import { revocationRoutes } from './routes/revocation.ts';
import { proxyRoutes, type ProxyRouteDeps } from './routes/proxy.ts';
import type { RevocationList } from '../core/revocation/revocation-list.ts';
import type { PendingGitHubTokens } from '../core/revocation/rfc7009-revoke.ts';
import { conformingErrorDescriptions } from './conforming-error-descriptions.ts';
import { responseHeaders } from './response-headers.ts';
import { guardedDpopReplay, operatorRefusals, type OperatorRefusalRecorderDeps } from './middleware/operator-auth.ts';
import { shedBeforeBody } from './middleware/rate-limit.ts';
import { refuseRevokedTokens } from './middleware/refuse-revoked.ts';
import { ownKeys } from './middleware/own-keys.ts';
import type { BrokerMetrics } from '../features/metrics/broker-metrics.ts';

export interface AppDeps {
  readonly exchange: ExchangeDeps;
  readonly health: () => HealthReport;
  /** The runtime knows where the caller is: the socket on Node, CF-Connecting-IP on Workers. */
  readonly clientIp: (c: Context) => string | undefined;
  /** The audit log's API (`/v1/audit`) and page (`/audit`). */
  readonly audit: AuditApiDeps;
  /** Told of every answered exchange: logs, metrics and alert rules, as runtimes/create-broker.ts wires them. */
  readonly answered: TokenRouteDeps['answered'];
  /** Told of the record of every refused operator credential once durable: the alert rules. */
  readonly operatorRefused: OperatorRefusalRecorderDeps['recorded'];
  /** The signing keys' operator API (`/v1/keys`), where the runtime offers its key store. */
  readonly keyApi?: KeyApiDeps;
  /** Export and restore of the whole state (`/v1/backup`), where the runtime offers them (Workers). */
  readonly backupApi?: Omit<BackupApiDeps, 'clientIp'>;
  /** `POST /webhooks/github`, when a webhook secret is configured. */
  readonly webhooks?: Hono;
  /** Revoked keyway tokens, for `POST /revoke` and `POST /introspect`. */
  readonly revocations: RevocationList;
  /** With a GitHub App: the GitHub tokens the broker issued, which their holders may hand back to `POST /revoke`. */
  readonly githubTokens?: PendingGitHubTokens;
  /** `/proxy/{upstream}/…` (docs/proxy.md). */
  readonly proxy: Omit<ProxyRouteDeps, 'metrics'>;
  /** Where the requests a rate limit refused at `/proxy` and `/revoke` are counted (`/token`'s are through `answered`). */
  readonly metrics: Pick<BrokerMetrics, 'rateLimited'>;
}

export type AppEnv = { Variables: RequestIdVariables };

/** The answer to a path no route serves: also that of an app the broker's is mounted in, whose own would be plain text. */
export const notFound: NotFoundHandler = (c) => c.json({ error: 'not_found' }, 404);

/** The HTTP face of the broker: it mounts routes and middleware, nothing more. Runtimes build `deps` and serve this. */
export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const { issuer, keys } = deps.exchange;

  // First, so it sees every answer, the ones onError makes included: no error_description leaves that RFC 6749 §5.2 forbids.
  app.use(conformingErrorDescriptions());
  app.use(responseHeaders());
  app.use(requestId({ limitLength: 128 }));
  // The broker's own tokens as operator credentials; their DPoP proofs claimed where every process and isolate sees them, and
  // every refusal of one recorded (within the unverified budget when it names no operator).
  const refusals = operatorRefusals({
    issuer,
    audit: deps.audit.audit,
    now: deps.audit.now,
    limits: deps.exchange.limits,
    clientIp: deps.clientIp,
    log: deps.exchange.log,
    metrics: deps.metrics,
    recorded: deps.operatorRefused,
  });
  const own = { issuer, keys, dpopReplay: guardedDpopReplay(deps.exchange.replay), refusals, now: deps.audit.now };
  // First among the routes: it refuses, before any other route sees it, a target with a dot segment as sent, which each
  // runtime would otherwise route its own way (Node resolves `/x/../token` to /token; workerd routes it nowhere).
  app.route('/', proxyRoutes({ ...deps.proxy, metrics: deps.metrics }, own));
  // The operator APIs are shed by /token's per-client limit before a token's signature is checked; not by the global one, which
  // a flood from elsewhere could spend to lock the operators out (and which is the exchanges' to spend).
  app.use('/v1/*', shedBeforeBody(deps.exchange.limits.forClient, deps.clientIp));
  // A revoked one is refused before any route reads it, once the request was not shed and its signature verified
  // (/introspect and /revoke do all in their routes, whose shed depends on the request).
  app.use('/v1/*', refuseRevokedTokens(deps.revocations, ownKeys(keys), deps.audit.now, refusals));
  app.route('/', healthRoutes({ health: deps.health }, own));
  app.route('/', discoveryRoutes({ issuer, keys }));
  app.route('/', tokenRoutes({ exchange: deps.exchange, clientIp: deps.clientIp, answered: deps.answered }));
  app.route('/v1/policy', policyExplainRoutes(deps.exchange, own));
  app.route(
    '/',
    revocationRoutes(
      {
        revocations: deps.revocations,
        audit: deps.audit.audit,
        now: deps.audit.now,
        clientIp: deps.clientIp,
        log: deps.exchange.log,
        limits: deps.exchange.limits,
        metrics: deps.metrics,
        ...(deps.githubTokens === undefined ? {} : { github: deps.githubTokens }),
      },
      own,
    ),
  );
  app.route('/v1/policy', policyWhoCanRoutes(deps.exchange, own));
  app.route('/v1/audit', auditRoutes(deps.audit, own));
  app.route('/v1/inventory', inventoryRoutes(deps.audit, own));
  if (deps.keyApi !== undefined) app.route('/v1/keys', keyRoutes(deps.keyApi, own));
  if (deps.backupApi !== undefined) app.route('/v1/backup', backupRoutes({ ...deps.backupApi, clientIp: deps.clientIp }, own));
  app.route('/audit', auditPage({ ...deps.audit, revocations: deps.revocations, limits: deps.exchange.limits, clientIp: deps.clientIp, refusals }));
  if (deps.webhooks !== undefined) app.route('/webhooks', deps.webhooks);

  app.notFound(notFound);
  app.onError((error, c) => {
    // Hono's middleware refuses a request by throwing one (csrf() its 403): the answer it chose. A 5xx one is a fault like any other.
    if (error instanceof HTTPException && error.status < 500) return error.getResponse();
    // A shard of a sharded audit log that cannot be read now (Workers), wherever a route reads the log: retry, not a fault.
    if (error instanceof AuditShardUnavailableError) {
      return c.json({ error: 'temporarily_unavailable', error_description: error.message }, 503, { 'Cache-Control': 'no-store', 'Retry-After': '5' });
    }
    deps.exchange.log.error('unhandled error', { request_id: c.get('requestId'), error: errorText(error) });
    return c.json({ error: 'server_error', error_description: 'internal error' }, 500);
  });
  return app;
}
