import { Hono } from 'hono';
import { operatorAuth, type OwnTokens } from '../middleware/operator-auth.ts';
import * as v from 'valibot';
import type { ExchangeDeps } from '../../core/exchange/exchange-token.ts';
import type { Logger } from '../../core/log.ts';
import type { KeywayAccessToken } from '../../core/mint/verify-access-token.ts';
import type { KeywayAuthVariables } from '../middleware/keyway-auth.ts';
import { jsonBodyLimit, readJsonBody } from './json-request-body.ts';
import { REQUEST_LIMITS } from '../../core/exchange/token-exchange-request.ts';
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
 * As JSON, no more than a subject token (`REQUEST_LIMITS.subjectTokenBytes`) could carry. Every policy line of the issuer
 * quotes the value it reads, so a 60 KB claim came back once per policy: 60 MB, and seconds of the serving thread, for 1,000.
 */
const MAX_CLAIMS_CHARS = REQUEST_LIMITS.subjectTokenBytes;

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
          // Measured only once they nest within the bound: JSON.stringify recurses.
          if (!nestsWithin(dataset.value, MAX_CLAIM_DEPTH)) addIssue({ message: `claims nest at most ${MAX_CLAIM_DEPTH} levels of objects and arrays` });
          else if (JSON.stringify(dataset.value).length > MAX_CLAIMS_CHARS)
            addIssue({ message: `claims are at most ${MAX_CLAIMS_CHARS} characters as JSON, as many as a subject token carries` });
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
