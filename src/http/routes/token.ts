import { Hono, type Context } from 'hono';
import { bodyLimit } from '../middleware/body-limit.ts';
import type { RequestIdVariables } from 'hono/request-id';
import type { Refusal } from '../../core/errors/reasons.ts';
import { ExchangeError } from '../../core/errors/exchange-error.ts';
import { exchangeToken, type ExchangeDeps, type ExchangeInput, type ExchangeResult, type RequestContext } from '../../core/exchange/exchange-token.ts';
import { REQUEST_LIMITS } from '../../core/exchange/token-exchange-request.ts';
import { rateLimitBeforeBody } from '../middleware/rate-limit.ts';
import { oauthResponse } from '../oauth-errors.ts';
import { requestContext } from '../request-context.ts';
import { isFormEncoded } from './form-request-body.ts';

type TokenEnv = { Variables: RequestIdVariables };

/** An exchange as it was answered: what the runtime logs, counts and raises alerts on. */
export interface AnsweredExchange {
  readonly context: RequestContext;
  readonly result: ExchangeResult;
  /** The HTTP status it was answered with. */
  readonly status: number;
  readonly seconds: number;
}

export interface TokenRouteDeps {
  readonly exchange: ExchangeDeps;
  /** The runtime knows where the caller is: the socket on Node, CF-Connecting-IP on Workers. */
  readonly clientIp: (c: Context) => string | undefined;
  /** Told of every answered exchange before its response leaves: logs, metrics and alert rules (runtimes/create-broker.ts). */
  readonly answered: (c: Context, answered: AnsweredExchange) => void;
}

/**
 * `POST /token`, the RFC 8693 token exchange: the request is bounded and parsed here (rate limits
 * before the body, body size, content type), the exchange decides, and its answer becomes an HTTP
 * response in http/oauth-errors.ts. Every refusal made here is a reason code audited like any other.
 */
export function tokenRoutes(deps: TokenRouteDeps): Hono<TokenEnv> {
  const routes = new Hono<TokenEnv>();
  const respond = async (c: Context<TokenEnv>, input: ExchangeInput): Promise<Response> => {
    const started = performance.now();
    const context = requestContext(c, deps.clientIp);
    const result = await exchangeToken(deps.exchange, input, context);
    const response = oauthResponse(result.answer, result.recorded?.event.id);
    deps.answered(c, { context, result, status: response.status, seconds: (performance.now() - started) / 1000 });
    // RFC 9449 §8: every answer hands out the current nonce, so a client learns it from its first refusal or keeps it fresh.
    const nonces = deps.exchange.dpopNonces;
    const headers: Record<string, string> =
      nonces === undefined ? { ...response.headers } : { ...response.headers, 'DPoP-Nonce': nonces.current(deps.exchange.now()) };
    return c.json(response.body, response.status, headers);
  };
  const refuse = (reason: Refusal, detail: string) => ({ refused: new ExchangeError(reason, detail, { public: true }) });

  // Every method: a refusal of any request to /token is a record, so a flood of them is shed like a flood of exchanges.
  routes.use(
    '/token',
    rateLimitBeforeBody(deps.exchange.limits.beforeVerification, deps.clientIp, (c, limited) => respond(c as Context<TokenEnv>, { refused: limited })),
  );
  // The client closed its connection mid-body, or ran out of time: a request refused like any malformed one, and recorded.
  const incomplete = (c: Context) =>
    respond(
      c as Context<TokenEnv>,
      refuse('malformed_request', 'the request body ended before it was received whole: the client closed the connection or ran out of time'),
    );
  routes.post(
    '/token',
    bodyLimit({
      maxSize: REQUEST_LIMITS.bodyBytes,
      onError: (c) => respond(c as Context<TokenEnv>, refuse('request_too_large', `the request body is larger than ${REQUEST_LIMITS.bodyBytes} bytes`)),
      onIncomplete: incomplete,
    }),
    async (c) => {
      if (!isFormEncoded(c.req.header('content-type'))) {
        return respond(c, refuse('unsupported_media_type', 'the request body must be application/x-www-form-urlencoded'));
      }
      // UTF-8 as TextDecoder reads it; on Node, straight from the body's buffer, without copying it into an ArrayBuffer first.
      const text = await c.req.text().catch(() => undefined);
      if (text === undefined) return incomplete(c);
      const form = new URLSearchParams(text);
      // Several DPoP headers arrive joined by commas, which no compact JWS holds: refused as malformed proofs.
      const dpopProof = c.req.header('dpop');
      return respond(c, { form, ...(dpopProof === undefined ? {} : { dpopProof }) });
    },
  );
  routes.all('/token', (c) => respond(c, refuse('method_not_allowed', 'the token endpoint only accepts POST')));
  return routes;
}
