import { presetMaySend, type IssuerPreset, type PresetLintFacts } from '../../verify/issuer-preset.ts';
import { carriesGitRef } from '../../claims/case-fold.ts';
import { githubDeploymentOf, isGitHubActionsOf } from '../../claims/github-run.ts';
import { topLevelClaim } from '../../claims/claim-value.ts';
import { globMatchesEverything } from '../glob.ts';
import type { CompiledPolicyFile, PolicyCompilation, ReviewedRepository } from '../load-policies.ts';
import { proxyRuleReachesRepository } from '../proxy-rule.ts';
import { guardHoldsForAudienceOf, type ClaimCondition, type Policy } from '../policy.ts';
import type { TrustedIssuer } from '../../verify/trusted-issuer.ts';
import type { RegexTest } from '../safe-regex.ts';
import { writtenRegexValues } from './regex-values.ts';
import { defaultCloudSubject } from '../decide.ts';
import { cloudOfAudience, type CloudProvider } from '../cloud-profile.ts';
import type { Matcher } from '../schema.ts';
import { INVALID_POLICY, LINT_RULES, type LintRuleId, type LintSeverity } from './lint-rules.ts';

export interface LintFinding {
  /** Path under the policy directory. */
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly severity: LintSeverity;
  readonly rule: LintRuleId | typeof INVALID_POLICY;
  readonly message: string;
}

/**
 * What `keyway policy check` reports: every problem that keeps the set from loading (as
 * `invalid-policy` errors), then every lint finding, in file order.
 */
export function checkPolicies(compilation: PolicyCompilation): LintFinding[] {
  const invalid = compilation.problems.map((problem): LintFinding => ({ ...problem, severity: 'error', rule: INVALID_POLICY }));
  return [...invalid, ...lintPolicies(compilation)].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column);
}

type Report = (rule: LintRuleId, message: string, path: readonly PropertyKey[]) => void;

interface RuleContext {
  readonly policy: Policy;
  /** The broker's own issuer URL: a policy naming it decides keyway's own tokens. */
  readonly brokerIssuer: string;
  /** The policy repository keyway's review protects, when the broker has one. */
  readonly reviewedRepository: ReviewedRepository | undefined;
  /** The GitHub deployment the App mints on, when known. */
  readonly githubDeployment: string | undefined;
  /** The audiences of the broker's keyway-jwt proxy upstreams (none when not known). */
  readonly upstreamAudiences: readonly string[];
  readonly preset: IssuerPreset;
  /** Enforcing deny policies of the whole set: guardrails that may make a context unreachable. */
  readonly guardrails: readonly Policy[];
  /** Every policy of the set that compiled: what a rule across policies compares with. */
  readonly peers: readonly Policy[];
  /** Every policy id of the set, with its policy when it compiled (a policy of a disabled development issuer does not). */
  readonly byId: ReadonlyMap<string, Policy | undefined>;
  /** The policy's `match` lines, and its `match_actor` lines once per actor issuer: what the per-line rules read. */
  readonly lineSets: readonly LineSet[];
  readonly report: Report;
}

/** Lines of a policy with the issuer whose tokens they are checked against. */
interface LineSet {
  /** `match` (the subject token) or `match_actor` (the actor token of a delegated request). */
  readonly at: 'match' | 'match_actor';
  readonly lines: readonly ClaimCondition[];
  readonly issuer: TrustedIssuer;
}

/**
 * `match` with the policy's issuer, and `match_actor` with each issuer its `iss` names that the set trusts (an actor token is
 * verified against the issuers of the set's policies, so the actor lines read that issuer's tokens, with its tenants and claims).
 */
function lineSetsOf(policy: Policy, peers: readonly Policy[]): LineSet[] {
  const sets: LineSet[] = [{ at: 'match', lines: policy.conditions, issuer: policy.issuer }];
  const actorLines = policy.actorConditions ?? [];
  const iss = actorLines.find((condition) => condition.key === 'iss')?.written;
  for (const url of iss === undefined ? [] : values(iss)) {
    const issuer = peers.find((peer) => peer.issuer.url === url)?.issuer;
    if (issuer !== undefined) sets.push({ at: 'match_actor', lines: actorLines, issuer });
  }
  return sets;
}

/** How a finding names a line: `ref` in match, `match_actor.sub` in match_actor. */
const lineName = (set: Pick<LineSet, 'at'>, key: string): string => (set.at === 'match' ? key : `match_actor.${key}`);

