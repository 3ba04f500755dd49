import { asciiLowerCase } from '../claims/case-fold.ts';
import { isGitHubActionsOf } from '../claims/github-run.ts';
import type { SubjectClaims } from './decide.ts';
import { GITHUB_ACCOUNT_ID_PATTERN } from './schema.ts';

/**
 * The account id of `owner` when it is the verified caller's own: GitHub Actions' `repository_owner`,
 * pinned by its `repository_owner_id`; an installation token for that owner must be on that account.
 * Only the claims of a GitHub issuer of the App's `deployment` say so: other issuers (Forgejo, a keyway
 * token's templates) may carry claims of those names that are no GitHub account's, and another GitHub
 * deployment's number its own accounts (its `acme` may hold the number the App's GitHub gave another).
 */
export function callersGitHubAccount(caller: SubjectClaims, owner: string, deployment: string | undefined): string | undefined {
  if (!isGitHubActionsOf(deployment, { url: caller.issuer.url, kind: caller.issuer.preset.name })) return undefined;
  const { repository_owner: login, repository_owner_id: id } = caller.claims;
  return typeof login === 'string' && asciiLowerCase(login) === asciiLowerCase(owner) && typeof id === 'string' && GITHUB_ACCOUNT_ID_PATTERN.test(id)
    ? id
    : undefined;
}
