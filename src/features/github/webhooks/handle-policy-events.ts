import { UsageCatchingUpError } from '../../../core/audit/inventory.ts';
import type { AuditEvent, AuditLog } from '../../../core/audit/audit-event.ts';
import { errorText, type Logger } from '../../../core/log.ts';
import type { PolicyFile, PolicyLoadOptions, RegexBound } from '../../../core/policy/load-policies.ts';
import { fetchPolicyFiles, listPolicyFiles, PolicyFetchError, readPolicyFilesAt } from '../repository-policies/fetch-policy-files.ts';
import type { LivePolicySet } from '../repository-policies/live-policy-set.ts';
import type { RepositoryName } from '../../../core/exchange/ports.ts';
import { fullName, sameRepository, type OpenRepositoryAccess, type RepositoryAccess } from '../repository-policies/repository-access.ts';
import { IMPACT_WINDOW_DAYS, POLICY_REASONS, replayGuardrailImpact } from '../repository-policies/replay-impact.ts';
import {
  CHECK_RUN_NAME,
  pastReviewLimits,
  reviewPolicyChange,
  type ReviewBound,
  UNUSED_WINDOW_DAYS,
  type PolicyReview,
  type PolicyReviewInput,
} from '../repository-policies/review-policy-change.ts';
import {
  REPOSITORY_POLICY_DIR,
  REPOSITORY_REGEX_BOUND,
  repositoryPolicyProblems,
  type RepositoryPolicyRules,
} from '../repository-policies/repository-policies.ts';
import {
  ORG_GUARDRAIL_REGEX_BOUND,
  ORG_GUARDRAILS_DIR,
  ORG_GUARDRAILS_REPOSITORY,
  orgGuardrailPin,
  orgGuardrailProblems,
  orgPolicyIds,
} from '../repository-policies/org-guardrails.ts';
import type { CheckRunRequest } from '../app/check-run.ts';
import type { RepositoryRole } from '../app/collaborator-permission.ts';
import type { GitHubWebhookSettings } from './webhook-settings.ts';
import type { OrgGuardrailPin } from '../repository-policies/repository-policy-settings.ts';

/** The audited exchanges one review replays at most (newest kept); a bound on the work a pull request causes. */
export const MAX_REPLAYED_EVENTS = 20_000;
const PAGE = 500;

export interface PolicyEventDeps {
  readonly settings: GitHubWebhookSettings;
  /** Undefined when no GitHub App is configured: then nothing can be read from GitHub. */
  readonly openRepository: OpenRepositoryAccess | undefined;
  readonly live: LivePolicySet;
  readonly audit: AuditLog;
  /** How the broker loads policies: the review judges a change as the live switch would. */
  readonly loadOptions: () => PolicyLoadOptions;
  /** The operator's bounds on repository-owned policies: the review judges them as the exchange would. */
  readonly repositoryRules: () => RepositoryPolicyRules;
  /** Drops an organisation's cached guardrails; undefined when no GitHub App is configured. */
  readonly guardrailsChanged?: (owner: string) => void;
  /** Drops a repository's cached own policies (and refusals); undefined when no GitHub App is configured. */
  readonly repositoryPoliciesChanged?: (repository: RepositoryName) => void;
  readonly now: () => number;
  readonly log: Logger;
}

export interface PullRequestFacts {
  readonly repository: RepositoryName;
  /** GitHub's numeric id of the repository (`repository.id`). */
  readonly repositoryId: number;
  readonly number: number;
  readonly baseSha: string;
  readonly headSha: string;
  /** The pull request's author (`pull_request.user.login`); undefined when GitHub names none (a deleted account). */
  readonly author: string | undefined;
  /**
   * Who caused the delivery (`sender.login`): on `opened` the author, on `synchronize` who pushed the head, on `reopened` who
   * reopened it; undefined when the payload names none.
   */
  readonly sender: string | undefined;
  /** The head branch is in another repository (a fork), or its repository is gone (`pull_request.head.repo` null). */
  readonly fromFork: boolean;
  /** Anyone may read the repository, and so its check runs (`repository.private` is not true). */
  readonly publicRepository: boolean;
}