/** Longest grant that passes without a warning. */
export const LONG_TTL_SECONDS = 15 * 60;

/**
 * Applies every lint rule to every policy that compiled (disabled ones too: they come back).
 * Pure over the compilation; positions point at the line a finding is about. Findings a policy
 * silences in `lint.ignore` are dropped, and an ignore entry that silenced nothing is reported.
 */
export function lintPolicies(compilation: PolicyCompilation): LintFinding[] {
  const guardrails = compilation.files.flatMap((entry) =>
    entry.policy !== undefined && entry.inactive === undefined && entry.policy.effect === 'deny' && entry.policy.mode === 'enforce' ? [entry.policy] : [],
  );
  const peers = compilation.files.flatMap((entry) => (entry.policy === undefined ? [] : [entry.policy]));
  const byId = new Map(compilation.files.map((entry) => [entry.id, entry.policy]));
  return compilation.files.flatMap((entry) =>
    entry.policy === undefined
      ? []
      : lintPolicy(entry, entry.policy, {
          brokerIssuer: compilation.brokerIssuer,
          reviewedRepository: compilation.reviewedRepository,
          githubDeployment: compilation.githubDeployment,
          upstreamAudiences: compilation.upstreamAudiences ?? [],
          guardrails,
          peers,
          byId,
        }),
  );
}

function lintPolicy(
  entry: CompiledPolicyFile,
  policy: Policy,
  set: Pick<RuleContext, 'brokerIssuer' | 'reviewedRepository' | 'githubDeployment' | 'upstreamAudiences' | 'guardrails' | 'peers' | 'byId'>,
): LintFinding[] {
  const findings: LintFinding[] = [];
  const ignored = new Map(Object.entries(entry.document.lint?.ignore ?? {}).filter(([, reason]) => reason !== undefined));
  const used = new Set<string>();
  const report: Report = (rule, message, path) => {
    if (ignored.has(rule)) {
      used.add(rule);
      return;
    }
    findings.push({ file: entry.file, ...entry.locate(path), severity: LINT_RULES[rule].severity, rule, message });
  };
  const lineSets = lineSetsOf(policy, set.peers);
  const context: RuleContext = { ...set, policy, preset: policy.issuer.preset, lineSets, report };
  for (const rule of RULES) rule(context);
  for (const rule of ignored.keys()) {
    if (!used.has(rule)) report('unused-ignore', `lint.ignore.${rule} silences nothing here any more`, ['lint', 'ignore', rule]);
  }
  return findings;
}

