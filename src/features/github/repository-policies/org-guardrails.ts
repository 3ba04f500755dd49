import { ExchangeError } from '../../../core/errors/exchange-error.ts';
import type { RepositoryName } from '../../../core/exchange/ports.ts';
import { PolicyLoadError, type PolicyCompilation, type PolicyLoadOptions, type PolicyProblem, type RegexBound } from '../../../core/policy/load-policies.ts';
import { PolicySet } from '../../../core/policy/policy-set.ts';
import { GitHubError } from '../app/github-error.ts';
import { PolicyFetchError, readPolicyFilesAt } from './fetch-policy-files.ts';
import { fullName, type OpenRepositoryAccess } from './repository-access.ts';
import type { OrganisationIds } from './replay-impact.ts';
import {
  loadBoundedPolicies,
  readFailure,
  REPOSITORY_POLICY_DIR,
  REPOSITORY_REGEX_LIMITS,
  regexWorkProblem,
  repositoryPolicyProblems,
  type MoreGuardrails,
  type RepositoryPolicyRules,
} from './repository-policies.ts';
import type { OrgGuardrailPin } from './repository-policy-settings.ts';

/** The repository an organisation's guardrails live in: GitHub's own place for what holds organisation-wide. */
export const ORG_GUARDRAILS_REPOSITORY = '.github';
/**
 * Their directory there, one deny policy per file. Not under `.github/keyway/`, where the `.github`
 * repository's own policies live: a guardrail is never asked for as `policy:NAME`.
 */
export const ORG_GUARDRAILS_DIR = 'keyway/guardrails';

/** REPOSITORY_REGEX_LIMITS over all an organisation's guardrail files together, which every exchange of its repositories loads. */
export const ORG_GUARDRAIL_REGEX_BOUND: RegexBound = { ...REPOSITORY_REGEX_LIMITS, over: 'set', whose: "the organisation's guardrails" };

export const guardrailRepository = (pin: OrgGuardrailPin): RepositoryName => ({ owner: pin.owner, name: ORG_GUARDRAILS_REPOSITORY });
/** Where the guardrails are, as their ids start at exchange: `acme/.github/keyway/guardrails`. */
const guardrailPlace = (pin: OrgGuardrailPin): string => `${fullName(guardrailRepository(pin))}/${ORG_GUARDRAILS_DIR}`;

/** The ids the audit log records for an organisation's policies: its repositories' own (`acme/api/.github/keyway/release`) and its guardrails. */
export function orgPolicyIds(pin: OrgGuardrailPin): OrganisationIds {
  const owner = pin.owner.toLowerCase();
  const guardrail = `${guardrailPlace(pin).toLowerCase()}/`;
  return {
    isPolicy: (id) => {
      const [idOwner, , ...rest] = id.toLowerCase().split('/');
      return idOwner === owner && rest.join('/').startsWith(`${REPOSITORY_POLICY_DIR}/`);
    },
    isGuardrail: (id) => id.toLowerCase().startsWith(guardrail),
  };
}

/**
 * The pin the operator wrote under an organisation's name. Only for refusing: the name is the organisation's until it
 * renames itself, and anyone's after; the ids say which organisation it is (orgGuardrailPinOf, the webhooks' guardrailRole).
 */
export function orgGuardrailPin(rules: RepositoryPolicyRules, repository: Pick<RepositoryName, 'owner'>): OrgGuardrailPin | undefined {
  return rules.orgGuardrails.find((pin) => pin.owner.toLowerCase() === repository.owner.toLowerCase());
}

/**
 * The pin of the account `owner` is now (its id, as the App's installation there says), named by that login: a renamed
 * organisation keeps its guardrails, and its ids in the audit log follow its new name as its repositories' do.
 */
export function orgGuardrailPinOf(
  rules: RepositoryPolicyRules,
  account: { readonly owner: string; readonly ownerId: number | undefined },
): OrgGuardrailPin | undefined {
  const pin = rules.orgGuardrails.find((candidate) => candidate.ownerId === account.ownerId);
  return pin === undefined ? undefined : { ...pin, owner: account.owner };
}

/**
 * What an organisation's guardrail may not be: anything but a deny policy (it can only narrow what its
 * repositories' policies grant, never widen it, and a deny cannot relax a central guardrail: deny beats
 * allow), or what no repository's own policy may be either (an id of its own, an issuer the operator
 * does not allow repository policies).
 */
export function orgGuardrailProblems(compilation: PolicyCompilation, pin: OrgGuardrailPin, rules: RepositoryPolicyRules): PolicyProblem[] {
  const problems = repositoryPolicyProblems(compilation, guardrailRepository(pin), rules);
  // Each of them holds for every exchange of the organisation's repositories: their regexes are bounded as one file's are.
  const dear = regexWorkProblem(compilation.files, "the organisation's guardrails");
  if (dear !== undefined) problems.push(dear);
  for (const entry of compilation.files) {
    if (entry.document.effect === 'deny') continue;
    // An allow policy has a grant (the schema says so): the problem is there.
    problems.push({
      file: entry.file,
      ...entry.locate(['grant']),
      message: "an organisation's guardrail is a deny policy (effect: deny): it can only narrow what its repositories' policies grant",
    });
  }
  return problems;
}

