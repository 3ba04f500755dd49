import { IssuerReferenceError, resolveIssuer } from '../../verify/trusted-issuer.ts';
import type { AccessRequest, IssuedCloudGrant } from '../decide.ts';
import { decideForClaims } from '../decide-for-claims.ts';
import { parseDuration, type PolicyFile, type PolicyLoadOptions, type PolicyProblem } from '../load-policies.ts';
import { parseYamlFile, type Position } from '../parse-yaml-file.ts';
import type { PolicySet } from '../policy-set.ts';
import { PolicyTestFileSchema, type Expectation, type PolicyTestCase } from './policy-test-schema.ts';

export interface CaseResult extends Position {
  /** Path of the test file under the policy directory. */
  readonly file: string;
  readonly name: string;
  /** Empty when the case passed: otherwise one line per expectation that did not hold. */
  readonly failures: readonly string[];
}

export interface PolicyTestRun {
  readonly results: readonly CaseResult[];
  /** Test files that do not parse or validate: none of their cases ran. */
  readonly problems: readonly PolicyProblem[];
}

/** What the policy set decided for one case, in the terms a test file expects. */
interface Outcome {
  readonly decision: 'granted' | 'denied';
  readonly reason?: string;
  readonly detail?: string;
  readonly policy?: string;
  readonly deniedBy: readonly string[];
  readonly audience?: readonly string[];
  readonly scopes?: readonly string[];
  readonly ttlSeconds?: number;
  readonly subject?: string;
  readonly claims?: Readonly<Record<string, string>>;
  readonly github?: { readonly repositories: readonly string[]; readonly permissions: Readonly<Record<string, string>> };
  readonly cloud?: IssuedCloudGrant;
}

const list = (value: string | readonly string[] | undefined): string[] =>
  value === undefined ? [] : typeof value === 'string' ? value.split(' ').filter((item) => item !== '') : [...value];

/**
 * Runs `*.test.yaml` cases against a loaded policy set, through the same decision the broker
 * makes (the index, deny guardrails, grant checks, templates, the issuer preset's claim rules);
 * signature and time checks aside, since the claims are taken as given. Claims without `iss`
 * take the file's `issuer`; claims without `aud` take the broker's own issuer URL; a claim a
 * case sets to null is removed.
 */
export function runPolicyTests(policies: PolicySet, files: readonly PolicyFile[], options: PolicyLoadOptions): PolicyTestRun {
  const results: CaseResult[] = [];
  const problems: PolicyProblem[] = [];
  for (const file of files) {
    const parsed = parseYamlFile(file.text, PolicyTestFileSchema);
    if (!parsed.ok) {
      problems.push(...parsed.problems.map((problem) => ({ file: file.path, ...problem })));
      continue;
    }
    const { data, locate } = parsed;
    let iss: string | undefined;
    try {
      iss = data.issuer === undefined ? undefined : resolveIssuer(data.issuer, options).url;
    } catch (error) {
      if (!(error instanceof IssuerReferenceError)) throw error;
      problems.push({ file: file.path, ...locate(['issuer']), message: error.message });
      continue;
    }
    data.cases.forEach((testCase, index) => {
      const position = locate(['cases', index, 'name']);
      const fixture = testCase.fixture === undefined ? {} : data.fixtures?.[testCase.fixture];
      const failures =
        fixture === undefined
          ? [`no fixture named ${testCase.fixture ?? ''} in this file`]
          : compare(
              testCase.expect,
              outcomeOf(
                policies,
                claimsOf({ iss, aud: options.brokerIssuer, ...fixture }, testCase.claims ?? {}),
                requestOf(testCase, options.githubDeployment),
              ),
            );
      results.push({ file: file.path, ...position, name: testCase.name, failures });
    });
  }
  return { results, problems };
}

/** The fixture's claims with the case's set over them; a case's `null` removes a claim. */
function claimsOf(base: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const claims = { ...base, ...overrides };
  for (const [name, value] of Object.entries(overrides)) if (value === null) delete claims[name];
  return claims;
}

/** The request a case makes; a GitHub token's is held to the App's `deployment`, as the exchange holds it. */
function requestOf(testCase: PolicyTestCase, deployment: string | undefined): AccessRequest {
  const scopes = list(testCase.request?.scope);
  const github = testCase.request?.github;
  return {
    audiences: list(testCase.request?.audience),
    scopes: scopes.length === 0 ? undefined : scopes,
    ...(testCase.request?.cloud === true ? { cloud: true as const } : {}),
    ...(github === undefined
      ? {}
      : {
          github: {
            repositories: github.repositories?.map((written) => {
              const [owner = '', name = ''] = written.split('/');
              return { owner, name };
            }),
            permissions: github.permissions,
            deployment,
          },
        }),
  };
}