const RULES: readonly ((context: RuleContext) => void)[] = [
  function unpinnedTenant({ policy, lineSets, report }) {
    // Shared or not is decided per deployment: CircleCI's per-organization issuer is not, its root issuer is.
    if (policy.effect !== 'allow') return;
    for (const { at, lines, issuer } of lineSets) {
      if (!issuer.shared || pinsTenant(issuer.preset, lines)) continue;
      const whose = at === 'match' ? 'this allow policy' : "this allow policy's match_actor (so any of them can act)";
      report(
        'unpinned-tenant',
        `${issuer.url} ${issuer.sharedBecause}, and ${whose} pins none of ${issuer.preset.tenantClaims.join(', ')} to one owner or project${subjectPinHint(issuer.preset)}`,
        [at],
      );
    }
  },

  function unpinnedClientId({ policy, brokerIssuer, report }) {
    // keyway's tokens reach a policy of its own issuer at /proxy (never at /token, which takes no access token as a subject).
    if (policy.effect !== 'allow' || policy.issuer.url !== brokerIssuer || clientIdPins(policy) !== undefined) return;
    report(
      'unpinned-client-id',
      `${brokerIssuer} is keyway itself, and this allow policy takes a keyway token for ${policy.subjectAudience} whichever policy minted it, ` +
        'from whatever issuer or tenant: pin client_id, the id of the granting policy, to the ones whose tokens it takes (exact values, or a glob or regex that writes them out)',
      ['match'],
    );
  },

  function unmatchedClientId({ policy, brokerIssuer, byId, report }) {
    if (policy.effect !== 'allow' || policy.issuer.url !== brokerIssuer) return;
    for (const id of clientIdPins(policy) ?? []) {
      const why = whyNoTokenCarries(id, policy.subjectAudience, byId);
      if (why === undefined) continue;
      report(
        'unmatched-client-id',
        `client_id ${id} ${why}, so no token this policy takes carries it: a typo or a stale entry, ` +
          'and a policy later named or widened to fit it would be trusted here without this file changing',
        ['match', 'client_id'],
      );
    }
  },

  function policyReviewWritable({ policy, reviewedRepository: reviewed, report }) {
    const grant = policy.grant;
    if (reviewed === undefined || policy.effect !== 'allow' || grant === undefined) return;
    const where = `${reviewed.owner}/${reviewed.name}`;
    const github = grant.github;
    const granted =
      github !== undefined &&
      github.owner.toLowerCase() === reviewed.owner.toLowerCase() &&
      github.repositories.some((name) => name.toLowerCase() === reviewed.name.toLowerCase())
        ? reviewWrites(github.permissions)
        : [];
    if (granted.length > 0)
      report('policy-review-writable', reviewWritableMessage(granted, `its GitHub token for ${where}`), ['grant', 'github', 'permissions']);
    // A rule whose path a template fills reaches the repository from that repository's own jobs, if the match lines let them in.
    const probe = { repository: where, repository_owner: reviewed.owner, repository_id: reviewed.id };
    const probed = new Map(Object.entries(probe));
    const admitsProbe = policy.conditions.every((condition) => !probed.has(condition.key) || condition.matcher.test(probed.get(condition.key)));
    for (const rule of grant.proxy?.rules ?? []) {
      const writes = reviewWrites(rule.permissions);
      const templated = rule.segments.some((segment) => segment.kind === 'claim');
      if (writes.length === 0 || (templated && !admitsProbe) || !proxyRuleReachesRepository(rule, probe, reviewed.owner, reviewed.name)) continue;
      report('policy-review-writable', reviewWritableMessage(writes, `grant.proxy (${rule.written}) on ${where}`), ['grant', 'proxy']);
    }
  },

  function unreachableGitHubGrant({ policy, githubDeployment: deployment, report }) {
    // A repository's own policy is such a grant (it cannot pin owner_id), and fails closed the same way.
    if (policy.effect !== 'allow' || policy.grant?.github === undefined || policy.grant.github.ownerId !== undefined) return;
    const { url, preset } = policy.issuer;
    let why: string;
    if (preset.name !== 'github') why = `${url} is a ${preset.name} issuer, whose tokens name no GitHub account of their own`;
    else if (deployment !== undefined && !isGitHubActionsOf(deployment, { url, kind: preset.name }))
      why = `${url} is a GitHub issuer of ${githubDeploymentOf(url)}, which numbers its accounts apart`;
    else return;
    const app = deployment === undefined ? "the App's GitHub deployment" : `the App's GitHub deployment (${deployment}, KEYWAY_GITHUB_API_URL's)`;
    report(
      'unreachable-github-grant',
      `grant.github pins no owner_id, so it goes to the caller's own account, which only a job of ${app} names; ${why}: ` +
        "this policy never grants its jobs a GitHub token. Name an issuer of the App's deployment, or grant these jobs from a central policy that pins grant.github.owner_id",
      ['grant', 'github'],
    );
  },

  function upstreamAudienceGrant({ policy, upstreamAudiences, report }) {
    if (policy.effect !== 'allow') return;
    for (const audience of policy.grant?.audiences ?? []) {
      if (!upstreamAudiences.includes(audience)) continue;
      report(
        'proxy-upstream-audience',
        `grant.audience ${audience} is the audience of a keyway-jwt proxy upstream (KEYWAY_PROXY_UPSTREAMS), which takes every keyway token for it: ` +
          'the job calls that upstream with this token itself, around the method and path a grant.proxy rule allows. Grant it grant.proxy instead',
        ['grant', 'audience'],
      );
    }
  },

  function caseInsensitiveRef({ policy, preset, report }) {
    // A deny policy that folds matches more, never less: only allow policies widen this way.
    if (policy.effect !== 'allow') return;
    for (const condition of policy.conditions) {
      if (condition.fold !== 'whole' || !carriesGitRef(condition.key)) continue;
      report(
        'case-insensitive-ref',
        `${condition.key} carries a git ref, and ${preset.name} compares it without case: ` +
          'refs/heads/MAIN, which anyone who can push may create unprotected, passes for refs/heads/main',
        ['match', condition.key],
      );
    }
  },

  function nameWithoutId({ policy, lineSets, report }) {
    if (policy.effect !== 'allow') return;
    for (const set of lineSets) {
      const facts = set.issuer.preset.lint;
      for (const condition of facts === undefined ? [] : set.lines) {
        const id = facts?.namesWithIds[condition.key];
        if (id === undefined || isPresenceOnly(condition.written) || set.lines.some((other) => other.key === id)) continue;
        report('name-without-id', `${lineName(set, condition.key)} is a name that can be renamed and registered again by someone else: pin ${id} beside it`, [
          set.at,
          condition.key,
        ]);
      }
    }
  },

  function writeFromUntrusted({ policy, guardrails, report }) {
    const scopes = policy.grant?.scopes ?? [];
    const scopeWrites = scopes.filter((scope) => !isReadOnlyScope(scope));
    // A GitHub token's write and admin permissions are write-like in the same way.
    const githubWrites = Object.entries(policy.grant?.github?.permissions ?? {})
      .filter(([, level]) => level !== 'read')
      .map(([name, level]) => `github ${name}:${level}`);
    // An organization write (members, secrets, runners) reaches every repository of the organization: the same rule, named apart.
    const organizationWrites = Object.entries(policy.grant?.github?.organizationPermissions ?? {})
      .filter(([, level]) => level !== 'read')
      .map(([name, level]) => `github organization ${name}:${level}`);
    const writes = [...scopeWrites, ...githubWrites, ...organizationWrites];
    if (policy.effect !== 'allow' || writes.length === 0) return;
    for (const context of untrustedContextsReaching(policy, guardrails)) {
      const line = policy.conditions.find((condition) => condition.key === context.claim);
      const fix =
        context.sample === true ? `a ${context.claim} line that pins your own` : `a ${context.claim} line that excludes ${JSON.stringify(context.value)}`;
      report(
        'write-from-untrusted',
        `write-like scope${writes.length > 1 ? 's' : ''} ${writes.join(', ')} reachable from ${context.what}: add ${fix}, or a deny guardrail`,
        line !== undefined
          ? ['match', context.claim]
          : scopeWrites.length > 0
            ? ['grant', 'scopes']
            : githubWrites.length > 0
              ? ['grant', 'github', 'permissions']
              : ['grant', 'github', 'organization_permissions'],
      );
    }
  },

  function matchesEverything({ policy, report }) {
    // Whatever the issuer: the actor's lines too, even when the set trusts no issuer its iss names.
    const sets = [
      { at: 'match', lines: policy.conditions },
      { at: 'match_actor', lines: policy.actorConditions ?? [] },
    ] as const;
    for (const set of sets) {
      for (const condition of set.lines) {
        for (const part of patterns(condition.written)) {
          if (part.kind === 'glob' ? globMatchesEverything(part.text) : acceptsEveryProbe(condition.matcher.regexes.get(part.text)!)) {
            report(
              'matches-everything',
              `${lineName(set, condition.key)}: { ${part.kind}: ${JSON.stringify(part.text)} } accepts every value, so this line checks nothing but presence`,
              [set.at, condition.key],
            );
          }
        }
      }
    }
  },

  function wildcardOwner({ policy, lineSets, report }) {
    if (policy.effect !== 'allow') return;
    for (const set of lineSets) {
      for (const condition of set.lines) {
        if (!set.issuer.preset.lint?.ownerFirstNames.includes(condition.key)) continue;
        for (const part of patterns(condition.written)) {
          const owner = part.kind === 'glob' ? (part.text.split('/')[0] ?? '') : '';
          if (/[*?]/.test(owner)) {
            report(
              'wildcard-owner',
              `${lineName(set, condition.key)}: { glob: ${JSON.stringify(part.text)} } has a wildcard in the owner part, so other owners' names match`,
              [set.at, condition.key],
            );
          }
        }
      }
    }
  },

  function spoofableClaim({ policy, lineSets, report }) {
    if (policy.effect !== 'allow') return;
    for (const set of lineSets) {
      for (const condition of set.lines) {
        const advice = set.issuer.preset.lint?.spoofable[condition.key];
        if (advice !== undefined) {
          report('spoofable-claim', `${lineName(set, condition.key)} is chosen by whoever edits the pipeline: ${advice}`, [set.at, condition.key]);
        }
      }
    }
  },

  function longTtl({ policy, report }) {
    const ttl = policy.grant?.ttlSeconds;
    if (ttl !== undefined && ttl > LONG_TTL_SECONDS) {
      report('long-ttl', `grant.ttl is ${ttl}s; keep grants at ${LONG_TTL_SECONDS / 60} minutes or less`, ['grant', 'ttl']);
    }
  },

  function unknownClaim({ lineSets, report }) {
    for (const set of lineSets) {
      const preset = set.issuer.preset;
      for (const condition of set.lines) {
        const claim = topLevelClaim(condition.key);
        if (!presetMaySend(preset, claim)) {
          const where = set.at === 'match' ? '' : ` (match_actor, for actors from ${set.issuer.url})`;
          report('unknown-claim', `${preset.name} tokens never carry ${claim}${where} (a typo?)`, [set.at, condition.key]);
        }
      }
    }
  },

  function nameBasedSub({ lineSets, report }) {
    for (const set of lineSets) {
      const hint = set.issuer.preset.lint?.nameBasedSubject;
      const sub = set.lines.find((condition) => condition.key === 'sub');
      if (hint === undefined || sub === undefined || set.lines.some((line) => hint.idsBeside?.includes(line.key) === true)) continue;
      const texts = [...patterns(sub.written).map((part) => part.text.replace(/^\^/, '')), ...values(sub.written)];
      if (texts.some((text) => hint.pattern.test(text))) {
        report('name-based-sub', `${lineName(set, 'sub')} is matched by name only. ${hint.advice}`, [set.at, 'sub']);
      }
    }
  },

  function exactSubGuard({ policy, lineSets, report }) {
    for (const set of lineSets) {
      const hint = set.issuer.preset.lint?.caselessNamesInSub;
      const sub = set.lines.find((condition) => condition.key === 'sub');
      if (hint === undefined || sub === undefined || !everyText(sub.written).some((text) => hint.written.test(text))) continue;
      // What case can slip past is what refuses: a deny's values and patterns, an allow's not. A deny's not, and an allow's
      // values, only widen or narrow by case, never let through.
      if (!(policy.effect === 'deny' ? assertsValue(sub.written) : negates(sub.written))) continue;
      report(
        'exact-sub-guard',
        `${lineName(set, 'sub')} compares byte for byte, but it carries ${hint.names}: a token whose sub is ${hint.example} ` +
          `slips past this ${policy.effect === 'deny' ? 'deny' : 'not:'}. Match ${hint.instead}`,
        [set.at, 'sub'],
      );
    }
  },

  function defaultAudience({ policy, preset, report }) {
    // Azure DevOps' fixed audience cannot be changed (its tokens are single use instead); a deny policy refuses, never admits.
    const audience = policy.subjectAudience;
    if (policy.effect !== 'allow' || audience === preset.fixedAudience) return;
    const known = preset.lint?.defaultAudience;
    const cloud = cloudOfAudience(audience);
    const what = known?.matches(audience, policy.issuer.url) === true ? known.what : cloud === undefined ? undefined : CLOUD_AUDIENCES[cloud];
    if (what === undefined) return;
    report(
      'default-audience',
      `subject_audience ${audience} is ${what}. Every relying party that receives such tokens can replay them here: ` +
        `have the job ask for a token for keyway (${preset.lint?.askForKeyway ?? "a token whose aud is keyway's URL"}) and drop subject_audience`,
      ['subject_audience'],
    );
  },

  function cloudSubjectCollision({ policy, peers, report }) {
    const mine = cloudSubject(policy);
    if (mine === undefined) return;
    for (const peer of peers) {
      const theirs = cloudSubject(peer);
      if (peer === policy || theirs === undefined || theirs.trust !== mine.trust || !subjectsOverlap(mine.shape, theirs.shape)) continue;
      report(
        'cloud-subject-collision',
        `the cloud token's sub (${mine.written}) could be the sub of ${peer.id}'s (${theirs.written}), and ${mine.trust} tells them apart by sub alone`,
        policy.grant?.subject === undefined ? ['grant', 'cloud'] : ['grant', 'subject'],
      );
    }
  },

  function templateClaimOptional({ policy, preset, report }) {
    const grant = policy.grant;
    if (grant === undefined) return;
    const guaranteed = (key: string): boolean =>
      (key === topLevelClaim(key) && ['iss', 'sub', ...preset.requiredClaims].includes(key)) ||
      policy.conditions.some((condition) => condition.key === key && condition.matcher.requiresPresence);
    const templates = [
      ...(grant.subject === undefined ? [] : [{ template: grant.subject, path: ['grant', 'subject'] }]),
      ...[...grant.claims].map(([name, template]) => ({ template, path: ['grant', 'claims', name] })),
    ];
    for (const { template, path } of templates) {
      for (const key of template.claims.filter((claim) => !guaranteed(claim))) {
        report(
          'template-claim-optional',
          `${path.join('.')} reads {${key}}, which ${preset.name} tokens need not carry and no match line requires: tokens without it get no grant from this policy`,
          path,
        );
      }
    }
  },
];