/** Who may see the impact replay of a review (audited subjects, event ids, counts), and why others do not. */
interface ReplayRule {
  readonly roles: ReadonlySet<RepositoryRole>;
  readonly withheld: string;
  /** How the proposed set is replayed; default: the central set's (every exchange the policies decided). */
  readonly impact?: PolicyReviewInput['replayImpact'];
}

/** The central policy repository: its writers are the operator's. */
const CENTRAL_REPLAY: ReplayRule = {
  roles: new Set(['admin', 'write']),
  withheld:
    'it shows audited exchanges (subjects, event ids, counts), so keyway runs it only in a private policy repository, ' +
    'for pull requests from a branch of it whose author, and whoever last pushed to or reopened it, has write access',
};

export interface PushFacts {
  readonly repository: RepositoryName;
  /** GitHub's numeric id of the repository (`repository.id`). */
  readonly repositoryId: number;
  readonly ref: string;
  readonly defaultBranch: string;
  readonly deleted: boolean;
}

export type Handled = { readonly handled: true; readonly detail: string } | { readonly handled: false; readonly detail: string };

const NO_APP: Handled = { handled: false, detail: 'no GitHub App is configured (KEYWAY_GITHUB_APP_ID), so the policy repository cannot be read' };

/**
 * Where an event's repository stands to the central policy repository: it, another repository, one under its name with
 * another id (deleted and re-created, or renamed into its place), or the policy repository itself under another name
 * (`moved`: renamed or transferred). The last two are refused: only the id GitHub never gives twice says it is the
 * repository the operator configured, and a transfer hands it to another account's owners, whom the operator never chose.
 */
function centralRole(
  deps: PolicyEventDeps,
  repository: RepositoryName,
  id: number,
): 'central' | 'other' | { readonly refused: Handled; readonly problem: string; readonly moved: boolean } {
  const central = deps.settings.policyRepository;
  if (central === undefined) return 'other';
  const named = sameRepository(repository, central);
  if (named && id === central.id) return 'central';
  if (!named && id !== central.id) return 'other';
  deps.log.warn('policy repository event refused', {
    repository: fullName(repository),
    repository_id: id,
    expected: fullName(central),
    expected_id: central.id,
  });
  const problem = named
    ? `repository ${fullName(repository)} has id ${id}, but the policy repository's is ${central.id} ` +
      '(KEYWAY_GITHUB_POLICY_REPOSITORY_ID): a repository re-created under its name is not followed'
    : `the policy repository (id ${id}) is now named ${fullName(repository)}, not ${fullName(central)} ` +
      '(KEYWAY_GITHUB_POLICY_REPOSITORY): renamed or transferred, it is not followed until the setting names it';
  return { refused: { handled: false, detail: `refused: ${problem}` }, problem, moved: !named };
}

async function withAccess(
  deps: PolicyEventDeps,
  repository: RepositoryName,
  use: (access: RepositoryAccess) => Promise<Handled>,
  id?: number,
  ownerId?: number,
): Promise<Handled> {
  if (deps.openRepository === undefined) {
    deps.log.error('policy repository event not handled', { detail: NO_APP.detail });
    return NO_APP;
  }
  const access = await deps.openRepository(repository, id, ownerId);
  try {
    return await use(access);
  } finally {
    await access.close().catch((error: unknown) => deps.log.warn('installation token not revoked after use', { error: String(error) }));
  }
}

/** The audited exchanges of the replay window the policies decided, oldest first, bounded. */
async function replayWindow(audit: AuditLog, now: number): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  let after: string | undefined;
  const since = now - IMPACT_WINDOW_DAYS * 86_400_000;
  do {
    const page = await audit.query({ since, until: now, reasons: [...POLICY_REASONS], order: 'desc', limit: PAGE, ...(after === undefined ? {} : { after }) });
    for (const record of page.records) events.push(record.event);
    after = page.next;
  } while (after !== undefined && events.length < MAX_REPLAYED_EVENTS);
  return events.slice(0, MAX_REPLAYED_EVENTS).reverse();
}

/**
 * What a pull request's repository holds for keyway: the central set, or a repository's own policies and, in an
 * organisation's pinned `.github` repository (read under the organisation's pinned id too), its guardrails. A
 * `.github` under the pinned organisation's name with another id (deleted and re-created, or renamed into its
 * place) is refused, as the central repository is.
 */
