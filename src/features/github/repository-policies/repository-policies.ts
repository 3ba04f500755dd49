import { ExchangeError } from '../../../core/errors/exchange-error.ts';
import { GitHubError, isGitHubUnavailable } from '../app/github-error.ts';
import { levelCovers } from '../../../core/policy/github-permissions.ts';
import { checkPolicies } from '../../../core/policy/lint/lint-policies.ts';
import {
  compilePolicyFiles,
  PolicyLoadError,
  policySetOf,
  type CompiledPolicyFile,
  type PolicyCompilation,
  type PolicyFile,
  type PolicyLoadOptions,
  type PolicyProblem,
  type RegexBound,
} from '../../../core/policy/load-policies.ts';
import { PolicySet } from '../../../core/policy/policy-set.ts';
import { GLOB_STEP_WORK } from '../../../core/policy/compile-matcher.ts';
import { MAX_BACKTRACKING_WORK, REGEX_MAX_INPUT } from '../../../core/policy/safe-regex.ts';
import type { Refusal } from '../../../core/errors/reasons.ts';
import type { VerifiedCaller } from '../../../core/claims/caller-account.ts';
import type { OwnedRepository, RepositoryName, RepositoryPolicies } from '../../../core/exchange/ports.ts';
import { PolicyFetchError, readPolicyFile } from './fetch-policy-files.ts';
import { fullName, type OpenRepositoryAccess } from './repository-access.ts';
import type { OrgGuardrailPin, RepositoryPolicySettings } from './repository-policy-settings.ts';
import type { TrustedIssuer } from '../../../core/verify/trusted-issuer.ts';

/** Where a repository keeps its own trust policies (as octo-sts keeps `.github/chainguard/`). */
export const REPOSITORY_POLICY_DIR = '.github/keyway';

/** The permission keyway's policy reviews are written with (check runs), which no repository's own policy grants above read. */
const REVIEW_CHECK_PERMISSION = 'checks';

/** The operator's bounds on every repository's own policies, as they stand now. */
export interface RepositoryPolicyRules {
  /** Permission → the highest level a repository's own policy may grant (KEYWAY_REPOSITORY_POLICY_PERMISSIONS). */
  readonly permissions: Readonly<Record<string, string>>;
  /** The issuer URLs a repository's own policy may name: KEYWAY_REPOSITORY_POLICY_ISSUERS among those the central set trusts. */
  readonly issuers: ReadonlySet<string>;
  /** The organisations whose own guardrails hold for their repositories' policies (KEYWAY_REPOSITORY_POLICY_ORG_GUARDRAILS). */
  readonly orgGuardrails: readonly OrgGuardrailPin[];
  /** The central set's issuers, which verify a delegated request's actor token: a `match_actor` line compares as their presets say. */
  readonly actorIssuers: readonly TrustedIssuer[];
}

/**
 * The rules from the settings and the central set serving now. Only issuers the central set
 * trusts can be allowed: a repository never makes keyway trust, or fetch keys from, an issuer the
 * operator did not configure (and the exchange verifies against the central set first anyway).
 */
export function repositoryPolicyRules(settings: RepositoryPolicySettings, central: PolicySet): RepositoryPolicyRules {
  const trusted = central.issuers.map((issuer) => issuer.url);
  const allowed = settings.issuers === undefined ? trusted : settings.issuers.filter((url) => trusted.includes(url));
  return { permissions: settings.permissions, issuers: new Set(allowed), orgGuardrails: settings.orgGuardrails, actorIssuers: central.issuers };
}

/**
 * What a repository's own policies may not do, positioned for the loader's error and the review's
 * annotations: name an issuer the operator does not allow them, choose the subject token's audience, grant anything but a GitHub token
 * for that same repository (another repository, a keyway JWT for some audience), a permission
 * above the operator's ceiling or `checks: write` (keyway's reviews are check runs of the same App), or choose their own id (it is their path, so no repository can
 * take a central policy's place).
 */