/**
 * The permissions through which a job can get past keyway's policy review: `checks` and `statuses` pass for it,
 * `administration` takes it off the branch (its protection, its rulesets); each at write.
 */
function reviewWrites(permissions: Readonly<Record<string, string>>): string[] {
  return ['checks', 'statuses', 'administration'].filter((name) => permissions[name] === 'write').map((name) => `${name}:write`);
}

function reviewWritableMessage(writes: readonly string[], what: string): string {
  const passes = writes.includes('checks:write')
    ? "a job could publish a passing check run named as keyway's policy review, or overwrite keyway's own"
    : writes.includes('statuses:write')
      ? "a job could set a commit status named as keyway's policy review, which GitHub counts for a required check of that name until keyway's check run exists (with one GitHub App; a pool never mints statuses: write from the reviewing App)"
      : undefined;
  const removes = writes.includes('administration:write')
    ? "a job could take keyway's required check off the branch (its branch protection or rulesets)"
    : undefined;
  return (
    `${what} has ${writes.join(' and ')}, in the policy repository keyway's review protects: ` +
    [passes, removes].filter((clause) => clause !== undefined).join('; ') +
    ': grant it there to no job, or silence this with the reason'
  );
}

/** Completes "subject_audience X is …" for a cloud's token exchange audience. */
const CLOUD_AUDIENCES: Readonly<Record<CloudProvider, string>> = {
  aws: "AWS STS's audience, which jobs ask for to assume a role",
  gcp: "a Google Workload Identity provider's audience, which jobs ask for to reach Google Cloud",
  azure: "Entra ID's token exchange audience, which jobs ask for to reach Azure",
};

