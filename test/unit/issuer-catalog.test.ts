import { describe, expect, it } from 'vitest';
import { PRESETS } from '../../src/core/verify/presets.ts';
import { resolveIssuer, type IssuerReference } from '../../src/core/verify/trusted-issuer.ts';
import { carriesGitRef } from '../../src/core/claims/case-fold.ts';
import { loadPolicies, PolicyLoadError, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import type { PolicySet } from '../../src/core/policy/policy-set.ts';

const OPTIONS: PolicyLoadOptions = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: false };
const ORG = '8d5a3a2c-3c16-4a3e-9d55-4c4d2f3e9b11';
const ADO_ORG = '0ca3ddd9-f0b0-4635-a98c-5866526961b6';

const resolve = (reference: IssuerReference, allowHttpLoopback = false) => resolveIssuer(reference, { allowHttpLoopback });

function policy(issuer: string, match = 'sub: x', extra = ''): string {
  return `version: 1\nissuer: ${issuer}\n${extra}match:\n  ${match}\ngrant:\n  audience: https://a.example\n`;
}

function load(files: Record<string, string>, options: Partial<PolicyLoadOptions> = {}): PolicySet {
  return loadPolicies(
    Object.entries(files).map(([path, text]) => ({ path, text })),
    { ...OPTIONS, ...options },
  );
}

function problems(files: Record<string, string>, options: Partial<PolicyLoadOptions> = {}): string[] {
  try {
    load(files, options);
  } catch (error) {
    if (error instanceof PolicyLoadError) return error.problems.map((problem) => problem.message);
    throw error;
  }
  throw new Error('expected the policies not to load');
}