export function repositoryPolicyProblems(compilation: PolicyCompilation, repository: RepositoryName, rules: RepositoryPolicyRules): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  for (const entry of compilation.files) {
    const report = (message: string, path: readonly PropertyKey[]): void => void problems.push({ file: entry.file, ...entry.locate(path), message });
    const { document } = entry;
    if (document.id !== undefined) report("a repository's own policy takes its id from its path: remove id", ['id']);
    const dear = regexWorkProblem([entry], 'this policy');
    if (dear !== undefined) problems.push(dear);
    const issuer = entry.policy?.issuer.url;
    if (issuer !== undefined && !rules.issuers.has(issuer)) {
      const setting = 'KEYWAY_REPOSITORY_POLICY_ISSUERS; by default those the central policies trust';
      report(`${issuer} is not an issuer the operator allows repository policies to name (${setting})`, ['issuer']);
    }
    // Its pipeline's tokens are minted for the broker: which other audiences keyway accepts is the operator's choice, and a
    // deny policy (an organisation's guardrail too) that named one would hold for that audience alone, so for none of them.
    if (document.subject_audience !== undefined) {
      report(
        "a repository's own policy or an organisation's guardrail cannot set subject_audience: its pipeline asks for a token for the broker (KEYWAY_ISSUER)",
        ['subject_audience'],
      );
    }
    if (document.effect === 'deny') continue;
    // Its token goes to the caller's own account, which only a GitHub issuer's token names (repository_owner_id).
    if (entry.policy !== undefined && entry.policy.issuer.preset.name !== 'github') {
      report(
        `a repository's own policy grants only GitHub Actions jobs of its own account, which their tokens name by repository_owner_id; ${issuer} is not a GitHub issuer: grant its jobs from a central policy that pins owner_id`,
        ['issuer'],
      );
    }
    if (entry.policy !== undefined && entry.policy.diagnostics !== 'none') {
      report(
        "a repository's own policy cannot set diagnostics: what a refused pipeline learns (the central guardrails that fired among it) is the operator's choice",
        document.diagnostics === undefined ? ['issuer', 'diagnostics'] : ['diagnostics'],
      );
    }
    const grant = document.grant;
    if (grant === undefined) continue;
    if (grant.github?.organization_permissions !== undefined) {
      report("a repository's own policy cannot grant organization permissions: only central policies can, for an organization pinned by id", [
        'grant',
        'github',
        'organization_permissions',
      ]);
    }
    // Whoever holds the owner's login writes the file: an id it pins proves nothing. Its grants go to the caller's own account.
    if (grant.github?.owner_id !== undefined) {
      report(
        "a repository's own policy cannot pin owner_id: whoever holds the owner's login writes it; its token goes to the caller's own account, pinned by the repository_owner_id its token carries",
        ['grant', 'github', 'owner_id'],
      );
    }
    if (grant.audience !== undefined)
      report(`a repository's own policy grants only GitHub tokens for ${fullName(repository)}, never tokens for other audiences: remove grant.audience`, [
        'grant',
        'audience',
      ]);
    // A cloud trusts keyway's sub alone: a repository must never choose a token a cloud would take for a central policy's.
    if (grant.cloud !== undefined) {
      report(`a repository's own policy grants only GitHub tokens for ${fullName(repository)}, never cloud tokens: remove grant.cloud`, ['grant', 'cloud']);
    }
    // An upstream's credential (a static secret, the App's token for whatever repository a rule names) is the operator's to hand out.
    if (grant.proxy !== undefined) {
      report(`a repository's own policy grants only GitHub tokens for ${fullName(repository)}, never proxy access: remove grant.proxy`, ['grant', 'proxy']);
    }
    const github = entry.policy?.grant?.github;
    if (github === undefined) {
      if (entry.policy !== undefined) report(`a repository's own policy must grant a GitHub token for ${fullName(repository)} (grant.github)`, ['grant']);
      continue;
    }
    const others = github.repositories.filter(
      (name) => github.owner.toLowerCase() !== repository.owner.toLowerCase() || name.toLowerCase() !== repository.name.toLowerCase(),
    );
    if (others.length > 0) {
      report(`a repository's own policy can only grant ${fullName(repository)}, not ${others.map((name) => `${github.owner}/${name}`).join(', ')}`, [
        'grant',
        'github',
        'repositories',
      ]);
    }
    for (const [permission, level] of Object.entries(github.permissions)) {
      // Its token is the primary App's installation token, and so are keyway's reviews: the check runs it wrote are that
      // App's own, which such a token could create again or overwrite (a passing review, a benign summary on any pull request).
      if (permission === REVIEW_CHECK_PERMISSION && !levelCovers('read', level)) {
        const message = `a repository's own policy cannot grant ${permission} ${level}, whatever KEYWAY_REPOSITORY_POLICY_PERMISSIONS says: its token would be keyway's own App's, able to write or overwrite keyway's policy review check runs in ${fullName(repository)}`;
        report(message, ['grant', 'github', 'permissions', permission]);
        continue;
      }
      const ceiling = rules.permissions[permission];
      if (levelCovers(ceiling, level)) continue;
      const most = ceiling === undefined ? 'not at all' : `at most at ${ceiling}`;
      const message = `a repository's own policy may grant ${permission} ${most}, not ${level} (KEYWAY_REPOSITORY_POLICY_PERMISSIONS)`;
      report(message, ['grant', 'github', 'permissions', permission]);
    }
  }
  return problems;
}

