import { Hono } from 'hono';
import { operatorAuth, type OwnTokens } from '../middleware/operator-auth.ts';
import * as v from 'valibot';
import { whoCan, WhoCanError } from '../../core/policy/who-can.ts';
import type { ExchangeDeps } from '../../core/exchange/exchange-token.ts';
import { DEFAULT_GITHUB_DEPLOYMENT } from '../../core/exchange/github-access-request.ts';
import type { KeywayAuthVariables } from '../middleware/keyway-auth.ts';
import { invalidRequest, jsonBodyLimit, readJsonBody } from './json-request-body.ts';
import { operatorLogFields, POLICY_EXPLAIN_SCOPE, type PolicyExplainDeps } from './policy-explain.ts';

const Text = v.pipe(v.string(), v.minLength(1), v.maxLength(1024));
const WhoCanRequestSchema = v.strictObject({ scope: v.optional(Text), audience: v.optional(Text), github_permission: v.optional(Text) });

const NO_STORE = { 'Cache-Control': 'no-store' } as const;
const WHO_CAN_BODY_BYTES = 8 * 1024;

/**
 * `POST /v1/policy/who-can`: who can get a scope, audience or GitHub permission, from the loaded
 * policies alone, a GitHub permission for the jobs of the App's deployment as the exchange grants it. For the same operators as
 * `explain` (scope `policy:explain`), checked before the body is read.
 * The answer shows policy conditions, so like an explanation it is logged with the operator who asked.
 */
export function policyWhoCanRoutes(
  deps: Pick<PolicyExplainDeps, 'policies' | 'log'> & Pick<ExchangeDeps, 'github'>,
  own: OwnTokens,
): Hono<{ Variables: KeywayAuthVariables }> {
  const app = new Hono<{ Variables: KeywayAuthVariables }>();
  const deployment = deps.github?.deployment ?? DEFAULT_GITHUB_DEPLOYMENT;
  app.post('/who-can', operatorAuth(own, [POLICY_EXPLAIN_SCOPE]), jsonBodyLimit(WHO_CAN_BODY_BYTES), async (c) => {
    const parsed = await readJsonBody(c, WhoCanRequestSchema);
    if (!parsed.ok) return parsed.answer;
    const { scope, audience, github_permission: githubPermission } = parsed.value;
    try {
      const question = {
        ...(scope === undefined ? {} : { scope }),
        ...(audience === undefined ? {} : { audience }),
        ...(githubPermission === undefined ? {} : { githubPermission }),
      };
      const answer = whoCan(deps.policies(), { ...question, deployment });
      deps.log.info('policy who-can asked', { ...operatorLogFields(c.get('keywayToken')), question });
      return c.json(answer, 200, NO_STORE);
    } catch (error) {
      if (error instanceof WhoCanError) return invalidRequest(error.message);
      throw error;
    }
  });
  return app;
}