function reviewScopes(deps: PolicyEventDeps, pr: PullRequestFacts): { scopes: readonly ReviewScope[]; ownerId?: number } | Handled {
  const role = centralRole(deps, pr.repository, pr.repositoryId);
  if (typeof role === 'object') return role.refused;
  if (role === 'central') {
    // A fork's head is anyone's, and proposes up to every file the directory may hold; a branch of the repository is its writers',
    // who may push the base itself (the operator's, unbounded): so a fork's proposes at most POLICY_REVIEW_LIMITS more than the base.
    const limited = pr.fromFork ? ({ limited: 'beyond the base' } as const) : {};
    return { scopes: [{ dir: deps.settings.policyPath, central: true, replay: CENTRAL_REPLAY, checkName: CHECK_RUN_NAME, ...limited }] };
  }
  // Any other repository the App is installed on may hold its own policies: reviewed the same way, held to what they may grant.
  const own: ReviewScope = {
    dir: REPOSITORY_POLICY_DIR,
    central: false,
    checkName: CHECK_RUN_NAME,
    regexBound: REPOSITORY_REGEX_BOUND,
    limited: 'either side',
    extraProblems: (compilation) => repositoryPolicyProblems(compilation, pr.repository, deps.repositoryRules()),
  };
  const pin = guardrailRole(deps, pr.repository, pr.repositoryId);
  if (pin === undefined) return { scopes: [own] };
  if ('handled' in pin) return pin;
  // Its guardrails get the same review, held to what a guardrail may be, with the replay of the organisation's exchanges only. Those
  // are of every repository of the organisation, which a writer of .github may not read: so only for its admins (the owners among them).
  const ids = orgPolicyIds(pin);
  const guardrails: ReviewScope = {
    dir: ORG_GUARDRAILS_DIR,
    central: false,
    replay: {
      roles: new Set(['admin']),
      withheld:
        "it shows the audited exchanges of the organisation's repositories (subjects, event ids, counts), so keyway runs it only in a private " +
        '.github repository, for pull requests from a branch of it whose author, and whoever last pushed to or reopened it, has admin access',
      impact: (proposed, events, brokerIssuer) => replayGuardrailImpact(proposed, events, brokerIssuer, ids),
    },
    checkName: ORG_GUARDRAIL_CHECK_RUN_NAME,
    required: `with no guardrail in ${ORG_GUARDRAILS_DIR}, keyway refuses every repository-owned policy of ${pin.owner} (fail closed)`,
    regexBound: ORG_GUARDRAIL_REGEX_BOUND,
    limited: 'either side',
    extraProblems: (compilation) => orgGuardrailProblems(compilation, pin, deps.repositoryRules()),
  };
  return { scopes: [guardrails, own], ownerId: pin.ownerId };
}

/**
 * Where an event's repository stands to the organisation guardrails: the pinned `.github` of its organisation
 * (its pin), none of them, or one under that name with another id (deleted and re-created, or renamed into its
 * place), which is refused as the central repository would be.
 */
function guardrailRole(deps: PolicyEventDeps, repository: RepositoryName, id: number): OrgGuardrailPin | Handled | undefined {
  if (repository.name.toLowerCase() !== ORG_GUARDRAILS_REPOSITORY) return undefined;
  // By its id, under the organisation's name now: a renamed organisation's .github is still the pinned one.
  const pinned = deps.repositoryRules().orgGuardrails.find((candidate) => candidate.repositoryId === id);
  if (pinned !== undefined) return { ...pinned, owner: repository.owner };
  const pin = orgGuardrailPin(deps.repositoryRules(), repository);
  if (pin === undefined) return undefined;
  deps.log.warn('organisation guardrail repository event refused', { repository: fullName(repository), repository_id: id, expected_id: pin.repositoryId });
  const detail =
    `refused: repository ${fullName(repository)} has id ${id}, but the organisation's guardrail repository's is ${pin.repositoryId} ` +
    '(KEYWAY_REPOSITORY_POLICY_ORG_GUARDRAILS): a repository re-created under its name is not followed';
  return { handled: false, detail };
}

