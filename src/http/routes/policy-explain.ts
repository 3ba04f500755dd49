import { Hono } from 'hono';
import { operatorAuth, type OwnTokens } from '../middleware/operator-auth.ts';
import * as v from 'valibot';
import type { ExchangeDeps } from '../../core/exchange/exchange-token.ts';
import type { Logger } from '../../core/log.ts';
import type { KeywayAccessToken } from '../../core/mint/verify-access-token.ts';
import type { KeywayAuthVariables } from '../middleware/keyway-auth.ts';
import { jsonBodyLimit, readJsonBody } from './json-request-body.ts';
import { REQUEST_LIMITS } from '../../core/exchange/token-exchange-request.ts';
import { AUDIT_BOUNDS } from '../../core/audit/bound-audit-event.ts';
import { Claims } from '../../core/policy/testing/policy-test-schema.ts';
import { explainClaims } from '../../core/policy/explain.ts';
import { auditedRequest } from '../../core/policy/audited-decision-input.ts';
import { type AskedInstead, explainAuditEvent } from '../../core/policy/explain-audit-event.ts';

/** The scope an operator's keyway token needs to ask for explanations. */
export const POLICY_EXPLAIN_SCOPE = 'policy:explain';

/** The fields that name the operator behind a question about the policies. */
export function operatorLogFields(operator: KeywayAccessToken): { operator: string; client_id: string; token_jti: string } {
  return { operator: operator.sub, client_id: operator.client_id, token_jti: operator.jti };
}

/**
 * Logs who asked for an explanation: it shows every policy's patterns, so each one, wherever it is
 * asked for (this route, the audit log's explanation, the /audit event view), names its operator.
 */
export function logExplained(log: Logger, operator: KeywayAccessToken, auditEventId: string | undefined): void {
  log.info('policy explained', { ...operatorLogFields(operator), audit_event_id: auditEventId });
}

/** The exchange's own parts: `issuer` is also the audience an operator token must carry. */
export type PolicyExplainDeps = Pick<ExchangeDeps, 'issuer' | 'policies' | 'audit' | 'log'>;

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** Far deeper than any CI system nests claims (Kubernetes, two levels); the answer quotes them through JSON.stringify, which recurses. */
const MAX_CLAIM_DEPTH = 32;

/**
 * As JSON, claims are no more than a subject token (`REQUEST_LIMITS.subjectTokenBytes`) could carry, and each value no more
 * than an audit record keeps of it (`AUDIT_BOUNDS.value`), which is what an audit event is explained with. Every policy
 * line of the issuer reads and quotes its claim's value: a 60 KB one came back once per policy (60 MB for 1,000), and
 * their globs read it for seconds of the serving thread.
 */
const MAX_CLAIMS_CHARS = REQUEST_LIMITS.subjectTokenBytes;
const MAX_CLAIM_VALUE_CHARS = AUDIT_BOUNDS.value;

/** Why claims given outright are too large to explain, if they are; measured once they nest within the bound (JSON.stringify recurses). */
function claimsTooLarge(claims: Readonly<Record<string, unknown>>): string | undefined {
  if (Object.values(claims).some((value) => JSON.stringify(value).length > MAX_CLAIM_VALUE_CHARS))
    return `a claim's value is at most ${MAX_CLAIM_VALUE_CHARS} characters as JSON, as an audit record keeps it`;
  if (JSON.stringify(claims).length > MAX_CLAIMS_CHARS) return `claims are at most ${MAX_CLAIMS_CHARS} characters as JSON, as many as a subject token carries`;
  return undefined;
}

/** Whether `claims` nest at most `depth` levels of objects and arrays, counted level by level, never by recursion. */
function nestsWithin(claims: Readonly<Record<string, unknown>>, depth: number): boolean {
  let level: unknown[] = [claims];
  for (let nesting = 0; nesting < depth; nesting++) {
    level = level.flatMap((value) => (typeof value === 'object' && value !== null ? Object.values(value) : []));
    if (level.length === 0) return true;
  }
  return false;
}

const ExplainRequestSchema = v.pipe(
  v.strictObject({
    audit_event_id: v.optional(v.pipe(v.string(), v.regex(ULID, 'audit_event_id is an audit event id (a ULID)'))),
    claims: v.optional(
      v.pipe(
        Claims,
        v.rawCheck(({ dataset, addIssue }) => {
          if (!dataset.typed) return;
          const problem = nestsWithin(dataset.value, MAX_CLAIM_DEPTH)
            ? claimsTooLarge(dataset.value)
            : `claims nest at most ${MAX_CLAIM_DEPTH} levels of objects and arrays`;
          if (problem !== undefined) addIssue({ message: problem });
        }),
      ),
    ),
    audience: v.optional(v.union([v.string(), v.array(v.string())])),
    scope: v.optional(v.string()),
  }),
  v.check((body) => (body.audit_event_id === undefined) !== (body.claims === undefined), 'give exactly one of audit_event_id and claims'),
);

const NO_STORE = { 'Cache-Control': 'no-store' } as const;
const EXPLAIN_BODY_BYTES = 64 * 1024;

const list = (value: string | readonly string[] | undefined): string[] =>
  value === undefined ? [] : (typeof value === 'string' ? value.split(' ') : [...value]).filter((item) => item !== '');

/**
 * `POST /v1/policy/explain`, for operators: why the current policies decide as they do for an
 * audit event (its recorded claims and request) or for claims given outright. It answers only
 * to a keyway access token for the broker itself with scope `policy:explain`, checked before
 * anything is looked up, so a pipeline holding an audit event id learns nothing from it.
 */
export function policyExplainRoutes(deps: PolicyExplainDeps, own: OwnTokens): Hono<{ Variables: KeywayAuthVariables }> {
  const app = new Hono<{ Variables: KeywayAuthVariables }>();

  app.post('/explain', operatorAuth(own, [POLICY_EXPLAIN_SCOPE]), jsonBodyLimit(EXPLAIN_BODY_BYTES), async (c) => {
    const parsed = await readJsonBody(c, ExplainRequestSchema);
    if (!parsed.ok) return parsed.answer;
    const input = parsed.value;
    logExplained(deps.log, c.get('keywayToken'), input.audit_event_id);

    const instead: AskedInstead = {
      ...(input.audience === undefined ? {} : { audience: list(input.audience) }),
      ...(input.scope === undefined ? {} : { scope: list(input.scope) }),
    };

    if (input.claims !== undefined) {
      const claims = { aud: deps.issuer, ...input.claims };
      return c.json({ explained: 'claims', ...explainClaims(deps.policies(), claims, auditedRequest(instead)) }, 200, NO_STORE);
    }
    const event = await deps.audit.get(input.audit_event_id as string);
    if (event === undefined) return c.json({ error: 'not_found', error_description: 'no audit event has this id' }, 404, NO_STORE);
    return c.json(explainAuditEvent(event, deps.policies(), deps.issuer, instead), 200, NO_STORE);
  });
  return app;
}