/**
 * The most backtracking work the regexes of a repository's own policy file, or of all an organisation's guardrail files, may
 * come to together: that of one regex at the limit each is held to alone (MAX_BACKTRACKING_WORK), some 20-30 ms of the thread
 * that serves /token. An exchange may test every one of them on a value that none matches, of REGEX_MAX_INPUT characters the
 * pipeline chooses (its branch, its workflow's name): fifty regexes each under the limit took a second, on every exchange.
 */
export const MAX_REPOSITORY_REGEX_WORK = MAX_BACKTRACKING_WORK;

/** Where the regexes and globs of `files`' policies (CompiledMatcher.work), in file order, first come to more than MAX_REPOSITORY_REGEX_WORK; `whose` names them. */
export function regexWorkProblem(files: readonly CompiledPolicyFile[], whose: string): PolicyProblem | undefined {
  let work = 0;
  for (const entry of files) {
    for (const condition of [...(entry.policy?.conditions ?? []), ...(entry.policy?.actorConditions ?? [])]) work += condition.matcher.work;
    if (work <= MAX_REPOSITORY_REGEX_WORK) continue;
    const message = `the regexes of ${whose} together can try a value of ${REGEX_MAX_INPUT} characters in ${Math.ceil(work)} ways, more than the ${MAX_REPOSITORY_REGEX_WORK} one regex at the limit may (each glob counted too, as ${GLOB_STEP_WORK} ways for each character of the value and each of its positions from its first wildcard on): an exchange tests them all. Write fewer regexes, globs, or repetitions that exclude the separator after them ([^/]*/ for .*/)`;
    return { file: entry.file, ...entry.locate(['match']), message };
  }
  return undefined;
}

/**
 * The most regexes a repository's own policy file may write, and an organisation's guardrail files together, and their most
 * characters together: 2,048 is four regexes of the longest a regex may be (512). Each is estimated as the file loads, while an exchange
 * waits, however little it costs to match: a file of 180 KiB of regexes took seconds of the thread that serves /token at
 * each fetch. Counted from the file's text, before any is compiled.
 */
export const REPOSITORY_REGEX_LIMITS = { regexes: 32, characters: 2048 } as const;

/** REPOSITORY_REGEX_LIMITS over each of a repository's own policy files, which an exchange loads one at a time. */
export const REPOSITORY_REGEX_BOUND: RegexBound = { ...REPOSITORY_REGEX_LIMITS, over: 'file', whose: 'this policy' };

/**
 * Policy files loaded as the broker loads its own (schema, issuers, lint errors), their `match_actor` lines read by the central
 * set's issuers (`rules.actorIssuers`, which verify the actor token), and held to `bounds`.
 */
export function loadBoundedPolicies(
  files: readonly PolicyFile[],
  options: PolicyLoadOptions,
  rules: RepositoryPolicyRules,
  bounds: (compilation: PolicyCompilation) => readonly PolicyProblem[],
): PolicySet {
  const compilation = compilePolicyFiles(files, { ...options, actorIssuers: rules.actorIssuers });
  const problems = [
    ...checkPolicies(compilation)
      .filter((finding) => finding.severity === 'error')
      .map((finding) => ({ file: finding.file, line: finding.line, column: finding.column, message: `${finding.message} (${finding.rule})` })),
    ...bounds(compilation),
  ];
  if (problems.length > 0) throw new PolicyLoadError(problems);
  return policySetOf(compilation);
}