/**
 * A push to the default branch of a repository other than the central one: what keyway cached of it is dropped, so its next
 * exchange reads it again rather than within the cache's minute (in this process or isolate; the others' caches age out).
 * That is its own policies (`.github/keyway/`, which the exchange reads from the default branch only): a revert withdraws
 * the access it granted at once. In an organisation's pinned `.github`, its guardrails too.
 */
function refreshOnPush(deps: PolicyEventDeps, push: PushFacts): Handled {
  const pin = guardrailRole(deps, push.repository, push.repositoryId);
  if (pin !== undefined && 'handled' in pin) return pin;
  const { repositoryPoliciesChanged, guardrailsChanged } = deps;
  if (repositoryPoliciesChanged === undefined || guardrailsChanged === undefined)
    return pin === undefined ? { handled: false, detail: 'not the policy repository' } : NO_APP;
  if (push.ref !== `refs/heads/${push.defaultBranch}` || push.deleted) return { handled: false, detail: `not a push to ${push.defaultBranch}` };
  repositoryPoliciesChanged(push.repository);
  if (pin === undefined) return { handled: true, detail: `the policies of ${fullName(push.repository)} are read again at their next exchange` };
  guardrailsChanged(pin.owner);
  return { handled: true, detail: `the guardrails of ${pin.owner} are read again at its next exchange` };
}

/** The check run of a change to an organisation's guardrails, apart from the one of its `.github` repository's own policies. */
export const ORG_GUARDRAIL_CHECK_RUN_NAME = 'keyway organisation guardrail review';

/**
 * A pull request on the policy repository, or on a repository holding its own policies or its organisation's
 * guardrails: when it changes a policy file, the review of the change is published as a check run on its head commit.
 * Every scope is listed, and the check run of each that changed started, before any scope's review runs.
 */
export async function reviewPullRequest(deps: PolicyEventDeps, pr: PullRequestFacts): Promise<Handled> {
  const review = reviewScopes(deps, pr);
  if ('handled' in review) return review;
  return withAccess(
    deps,
    pr.repository,
    async (access) => {
      const reviews = review.scopes.map((scope) => ({ scope, checkRun: reviewCheckRun(access, scope.checkName, pr.headSha) }));
      const outcomes: Handled[] = [];
      try {
        const begun: { readonly checkRun: ReviewCheckRun; readonly step: Handled | (() => Promise<Handled>) }[] = [];
        for (const { scope, checkRun } of reviews)
          begun.push({ checkRun, step: await readingPolicies(checkRun, () => beginReview(deps, pr, access, scope, checkRun)) });
        for (const { checkRun, step } of begun) outcomes.push(typeof step === 'function' ? await readingPolicies(checkRun, step) : step);
      } catch (error) {
        await completeUnfinished(
          deps,
          pr,
          reviews.map(({ checkRun }) => checkRun),
        );
        throw error;
      }
      const [only] = outcomes;
      if (only !== undefined && outcomes.length === 1) return only;
      return { handled: outcomes.some((outcome) => outcome.handled), detail: outcomes.map((outcome) => outcome.detail).join('; ') };
    },
    // Under the id GitHub sent, never the name alone: a repository deleted since, its name taken again, is not read nor written to.
    pr.repositoryId,
    review.ownerId,
  );
}

type CheckRunOutput = NonNullable<CheckRunRequest['output']>;

/**
 * The check run of one review. Started `in_progress` as soon as the review is known to be needed, before its slow work,
 * so that from then on keyway's own check run of that name is on the commit and a commit status of the name cannot satisfy
 * a required check alone; then completed with the conclusion (one created completed when it never started).
 */
interface ReviewCheckRun {
  readonly inProgress: boolean;
  start(): Promise<void>;
  complete(conclusion: 'success' | 'failure', output: CheckRunOutput): Promise<void>;
}

