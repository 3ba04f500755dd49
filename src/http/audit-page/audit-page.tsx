import { Hono, type Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { csrf } from 'hono/csrf';
import { secureHeaders } from 'hono/secure-headers';
import {
  AuditQueryError,
  BUCKETS,
  parseAuditFilter,
  parseAuditQuery,
  parseAuditStatsQuery,
  QUERY_LIMITS,
  type AuditStatsQuery,
} from '../../core/audit/audit-query.ts';
import { AUDIT_READ_SCOPE, type AuditApiDeps } from '../routes/audit.ts';
import { bodyLimit } from '../middleware/body-limit.ts';
import { refusedCredential, type OperatorRefusals } from '../middleware/operator-auth.ts';
import type { OperatorClaims, OperatorRefusal } from '../../core/revocation/operator-refusal.ts';
import { ownKeys } from '../middleware/own-keys.ts';
import { rateLimitBeforeBody } from '../middleware/rate-limit.ts';
import { logExplained, POLICY_EXPLAIN_SCOPE } from '../routes/policy-explain.ts';
import { AccessTokenError, verifyAccessToken, type KeywayAccessToken } from '../../core/mint/verify-access-token.ts';
import { endPageSession, pageSessionRevoked, startPageSession, verifyPageSession, type PageSession } from '../../core/revocation/page-session.ts';
import { SIGNED_IN_WITH_CLAIM } from '../../core/mint/page-session-token.ts';
import type { AuditEvent } from '../../core/audit/audit-event.ts';
import { boundText } from '../../core/audit/bound-audit-event.ts';
import { AuditShardUnavailableError } from '../../core/audit/sharded-audit-log.ts';
import type { RevocationList } from '../../core/revocation/revocation-list.ts';
import type { RequestLimits } from '../../core/limits/request-limits.ts';
import type { RateLimitedError } from '../../core/limits/rate-limited-error.ts';
import { buildInventory, parseInventoryQuery, UsageCatchingUpError, type InventoryQuery, type UsageRow } from '../../core/audit/inventory.ts';
import { inert } from '../../core/inert-text.ts';
import { errorText } from '../../core/log.ts';
import { AlertsList } from './alerts-list.tsx';
import { DecisionsChart } from './decisions-chart.tsx';
import { EventDetail } from './event-detail.tsx';
import { EventExplanation } from './event-explanation.tsx';
import { explainAuditEvent } from '../../core/policy/explain-audit-event.ts';
import { EventsTable } from './events-table.tsx';
import { InventoryTable } from './inventory-table.tsx';
import { Layout } from './layout.tsx';
import { SearchForm } from './search-form.tsx';
import { SignInForm } from './sign-in-form.tsx';
import { STYLE } from './style.ts';
import { requestContext } from '../request-context.ts';

type PageEnv = { Variables: { auditor: PageSession } };

/** What a session carries of the token it is signed in with: what the page reads, nothing the operator APIs take. */
const PAGE_SCOPES = [AUDIT_READ_SCOPE, POLICY_EXPLAIN_SCOPE];

/** A session cookie checked: its session, a refusal to record (naming the operator of one the broker signed), or the answer already made (429, 503). */
type Checked =
  | { readonly session: PageSession }
  | { readonly refused: AccessTokenError; readonly operator?: OperatorClaims }
  | { readonly answer: Response | Promise<Response> };

const MAX_TOKEN_CHARS = 16 * 1024;
/** The sign-in form holds one token of at most MAX_TOKEN_CHARS; twice that leaves room for its encoding. */
const SIGN_IN_BODY_BYTES = 2 * MAX_TOKEN_CHARS;
const SHOWN_ALERTS = 20;

/**
 * `/audit`: the log for people, rendered on the server, no script. A person signs in with the
 * same credential the API takes (a keyway token for this broker with scope audit:read), which is
 * not kept: signing in starts a session (core/revocation/page-session.ts), a token of the broker's
 * own that only this page takes, kept in an HttpOnly, SameSite=Strict cookie (`__Host-` and Secure
 * when the broker is https); signing out revokes it. Only the sign-in form is reachable without it.
 */
export interface AuditPageDeps extends AuditApiDeps {
  readonly revocations: RevocationList;
  /**
   * The per-client and global limits of `/token`: a sign-in, unauthenticated, is shed before its body is read, as an exchange
   * is; a page's cookie by the per-client limit alone before its signature is checked, as an operator API's token is.
   */
  readonly limits: RequestLimits;
  readonly clientIp: (c: Context) => string | undefined;
  /** Where a refused sign-in or cookie is recorded, as the operator APIs record a refused token. */
  readonly refusals: OperatorRefusals;
}

export function auditPage(deps: AuditPageDeps): Hono<PageEnv> {
  const page = new Hono<PageEnv>();
  const secure = deps.issuer.startsWith('https:');
  // The name carries the prefix, so no `prefix` option: hono would add it again. Secure, Path=/ and no Domain make it a valid __Host- cookie.
  const cookieName = secure ? '__Host-keyway_audit' : 'keyway_audit';
  const keys = ownKeys(deps.keys);
  const tooMany = (c: Context, limited: RateLimitedError) =>
    c.html(<SignInForm issuer={deps.issuer} problem={`Too many requests: ${limited.message}.`} />, 429, { 'Retry-After': String(limited.retryAfterSeconds) });
  const unavailable = (c: Context, problem: string) =>
    c.html(<SignInForm issuer={deps.issuer} problem={`${problem} Try again in a moment.`} />, 503, { 'Retry-After': '5' });
  /** The form again, saying why the credential was refused, once the refusal is recorded; past the budget of records, the limit's 429. */
  const refused = async (c: Context, refusal: Omit<OperatorRefusal, 'context'>, problem: string, status: 400 | 401 | 403 | 413): Promise<Response> => {
    const { auditEventId, limited } = await deps.refusals(c, refusal);
    if (limited !== undefined) return tooMany(c, limited);
    const recorded = auditEventId === undefined ? '' : ` The refusal is audit event ${auditEventId}.`;
    return c.html(<SignInForm issuer={deps.issuer} problem={`${problem}${recorded}`} />, status);
  };
  /** The form again, saying why the token (pasted, or the cookie's session) was refused. */
  const refuse = (c: Context, what: 'token' | 'session', token: string, error: AccessTokenError, operator?: OperatorClaims): Promise<Response> => {
    const scope = error.code === 'insufficient_scope';
    const problem = scope
      ? 'That token lacks the audit:read scope.'
      : what === 'token'
        ? 'That token is not valid (or has expired).'
        : 'The session is over (it expired, was signed out of, or the token it was signed in with was revoked): sign in again.';
    return refused(c, refusedCredential(c, token, error, operator), problem, scope ? 403 : 401);
  };
  /** A sign-in form that holds no token to check: recorded as a refused credential without one, as an operator API's request without a token is. */
  const refuseForm = (c: Context, why: string, problem: string, status: 400 | 413): Promise<Response> =>
    refused(c, refusedCredential(c, undefined, new AccessTokenError('invalid_token', why)), problem, status);
  const unreadableForm = (c: Context): Promise<Response> => refuseForm(c, 'the form could not be read', 'Paste an access token.', 400);
  /**
   * A pasted operator token, admitted as the API admits it (verified, scope audit:read, not revoked), or the answer that
   * says why not. A revocation list that cannot be read leaves the token unproven, and says so: a 503 to retry, neither a
   * refusal of the token nor a 500.
   */
  const admitToken = async (c: Context, token: string): Promise<KeywayAccessToken | Response> => {
    let claims: KeywayAccessToken;
    try {
      claims = await verifyAccessToken(token, { issuer: deps.issuer, audience: deps.issuer, scopes: [AUDIT_READ_SCOPE], keys, now: deps.now });
    } catch (error) {
      if (error instanceof AccessTokenError) return refuse(c, 'token', token, error);
      throw error;
    }
    let revoked: boolean;
    try {
      revoked = await deps.revocations.isRevoked(claims.jti, deps.now());
    } catch {
      return unavailable(c, 'Whether that token was revoked could not be checked: the revocation list is unavailable.');
    }
    return revoked ? refuse(c, 'token', token, new AccessTokenError('invalid_token', 'the access token was revoked'), claims) : claims;
  };
  /**
   * The session a cookie holds, or why not: never an operator token (its audience is the issuer's), and over once signed
   * out of or once the token it was signed in with is revoked, both read from the list on each request (a list that
   * cannot be read is a 503, as for a pasted token). A cookie costs a signature check, whoever forged it: shed first, as an operator API's
   * token is, by the per-client limit alone.
   */
  const checkSession = async (c: Context, token: string): Promise<Checked> => {
    const limited = await deps.limits.forClient(deps.clientIp(c));
    if (limited !== undefined) return { answer: tooMany(c, limited) };
    let session: PageSession;
    try {
      session = await verifyPageSession(token, { issuer: deps.issuer, keys, now: deps.now }, [AUDIT_READ_SCOPE]);
    } catch (error) {
      if (error instanceof AccessTokenError) return { refused: error };
      throw error;
    }
    let revoked: string | undefined;
    try {
      revoked = await pageSessionRevoked(deps, session);
    } catch {
      return { answer: unavailable(c, 'Whether the session was ended could not be checked: the revocation list is unavailable.') };
    }
    return revoked === undefined ? { session } : { refused: new AccessTokenError('invalid_token', revoked), operator: session };
  };
  const context = (c: Context) => requestContext(c, deps.clientIp);
  const cookieOptions = { path: '/', secure } as const;

  page.use(
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
      referrerPolicy: 'no-referrer',
    }),
  );
  page.use(async (c, next) => {
    await next();
    c.header('Cache-Control', 'no-store');
  });
  // A cross-site form post is an attack on a signed-in auditor, or a misconfigured proxy: either way the operator should see it.
  const sameSiteForms = csrf();
  page.use(async (c, next) => {
    let passed = false;
    try {
      await sameSiteForms(c, async () => {
        passed = true;
        await next();
      });
    } catch (error) {
      if (!passed) {
        deps.log.warn('audit page form refused: not from the page itself', {
          path: c.req.path,
          origin: boundText(c.req.header('origin') ?? '—'),
          sec_fetch_site: boundText(c.req.header('sec-fetch-site') ?? '—'),
          client_ip: deps.clientIp(c) ?? null,
        });
      }
      throw error;
    }
  });
  // On a sharded log (Workers) a shard that cannot be read now is a 503, as the API answers it, never a 500.
  page.onError((error, c) => {
    if (!(error instanceof AuditShardUnavailableError)) throw error;
    return c.html(
      <Layout title="Unavailable">
        <p class="notice" data-testid="problem">
          {error.message}. Try again in a moment.
        </p>
      </Layout>,
      503,
      { 'Retry-After': '5', 'Cache-Control': 'no-store' },
    );
  });

  page.get('/style.css', (c) => c.body(STYLE, 200, { 'Content-Type': 'text/css; charset=utf-8' }));
  page.get('/sign-in', (c) => c.html(<SignInForm issuer={deps.issuer} />));
  page.post(
    '/sign-in',
    rateLimitBeforeBody(deps.limits.beforeVerification, deps.clientIp, async (c, limited) => tooMany(c, limited)),
    bodyLimit({
      maxSize: SIGN_IN_BODY_BYTES,
      onError: (c) =>
        refuseForm(
          c,
          `the form is larger than ${SIGN_IN_BODY_BYTES} bytes`,
          `The form is larger than ${SIGN_IN_BODY_BYTES} bytes: paste one access token.`,
          413,
        ),
      onIncomplete: unreadableForm,
    }),
    async (c) => {
      // A body the form parser cannot read (a malformed multipart one, one that ended early) holds no token: the form again, not a 500.
      const form = await c.req.parseBody().catch(() => undefined);
      if (form === undefined) return unreadableForm(c);
      const token = typeof form['token'] === 'string' ? form['token'].trim() : '';
      if (token === '') return refuseForm(c, 'the form holds no token', 'Paste an access token.', 400);
      if (token.length > MAX_TOKEN_CHARS) return refuseForm(c, `the token is longer than ${MAX_TOKEN_CHARS} characters`, 'Paste an access token.', 400);
      const claims = await admitToken(c, token);
      if (claims instanceof Response) return claims;
      let session;
      try {
        session = await startPageSession(deps, { token, claims }, PAGE_SCOPES, context(c));
      } catch (error) {
        if (error instanceof AccessTokenError) return refuse(c, 'token', token, error, claims);
        // No record, no session: nothing is handed out, and the operator may retry.
        deps.log.error('an /audit sign-in could not be recorded', { request_id: String(c.get('requestId')), error: errorText(error) });
        return unavailable(c, 'The sign-in could not be recorded: the audit log is unavailable.');
      }
      setCookie(c, cookieName, session.token, { ...cookieOptions, httpOnly: true, sameSite: 'Strict', maxAge: session.expiresIn });
      return c.redirect('/audit', 303);
    },
  );
  page.post('/sign-out', async (c) => {
    const token = getCookie(c, cookieName);
    if (token !== undefined) {
      const checked = await checkSession(c, token);
      if ('answer' in checked) return checked.answer;
      if ('refused' in checked) {
        // A session already over ends nothing: the cookie is forgotten, the refusal recorded. One that could not be checked is kept to retry.
        deleteCookie(c, cookieName, cookieOptions);
        return refuse(c, 'session', token, checked.refused, checked.operator);
      }
      try {
        await endPageSession(deps, token, checked.session, context(c));
      } catch (error) {
        deps.log.error('an /audit session could not be ended', { request_id: String(c.get('requestId')), error: errorText(error) });
        return unavailable(c, 'The session could not be ended: the revocation list or the audit log is unavailable.');
      }
    }
    deleteCookie(c, cookieName, cookieOptions);
    return c.redirect('/audit/sign-in', 303);
  });

  page.use(async (c, next) => {
    const token = getCookie(c, cookieName);
    if (token === undefined) return c.html(<SignInForm issuer={deps.issuer} />, 401);
    const checked = await checkSession(c, token);
    if ('answer' in checked) return checked.answer;
    if ('refused' in checked) return refuse(c, 'session', token, checked.refused, checked.operator);
    c.set('auditor', checked.session);
    await next();
  });

  page.get('/', async (c) => {
    const params = new URL(c.req.url).searchParams;
    const who = c.get('auditor').sub;
    let body;
    try {
      const now = deps.now();
      const query = parseAuditQuery(params, now);
      const chart = await chartWindow(params, now, deps.audit);
      const [results, stats, alerts] = await Promise.all([deps.audit.query(query), deps.audit.stats(chart.query), deps.alerts.alerts(SHOWN_ALERTS)]);
      const older = new URLSearchParams(params);
      if (results.next !== undefined) older.set('cursor', results.next);
      body = (
        <>
          <SearchForm params={params} />
          <h2>Exchanges over time</h2>
          {chart.start === 'search' ? null : (
            <p class="notice" data-testid="chart-start">
              {chart.start === 'oldest record'
                ? `The chart starts at the oldest record the search finds, ${stats.since}: the search reaches back further.`
                : `The chart shows the last ${QUERY_LIMITS.maxBuckets} days of the search, the most it draws, from ${stats.since}; the events are the whole search's.`}
            </p>
          )}
          <DecisionsChart stats={stats} />
          <h2>Events</h2>
          <EventsTable records={results.records} {...(results.next === undefined ? {} : { older: `/audit?${older}` })} />
          <h2>Alerts</h2>
          <AlertsList alerts={alerts} />
        </>
      );
    } catch (error) {
      if (!(error instanceof AuditQueryError)) throw error;
      return c.html(
        <Layout title="Search" who={who}>
          <SearchForm params={params} />
          <p class="notice" data-testid="problem">
            {inert(error.message)}
          </p>
        </Layout>,
        400,
      );
    }
    return c.html(
      <Layout title="Search" who={who}>
        {body}
      </Layout>,
    );
  });

  page.get('/inventory', async (c) => {
    const params = new URL(c.req.url).searchParams;
    const who = c.get('auditor').sub;
    const problem = (message: string, status: 400 | 503, headers?: Record<string, string>) =>
      c.html(
        <Layout title="Inventory" who={who}>
          <p class="notice" data-testid="problem">
            {inert(message)}
          </p>
        </Layout>,
        status,
        headers,
      );
    let query: InventoryQuery;
    try {
      query = parseInventoryQuery(params, deps.now());
    } catch (error) {
      if (!(error instanceof AuditQueryError)) throw error;
      return problem(error.message, 400);
    }
    let rows: UsageRow[];
    try {
      rows = await deps.audit.usage(query);
    } catch (error) {
      if (!(error instanceof UsageCatchingUpError)) throw error;
      return problem(error.message, 503, { 'Retry-After': String(UsageCatchingUpError.RETRY_AFTER_SECONDS) });
    }
    return c.html(
      <Layout title="Inventory" who={who}>
        <h2>Identity inventory</h2>
        <InventoryTable inventory={buildInventory(rows, query)} params={params} />
      </Layout>,
    );
  });

  // As GET /v1/audit/events/:id/explanation: the operator who saw every policy's patterns is logged, by the token signed in with.
  const explained = (auditor: PageSession, event: AuditEvent) => {
    logExplained(deps.log, { ...auditor, jti: auditor[SIGNED_IN_WITH_CLAIM] }, event.id);
    return <EventExplanation explanation={explainAuditEvent(event, deps.policies(), deps.issuer)} />;
  };

  page.get('/events/:id', async (c) => {
    const record = await deps.audit.record(c.req.param('id'));
    const auditor = c.get('auditor');
    const who = auditor.sub;
    if (record === undefined) {
      return c.html(
        <Layout title="Not found" who={who}>
          <p class="notice">No audit event has that id.</p>
        </Layout>,
        404,
      );
    }
    return c.html(
      <Layout title={`Event ${record.event.id}`} who={who}>
        <EventDetail record={record} />
        {auditor.scope.split(' ').includes(POLICY_EXPLAIN_SCOPE) ? (
          explained(auditor, record.event)
        ) : (
          <p class="notice" data-testid="explanation-withheld">
            The explanation shows every policy's patterns: it needs a token with policy:explain as well.
          </p>
        )}
      </Layout>,
    );
  });

  return page;
}