export interface OrgGuardrailOptions {
  /** Reads with contents: read, pinned by the repository's id and its owner's account id. */
  readonly open: OpenRepositoryAccess;
  /** The account the App's installation under a login is on, as GitHub spells the login (the installation lookup). */
  readonly account: (owner: string) => Promise<{ readonly owner: string; readonly ownerId: number | undefined }>;
  readonly loadOptions: PolicyLoadOptions;
  readonly rules: () => RepositoryPolicyRules;
}

/** An organisation the operator lets publish no guardrails: nothing more holds for its repositories' policies. */
const NONE = new PolicySet([]);

/**
 * Each organisation's guardrails for RepositoryPolicySource: the deny policies under `keyway/guardrails/` in
 * `<org>/.github`, read from its default branch only if the repository still has the pinned id and its owner
 * the pinned account id. The pin is chosen by the account the App's installation under the owner's name is on,
 * not by the name: an organisation that renames itself keeps its guardrails. Whatever keeps them from use (the
 * repository re-created or renamed, unreadable, the directory gone, a guardrail that does not load, the pinned
 * name now another account's) refuses every policy of the organisation's repositories: dropping a guardrail must
 * never widen what they grant. Which account an owner is is looked up, charged and cached with its guardrails
 * (none, for an account not pinned), under its name.
 */
export function orgGuardrailsFor(options: OrgGuardrailOptions): (owner: string) => MoreGuardrails | undefined {
  return (owner) => {
    if (options.rules().orgGuardrails.length === 0) return undefined;
    return { key: `${owner.toLowerCase()}/${ORG_GUARDRAILS_REPOSITORY}:${ORG_GUARDRAILS_DIR}`, fetch: () => fetchOrgGuardrailsOf(options, owner) };
  };
}

async function fetchOrgGuardrailsOf(options: OrgGuardrailOptions, owner: string): Promise<PolicySet> {
  const named = orgGuardrailPin(options.rules(), { owner });
  let account;
  try {
    account = await options.account(owner);
  } catch (error) {
    if (!(error instanceof GitHubError)) throw error;
    // Not installed there: none of its policies can be read either. Under a name the operator pinned, refused as its guardrails are.
    if (named === undefined) throw readFailure(error, `${owner}: ${error.message}`, 'no_policy_matched');
    throw readFailure(error, `organisation guardrails ${guardrailPlace(named)}: ${error.message}`, 'org_guardrails_unusable');
  }
  const pin = orgGuardrailPinOf(options.rules(), account);
  if (pin !== undefined) return fetchOrgGuardrails(options, pin);
  if (named === undefined) return NONE;
  // The pinned organisation renamed itself and another account took the name (or never had it): its policies are not taken unchecked.
  throw new ExchangeError(
    'org_guardrails_unusable',
    `organisation guardrails ${fullName(guardrailRepository(named))}/${ORG_GUARDRAILS_DIR}: ${owner} is the account ${account.ownerId ?? 'of no id'}, not ${named.ownerId}: it is not read under that name`,
  );
}

async function fetchOrgGuardrails(options: OrgGuardrailOptions, pin: OrgGuardrailPin): Promise<PolicySet> {
  const repository = guardrailRepository(pin);
  const where = guardrailPlace(pin);
  const unusable = (why: string): ExchangeError => new ExchangeError('org_guardrails_unusable', `organisation guardrails ${where}: ${why}`);
  let files;
  try {
    const access = await options.open(repository, pin.repositoryId, pin.ownerId);
    try {
      // From the default branch, file by file: a push between two reads mixes the two commits at worst (a file gone since the listing is refused).
      files = await readPolicyFilesAt(access, ORG_GUARDRAILS_DIR, undefined);
    } finally {
      await access.close().catch(() => undefined);
    }
  } catch (error) {
    if (error instanceof PolicyFetchError) throw unusable(error.message);
    if (!(error instanceof GitHubError)) throw error;
    throw readFailure(error, `organisation guardrails ${where}: ${error.message}`, 'org_guardrails_unusable');
  }
  // The organisation publishes guardrails (the operator says so): none at all is a deletion, not a choice.
  if (files.length === 0) throw unusable('no guardrail there');
  try {
    const named = files.map((file) => ({ path: `${where}/${file.path}`, text: file.text }));
    const rules = options.rules();
    const bounded = { ...options.loadOptions, regexBound: ORG_GUARDRAIL_REGEX_BOUND };
    return loadBoundedPolicies(named, bounded, rules, (compilation) => orgGuardrailProblems(compilation, pin, rules));
  } catch (error) {
    if (!(error instanceof PolicyLoadError)) throw error;
    throw unusable(`does not load: ${error.message.replaceAll('\n', '; ')}`);
  }
}