/** The policy's lines that pin one tenant of a shared issuer (an owner, project or organisation id). */
export function tenantPins<T extends { readonly key: string; readonly written: Matcher }>(
  preset: Pick<IssuerPreset, 'tenantClaims' | 'lint'>,
  lines: readonly T[],
): T[] {
  const subjectKeys = preset.lint?.tenantSubjectKeys;
  return lines.filter(
    (line) => preset.tenantClaims.includes(line.key) && pinsOneTenant(line.written, line.key === 'sub' && subjectKeys !== undefined ? subjectKeys : undefined),
  );
}

export function pinsTenant(
  preset: Pick<IssuerPreset, 'tenantClaims' | 'lint'>,
  lines: readonly { readonly key: string; readonly written: Matcher }[],
): boolean {
  return tenantPins(preset, lines).length > 0;
}

/**
 * True when a matcher on a tenant claim admits one tenant only: an exact value, or a glob whose
 * fixed start names the owner completely (`repo:acme/*`, not `repo:acme*` or `repo:*`). With
 * `subjectKeys` (a `sub` of an issuer whose tenants choose its claims), only one that starts with such a key.
 */
function pinsOneTenant(matcher: Matcher, subjectKeys?: readonly string[]): boolean {
  if (typeof matcher !== 'object') return subjectKeys === undefined || startsWithKey(subjectKeys, String(matcher));
  if (Array.isArray(matcher)) return matcher.every((entry: Matcher) => pinsOneTenant(entry, subjectKeys));
  if (!('glob' in matcher)) return false;
  const fixed = matcher.glob.split(/[*?]/)[0] ?? '';
  if (subjectKeys !== undefined && !startsWithKey(subjectKeys, fixed)) return false;
  if (fixed === matcher.glob) return true;
  const afterTag = fixed.replace(/^[a-z_]+:/, '');
  return /^[^/@:]+[/@:]/.test(afterTag);
}