/** Where the chart starts: where the search does, or later for a search longer than the chart draws. */
type ChartStart = 'search' | 'oldest record' | 'bucket limit';

/**
 * The chart shows the whole window the search asks for, not one page of it, in buckets that fit it. A search longer than
 * QUERY_LIMITS.maxBuckets days (since=1970-01-01: everything), which the events list takes as the API does, is charted
 * from its oldest record, and at most that many days back from its end; the page says where the chart starts.
 */
async function chartWindow(params: URLSearchParams, now: number, audit: AuditApiDeps['audit']): Promise<{ query: AuditStatsQuery; start: ChartStart }> {
  const copy = new URLSearchParams(params);
  copy.delete('cursor');
  copy.delete('limit');
  const filter = parseAuditFilter(copy, now);
  const until = filter.until ?? now;
  let since = filter.since ?? until - BUCKETS.day;
  let start: ChartStart = 'search';
  const earliest = until - QUERY_LIMITS.maxBuckets * BUCKETS.day;
  if (since < earliest) {
    const [oldest] = (await audit.query({ ...filter, limit: 1, order: 'asc' })).records;
    const first = oldest === undefined ? Number.NEGATIVE_INFINITY : Date.parse(oldest.event.time);
    start = first >= earliest ? 'oldest record' : 'bucket limit';
    // From the minute the oldest record falls in (before `until`, or the window would be empty).
    since = first >= earliest ? Math.min(first - (first % BUCKETS.minute), until - 1) : earliest;
    copy.set('since', new Date(since).toISOString());
  }
  const span = until - since;
  copy.set('bucket', span <= 6 * BUCKETS.hour ? 'minute' : span <= 40 * BUCKETS.day ? 'hour' : 'day');
  return { query: parseAuditStatsQuery(copy, now), start };
}