/** A repository's policy files, loaded as the broker loads its own and held to what a repository may grant. */
export function loadRepositoryPolicies(
  files: readonly PolicyFile[],
  repository: RepositoryName,
  options: PolicyLoadOptions,
  rules: RepositoryPolicyRules,
): PolicySet {
  const bounded = { ...options, regexBound: REPOSITORY_REGEX_BOUND };
  return loadBoundedPolicies(files, bounded, rules, (compilation) => repositoryPolicyProblems(compilation, repository, rules));
}

/**
 * Deny policies beyond the central guardrails that hold for a repository's policies (its organisation's own,
 * org-guardrails.ts): fetched, charged and cached as a policy is, under `key`.
 */
export interface MoreGuardrails {
  readonly key: string;
  fetch(): Promise<PolicySet>;
}

/**
 * A failed read from GitHub as the exchange answers it: GitHub down is `github_unavailable`, the App's own
 * credentials refused `github_refused` (the operator's to fix), anything else (not installed there, no such
 * repository, not readable, another repository under the name) `unreadable`.
 */
export function readFailure(error: GitHubError, detail: string, unreadable: Refusal): ExchangeError {
  if (isGitHubUnavailable(error)) return new ExchangeError('github_unavailable', detail, { cause: error });
  if (error.code === 'unauthorized') return new ExchangeError('github_refused', detail, { cause: error });
  return new ExchangeError(unreadable, detail, { cause: error });
}

export interface RepositoryPolicySourceOptions {
  readonly open: OpenRepositoryAccess;
  readonly loadOptions: PolicyLoadOptions;
  /** The operator's bounds as they stand when a policy is fetched. */
  readonly rules: () => RepositoryPolicyRules;
  readonly now: () => number;
  /** How long a fetched policy, or the refusal of a missing or broken one, is used before it is fetched again. */
  readonly ttlSeconds: number;
  /** Policies remembered at most; the oldest goes first. */
  readonly maxEntries: number;
  /** Asked before each fetch from GitHub with the verified caller that would cause it: a refusal stops the fetch. */
  readonly beforeFetch: (caller: VerifiedCaller) => Promise<ExchangeError | undefined>;
  /** What else holds for the repository's policies: undefined for none. */
  readonly guardrailsFor?: (owner: string) => MoreGuardrails | undefined;
}

/** Refusals that are an answer about the policy or the guardrails (missing, unreadable, does not load): remembered like a policy. */
const isDefinitive = (error: unknown): boolean =>
  error instanceof ExchangeError && (error.reason === 'no_policy_matched' || error.reason === 'org_guardrails_unusable');

/**
 * Repository-owned policies, fetched through the GitHub App from the repository's default
 * branch (`.github/keyway/NAME.yaml`), loaded and checked, and cached for a bounded time. A
 * policy that does not load or is missing is refused, and so is one in a repository the App
 * cannot read (not installed there, no such repository): the caller cannot tell these apart, so
 * the answer says nothing about which private repositories exist. Those refusals are cached as
 * long as a policy; GitHub failing is `github_unavailable`, and is not. More guardrails for the
 * repository (its organisation's, `guardrailsFor`) are fetched first, and cached the same way.
 */
export class RepositoryPolicySource implements RepositoryPolicies {
  readonly #options: RepositoryPolicySourceOptions;
  /** By key, with the owner's login (lower case) each entry was read under, and for a policy its repository's full name (lower case). */
  readonly #cache = new Map<string, { readonly set: Promise<PolicySet>; readonly expiresAt: number; readonly owner: string; readonly repository?: string }>();

  constructor(options: RepositoryPolicySourceOptions) {
    this.#options = options;
  }

  /**
   * The policy, from the cache or fetched. A fetch is charged to the caller, never to the
   * repository: the repository and name are the caller's to choose, so a budget keyed on them
   * would let a stranger spend a repository's fetches and lock its own pipelines out. The charge
   * comes before the fetch is shared, so one caller's refusal is never another's answer.
   */
  async get(repository: OwnedRepository, name: string, caller: VerifiedCaller): Promise<PolicySet> {
    // The guardrails first: while they do not load, every policy of the organisation is refused alike, whether it exists or not.
    const more = this.#options.guardrailsFor?.(repository.owner);
    const owner = repository.owner.toLowerCase();
    const guardrails = more === undefined ? undefined : await this.#cached(more.key, owner, caller, () => more.fetch());
    // Keyed by the account too: the policy read for one account under a login is never another's that took the login since.
    const key = `${repository.ownerId}:${fullName(repository).toLowerCase()}:${name}`;
    const policy = await this.#cached(key, owner, caller, () => this.#fetch(repository, name), fullName(repository).toLowerCase());
    // None, for an organisation that publishes no guardrails: the policy's set as it loaded.
    return guardrails === undefined || guardrails.policies.length === 0 ? policy : new PolicySet([...guardrails.policies, ...policy.policies]);
  }