/** Where a tenant chooses its `sub`'s claims, which `sub` pins one: the lint error says so. */
function subjectPinHint(preset: Pick<IssuerPreset, 'lint'>): string {
  const keys = preset.lint?.tenantSubjectKeys;
  return keys === undefined
    ? ''
    : ` (a sub pins one only when its first key is ${keys.join(', ')}: a repository chooses its sub's claims, and any account can be signed the others)`;
}

const startsWithKey = (keys: readonly string[], text: string): boolean => keys.some((key) => text.startsWith(`${key}:`));

/** The ids a policy of keyway's own issuer pins `client_id` to: undefined unless its line admits only values it writes out. */
function clientIdPins(policy: Policy): string[] | undefined {
  const line = policy.conditions.find((condition) => condition.key === 'client_id');
  return line === undefined ? undefined : writtenValues(line.written);
}

/** Why no keyway token for `audience` can carry client_id `id`; undefined when one can, or the policy it names cannot be judged. */
function whyNoTokenCarries(id: string, audience: string, byId: RuleContext['byId']): string | undefined {
  if (!byId.has(id)) return 'is the id of no policy of this set';
  // One that did not compile (its development issuer off) cannot be judged; a disabled or audit-only one comes back.
  const minter = byId.get(id);
  if (minter === undefined || minter.grant?.audiences.includes(audience) === true) return undefined;
  if (minter.effect === 'deny') return 'is a deny policy, which mints no token';
  const audiences = minter.grant?.audiences ?? [];
  return `mints no keyway token for ${audience} (${audiences.length === 0 ? 'it grants none' : `it grants ${audiences.join(', ')}`})`;
}