describe('issuer presets', () => {
  it('has every CI system of the catalog, each with asymmetric algorithms only', () => {
    expect([...PRESETS.keys()].sort()).toEqual(
      ['azure-devops', 'bitbucket', 'buildkite', 'circleci', 'dev', 'forgejo', 'github', 'gitlab', 'google', 'kubernetes', 'oidc', 'terraform'].sort(),
    );
    for (const preset of PRESETS.values()) {
      expect(preset.algorithms.length).toBeGreaterThan(0);
      for (const alg of preset.algorithms) expect(alg).toMatch(/^(RS|ES|PS)\d{3}$/);
      expect(preset.maxTokenAgeSeconds).toBeGreaterThan(0);
    }
  });

  it.each([
    ['github', 'https://token.actions.githubusercontent.com', 'github.com'],
    ['gitlab', 'https://gitlab.com', 'gitlab.com'],
    ['buildkite', 'https://agent.buildkite.com', 'Buildkite'],
    ['google', 'https://accounts.google.com', 'Google'],
    ['terraform', 'https://app.terraform.io', 'HCP Terraform'],
  ])('names the public issuer of %s by its preset name', (name, url, deployment) => {
    expect(resolve(name)).toMatchObject({ url, deployment, preset: { name } });
  });

  it.each(['circleci', 'bitbucket', 'azure-devops', 'kubernetes', 'forgejo', 'oidc'])('asks for the instance of %s, whose issuers are per tenant', (name) => {
    expect(() => resolve(name)).toThrow(/per tenant or instance: write issuer: \{ kind: /);
  });

  it.each([
    ['github', 'https://token.actions.githubusercontent.com/octocat-inc', 'GitHub Enterprise Cloud with a unique issuer'],
    ['github', 'https://token.actions.acme.ghe.com', 'GHE.com'],
    ['github', 'https://github.acme.dev/_services/token', 'GitHub Enterprise Server'],
    ['gitlab', 'https://gitlab.acme.dev', 'GitLab self-managed'],
    ['gitlab', 'https://acme.dev/gitlab', 'GitLab self-managed'],
    ['circleci', `https://oidc.circleci.com/org/${ORG}`, 'CircleCI cloud, per organization'],
    ['circleci', 'https://oidc.circleci.com', 'CircleCI cloud, root issuer'],
    ['bitbucket', 'https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc', 'Bitbucket Cloud, per workspace'],
    ['azure-devops', `https://vstoken.dev.azure.com/${ADO_ORG}`, 'Azure DevOps Services, per organization'],
    ['kubernetes', 'https://oidc.eks.eu-west-1.amazonaws.com/id/B716D3B5C1E54AB7B4A57B8A63D5F8C1', 'Amazon EKS'],
    ['kubernetes', 'https://container.googleapis.com/v1/projects/acme/locations/europe-west1/clusters/prod', 'Google GKE'],
    ['kubernetes', `https://westeurope.oic.prod-aks.azure.com/${ORG}/${ADO_ORG}/`, 'Azure AKS'],
    ['kubernetes', 'https://kubernetes.default.svc', 'self-managed cluster'],
    ['terraform', 'https://app.eu.terraform.io', 'HCP Terraform Europe'],
    ['terraform', 'https://tfe.acme.dev', 'Terraform Enterprise'],
    ['forgejo', 'https://codeberg.org/api/actions', 'Forgejo instance'],
  ])('accepts a %s instance at %s', (kind, url, deployment) => {
    expect(resolve({ kind, url })).toMatchObject({ url, deployment, preset: { name: kind } });
  });

  it.each([
    ['circleci', 'https://oidc.circleci.com/org/acme', /expected https:\/\/oidc\.circleci\.com\/org\/<org-uuid> or https:\/\/oidc\.circleci\.com$/],
    ['circleci', `https://oidc.circleci.com/org/${ORG}/`, /not a circleci issuer URL/],
    ['kubernetes', `https://westeurope.oic.prod-aks.azure.com/${ORG}/${ADO_ORG}`, /<tenant-id>\/<uuid>\/$/],
    ['azure-devops', 'https://vstoken.dev.azure.com/acme', /organization-guid/],
    ['bitbucket', 'https://api.bitbucket.org/2.0/workspaces/acme', /pipelines-config\/identity\/oidc/],
    ['buildkite', 'https://agent.buildkite.example', /expected https:\/\/agent\.buildkite\.com/],
    ['buildkite', 'https://agent.buildkite.com.evil.example', /expected https:\/\/agent\.buildkite\.com/],
    ['gitlab', 'https://gitlab.acme.dev/gitlab/', /not a gitlab issuer URL/],
    ['google', 'https://accounts.google.com/o/oauth2', /expected https:\/\/accounts\.google\.com/],
    ['github', 'https://github.acme.dev/token', /_services\/token/],
    ['forgejo', 'https://codeberg.org', /\/api\/actions/],
    ['forgejo', 'https://git.acme.dev/api/actions/runs', /not a forgejo issuer URL/],
    ['terraform', 'https://tfe.acme.dev/app', /not a terraform issuer URL/],
  ])('refuses a %s instance URL of the wrong shape: %s', (kind, url, message) => {
    expect(() => resolve({ kind, url })).toThrow(message);
  });

  it('folds case for names only: a claim carrying a git ref never folds past its first @', () => {
    for (const preset of PRESETS.values()) {
      for (const [claim, fold] of Object.entries(preset.caseFolds)) {
        if (carriesGitRef(claim)) expect(fold, `${preset.name} ${claim}`).toBe('before-@');
      }
    }
    expect(PRESETS.get('github')?.caseFolds).toMatchObject({ repository: 'whole', workflow_ref: 'before-@', job_workflow_ref: 'before-@' });
    expect(PRESETS.get('forgejo')?.caseFolds).toMatchObject({ repository: 'whole', workflow_ref: 'before-@' });
    expect(PRESETS.get('gitlab')?.caseFolds).toMatchObject({ project_path: 'whole', ci_config_ref_uri: 'before-@' });
  });

  it('keeps a hosted service’s host to its own kind, so its tokens never get another kind’s rules', () => {
    expect(() => resolve({ kind: 'gitlab', url: 'https://token.actions.githubusercontent.com' })).toThrow(/is a github issuer/);
    expect(() => resolve({ kind: 'oidc', url: 'https://accounts.google.com' })).toThrow(/is a google issuer/);
    expect(resolve(`https://oidc.circleci.com/org/${ORG}`).preset.name).toBe('circleci');
    expect(resolve('https://token.actions.githubusercontent.com/octocat-inc').preset.name).toBe('github');
    expect(() => resolve('https://oidc.circleci.com/org/acme')).toThrow(/not a circleci issuer URL/);
    expect(resolve('https://idp.acme.dev').preset.name).toBe('oidc');
  });

  it("asks a policy for the kind of a bare URL only a self-managed deployment's path has, which would otherwise be a plain OIDC issuer", () => {
    expect(problems({ 'p.yaml': policy('https://ghes.acme.dev/_services/token') })).toEqual([
      'https://ghes.acme.dev/_services/token has the path of a GitHub Enterprise Server issuer: write issuer: { kind: github, url: https://ghes.acme.dev/_services/token } ' +
        'so its rules hold (tenant pins, claim types, case folding), or { kind: oidc, url: https://ghes.acme.dev/_services/token } if it is not one',
    ]);
    expect(problems({ 'p.yaml': policy('https://git.acme.dev/api/actions') })).toEqual([
      expect.stringMatching(/Forgejo instance issuer: write issuer: \{ kind: forgejo,/),
    ]);
    expect(problems({ 'p.yaml': policy(`https://circleci.acme.dev/org/${ORG}`) })).toEqual([
      expect.stringMatching(/CircleCI server, per organization issuer: write issuer: \{ kind: circleci,/),
    ]);
    // Written with its kind, either way, it loads; a path any issuer may have stays a plain OIDC issuer.
    expect(load({ 'p.yaml': policy('{ kind: github, url: "https://ghes.acme.dev/_services/token" }', 'repository_owner_id: "1"') }).policies).toHaveLength(1);
    expect(load({ 'p.yaml': policy('{ kind: oidc, url: "https://ghes.acme.dev/_services/token" }') }).policies).toHaveLength(1);
    expect(load({ 'p.yaml': policy('https://gitlab.acme.dev') }).policies[0]?.issuer.preset.name).toBe('oidc');
    // A hosted service's own URL has the path of its self-managed twin (CircleCI's /org/<uuid>), and is that service's.
    expect(load({ 'p.yaml': policy(`https://oidc.circleci.com/org/${ORG}`) }).policies[0]?.issuer.deployment).toBe('CircleCI cloud, per organization');
    // Naming the issuer to explain or test a request only looks the policies' issuers up: the resolver takes the bare URL.
    expect(resolve('https://ghes.acme.dev/_services/token').preset.name).toBe('oidc');
  });

  it('lets a loopback issuer stand in for a hosted one in development, still checking its path', () => {
    expect(resolve({ kind: 'circleci', url: `http://127.0.0.1:9000/org/${ORG}` }, true)).toMatchObject({ deployment: 'CircleCI cloud, per organization' });
    expect(() => resolve({ kind: 'circleci', url: 'http://127.0.0.1:9000/org/acme' }, true)).toThrow(/not a circleci issuer URL/);
    expect(() => resolve({ kind: 'circleci', url: `http://127.0.0.1:9000/org/${ORG}` }, false)).toThrow(/KEYWAY_ALLOW_HTTP_LOOPBACK/);
  });

  it('binds the tenant a per-tenant issuer URL names to the claim that names it', () => {
    expect(resolve({ kind: 'circleci', url: `https://oidc.circleci.com/org/${ORG}` }).boundClaims).toEqual({ 'oidc.circleci.com/org-id': ORG });
    expect(resolve({ kind: 'azure-devops', url: `https://vstoken.dev.azure.com/${ADO_ORG}` }).boundClaims).toEqual({ org_id: ADO_ORG });
    expect(resolve({ kind: 'circleci', url: 'https://oidc.circleci.com' }).boundClaims).toEqual({});
  });

  it('says which issuers serve many tenants, deployment by deployment, and which claims pin one', () => {
    const root = resolve({ kind: 'circleci', url: 'https://oidc.circleci.com' });
    expect(root.shared).toBe(true);
    expect(root.preset.tenantClaims).toContain('oidc.circleci.com/org-id');
    expect(resolve({ kind: 'circleci', url: `https://oidc.circleci.com/org/${ORG}` }).shared).toBe(false);
    for (const name of ['github', 'buildkite', 'google', 'terraform']) expect(resolve(name).shared).toBe(true);
    expect(resolve('buildkite').preset.tenantClaims).toEqual(['organization_id']);
    expect(resolve('google').preset.tenantClaims).toEqual(['sub']);
  });
});

describe('overrides on a policy’s issuer', () => {
  it('lengthens the maximum token age and adds asymmetric algorithms', () => {
    const set = load({ 'p.yaml': policy('{ kind: gitlab, url: https://gitlab.acme.dev, max_token_age: 3h, extra_algorithms: [ES256] }', 'project_id: "20"') });
    expect(set.issuer('https://gitlab.acme.dev')).toMatchObject({ maxTokenAgeSeconds: 3 * 3600, algorithms: ['RS256', 'ES256'] });
    expect(
      load({ 'p.yaml': policy('{ kind: github, max_token_age: 5m }', 'repository_id: "1"') }).issuer('https://token.actions.githubusercontent.com')
        ?.maxTokenAgeSeconds,
    ).toBe(300);
    expect(
      load({ 'p.yaml': policy('{ kind: gitlab, url: https://gitlab.acme.dev, max_token_age: 86400s }', 'project_id: "20"') }).issuer('https://gitlab.acme.dev'),
    ).toMatchObject({ maxTokenAgeSeconds: 24 * 3600 });
  });

  it.each([
    ['none', '{ kind: oidc, url: https://idp.acme.dev, extra_algorithms: [none] }', /never none or HMAC/],
    ['HMAC', '{ kind: oidc, url: https://idp.acme.dev, extra_algorithms: [HS256] }', /never none or HMAC/],
    ['an age above a day', '{ kind: gitlab, url: https://gitlab.acme.dev, max_token_age: 25h }', /above 24h/],
    ['an age a second above a day', '{ kind: gitlab, url: https://gitlab.acme.dev, max_token_age: 86401s }', /above 24h/],
    ['an unknown override', '{ kind: gitlab, url: https://gitlab.acme.dev, max_age: 2h }', /issuer is .* \{ kind, url, max_token_age, extra_algorithms \}/],
  ])('refuses %s', (_name, issuer, message) => {
    expect(problems({ 'p.yaml': policy(issuer, 'sub: x') }).join('\n')).toMatch(message);
  });

  it('requires every policy naming one issuer to give it the same kind and overrides', () => {
    const found = problems({
      'a.yaml': policy('{ kind: gitlab, url: https://gitlab.acme.dev, max_token_age: 3h }', 'project_id: "20"'),
      'b.yaml': policy('{ kind: gitlab, url: https://gitlab.acme.dev }', 'project_id: "21"'),
      'c.yaml': policy('https://gitlab.acme.dev', 'project_id: "22"'),
    });
    expect(found).toHaveLength(2);
    expect(found[0]).toMatch(
      /gitlab \(algorithms RS256; max token age 3600s; diagnostics none\) here but gitlab \(algorithms RS256; max token age 10800s; diagnostics none\) in a\.yaml/,
    );
    expect(found[1]).toMatch(/oidc .* here but gitlab/);
  });
});

describe('single use and fixed audiences', () => {
  const ado = `{ kind: azure-devops, url: "https://vstoken.dev.azure.com/${ADO_ORG}" }`;

  it('is off unless a policy asks for it', () => {
    const set = load({ 'a.yaml': policy('github', 'repository_id: "1"'), 'b.yaml': policy('github', 'repository_id: "2"', 'single_use: true\n') });
    expect(set.policies.map((p) => [p.id, p.singleUse])).toEqual([
      ['a', false],
      ['b', true],
    ]);
  });

  it('is forced for Azure DevOps, whose audience is fixed, and the policy audience defaults to it', () => {
    const [adoPolicy] = load({ 'p.yaml': policy(ado, 'prj_id: 271ef6f7-5998-4b0f-86fb-4b54d9129990') }).policies;
    expect(adoPolicy).toMatchObject({ singleUse: true, subjectAudience: 'api://AzureADTokenExchange' });
    const explicit = load({ 'p.yaml': policy(ado, 'def_id: "1"', 'subject_audience: api://AzureADTokenExchange\nsingle_use: true\n') }).policies[0];
    expect(explicit).toMatchObject({ singleUse: true, subjectAudience: 'api://AzureADTokenExchange' });
  });

  it('refuses an Azure DevOps policy that turns single use off or expects another audience', () => {
    expect(problems({ 'p.yaml': policy(ado, 'def_id: "1"', 'single_use: false\n') })[0]).toMatch(/single_use cannot be false/);
    expect(problems({ 'p.yaml': policy(ado, 'def_id: "1"', 'subject_audience: https://keyway.test\n') })[0]).toMatch(
      /always carry aud api:\/\/AzureADTokenExchange/,
    );
  });
});

describe('claim formats: a pinned value the issuer never sends is a load error, not a policy that silently never fires', () => {
  it.each([
    [
      'a Bitbucket UUID without its braces',
      '{ kind: bitbucket, url: https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc }',
      'workspaceUuid: 5a4f2c9e-1b3d-4e8f-9a7c-6d5e4f3a2b10',
      /in braces/,
    ],
    ['a person’s email on Google', 'google', 'email: alice@gmail.com', /service account email/],
    ['a service account email where its unique id belongs', 'google', 'sub: deployer@acme.iam.gserviceaccount.com', /numeric unique id/],
    ['an owner name where GitHub sends its id', 'github', 'repository_owner_id: [acme, "1200934"]', /"acme" can never match/],
    [
      'an upper-case CircleCI UUID',
      `{ kind: circleci, url: "https://oidc.circleci.com/org/${ORG}" }`,
      `oidc.circleci.com/project-id: ${ORG.toUpperCase()}`,
      /lower-case UUID/,
    ],
    ['a Terraform organization name where its id belongs', 'terraform', 'terraform_organization_id: my-org', /org-GRNbCjYNpBB6NEH9/],
  ])('refuses %s', (_name, issuer, match, message) => {
    expect(problems({ 'p.yaml': policy(issuer, match) })[0]).toMatch(message);
  });

  it('holds for deny policies too, whose dead line would silently let everything through', () => {
    const deny =
      'version: 1\neffect: deny\nissuer: { kind: bitbucket, url: https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc }\nmatch:\n  repositoryUuid: 7c1e9d2a-3b4f-4a6e-8d9c-0f1e2d3c4b5a\n';
    expect(problems({ 'p.yaml': deny })[0]).toMatch(/repositoryUuid/);
  });

  it('accepts values of the right form, and leaves globs and regexes alone', () => {
    const set = load({
      'a.yaml': policy(
        '{ kind: bitbucket, url: https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc }',
        'workspaceUuid: "{5a4f2c9e-1b3d-4e8f-9a7c-6d5e4f3a2b10}"',
      ),
      // Each pins its tenant too: a shared issuer's policy without one is refused (lint rule unpinned-tenant).
      'b.yaml': policy('google', 'email: Deployer@Acme-Prod.iam.gserviceaccount.com\n  sub: "110987294251917851298"'),
      'c.yaml': policy('github', 'repository_owner_id: { glob: "12*" }\n  repository_id: "734201"'),
    });
    expect(set.policies).toHaveLength(3);
  });
});