function outcomeOf(policies: PolicySet, claims: Record<string, unknown>, request: AccessRequest): Outcome {
  const verdict = decideForClaims(policies, claims, request);
  if (verdict.kind === 'untrusted')
    return { decision: 'denied', reason: 'issuer_untrusted', detail: `no policy trusts iss ${JSON.stringify(verdict.iss)}`, deniedBy: [] };
  if (verdict.kind === 'refused') return { decision: 'denied', reason: verdict.reason, detail: verdict.detail, deniedBy: [] };
  const { decision } = verdict;
  if (!decision.granted) return { decision: 'denied', reason: decision.reason, detail: decision.detail, deniedBy: decision.trace.deniedBy };
  const { grant } = decision;
  return {
    decision: 'granted',
    policy: grant.policy.id,
    deniedBy: [],
    audience: grant.audiences,
    scopes: grant.scopes,
    ttlSeconds: grant.ttlSeconds,
    subject: grant.subject,
    claims: grant.claims,
    ...(grant.github === undefined ? {} : { github: grant.github }),
    ...(grant.cloud === undefined ? {} : { cloud: grant.cloud }),
  };
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && [...a].sort().every((item, i) => item === [...b].sort()[i]);
const show = (value: unknown): string => JSON.stringify(value);

function compare(expected: Expectation, actual: Outcome): string[] {
  if (expected.decision !== actual.decision) {
    const why = actual.decision === 'granted' ? `by ${actual.policy ?? ''}` : `${actual.reason ?? ''}: ${actual.detail ?? ''}`;
    return [`expected ${expected.decision}, got ${actual.decision} (${why})`];
  }
  const failures: string[] = [];
  const check = (field: string, ok: boolean, want: unknown, got: unknown): void => {
    if (!ok) failures.push(`expected ${field} ${show(want)}, got ${show(got)}`);
  };
  if (expected.reason !== undefined) check('reason', expected.reason === actual.reason, expected.reason, `${actual.reason ?? ''}: ${actual.detail ?? ''}`);
  if (expected.policy !== undefined) check('policy', expected.policy === actual.policy, expected.policy, actual.policy);
  if (expected.denied_by !== undefined) check('denied_by', sameSet(expected.denied_by, actual.deniedBy), expected.denied_by, actual.deniedBy);
  if (expected.audience !== undefined) check('audience', sameSet(list(expected.audience), actual.audience ?? []), list(expected.audience), actual.audience);
  if (expected.scopes !== undefined) check('scopes', sameSet(expected.scopes, actual.scopes ?? []), expected.scopes, actual.scopes);
  if (expected.ttl !== undefined) check('ttl', parseDuration(expected.ttl) === actual.ttlSeconds, expected.ttl, `${actual.ttlSeconds ?? 0}s`);
  if (expected.subject !== undefined) check('subject', expected.subject === actual.subject, expected.subject, actual.subject);
  if (expected.claims !== undefined) {
    const want = Object.entries(expected.claims).sort();
    const got = Object.entries(actual.claims ?? {}).sort();
    check('claims', show(want) === show(got), expected.claims, actual.claims);
  }
  if (expected.github?.repositories !== undefined) {
    check(
      'github.repositories',
      sameSet(expected.github.repositories, actual.github?.repositories ?? []),
      expected.github.repositories,
      actual.github?.repositories,
    );
  }
  if (expected.github?.permissions !== undefined) {
    const want = Object.entries(expected.github.permissions).sort();
    const got = Object.entries(actual.github?.permissions ?? {}).sort();
    check('github.permissions', show(want) === show(got), expected.github.permissions, actual.github?.permissions);
  }
  if (expected.cloud !== undefined) {
    const { provider, identity, audience, session_tags: tags } = expected.cloud;
    check('cloud.provider', provider === actual.cloud?.provider, provider, actual.cloud?.provider);
    if (identity !== undefined) check('cloud.identity', identity === actual.cloud?.identity, identity, actual.cloud?.identity);
    if (audience !== undefined) check('cloud.audience', audience === actual.cloud?.audience, audience, actual.cloud?.audience);
    if (tags !== undefined) {
      const got = actual.cloud?.sessionTags ?? {};
      check('cloud.session_tags', show(Object.entries(tags).sort()) === show(Object.entries(got).sort()), tags, got);
    }
  }
  return failures;
}