/**
 * The values a matcher admits when it admits only values it writes out: exact values, globs without a wildcard (nothing else
 * in a glob is special), regexes of literal text and alternatives (writtenRegexValues), and lists of them, nested too.
 * Undefined for a wildcard, a regex with a class or quantifier, `not` or `exists`.
 */
function writtenValues(matcher: Matcher): string[] | undefined {
  if (typeof matcher !== 'object') return [String(matcher)];
  if (Array.isArray(matcher)) {
    const entries = matcher.map(writtenValues);
    return entries.every((entry): entry is string[] => entry !== undefined) ? entries.flat() : undefined;
  }
  if ('regex' in matcher) return writtenRegexValues(matcher.regex);
  return 'glob' in matcher && !/[*?]/.test(matcher.glob) ? [matcher.glob] : undefined;
}

function isPresenceOnly(matcher: Matcher): boolean {
  return typeof matcher === 'object' && !Array.isArray(matcher) && 'exists' in matcher;
}

/** The glob and regex patterns a matcher uses, outside `not`. */
function patterns(matcher: Matcher): { kind: 'glob' | 'regex'; text: string }[] {
  if (typeof matcher !== 'object') return [];
  if (Array.isArray(matcher)) return matcher.flatMap(patterns);
  if ('glob' in matcher) return [{ kind: 'glob', text: matcher.glob }];
  if ('regex' in matcher) return [{ kind: 'regex', text: matcher.regex }];
  return [];
}

/** Every value, glob and regex a matcher writes, `not` included. */
function everyText(matcher: Matcher): string[] {
  if (typeof matcher !== 'object') return [String(matcher)];
  if (Array.isArray(matcher)) return matcher.flatMap(everyText);
  if ('not' in matcher) return everyText(matcher.not);
  if ('glob' in matcher) return [matcher.glob];
  return 'regex' in matcher ? [matcher.regex] : [];
}

/** True when the matcher, or a matcher in its list, is a value, glob or regex: neither a `not` nor presence only. */
function assertsValue(matcher: Matcher): boolean {
  if (typeof matcher !== 'object') return true;
  return Array.isArray(matcher) ? matcher.some(assertsValue) : !('not' in matcher) && !('exists' in matcher);
}

/** True when the matcher, or a matcher in its list, is a `not`. */
function negates(matcher: Matcher): boolean {
  if (typeof matcher !== 'object') return false;
  return Array.isArray(matcher) ? matcher.some(negates) : 'not' in matcher;
}

/** The exact values a matcher lists, outside `not`. */
function values(matcher: Matcher): string[] {
  if (typeof matcher !== 'object') return [String(matcher)];
  return Array.isArray(matcher) ? matcher.flatMap(values) : [];
}

/**
 * Short, and naming no `sub` field that joins names to a git ref: a line's regex answers them as it answers any value it reads,
 * whatever it answers for a value too long for it or one with an `@` past such a field's (compileSafeRegex's `overLong`).
 */
const EVERYTHING_PROBES = ['x', 'refs/heads/keyway-lint-probe', 'keyway@lint/probe:42 !', '0'];

/** A regex as its line compiled it (folded as the line's claim, a `before-@` one split at the `@`), not compiled again. */
function acceptsEveryProbe(test: RegexTest): boolean {
  return EVERYTHING_PROBES.every((probe) => test(probe));
}