function reviewCheckRun(access: RepositoryAccess, name: string, headSha: string): ReviewCheckRun {
  let state: { readonly id: number; completed: boolean } | undefined;
  return {
    get inProgress() {
      return state !== undefined && !state.completed;
    },
    start: async () => {
      state = { id: await access.createCheckRun({ name, head_sha: headSha, status: 'in_progress' }), completed: false };
    },
    complete: async (conclusion, output) => {
      const completion = { status: 'completed', conclusion, output } as const;
      if (state === undefined) await access.createCheckRun({ name, head_sha: headSha, ...completion });
      else {
        await access.updateCheckRun(state.id, completion);
        state.completed = true;
      }
    },
  };
}

/** A policy directory keyway refuses to read is a failed review, not a failed delivery. */
async function readingPolicies<T>(checkRun: ReviewCheckRun, step: () => Promise<T>): Promise<T | Handled> {
  try {
    return await step();
  } catch (error) {
    if (!(error instanceof PolicyFetchError)) throw error;
    const output = { title: 'the policy directory cannot be read', summary: `**keyway cannot review this change:** ${error.message}.`, annotations: [] };
    await checkRun.complete('failure', output);
    return { handled: true, detail: `check run failure: ${error.message}` };
  }
}

const REVIEW_FAILED: CheckRunOutput = {
  title: 'the review could not run',
  summary:
    '**keyway could not finish reviewing this change**, so this check fails rather than let it merge unreviewed. ' +
    "The cause is in keyway's log. Redeliver the pull request's webhook delivery (the GitHub App's Advanced settings), " +
    'or push to the branch again, to review it anew.',
  annotations: [],
};

/**
 * A review that failed after its check run started completes it as a failure: left in progress it would hold the pull
 * request for ever, and a success is not keyway's to give unreviewed. The delivery still fails, so it can be sent again.
 */
async function completeUnfinished(deps: PolicyEventDeps, pr: PullRequestFacts, checkRuns: readonly ReviewCheckRun[]): Promise<void> {
  for (const checkRun of checkRuns) {
    if (!checkRun.inProgress) continue;
    await checkRun
      .complete('failure', REVIEW_FAILED)
      .catch((error: unknown) =>
        deps.log.error('policy review check run left in progress', { repository: fullName(pr.repository), pull_request: pr.number, error: errorText(error) }),
      );
  }
}

/** One directory a pull request may change, and how its change is reviewed. */
interface ReviewScope {
  readonly dir: string;
  /** The central set: mention the live set's last switch, and show unused access where the replay is. */
  readonly central: boolean;
  /** Replay audited exchanges, for whom and how; none for a repository's own policies. */
  readonly replay?: ReplayRule;
  readonly checkName: string;
  /** Why the directory must not be left empty, when it must not (an organisation's guardrails: none at all refuses every policy). */
  readonly required?: string;
  readonly extraProblems?: PolicyReviewInput['extraProblems'];
  /** How many regexes the files may write, as the exchange bounds them: none for the central set. */
  readonly regexBound?: RegexBound;
  /**
   * How the change is held to POLICY_REVIEW_LIMITS, where anyone able to open a pull request proposes it: a repository's own
   * policies and an organisation's guardrails on either side, the central set beyond its base for a fork's pull request only.
   */
  readonly limited?: ReviewBound;
}

/**
 * Whether a review may show the replay: a fork's head, or anyone without the rule's role, could probe the audit log with crafted
 * policies, and a public repository's check runs are anyone's to read. The author shaped the head, and so did the delivery's sender
 * (on `synchronize` whoever pushed onto the branch, on `reopened` whoever reopened it): each must hold the role now. Either unnamed,
 * or a role GitHub does not answer (`none`), is no replay; GitHub failing to answer fails the delivery, which is sent again.
 */
async function mayReplay(pr: PullRequestFacts, access: RepositoryAccess, rule: ReplayRule): Promise<boolean> {
  if (pr.publicRepository || pr.fromFork || pr.author === undefined || pr.sender === undefined) return false;
  const people = new Set([pr.author, pr.sender].map((login) => login.toLowerCase()));
  for (const login of people) if (!rule.roles.has(await access.permissionOf(login))) return false;
  return true;
}

/**
 * Lists both sides; when a policy file differs, starts the check run and returns the rest of the review, which completes it
 * (a change that empties a directory that must hold a policy fails at once).
 */
