import { Hono, type Context } from 'hono';
import { bodyLimit } from './middleware/body-limit.ts';
import { requestId, type RequestIdVariables } from 'hono/request-id';
import { exchangeToken, type ExchangeDeps, type ExchangeInput } from './exchange/exchange-token.ts';
import { REQUEST_LIMITS, TOKEN_EXCHANGE_GRANT } from './exchange/parse-token-exchange-request.ts';
import { ExchangeError } from './exchange/reasons.ts';
import { reportExchange } from './exchange/report-exchange.ts';
import type { BrokerMetrics } from './metrics/broker-metrics.ts';
import { policyExplainRoutes } from './explain/policy-explain-routes.ts';
import type { AuditEvent, ChainLink } from './audit/audit-event.ts';
import { auditRoutes, type AuditApiDeps } from './audit-api/audit-routes.ts';
import { auditPage } from './audit-page/audit-page.tsx';
import { JWKS_MAX_AGE_SECONDS } from './tokens/key-life-cycle.ts';
import { keyRoutes, type KeyApiDeps } from './keys-api/key-routes.ts';
import { keywayAuth } from './middleware/keyway-auth/index.ts';
import { ownKeys } from './audit-api/audit-routes.ts';
import type { HealthReport } from './policy/policy-health.ts';

export interface AppDeps {
  readonly exchange: ExchangeDeps;
  readonly health: () => HealthReport;
  /** The runtime knows where the caller is: the socket on Node, CF-Connecting-IP on Workers. */
  readonly clientIp: (c: Context) => string | undefined;
  /** The audit log's API (`/v1/audit`) and page (`/audit`). */
  readonly audit: AuditApiDeps;
  /** Runs after an audit record is durable, in the background (alert rules). */
  readonly onAudited: (event: AuditEvent, link: ChainLink) => Promise<void>;
  /** Keeps background work alive past the response: waitUntil on Workers. */
  readonly background: (c: Context, task: Promise<void>) => void;
  /** The signing keys' operator API (`/v1/keys`), where the runtime offers its key store. */
  readonly keyApi?: KeyApiDeps;
  /** Counters and latencies of exchanges and audit appends. */
  readonly metrics: BrokerMetrics;
  /** `POST /webhooks/github`, when a webhook secret is configured. */
  readonly webhooks?: Hono;
}

export type AppEnv = { Variables: RequestIdVariables };

/** The scope a keyway token needs to read the broker's health in detail (`GET /v1/health`). */
export const HEALTH_READ_SCOPE = 'health:read';

const FORM_CONTENT_TYPE = /^application\/x-www-form-urlencoded\s*(;|$)/i;
const NO_STORE = { 'Cache-Control': 'no-store', Pragma: 'no-cache' } as const;

/** The HTTP face of the broker: routes and wiring only. Runtimes build `deps` and mount this. */
export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const { issuer } = deps.exchange;

  app.use(requestId({ limitLength: 128 }));

  // Public: up or degraded, nothing more. Policy files, issuers and load problems are for operators.
  app.get('/healthz', (c) => c.json({ status: deps.health().status }, 200, NO_STORE));
  const operator = keywayAuth({ issuer, audience: issuer, scopes: [HEALTH_READ_SCOPE], keys: ownKeys(deps.exchange.keys) });
  app.get('/v1/health', operator, (c) => c.json(deps.health(), 200, NO_STORE));

  const metadata = {
    issuer,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    grant_types_supported: [TOKEN_EXCHANGE_GRANT],
    token_endpoint_auth_methods_supported: ['none'],
    response_types_supported: [],
  };
  app.get('/.well-known/oauth-authorization-server', (c) => c.json(metadata));
  app.get('/.well-known/openid-configuration', (c) => c.json(metadata));
  app.get('/.well-known/jwks.json', (c) => {
    // The key life cycle publishes a next key at least this long before it signs (src/tokens/key-life-cycle.ts).
    c.header('Cache-Control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`);
    return c.json(deps.exchange.keys().jwks);
  });

  const respond = async (c: Context<AppEnv>, input: ExchangeInput): Promise<Response> => {
    const started = performance.now();
    const context = { requestId: c.get('requestId'), clientIp: deps.clientIp(c), userAgent: c.req.header('user-agent') };
    const result = await exchangeToken(deps.exchange, input, context);
    if (result.recorded !== undefined) deps.background(c, deps.onAudited(result.recorded.event, result.recorded.link));
    reportExchange(deps.exchange.log, deps.metrics, context, result, (performance.now() - started) / 1000);
    if (result.status === 405) c.header('Allow', 'POST');
    return c.json(result.body, result.status as 200, { ...NO_STORE, ...result.headers });
  };
  const refuse = (reason: ExchangeError['reason'], detail: string) => ({ refused: new ExchangeError(reason, detail, { public: true }) });

  app.post(
    '/token',
    async (c, next) => {
      // Before the body is read: a flood is shed before it costs a signature check.
      const limited = await deps.exchange.limits.beforeVerification(deps.clientIp(c));
      if (limited !== undefined) return respond(c, { refused: limited });
      await next();
    },
    bodyLimit({
      maxSize: REQUEST_LIMITS.bodyBytes,
      onError: (c) => respond(c as Context<AppEnv>, refuse('request_too_large', `the request body is larger than ${REQUEST_LIMITS.bodyBytes} bytes`)),
    }),
    async (c) => {
      if (!FORM_CONTENT_TYPE.test(c.req.header('content-type') ?? '')) {
        return respond(c, refuse('unsupported_media_type', 'the request body must be application/x-www-form-urlencoded'));
      }
      return respond(c, { form: new URLSearchParams(new TextDecoder().decode(await c.req.arrayBuffer())) });
    },
  );
  app.all('/token', (c) => respond(c, refuse('method_not_allowed', 'the token endpoint only accepts POST')));

  app.route('/v1/policy', policyExplainRoutes(deps.exchange));
  app.route('/v1/audit', auditRoutes(deps.audit));
  if (deps.keyApi !== undefined) app.route('/v1/keys', keyRoutes(deps.keyApi));
  app.route('/audit', auditPage(deps.audit));
  if (deps.webhooks !== undefined) app.route('/webhooks', deps.webhooks);

  app.notFound((c) => c.json({ error: 'not_found' }, 404));
  app.onError((error, c) => {
    deps.exchange.log.error('unhandled error', { request_id: c.get('requestId'), error: `${error.name}: ${error.message}` });
    return c.json({ error: 'server_error', error_description: 'internal error' }, 500);
  });
  return app;
}
