// Issue 19: one exchange, GitHub installation tokens for repositories of several owners, answered as a map.
import { asciiLowerCase } from '../claims/case-fold.ts';
import type { GitHubTokenRecord, OwnerTokenRecord } from '../audit/audit-event.ts';
import { ExchangeError } from '../errors/exchange-error.ts';
import { decide, type AccessRequest, type DecisionTrace, type GitHubAccessRequest, type IssuedGrant, type SubjectClaims } from '../policy/decide.ts';
import type { PolicySet } from '../policy/policy-set.ts';
import { refusalDiagnostics } from '../policy/refusal-diagnostics.ts';
import type { GitHubTokenJobs, GitHubTokenMinter, MintedGitHubToken } from './ports.ts';
import { TOKEN_TYPE } from './token-exchange-request.ts';
import type { Logger } from '../log.ts';

/** One owner's part of a multi-owner request: its key in the answer (the login in lower case) and what is asked of it. */
export interface OwnerRequest {
  readonly owner: string;
  readonly github: GitHubAccessRequest;
}

/** One owner's token in the answer of a multi-owner exchange. */
export interface IssuedOwnerToken {
  readonly access_token: string;
  readonly token_type: 'Bearer';
  readonly expires_in: number;
  readonly scope: string;
  readonly repositories: readonly string[];
}

/**
 * The answer of a multi-owner exchange: no top-level `access_token`, so a client that reads only that cannot take one
 * owner's token for the whole grant; `github_tokens` maps each owner (lower case) to its token.
 */
export interface IssuedGitHubTokenMap {
  readonly issued_token_type: typeof TOKEN_TYPE.githubInstallationTokenMap;
  /** RFC 8693 §2.2.1: the answer is not one access token. */
  readonly token_type: 'N_A';
  /** The soonest of the tokens' lifetimes. */
  readonly expires_in: number;
  readonly github_tokens: Readonly<Record<string, IssuedOwnerToken>>;
}

/**
 * Splits the asked repositories by owner, GitHub logins compared without regard to case (`Octo-Org` and `octo-org` are one
 * account, one token), in the order the request first names each. A map needs its owners named: at least one repository.
 */
export function ownerRequests(github: GitHubAccessRequest): OwnerRequest[] {
  if (github.repositories === undefined) {
    throw new ExchangeError('github_repository_not_granted', 'a GitHub token map needs its repositories named: resource https://github.com/OWNER/REPO', {
      public: true,
    });
  }
  const owners = new Map<string, { owner: string; name: string }[]>();
  for (const repository of github.repositories) {
    const key = asciiLowerCase(repository.owner);
    owners.set(key, [...(owners.get(key) ?? []), repository]);
  }
  return [...owners].map(([owner, repositories]) => ({ owner, github: { ...github, repositories } }));
}

/** A refusal for one owner of the request: the whole request is refused, and both the caller and the record learn which owner. */
export function ownerRefusal(owner: string, error: ExchangeError): ExchangeError {
  return new ExchangeError(error.reason, `owner ${owner}: ${error.message}`, {
    publicDetail: `owner ${owner}: ${error.publicDescription}`,
    cause: error,
    diagnostics: error.diagnostics,
  });
}

/** Refuses, owner by owner, what the App would refuse without asking GitHub (GitHubTokenMinter.checkMintable), before anything is claimed or minted. */
export function refuseUnmintable(minter: GitHubTokenMinter, grants: readonly { readonly owner: string; readonly grant: IssuedGrant }[]): void {
  for (const { owner, grant } of grants) {
    try {
      minter.checkMintable(grant.github!);
    } catch (error) {
      throw error instanceof ExchangeError ? ownerRefusal(owner, error) : error;
    }
  }
}

export type OwnerDecisions =
  | { readonly granted: true; readonly grants: readonly { readonly owner: string; readonly grant: IssuedGrant }[]; readonly trace: DecisionTrace }
  | { readonly granted: false; readonly refusal: ExchangeError; readonly trace: DecisionTrace };

/**
 * Decides each owner as a request for that owner alone would be decided: the owner must be the `grant.github.owner` (a
 * literal login, never a pattern or template) of an allow policy that matches the token and covers the repositories and
 * permissions asked of it, with no deny guardrail firing. The first owner refused refuses the whole request, before
 * anything is minted.
 */
export function decideEachOwner(policies: PolicySet, token: SubjectClaims, request: AccessRequest, owners: readonly OwnerRequest[]): OwnerDecisions {
  const grants: { owner: string; grant: IssuedGrant }[] = [];
  const traces: DecisionTrace[] = [];
  for (const { owner, github } of owners) {
    const ownerRequest = { ...request, github };
    const decision = decide(policies, token, ownerRequest);
    traces.push(decision.trace);
    if (!decision.granted) {
      const refused = new ExchangeError(decision.reason, decision.detail, { diagnostics: refusalDiagnostics(policies, token, ownerRequest) });
      return { granted: false, refusal: ownerRefusal(owner, refused), trace: mergeTraces(traces) };
    }
    grants.push({ owner, grant: decision.grant });
  }
  return { granted: true, grants, trace: mergeTraces(traces) };
}