async function beginReview(
  deps: PolicyEventDeps,
  pr: PullRequestFacts,
  access: RepositoryAccess,
  scope: ReviewScope,
  checkRun: ReviewCheckRun,
): Promise<Handled | (() => Promise<Handled>)> {
  const { dir } = scope;
  const [base, head] = await Promise.all([listPolicyFiles(access, dir, pr.baseSha), listPolicyFiles(access, dir, pr.headSha)]);
  const touched = base.size !== head.size || [...head].some(([path, sha]) => base.get(path) !== sha);
  if (!touched) return { handled: false, detail: `pull request ${pr.number} changes no policy file under ${dir}` };
  if (head.size === 0 && scope.required !== undefined) {
    const output = {
      title: `no policy file left in ${dir}`,
      summary: `**Merged as it is, this change breaks the directory:** ${scope.required}.`,
      annotations: [],
    };
    await checkRun.complete('failure', output);
    return { handled: true, detail: `check run failure: ${output.title}` };
  }
  const tooLarge = scope.limited === undefined ? undefined : pastReviewLimits(dir, { base: base.size, proposed: head.size }, scope.limited);
  if (tooLarge !== undefined) return completeUnreviewed(checkRun, tooLarge);
  await checkRun.start();
  return () => finishReview(deps, pr, access, scope, checkRun, { base, head });
}

/** A change keyway does not review (past POLICY_REVIEW_LIMITS): its check run fails, saying why. */
async function completeUnreviewed(checkRun: ReviewCheckRun, review: PolicyReview): Promise<Handled> {
  await checkRun.complete(review.conclusion, review.output);
  return { handled: true, detail: `check run ${review.conclusion}: ${review.output.title}` };
}

async function finishReview(
  deps: PolicyEventDeps,
  pr: PullRequestFacts,
  access: RepositoryAccess,
  scope: ReviewScope,
  checkRun: ReviewCheckRun,
  listed: { readonly base: Map<string, string>; readonly head: Map<string, string> },
): Promise<Handled> {
  const { dir } = scope;
  const replay = scope.replay !== undefined && (await mayReplay(pr, access, scope.replay));
  const now = deps.now();
  const usageWindow = { since: now - UNUSED_WINDOW_DAYS * 86_400_000, until: now };
  const [baseFiles, proposedFiles, events, lastSwitch, usage] = await Promise.all([
    fetchPolicyFiles(access, dir, pr.baseSha, listed.base),
    fetchPolicyFiles(access, dir, pr.headSha, listed.head),
    replay ? replayWindow(deps.audit, now) : undefined,
    scope.central ? deps.live.lastSwitch() : undefined,
    // Usage counts are audit data too: shown only where the replay is.
    // Left out while the usage roll-up catches up (UsageCatchingUpError): the review says nothing of usage rather than too little.
    replay && scope.central ? deps.audit.usage(usageWindow).catch(withoutCatchingUp) : undefined,
  ]);
  const outcome = reviewPolicyChange({
    base: baseFiles,
    proposed: proposedFiles,
    events,
    // A repository's own policies and an organisation's guardrails read their actors as the exchange does: by the central set's issuers.
    loadOptions: scope.central
      ? deps.loadOptions()
      : {
          ...deps.loadOptions(),
          actorIssuers: deps.repositoryRules().actorIssuers,
          ...(scope.regexBound === undefined ? {} : { regexBound: scope.regexBound }),
        },
    directory: dir,
    ...(lastSwitch === undefined ? {} : { lastSwitch }),
    ...(usage === undefined ? {} : { usage: { ...usageWindow, rows: usage } }),
    ...(scope.extraProblems === undefined ? {} : { extraProblems: scope.extraProblems }),
    ...(scope.limited === undefined ? {} : { limited: scope.limited }),
    ...(scope.replay !== undefined && !replay ? { replayWithheld: scope.replay.withheld } : {}),
    ...(replay && scope.replay?.impact !== undefined ? { replayImpact: scope.replay.impact } : {}),
  });
  await checkRun.complete(outcome.conclusion, outcome.output);
  deps.log.info('policy change reviewed', {
    repository: fullName(pr.repository),
    pull_request: pr.number,
    head_sha: pr.headSha,
    conclusion: outcome.conclusion,
    title: outcome.output.title,
    ...(scope.replay === undefined ? {} : { impact_replay: replay }),
  });
  return { handled: true, detail: `check run ${outcome.conclusion}: ${outcome.output.title}` };
}

