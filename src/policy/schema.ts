import * as v from 'valibot';
import { ASYMMETRIC_ALGORITHMS } from '../issuers/issuer-preset.ts';

/**
 * The trust policy file format, version 1. The loader validates with this schema and the
 * published JSON Schema is generated from it, so the two cannot drift apart. Every object
 * is strict: an unknown field is an error, because a typo must never silently widen a policy.
 */

export const DURATION_PATTERN = /^[1-9]\d{0,5}(s|m|h)$/;
export const POLICY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;
// RFC 6749 §3.3 scope-token
export const SCOPE_TOKEN_PATTERN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

const MATCHER_HELP = 'a matcher is a value, a list of matchers, or one of { glob }, { regex }, { not }, { exists }';

const Scalar = v.union([v.string(), v.number(), v.boolean()]);

export type Matcher =
  | string
  | number
  | boolean
  | readonly Matcher[]
  | { readonly glob: string }
  | { readonly regex: string }
  | { readonly not: Matcher }
  | { readonly exists: boolean };

export const MatcherSchema: v.GenericSchema<Matcher> = v.union(
  [
    Scalar,
    v.pipe(v.array(v.lazy(() => MatcherSchema)), v.minLength(1, 'a list matcher needs at least one entry')),
    v.strictObject({ glob: v.pipe(v.string(), v.minLength(1), v.maxLength(512)) }),
    v.strictObject({ regex: v.pipe(v.string(), v.minLength(1), v.maxLength(512)) }),
    v.strictObject({ not: v.lazy(() => MatcherSchema) }),
    v.strictObject({ exists: v.boolean() }),
  ],
  MATCHER_HELP,
);

const Duration = v.pipe(v.string(), v.regex(DURATION_PATTERN, 'a duration is a number and a unit: 90s, 10m, 1h'));

const Audience = v.pipe(v.string(), v.minLength(1), v.maxLength(2048));

export const IssuerSchema = v.union(
  [
    v.pipe(v.string(), v.minLength(1)),
    v.strictObject({
      kind: v.string(),
      // Absent: the preset's public issuer.
      url: v.optional(v.string()),
      // Overrides for what operators legitimately need; every policy naming the issuer must agree on them.
      max_token_age: v.optional(Duration),
      extra_algorithms: v.optional(v.pipe(v.array(v.picklist(ASYMMETRIC_ALGORITHMS)), v.minLength(1))),
    }),
  ],
  `issuer is a preset name, an exact https URL, or { kind, url, max_token_age, extra_algorithms } with extra algorithms from ${ASYMMETRIC_ALGORITHMS.join(', ')} (never none or HMAC)`,
);

export const GrantSchema = v.strictObject({
  audience: v.union(
    [Audience, v.pipe(v.array(Audience), v.minLength(1))],
    'grant.audience is a string or a non-empty list of strings',
  ),
  scopes: v.optional(v.array(v.pipe(v.string(), v.regex(SCOPE_TOKEN_PATTERN, 'a scope is one RFC 6749 scope-token, no spaces')))),
  ttl: v.optional(Duration),
  subject: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(1024))),
  claims: v.optional(v.record(v.pipe(v.string(), v.minLength(1)), v.pipe(v.string(), v.maxLength(1024)))),
});

export const PolicySchema = v.pipe(
  v.strictObject({
    version: v.literal(1, 'version must be 1'),
    id: v.optional(v.pipe(v.string(), v.regex(POLICY_ID_PATTERN, 'an id is letters, digits, . _ / -, at most 128 characters'))),
    description: v.optional(v.string()),
    effect: v.optional(v.picklist(['allow', 'deny'], 'effect is allow or deny'), 'allow'),
    mode: v.optional(v.picklist(['enforce', 'audit'], 'mode is enforce or audit'), 'enforce'),
    disabled: v.optional(v.boolean(), false),
    issuer: IssuerSchema,
    subject_audience: v.optional(Audience),
    single_use: v.optional(v.boolean()),
    match: v.pipe(
      v.record(v.pipe(v.string(), v.minLength(1)), MatcherSchema),
      v.check((match) => Object.keys(match).length > 0, 'match needs at least one claim: a policy never matches every token'),
    ),
    grant: v.optional(GrantSchema),
  }),
  v.check((policy) => policy.effect !== 'allow' || policy.grant !== undefined, 'an allow policy needs a grant'),
  v.check((policy) => policy.effect !== 'deny' || policy.grant === undefined, 'a deny policy has no grant'),
);

export type PolicyDocument = v.InferOutput<typeof PolicySchema>;
export type GrantDocument = v.InferOutput<typeof GrantSchema>;