const READ_WORDS = new Set(['read', 'readonly', 'ro', 'view', 'list', 'get', 'describe', 'pull', 'fetch', 'query', 'explain']);

/** A scope reads when one of its parts says so (`artifacts:read`, `packages.pull`); every other scope counts as a write. */
export function isReadOnlyScope(scope: string): boolean {
  return scope
    .toLowerCase()
    .split(/[:._/-]/)
    .some((part) => READ_WORDS.has(part));
}

/**
 * The untrusted contexts of the policy's issuer (pull requests, forks, comment triggers, …) whose tokens the policy's lines
 * let through and no deny guardrail blocks outright: where whatever it grants can be reached from unreviewed code.
 */
export function untrustedContextsReaching(policy: Policy, guardrails: readonly Policy[]): PresetLintFacts['untrustedContexts'] {
  return (policy.issuer.preset.lint?.untrustedContexts ?? []).filter((context) => {
    const line = policy.conditions.find((condition) => condition.key === context.claim);
    if (line !== undefined && !line.matcher.test(context.value)) return false;
    return !guardrails.some((guard) => blocksEveryToken(guard, policy, context.claim, context.value));
  });
}

/** True when `guard` denies every token of the policy's issuer and audience whose `claim` is `value`. */
function blocksEveryToken(guard: Policy, policy: Policy, claim: string, value: string): boolean {
  return (
    guard.issuer.url === policy.issuer.url &&
    guardHoldsForAudienceOf(guard, policy) &&
    // One that names an actor holds only for delegated requests, not for the pipeline's own token.
    guard.actorConditions === undefined &&
    guard.conditions.length > 0 &&
    guard.conditions.every((condition: ClaimCondition) => condition.key === claim && condition.matcher.test(value))
  );
}

/** One place of a sub: a character, or a placeholder's value (any run of characters but `except`). */
export type Piece = { readonly char: string } | { readonly except: ReadonlySet<string> };

/**
 * An allow policy's cloud token `sub` as pieces (a character, or a placeholder's value: any run of characters but the template's delimiters),
 * and the trust that tells subs apart. AWS (an OIDC provider per issuer, role trust on aud + sub) and Azure (credentials on issuer + sub +
 * audience): the one audience keyway mints for. Google: the Workload Identity pool, not the provider the audience names, since a principal
 * (`principal://…/workloadIdentityPools/POOL/subject/SUB`) names only the pool: a sub through one provider is the same principal through another.
 */
function cloudSubject(policy: Policy): { trust: string; written: string; shape: Piece[] } | undefined {
  const cloud = policy.grant?.cloud;
  if (policy.effect !== 'allow' || cloud === undefined) return undefined;
  const trust = cloud.provider === 'gcp' ? `Workload Identity pool ${(cloud.home ?? cloud.audience).replace(/\/providers\/[^/]*$/, '')}` : cloud.audience;
  const template = policy.grant?.subject;
  if (template === undefined) {
    const sub = defaultCloudSubject(policy.id);
    return { trust, written: sub, shape: Array.from(sub, (char) => ({ char })) };
  }
  const shape = template.shape.flatMap((part): Piece[] => ('text' in part ? Array.from(part.text, (char) => ({ char })) : [{ except: template.delimiters }]));
  return { trust, written: template.source, shape };
}

/** Whether some text could be rendered from both shapes: a walk of both at once, each placeholder taking none or more characters it may hold. */
export function subjectsOverlap(a: readonly Piece[], b: readonly Piece[]): boolean {
  const seen = new Set<number>();
  const walk = (i: number, j: number): boolean => {
    const key = i * (b.length + 1) + j;
    if (seen.has(key)) return false;
    seen.add(key);
    const x = a[i];
    const y = b[j];
    if (x === undefined && y === undefined) return true;
    if (x !== undefined && 'except' in x) {
      if (walk(i + 1, j)) return true;
      if (y !== undefined && 'char' in y && !x.except.has(y.char) && walk(i, j + 1)) return true;
    }
    if (y !== undefined && 'except' in y) {
      if (walk(i, j + 1)) return true;
      if (x !== undefined && 'char' in x && !y.except.has(x.char) && walk(i + 1, j)) return true;
    }
    return x !== undefined && y !== undefined && 'char' in x && 'char' in y && x.char === y.char && walk(i + 1, j + 1);
  };
  return walk(0, 0);
}