/** How many times a push's delivery reads the policy branch while it keeps moving before it leaves the switch to a later delivery. */
const SWITCH_READS = 3;

/** The policy set at `sha`, or why keyway refuses to read it (a broken set); GitHub failing is thrown, for a redelivery. */
async function readPolicySet(access: RepositoryAccess, path: string, sha: string): Promise<PolicyFile[] | PolicyFetchError> {
  try {
    return await readPolicyFilesAt(access, path, sha);
  } catch (error) {
    // A repository keyway refuses to read (too many files, a file where a directory should be) is a broken set.
    if (!(error instanceof PolicyFetchError)) throw error;
    return error;
  }
}

/**
 * A push to the policy repository's policy branch: the policies at the branch's head become the
 * live set if they load. The head is read at handling time, not taken from the payload, so a
 * delivery sent again later can never bring an old set back; and read again before the switch, the
 * set read anew when the branch moved meanwhile, so a slow delivery does not bring back the set a
 * later push's delivery replaced, nor leave a pushed set unswitched when that delivery never comes.
 */
export async function switchOnPush(deps: PolicyEventDeps, push: PushFacts): Promise<Handled> {
  const role = centralRole(deps, push.repository, push.repositoryId);
  if (role === 'other') return refreshOnPush(deps, push);
  const branch = deps.settings.policyBranch ?? push.defaultBranch;
  if (role !== 'central') {
    // The policy repository's own push, which would have switched the set, is not dropped unseen: the set serving stays, and
    // /healthz is degraded until the operator names the repository again (a withdrawn grant would otherwise live on unnoticed).
    if (role.moved && push.ref === `refs/heads/${branch}`) await deps.live.refuse(role.problem, `github ${fullName(push.repository)} ${push.ref}`);
    return role.refused;
  }
  // Its own policies (.github/keyway/) are a repository's like any other's, read from its default branch.
  if (push.ref === `refs/heads/${push.defaultBranch}` && !push.deleted) deps.repositoryPoliciesChanged?.(push.repository);
  if (push.ref !== `refs/heads/${branch}` || push.deleted) return { handled: false, detail: `not a push to ${branch}` };
  const source = (sha: string): string => `github ${fullName(push.repository)}@${sha}`;
  return withAccess(
    deps,
    push.repository,
    async (access) => {
      // Deliveries are handled concurrently and nothing orders their switches: while this one read its files, a later push may
      // have moved the branch and its delivery switched the live set, which switching now would take back to an older commit.
      // So a set is taken only while the branch is still at the commit it was read at; when it moved, the new head is read
      // instead (a later push's delivery may fail or never come), a few times at most.
      let sha = await access.branchHead(branch);
      let read: PolicyFile[] | PolicyFetchError;
      for (let round = 1; ; round += 1) {
        read = await readPolicySet(access, deps.settings.policyPath, sha);
        const head = await access.branchHead(branch);
        if (head === sha) break;
        deps.log.info('live policy set not switched yet: the policy branch moved while its files were read', {
          repository: fullName(push.repository),
          branch,
          read_at: sha,
          head,
        });
        if (round === SWITCH_READS) {
          return { handled: false, detail: `live set not switched: ${branch} moved on ${SWITCH_READS} times while its files were read; now at ${head}` };
        }
        sha = head;
      }
      if (read instanceof PolicyFetchError) {
        const status = await deps.live.refuse(errorText(read), source(sha));
        return { handled: true, detail: `live set kept: ${status.problems?.join('; ') ?? ''}` };
      }
      const status = await deps.live.adopt(read, source(sha));
      return {
        handled: true,
        detail: status.ok ? `live set switched to ${sha} (${status.policies} policies)` : `live set kept: ${status.problems?.length ?? 0} problems at ${sha}`,
      };
    },
    push.repositoryId,
  );
}

function withoutCatchingUp(error: unknown): undefined {
  if (error instanceof UsageCatchingUpError) return undefined;
  throw error;
}