  async #cached(key: string, owner: string, caller: VerifiedCaller, fetch: () => Promise<PolicySet>, repository?: string): Promise<PolicySet> {
    const cached = this.#fresh(key);
    if (cached !== undefined) return cached;
    const refused = await this.#options.beforeFetch(caller);
    if (refused !== undefined) throw refused;
    // Another exchange may have fetched it meanwhile.
    return this.#fresh(key) ?? this.#remember(key, owner, fetch(), repository);
  }

  /** Drops the cached guardrails of an organisation (its `.github` was pushed to): the next exchange reads them again. */
  forgetGuardrails(owner: string): void {
    const more = this.#options.guardrailsFor?.(owner);
    if (more !== undefined) this.#cache.delete(more.key);
  }

  /**
   * Drops everything read under an owner's login, its repositories' policies and its guardrails, refusals too (its
   * installation changed, or the account was renamed): the next exchange reads them again.
   */
  forgetOwner(owner: string): void {
    const login = owner.toLowerCase();
    for (const [key, entry] of this.#cache) if (entry.owner === login) this.#cache.delete(key);
  }

  /**
   * Drops a repository's policies, refusals too, under every account id (its default branch was pushed to): the next exchange
   * reads them again.
   */
  forgetRepository(repository: RepositoryName): void {
    const name = fullName(repository).toLowerCase();
    for (const [key, entry] of this.#cache) if (entry.repository === name) this.#cache.delete(key);
  }

  #fresh(key: string): Promise<PolicySet> | undefined {
    const cached = this.#cache.get(key);
    return cached !== undefined && cached.expiresAt > this.#options.now() ? cached.set : undefined;
  }

  #remember(key: string, owner: string, set: Promise<PolicySet>, repository: string | undefined): Promise<PolicySet> {
    this.#cache.delete(key);
    while (this.#cache.size >= this.#options.maxEntries) this.#cache.delete(this.#cache.keys().next().value!);
    const expiresAt = this.#options.now() + this.#options.ttlSeconds * 1000;
    this.#cache.set(key, { set, expiresAt, owner, ...(repository === undefined ? {} : { repository }) });
    // GitHub being down says nothing about the policy: the next exchange asks again.
    set.catch((error: unknown) => {
      if (!isDefinitive(error) && this.#cache.get(key)?.set === set) this.#cache.delete(key);
    });
    return set;
  }

  async #fetch(repository: OwnedRepository, name: string): Promise<PolicySet> {
    const path = `${REPOSITORY_POLICY_DIR}/${name}.yaml`;
    let text: string;
    // Its id, in the log too: the repository as GitHub names it, never in the case the request that fetched it chose.
    let named: RepositoryName;
    try {
      const access = await this.#options.open(repository, undefined, repository.ownerId);
      try {
        const file = await readPolicyFile(access, path, undefined);
        if (file === undefined) throw new ExchangeError('no_policy_matched', `${fullName(repository)} has no ${path}`);
        text = file;
        named = access.repository;
      } finally {
        await access.close().catch(() => undefined);
      }
    } catch (error) {
      // A symlink: refused like a policy that does not load.
      if (error instanceof PolicyFetchError) throw new ExchangeError('no_policy_matched', `${fullName(repository)}/${error.message}`);
      if (!(error instanceof GitHubError)) throw error;
      // Not installed there, no such repository, not readable: to the caller, no policy, as for a missing file.
      throw readFailure(error, `${fullName(repository)}: ${error.message}`, 'no_policy_matched');
    }
    try {
      const files = [{ path: `${fullName(named)}/${path}`, text }];
      return loadRepositoryPolicies(files, named, this.#options.loadOptions, this.#options.rules());
    } catch (error) {
      if (!(error instanceof PolicyLoadError)) throw error;
      throw new ExchangeError('no_policy_matched', `${fullName(repository)}/${path} does not load: ${error.message.replaceAll('\n', '; ')}`);
    }
  }
}
