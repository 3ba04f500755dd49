import * as v from 'valibot';
import { REASONS } from '../../errors/reasons.ts';
import { CLOUD_PROVIDERS } from '../cloud-profile.ts';
import { DURATION_PATTERN, IssuerSchema, mapOf } from '../schema.ts';

/**
 * `*.test.yaml` beside the policies: cases of claims (or a named fixture, with overrides) and
 * the decision the policy set must reach for them. Like the policy schema, strict, and the
 * published JSON Schema is generated from it.
 */
export const Claims = v.pipe(mapOf(v.string(), v.unknown()), v.description('token claims, as the CI system sends them'));

const Strings = v.union([v.string(), v.pipe(v.array(v.string()), v.minLength(1))], 'a string or a list of strings');

const DENIAL_REASONS = Object.entries(REASONS).flatMap(([reason, spec]) => (spec.decision === 'granted' ? [] : [reason])) as [string, ...string[]];

/** Repositories and permissions of a GitHub token, as a case asks for them or expects them asked of GitHub. */
function GitHubToken(repositories: string, permissions: string) {
  return v.strictObject({
    repositories: v.optional(v.pipe(v.array(v.string()), v.description(repositories))),
    permissions: v.optional(v.pipe(mapOf(v.string(), v.string()), v.description(`permission → level; ${permissions}`))),
  });
}

export const ExpectationSchema = v.pipe(
  v.strictObject({
    decision: v.pipe(v.picklist(['granted', 'denied'], 'decision is granted or denied'), v.description('granted or denied')),
    reason: v.optional(v.pipe(v.picklist(DENIAL_REASONS, "reason is one of the broker's reason codes"), v.description('for a denial: the audit reason code'))),
    policy: v.optional(v.pipe(v.string(), v.description('for a grant: the id of the granting policy'))),
    denied_by: v.optional(v.pipe(v.array(v.string()), v.description('the enforcing deny policies that matched, all of them'))),
    audience: v.optional(v.pipe(Strings, v.description("the issued token's audiences, all of them"))),
    scopes: v.optional(v.pipe(v.array(v.string()), v.description('the issued scopes, all of them'))),
    ttl: v.optional(v.pipe(v.string(), v.regex(DURATION_PATTERN, 'a duration is a number and a unit: 90s, 10m, 1h'))),
    subject: v.optional(v.pipe(v.string(), v.description('the issued sub'))),
    claims: v.optional(v.pipe(mapOf(v.string(), v.string()), v.description('the grant.claims of the issued token, all of them'))),
    github: v.optional(
      v.pipe(
        GitHubToken('the repository names asked of GitHub, all of them', 'all of them'),
        v.description('for a GitHub token request: what keyway would ask GitHub for'),
      ),
    ),
    cloud: v.optional(
      v.pipe(
        v.strictObject({
          provider: v.picklist(CLOUD_PROVIDERS, 'provider is aws, gcp or azure'),
          identity: v.optional(v.pipe(v.string(), v.description('the role, service account or application granted'))),
          audience: v.optional(v.pipe(v.string(), v.description("the token's audience, the one the cloud's STS expects"))),
          session_tags: v.optional(v.pipe(mapOf(v.string(), v.string()), v.description('AWS session tags, rendered, all of them'))),
        }),
        v.description('for a cloud token request: the cloud token the grant gives'),
      ),
    ),
  }),
  v.description('what the policies must decide'),
);

export const PolicyTestCaseSchema = v.pipe(
  v.strictObject({
    name: v.pipe(v.string(), v.minLength(1)),
    fixture: v.optional(v.pipe(v.string(), v.description('a fixture of this file to start from'))),
    claims: v.optional(v.pipe(Claims, v.description("claims to set, over the fixture's"))),
    request: v.optional(
      v.strictObject({
        audience: v.optional(v.pipe(Strings, v.description('requested audiences, as in the /token request'))),
        scope: v.optional(v.pipe(Strings, v.description('requested scopes, as in the /token request'))),
        github: v.optional(
          v.pipe(
            GitHubToken('owner/name each; default every repository granted', 'default every permission granted'),
            v.description('ask for a GitHub installation token rather than a keyway JWT'),
          ),
        ),
        cloud: v.optional(
          v.pipe(v.literal(true), v.description('ask for a cloud token (grant.cloud); audience then names the role, service account or application')),
        ),
      }),
    ),
    expect: ExpectationSchema,
  }),
  v.check((testCase) => testCase.fixture !== undefined || testCase.claims !== undefined, 'a case needs a fixture, claims, or both'),
);

export const PolicyTestFileSchema = v.pipe(
  v.strictObject({
    version: v.literal(1, 'version must be 1'),
    issuer: v.optional(v.pipe(IssuerSchema, v.description('iss of every case that does not set one'))),
    fixtures: v.optional(v.pipe(mapOf(v.pipe(v.string(), v.minLength(1)), Claims), v.description('named claim sets cases start from'))),
    cases: v.pipe(v.array(PolicyTestCaseSchema), v.minLength(1, 'a test file needs at least one case')),
  }),
  v.title('keyway trust policy tests'),
);

export type PolicyTestFile = v.InferOutput<typeof PolicyTestFileSchema>;
export type PolicyTestCase = v.InferOutput<typeof PolicyTestCaseSchema>;
export type Expectation = v.InferOutput<typeof ExpectationSchema>;
