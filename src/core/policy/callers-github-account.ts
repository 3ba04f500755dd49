import { asciiLowerCase } from '../claims/case-fold.ts';
import type { SubjectClaims } from './decide.ts';
import { GITHUB_ACCOUNT_ID_PATTERN } from './schema.ts';

/**
 * The account id of `owner` when it is the verified caller's own: GitHub Actions' `repository_owner`,
 * pinned by its `repository_owner_id`; an installation token for that owner must be on that account.
 * Only a GitHub issuer's claims say so: other issuers (Forgejo, a keyway token's templates) may carry
 * claims of those names that are no GitHub account's.
 */
export function callersGitHubAccount(caller: SubjectClaims, owner: string): string | undefined {
  if (caller.issuer.preset.name !== 'github') return undefined;
  const { repository_owner: login, repository_owner_id: id } = caller.claims;
  return typeof login === 'string' && asciiLowerCase(login) === asciiLowerCase(owner) && typeof id === 'string' && GITHUB_ACCOUNT_ID_PATTERN.test(id)
    ? id
    : undefined;
}
