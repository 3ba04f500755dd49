// What the exchange needs from the GitHub feature, as ports: features/github implements them,
// runtimes/create-broker.ts plugs them in, and the exchange never imports a feature.
import type { PolicySet } from '../policy/policy-set.ts';
import type { CiJob } from '../claims/github-run.ts';
import type { VerifiedCaller } from '../claims/caller-account.ts';

/** A repository, by owner and name as GitHub spells them (compared without regard to case, as GitHub does). */
export interface RepositoryName {
  readonly owner: string;
  readonly name: string;
}

/**
 * A repository by name, held to the account its owner must be: GitHub's numeric account id (the caller's
 * `repository_owner_id`), which a rename does not change and GitHub never gives twice, so a login renamed or
 * deleted and taken again by another account is not that owner.
 */
export interface OwnedRepository extends RepositoryName {
  readonly ownerId: number;
}

/**
 * Repository-owned policies (`.github/keyway/NAME.yaml`, asked for with `scope=policy:NAME`), read
 * through the GitHub App (features/github/repository-policies). A policy that is missing, does not
 * load, or cannot be read is refused with an ExchangeError (`no_policy_matched`, `github_unavailable`,
 * `github_refused`, `rate_limited`), never answered with another repository's policy, nor with the
 * policy of a repository of that name on another account than `ownerId`'s.
 */
export interface RepositoryPolicies {
  get(repository: OwnedRepository, name: string, caller: VerifiedCaller): Promise<PolicySet>;
}

/** The CI jobs whose end revokes a GitHub token early: the subject token's (its own members), and a delegated exchange's actor token's. */
export interface GitHubTokenJobs extends CiJob {
  /**
   * The actor token's job (`githubJobOf`: none for an actor of an issuer that is not GitHub's), undefined when the exchange
   * had no actor: its end, or its run's, revokes the token as the subject's does, so a token an orchestrator's job
   * obtained as the actor does not outlive that job.
   */
  readonly actorJob: CiJob | undefined;
}

/** What a GitHub token is minted for, and the CI jobs whose end revokes it early. */
export interface GitHubTokenRequest extends GitHubTokenJobs {
  readonly owner: string;
  readonly repositories: readonly string[];
  readonly permissions: Readonly<Record<string, string>>;
  /** Organization permissions (empty for most grants): only on the operator's allowlist, only for the account `ownerId`. */
  readonly organizationPermissions: Readonly<Record<string, string>>;
  /** The owner's account id the policy pins; required with organization permissions. */
  readonly ownerId: string | undefined;
  /**
   * The revocation row's id, which the sealed token is also bound to: the audit event id of the exchange, followed by
   * `/OWNER` (lower case) for a token of a multi-owner exchange, which mints one token per owner under one record.
   */
  readonly revocationId: string;
  /**
   * When keyway revokes the token, ms since the epoch: the request's time plus the policy TTL, as a keyway token's `exp`
   * is, so the answer's `expires_in` is the TTL however long GitHub took (GitHub's own expiry comes first if sooner).
   */
  readonly revokeAt: number;
}

export interface MintedGitHubToken {
  /** The GitHub App it was minted with (of the pool keyway holds). */
  readonly appId: string;
  readonly token: string;
  readonly tokenSha256: string;
  readonly installationId: number;
  /** The account the installation is on, its login as GitHub spells it (a request may write it in any case). */
  readonly owner: string;
  /** The repositories GitHub scoped it to, each with its id: a name can be renamed and registered again, an id cannot. */
  readonly repositories: readonly { readonly id: number; readonly name: string }[];
  /** Repository permissions, as GitHub granted them. */
  readonly permissions: Readonly<Record<string, string>>;
  /** Organization permissions, as GitHub granted them; empty for most tokens. */
  readonly organizationPermissions: Readonly<Record<string, string>>;
  /** When keyway revokes it (the policy TTL), ms since the epoch. */
  readonly revokeAt: number;
  /** When GitHub expires it, ms since the epoch. */
  readonly githubExpiresAt: number;
  /** Takes the token back now and drops its schedule (the exchange could not be audited). */
  revokeNow(): Promise<void>;
}

/**
 * GitHub installation tokens for granted exchanges (`grant.github`), minted through the GitHub App
 * (features/github/app), each with its revocation scheduled. GitHub failing is an ExchangeError:
 * `github_unavailable` (GitHub did not answer, or is rate limiting) or `github_refused`.
 */
export interface GitHubTokenMinter {
  /** The REST API the App calls: its web origin is the one repository URLs in `resource` must name. */
  readonly apiUrl: string;
  /** The GitHub deployment of that API (githubDeploymentOf), derived once from the settings: whose jobs, accounts and completions are the App's. */
  readonly deployment: string;
  mint(request: GitHubTokenRequest): Promise<MintedGitHubToken>;
  /**
   * Refuses what `mint` would refuse without asking GitHub, as it does: organization permissions beyond the operator's
   * allowlist (`github_permission_not_allowed`), or every App that could mint the token left out for now after a rate
   * limit or a refused key (`github_unavailable`). The exchange asks before it claims a single-use token.
   */
  checkMintable(request: MintableRequest): void;
}

/** What decides whether a token can be minted without asking GitHub: the permissions it is for. */
export type MintableRequest = Pick<GitHubTokenRequest, 'permissions' | 'organizationPermissions'>;