/** The token's policies are the same for every owner (matching reads claims only); an audit-mode policy would grant only if it would for each. */
function mergeTraces(traces: readonly DecisionTrace[]): DecisionTrace {
  const [first] = traces as [DecisionTrace];
  const would = new Map<string, 'grant' | 'deny'>();
  for (const { policy, would: outcome } of traces.flatMap((trace) => trace.audit)) {
    would.set(policy, would.get(policy) === 'deny' ? 'deny' : outcome);
  }
  return { ...first, audit: [...would].map(([policy, outcome]) => ({ policy, would: outcome })) };
}

/** What the caller (its CI jobs: the subject's, and an actor's) and the exchange (its audit event id) give every token of the map. */
export interface TokenMapContext {
  readonly auditEventId: string;
  readonly jobs: GitHubTokenJobs;
  readonly now: number;
  readonly log: Logger;
}

/**
 * Mints one installation token per owner, in request order, each on its own revocation schedule (row `EVENT_ID/owner`).
 * All or nothing: when one owner's mint fails (no installation, a pinned id that does not match, GitHub down or refusing),
 * every token already minted for this request is revoked at once and the request is refused naming that owner.
 */
export async function mintTokenMap(
  minter: GitHubTokenMinter,
  grants: readonly { readonly owner: string; readonly grant: IssuedGrant }[],
  context: TokenMapContext,
): Promise<{ readonly answer: IssuedGitHubTokenMap; readonly records: readonly OwnerTokenRecord[]; readonly revoke: () => Promise<void> }> {
  const minted: { owner: string; grant: IssuedGrant; token: MintedGitHubToken }[] = [];
  const revoke = async (): Promise<void> => {
    const outcomes = await Promise.allSettled(minted.map(({ token }) => token.revokeNow()));
    const failed = outcomes.flatMap((outcome, index) => (outcome.status === 'rejected' ? [minted[index]!.owner] : []));
    if (failed.length > 0) {
      // Their schedules stay, due now: the revocation round tries again with its backoff.
      context.log.error('github token map: tokens could not be revoked now; the revocation round retries them', {
        audit_event_id: context.auditEventId,
        owners: failed,
      });
    }
  };
  for (const { owner, grant } of grants) {
    const github = grant.github!;
    try {
      const token = await minter.mint({
        owner: github.owner,
        repositories: github.repositories,
        permissions: github.permissions,
        organizationPermissions: github.organizationPermissions,
        ownerId: github.ownerId,
        revocationId: `${context.auditEventId}/${owner}`,
        revokeAt: context.now + grant.ttlSeconds * 1000,
        ...context.jobs,
      });
      minted.push({ owner, grant, token });
    } catch (error) {
      await revoke();
      if (error instanceof ExchangeError) throw ownerRefusal(owner, error);
      throw error;
    }
  }
  const tokens = Object.fromEntries(minted.map(({ owner, token }) => [owner, issuedOwnerToken(token, context.now)]));
  return {
    answer: {
      issued_token_type: TOKEN_TYPE.githubInstallationTokenMap,
      token_type: 'N_A',
      expires_in: Math.min(...Object.values(tokens).map((token) => token.expires_in)),
      github_tokens: tokens,
    },
    records: minted.map(({ grant, token }) => ({ ...githubTokenRecord(token), granted_by: grant.policy.id })),
    revoke,
  };
}

/** What the audit record keeps of a minted token: never the token, its SHA-256; names as GitHub spells them, never the request's case. */
export function githubTokenRecord(minted: MintedGitHubToken): GitHubTokenRecord {
  return {
    installation_id: minted.installationId,
    app_id: minted.appId,
    owner: minted.owner,
    repositories: minted.repositories.map((repository) => repository.name),
    permissions: minted.permissions,
    ...(Object.keys(minted.organizationPermissions).length === 0 ? {} : { organization_permissions: minted.organizationPermissions }),
    expires_at: new Date(minted.revokeAt).toISOString(),
    github_expires_at: new Date(minted.githubExpiresAt).toISOString(),
    token_sha256: minted.tokenSha256,
  };
}

/** The caller's view of a minted token: until keyway revokes it, and what GitHub granted (it adds `metadata:read`). */
export function issuedOwnerToken(minted: MintedGitHubToken, now: number): IssuedOwnerToken {
  return {
    access_token: minted.token,
    token_type: 'Bearer',
    expires_in: Math.max(1, Math.round((minted.revokeAt - now) / 1000)),
    scope: Object.entries({ ...minted.permissions, ...minted.organizationPermissions })
      .map(([name, level]) => `${name}:${level}`)
      .join(' '),
    repositories: minted.repositories.map((repository) => repository.name),
  };
}
