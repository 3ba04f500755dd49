import { describe, expect, it } from 'vitest';
import { loadPolicies, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import { lintPolicies } from '../../src/core/policy/lint/lint-policies.ts';
import { compilePolicyFiles } from '../../src/core/policy/load-policies.ts';
import { renderTrust } from '../../src/features/cloud/trust-configuration.ts';

const OPTIONS: PolicyLoadOptions = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 7200, allowHttpLoopback: false };
const CI_ROLE = 'arn:aws:iam::123456789012:role/ci-read';
const PROD_ROLE = 'arn:aws:iam::123456789012:role/prod-deploy';

const policy = (match: string, subject: string, role: string) => `version: 1
issuer: github
match:
  repository_owner_id: "1200934"
  repository_id: "734201"
${match}grant:
  subject: "${subject}"
  cloud:
    provider: aws
    roles: [${role}]
`;

/** IAM's StringLike: `*` any run of characters (`:` and `/` too), `?` one; `${*}`, `${?}`, `${$}` the characters themselves. */
function stringLike(pattern: string, value: string): boolean {
  const source = pattern
    .split(/(\$\{[*?$]\}|[*?])/)
    .map((part) => {
      if (part === '*') return '.*';
      if (part === '?') return '.';
      const literal = /^\$\{([*?$])\}$/.exec(part)?.[1] ?? part;
      return literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${source}$`, 's').test(value);
}

describe('keyway cloud trust aws for templated subs of two policies granting two roles', () => {
  /** The trust printed for `role`, as `aws iam update-assume-role-policy` would set it: whether it admits `sub`. */
  const admitted = (trust: string, role: string) => {
    const documents = [...trust.matchAll(/--role-name '([^']+)' --policy-document '([^']+)'/g)].map(([, name, json]) => ({
      name,
      document: JSON.parse(json ?? '{}') as { Statement: { Condition: Record<string, Record<string, string | string[]>> }[] },
    }));
    const statements = documents.find((entry) => entry.name === role)?.document.Statement ?? [];
    expect(statements.length).toBeGreaterThan(0);
    return (sub: string) =>
      statements.some((statement) => {
        const exact = [statement.Condition['StringEquals']?.['keyway.test:sub'] ?? []].flat();
        const like = [statement.Condition['StringLike']?.['keyway.test:sub'] ?? []].flat();
        return exact.includes(sub) || like.some((pattern) => stringLike(pattern, sub));
      });
  };
  /** The sub keyway mints for policy `id` with these claims ('' if it mints none). */
  const subOf = (policies: ReturnType<typeof loadPolicies>['policies'], id: string, claims: Record<string, string>) => {
    const rendered = policies.find((entry) => entry.id === id)?.grant?.subject?.render(claims);
    return rendered?.ok === true ? rendered.value : '';
  };
  const FEATURE_BRANCH = { repository: 'acme/app', ref: 'refs/heads/feature' };

  it("prints no role trust whose StringLike pattern takes the sub keyway mints for another role's policy: AWS's * takes : and /", () => {
    // prod.yaml: only main, in the production environment, may deploy; ci.yaml: any branch of the repository may read.
    const files = [
      { path: 'prod.yaml', text: policy('  ref: refs/heads/main\n  environment: production\n', 'repo:{repository}', PROD_ROLE) },
      { path: 'ci.yaml', text: policy('', 'repo:{repository}:ref:{ref}', CI_ROLE) },
    ];
    // keyway tells them apart (a placeholder never holds ':'), so lint lets the pair stand...
    expect(lintPolicies(compilePolicyFiles(files, OPTIONS)).filter((finding) => finding.rule === 'cloud-subject-collision')).toEqual([]);
    const { policies } = loadPolicies(files, OPTIONS);
    expect(subOf(policies, 'ci', FEATURE_BRANCH)).toBe('repo:acme/app:ref:refs/heads/feature');
    // ...but the production role's repo:* at AWS would take a feature branch's read token: no trust is printed.
    expect(() => renderTrust('aws', 'https://keyway.test', policies)).toThrow(
      /^prod: its sub repo:\{repository\}, a StringLike pattern at AWS .* would admit the tokens of ci, which does not grant arn:aws:iam::123456789012:role\/prod-deploy/,
    );
  });

  it("prints them when the text of each sub sets it apart, and neither role trust takes the other policy's sub", () => {
    const files = [
      { path: 'prod.yaml', text: policy('  ref: refs/heads/main\n  environment: production\n', 'deploy:{repository}', PROD_ROLE) },
      { path: 'ci.yaml', text: policy('', 'read:{repository}:ref:{ref}', CI_ROLE) },
    ];
    const { policies } = loadPolicies(files, OPTIONS);
    const trust = renderTrust('aws', 'https://keyway.test', policies);
    const prodSub = subOf(policies, 'prod', { repository: 'acme/app' });
    expect(prodSub).toBe('deploy:acme/app');
    expect(admitted(trust, 'prod-deploy')(prodSub)).toBe(true);
    expect(admitted(trust, 'prod-deploy')(subOf(policies, 'ci', FEATURE_BRANCH))).toBe(false);
    expect(admitted(trust, 'ci-read')(prodSub)).toBe(false);
  });
});

describe("keyway cloud trust aws when another policy's value may hold : or /", () => {
  it('prints no role trust whose StringLike pattern takes a sub whose placeholder holds a : its template does not part on', () => {
    // prod.yaml: main deploys, sub repo.{owner}:deploy; ci.yaml: any branch reads, sub repo.{owner}.{workflow} (the workflow's
    // name, which whoever pushes a branch writes). keyway never mints one for the other (. parts prod's value, : ends prod's sub).
    const files = [
      { path: 'prod.yaml', text: policy('  ref: refs/heads/main\n', 'repo.{repository_owner}:deploy', PROD_ROLE) },
      { path: 'ci.yaml', text: policy('', 'repo.{repository_owner}.{workflow}', CI_ROLE) },
    ];
    expect(lintPolicies(compilePolicyFiles(files, OPTIONS)).filter((finding) => finding.rule === 'cloud-subject-collision')).toEqual([]);
    const { policies } = loadPolicies(files, OPTIONS);
    // A feature branch's workflow named "x:deploy": ci mints repo.acme.x:deploy (its template parts on . only)...
    const rendered = policies.find((entry) => entry.id === 'ci')?.grant?.subject?.render({ repository_owner: 'acme', workflow: 'x:deploy' });
    expect(rendered).toEqual({ ok: true, value: 'repo.acme.x:deploy' });
    // ...which prod-deploy's repo.*:deploy takes at AWS: no trust may be printed.
    expect(stringLike('repo.*:deploy', 'repo.acme.x:deploy')).toBe(true);
    expect(() => renderTrust('aws', 'https://keyway.test', policies)).toThrow(
      /^prod: its sub repo\.\{repository_owner\}:deploy, a StringLike pattern at AWS .* would admit the tokens of ci/,
    );
  });
});
