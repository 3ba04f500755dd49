import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import type { Reason } from '../../src/core/errors/reasons.ts';
import type { OAuthErrorCode } from '../../src/http/oauth-errors.ts';
import * as fixtures from '../support/ci-token-fixtures.ts';
import { atIssuer, readmePolicy } from '../support/readme-policies.ts';
import { newTestSite, TestIssuer, type SigningAlg } from '../support/test-issuer.ts';
import { exchangeForm, expectRefusal, postToken, type BrokerHarness, type StartBroker } from './exchange-suite.ts';

const AKS_TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const AKS_ISSUER_ID = '4b6d8f0a-2c3e-4a5b-8c7d-9e0f1a2b3c4d';

const kind = (name: string, url: string): string => `{ kind: ${name}, url: "${url}" }`;

/**
 * Every issuer preset end to end, and every trap the CI reference documents. Each CI system is
 * stood in for by the test issuer server at its exact issuer path, signing the documented
 * token payload; each policy is the README's, with only its issuer line pointed at the stand-in.
 */
export function issuerCatalogSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`issuer catalog on ${runtime}`, { shuffle: true }, () => {
    let broker: BrokerHarness;
    let aud: string;
    const ci = {} as Record<
      | 'github'
      | 'githubEnterprise'
      | 'ghes'
      | 'gitlab'
      | 'gitlabSelfManaged'
      | 'circleciOrg'
      | 'circleciRoot'
      | 'buildkite'
      | 'bitbucket'
      | 'azureDevops'
      | 'google'
      | 'eks'
      | 'gke'
      | 'aks'
      | 'selfManagedCluster'
      | 'terraform'
      | 'terraformEnterprise'
      | 'forgejo'
      | 'otherForgejo',
      TestIssuer
    >;

    const exchange = async (token: string, extra: Record<string, string> = {}) => {
      const result = await postToken(broker, exchangeForm(token, extra));
      expect(result.headers.get('cache-control')).toBe('no-store');
      const event = (await broker.auditEvent(result.body['audit_event_id'] as string)) as AuditEvent;
      return { ...result, event };
    };
    const granted = async (token: string, policy: string, extra: Record<string, string> = {}) => {
      const result = await exchange(token, extra);
      expect(result.event.detail).toBeUndefined();
      expect(result.status).toBe(200);
      expect(result.body['access_token']).toBeTypeOf('string');
      expect(result.event).toMatchObject({ decision: 'granted', policy: { granted_by: policy } });
      return result;
    };
    const refused = async (token: string, reason: Reason, error: OAuthErrorCode = 'invalid_request', extra: Record<string, string> = {}) => {
      const result = await postToken(broker, exchangeForm(token, extra));
      return { ...result, event: await expectRefusal(broker, result, { error, reason }) };
    };
    const sign = (issuer: TestIssuer, claims: Record<string, unknown>, alg?: SigningAlg) => issuer.sign(claims, alg === undefined ? {} : { alg });
    /** The documented token with one claim changed at a time (undefined: left out): each is refused, the record naming that claim. */
    const refusedEach = async (issuer: TestIssuer, token: Record<string, unknown>, changes: readonly (readonly [claim: string, value: unknown])[]) => {
      for (const [claim, value] of changes) {
        const { [claim]: _dropped, ...rest } = token;
        const { event } = await refused(await sign(issuer, value === undefined ? rest : { ...rest, [claim]: value }), 'claims_invalid');
        expect(event.detail, `${claim}: ${JSON.stringify(value)}`).toMatch(new RegExp(`claim ${claim}\\b`));
      }
    };
    const without = (...claims: string[]) => claims.map((claim) => [claim, undefined] as const);
    /** A number in a string with something before it: an id of another form. */
    const notNumbers = (...claims: string[]) => claims.map((claim) => [claim, 'x20'] as const);

    beforeAll(async () => {
      const base = issuerBase();
      const [github, gitlab, circleci, buildkite, bitbucket, azure, google, kubernetes, terraform, tfe, forgejo, otherForgejo] = await Promise.all(
        Array.from({ length: 12 }, () => newTestSite(base)),
      );
      Object.assign(ci, {
        github: new TestIssuer(github ?? ''),
        githubEnterprise: new TestIssuer(`${github}/octo-inc`),
        ghes: new TestIssuer(`${github}/_services/token`),
        gitlab: new TestIssuer(gitlab ?? ''),
        gitlabSelfManaged: new TestIssuer(`${gitlab}/gitlab`),
        circleciOrg: new TestIssuer(`${circleci}/org/${fixtures.CIRCLECI_ORG}`),
        circleciRoot: new TestIssuer(circleci ?? ''),
        buildkite: new TestIssuer(buildkite ?? ''),
        bitbucket: new TestIssuer(`${bitbucket}/2.0/workspaces/acme/pipelines-config/identity/oidc`),
        azureDevops: new TestIssuer(`${azure}/${fixtures.AZURE_DEVOPS_ORG}`),
        google: new TestIssuer(google ?? ''),
        eks: new TestIssuer(`${kubernetes}/id/B716D3B5C1E54AB7B4A57B8A63D5F8C1`),
        gke: new TestIssuer(`${kubernetes}/v1/projects/acme/locations/europe-west1/clusters/prod`),
        aks: new TestIssuer(`${kubernetes}/${AKS_TENANT}/${AKS_ISSUER_ID}/`),
        selfManagedCluster: new TestIssuer(kubernetes ?? ''),
        terraform: new TestIssuer(terraform ?? ''),
        terraformEnterprise: new TestIssuer(tfe ?? ''),
        forgejo: new TestIssuer(`${forgejo}/api/actions`),
        otherForgejo: new TestIssuer(`${otherForgejo}/api/actions`),
      });
      // Clusters sign with ECDSA keys as often as with RSA ones.
      await Promise.all([ci.gke.rotate({ alg: 'ES256' }), ci.aks.rotate({ alg: 'ES384' }), ci.selfManagedCluster.rotate({ alg: 'ES512' })]);

      const kubernetesPolicy = readmePolicy('kubernetes');
      broker = await start({
        'ci/github.yaml': atIssuer(readmePolicy('github'), kind('github', ci.github.url)),
        'ci/github-guardrail.yaml': atIssuer(readmePolicy('github-guardrail'), kind('github', ci.github.url)),
        'ci/github-enterprise.yaml': atIssuer(readmePolicy('github'), kind('github', ci.githubEnterprise.url)),
        'ci/github-server.yaml': atIssuer(readmePolicy('github'), kind('github', ci.ghes.url)),
        'ci/gitlab.yaml': atIssuer(readmePolicy('gitlab'), kind('gitlab', ci.gitlab.url)),
        'ci/gitlab-self-managed.yaml': atIssuer(readmePolicy('gitlab'), kind('gitlab', ci.gitlabSelfManaged.url)),
        'ci/circleci.yaml': atIssuer(readmePolicy('circleci'), kind('circleci', ci.circleciOrg.url)),
        'ci/circleci-root.yaml': atIssuer(readmePolicy('circleci-root'), kind('circleci', ci.circleciRoot.url)),
        'ci/buildkite.yaml': atIssuer(readmePolicy('buildkite'), kind('buildkite', ci.buildkite.url)),
        'ci/bitbucket.yaml': atIssuer(readmePolicy('bitbucket'), kind('bitbucket', ci.bitbucket.url)),
        'ci/azure-devops.yaml': atIssuer(readmePolicy('azure-devops'), kind('azure-devops', ci.azureDevops.url)),
        'ci/google.yaml': atIssuer(readmePolicy('google'), kind('google', ci.google.url)),
        'ci/kubernetes-eks.yaml': atIssuer(kubernetesPolicy, kind('kubernetes', ci.eks.url)),
        'ci/kubernetes-gke.yaml': atIssuer(kubernetesPolicy, kind('kubernetes', ci.gke.url)),
        'ci/kubernetes-aks.yaml': atIssuer(kubernetesPolicy, kind('kubernetes', ci.aks.url)),
        'ci/kubernetes-self-managed.yaml': atIssuer(kubernetesPolicy, kind('kubernetes', ci.selfManagedCluster.url)),
        'ci/terraform-apply.yaml': atIssuer(readmePolicy('terraform-apply'), kind('terraform', ci.terraform.url)),
        'ci/terraform-plan.yaml': atIssuer(readmePolicy('terraform-plan'), kind('terraform', ci.terraform.url)),
        'ci/terraform-enterprise.yaml': atIssuer(readmePolicy('terraform-apply'), kind('terraform', ci.terraformEnterprise.url)),
        'ci/forgejo.yaml': atIssuer(readmePolicy('forgejo'), kind('forgejo', ci.forgejo.url)),
      });
      aud = broker.issuer;
    });
    afterAll(() => broker.close());

    describe('GitHub Actions', () => {
      it('accepts the documented token from github.com, an enterprise unique issuer and GitHub Enterprise Server', async () => {
        const { event } = await granted(await sign(ci.github, fixtures.githubToken(ci.github.url, aud)), 'ci/github');
        expect(event.claims).toMatchObject({
          repository_id: '74',
          repository_owner_id: '65',
          environment: 'production',
          job_workflow_ref: expect.stringContaining('octo-automation'),
        });
        await granted(
          await sign(ci.githubEnterprise, fixtures.githubToken(ci.githubEnterprise.url, aud, { enterprise: 'octo-inc', enterprise_id: '11' })),
          'ci/github-enterprise',
        );
        await granted(
          await sign(ci.ghes, fixtures.githubToken(ci.ghes.url, aud, { sub: 'repo:octo-org/octo-repo:environment:production' })),
          'ci/github-server',
        );
      });

      it('trap: pull_request_target runs with the base repository’s main ref, and is refused', async () => {
        const token = fixtures.githubToken(ci.github.url, aud, { event_name: 'pull_request_target', head_ref: 'contributor-patch', base_ref: 'main' });
        const { event } = await refused(await sign(ci.github, token), 'denied_by_policy');
        expect(event.policy?.denied_by).toEqual(['ci/github-guardrail']);
        // Without the guardrail, the policy's event_name allow-list refuses it on its own.
        await refused(await sign(ci.githubEnterprise, { ...token, iss: ci.githubEnterprise.url }), 'no_policy_matched');
      });

      it('trap: a branch whose name differs from the pinned reusable workflow’s ref only by case is refused; owner and repository case is not', async () => {
        // Git refs are case-sensitive: anyone who can push may create MAIN, without the protection main has.
        const pinned = 'octo-org/octo-automation/.github/workflows/deploy.yml@refs/heads/main';
        for (const ref of ['refs/heads/MAIN', 'refs/heads/Main']) {
          const token = fixtures.githubToken(ci.github.url, aud, { job_workflow_ref: pinned.replace('refs/heads/main', ref) });
          await refused(await sign(ci.github, token), 'no_policy_matched');
        }
        const renamed = fixtures.githubToken(ci.github.url, aud, { job_workflow_ref: 'Octo-Org/Octo-Automation/.github/workflows/deploy.yml@refs/heads/main' });
        await granted(await sign(ci.github, renamed), 'ci/github');
      });

      it('trap: a resurrected owner and repository name, with new ids, is refused', async () => {
        const resurrected = fixtures.githubToken(ci.github.url, aud, {
          repository_owner_id: '90210',
          repository_id: '4417000',
          sub: 'repo:octo-org@90210/octo-repo@4417000:environment:production',
        });
        await refused(await sign(ci.github, resurrected), 'no_policy_matched');
      });
    });

    describe('GitLab CI/CD', () => {
      it('accepts the documented token from gitlab.com and from a self-managed instance with a relative root', async () => {
        const { event } = await granted(await sign(ci.gitlab, fixtures.gitlabToken(ci.gitlab.url, aud)), 'ci/gitlab');
        expect(event.claims).toMatchObject({ project_id: '20', job_project_id: '20', ref_protected: 'true', pipeline_source: 'push' });
        await granted(await sign(ci.gitlabSelfManaged, fixtures.gitlabToken(ci.gitlabSelfManaged.url, aud)), 'ci/gitlab-self-managed');
      });

      it('trap: a user login ID token, signed by the same keys, has no CI claims and is refused', async () => {
        const { event } = await refused(await sign(ci.gitlab, fixtures.gitlabUserLoginToken(ci.gitlab.url, aud)), 'claims_invalid');
        expect(event.detail).toMatch(/project_id/);
      });

      it('refuses a token without any one of the claims only CI job tokens carry', async () => {
        await refusedEach(ci.gitlab, fixtures.gitlabToken(ci.gitlab.url, aud), without('project_id', 'pipeline_id', 'job_id', 'ref', 'ref_type'));
      });

      it('refuses ref_protected as a JSON boolean, or as a list: GitLab sends it as the string "true"', async () => {
        await refusedEach(ci.gitlab, fixtures.gitlabToken(ci.gitlab.url, aud), [
          ['ref_protected', true],
          ['ref_protected', ['true']],
        ]);
      });

      it('refuses an id that is not a number in a string', async () => {
        const ids = notNumbers('project_id', 'namespace_id', 'job_project_id', 'job_namespace_id', 'pipeline_id', 'job_id', 'user_id');
        await refusedEach(ci.gitlab, fixtures.gitlabToken(ci.gitlab.url, aud), ids);
      });

      it('trap: a fork merge request pipeline running in the parent project is refused', async () => {
        const fork = {
          project_id: '31',
          project_path: 'contributor/my-project',
          namespace_id: '99',
          namespace_path: 'contributor',
          pipeline_source: 'merge_request_event',
          sub: 'project_path:contributor/my-project:ref_type:branch:ref:main',
        };
        // Since GitLab 18.2.2: project_* name the fork, job_project_* the parent it runs in.
        await refused(await sign(ci.gitlab, fixtures.gitlabToken(ci.gitlab.url, aud, fork)), 'no_policy_matched');
        // Before the fix, project_* named the parent and job_project_* did not exist: the job_project_id line fails.
        const {
          job_project_id: _a,
          job_project_path: _b,
          job_namespace_id: _c,
          job_namespace_path: _d,
          ...older
        } = fixtures.gitlabToken(ci.gitlab.url, aud, { pipeline_source: 'merge_request_event' });
        await refused(await sign(ci.gitlab, older), 'no_policy_matched');
      });
    });

    describe('CircleCI', () => {
      it('accepts the documented token from an organization’s issuer and from the root issuer', async () => {
        const { event } = await granted(await sign(ci.circleciOrg, fixtures.circleciToken(ci.circleciOrg.url, aud)), 'ci/circleci');
        expect(event.claims).toMatchObject({ 'oidc.circleci.com/org-id': fixtures.CIRCLECI_ORG, 'oidc.circleci.com/ssh-rerun': false });
        await granted(await sign(ci.circleciRoot, fixtures.circleciToken(ci.circleciRoot.url, aud)), 'ci/circleci-root');
      });

      it('trap: a job rerun with SSH is refused, and ssh-rerun must be a boolean', async () => {
        await refused(
          await sign(ci.circleciOrg, fixtures.circleciToken(ci.circleciOrg.url, aud, { 'oidc.circleci.com/ssh-rerun': true })),
          'no_policy_matched',
        );
        await refused(
          await sign(ci.circleciOrg, fixtures.circleciToken(ci.circleciOrg.url, aud, { 'oidc.circleci.com/ssh-rerun': 'false' })),
          'claims_invalid',
        );
      });

      it('trap: the root issuer serves every organization, so another organization’s token is refused by the org pin', async () => {
        const other = fixtures.circleciToken(ci.circleciRoot.url, aud, { 'oidc.circleci.com/org-id': '1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9' });
        await refused(await sign(ci.circleciRoot, other), 'no_policy_matched');
      });

      it('refuses a token from an organization’s issuer that names another organization', async () => {
        const other = fixtures.circleciToken(ci.circleciOrg.url, aud, { 'oidc.circleci.com/org-id': '1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9' });
        const { event } = await refused(await sign(ci.circleciOrg, other), 'claims_invalid');
        expect(event.detail).toMatch(/org-id/);
      });
    });

    describe('Buildkite', () => {
      it('accepts the documented token, a null step_key included', async () => {
        const { event } = await granted(await sign(ci.buildkite, fixtures.buildkiteToken(ci.buildkite.url, aud)), 'ci/buildkite');
        expect(event.claims).toMatchObject({ organization_id: '0184990a-4776-4e4f-b0a0-2f9bd7a4d6ec', build_number: 1 });
        await granted(await sign(ci.buildkite, fixtures.buildkiteToken(ci.buildkite.url, aud, { step_key: null })), 'ci/buildkite');
      });

      it('trap: another organization on the shared issuer, even under the same slug, is refused', async () => {
        await refused(
          await sign(ci.buildkite, fixtures.buildkiteToken(ci.buildkite.url, aud, { organization_id: '01849911-0000-4000-8000-000000000001' })),
          'no_policy_matched',
        );
      });

      it('refuses an id that is not a lower-case UUID: in upper case, or with a digit more', async () => {
        const uuid = fixtures.buildkiteToken(ci.buildkite.url, aud)['job_id'] as string;
        const ids = ['organization_id', 'pipeline_id', 'cluster_id', 'queue_id', 'build_id', 'job_id'].flatMap((claim) => [
          [claim, uuid.toUpperCase()] as const,
          [claim, `${uuid}0`] as const,
        ]);
        await refusedEach(ci.buildkite, fixtures.buildkiteToken(ci.buildkite.url, aud), ids);
      });

      it('trap: a branch whose name differs from the pinned one only by case is another branch, which anyone who can start a build may name', async () => {
        await refused(await sign(ci.buildkite, fixtures.buildkiteToken(ci.buildkite.url, aud, { build_branch: 'Main' })), 'no_policy_matched');
      });

      it('refuses a token requested without --claim organization_id, and one without any other claim every job token carries', async () => {
        const token = fixtures.buildkiteToken(ci.buildkite.url, aud);
        await refusedEach(ci.buildkite, token, without('organization_id', 'organization_slug', 'pipeline_slug', 'build_number', 'job_id'));
      });
    });

    describe('Bitbucket Pipelines', () => {
      it('accepts the documented token, whose aud is an array', async () => {
        const { event } = await granted(await sign(ci.bitbucket, fixtures.bitbucketToken(ci.bitbucket.url, aud)), 'ci/bitbucket');
        expect(event.claims).toMatchObject({ workspaceUuid: '{5a4f2c9e-1b3d-4e8f-9a7c-6d5e4f3a2b10}' });
      });

      it('refuses another workspace that took over the slug in the issuer URL', async () => {
        await refused(
          await sign(ci.bitbucket, fixtures.bitbucketToken(ci.bitbucket.url, aud, { workspaceUuid: '{6b5a3d0f-2c4e-4f90-8b8d-7e6f5a4b3c21}' })),
          'no_policy_matched',
        );
      });
    });

    describe('Azure DevOps Pipelines', () => {
      it('accepts the documented token with its fixed audience', async () => {
        const { event } = await granted(await sign(ci.azureDevops, fixtures.azureDevopsToken(ci.azureDevops.url)), 'ci/azure-devops');
        expect(event.claims).toMatchObject({ org_id: fixtures.AZURE_DEVOPS_ORG, prj_id: '271ef6f7-5998-4b0f-86fb-4b54d9129990', def_id: '1' });
      });

      it('trap: a token meant for Entra ID is also one for keyway, so a second exchange of it is refused as replayed', async () => {
        const token = await sign(ci.azureDevops, fixtures.azureDevopsToken(ci.azureDevops.url));
        const first = await granted(token, 'ci/azure-devops');
        const { event } = await refused(token, 'replayed');
        expect(event.detail).toContain(first.event.id);
        expect(event.subject_token?.sha256).toBe(first.event.subject_token?.sha256);
      });

      it('refuses a token whose org_id is not the organization its issuer names (one key set signs for all)', async () => {
        await refused(
          await sign(ci.azureDevops, fixtures.azureDevopsToken(ci.azureDevops.url, { org_id: '5d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6' })),
          'claims_invalid',
        );
      });
    });

    describe('Google', () => {
      it('accepts the documented service account token', async () => {
        const { event } = await granted(await sign(ci.google, fixtures.googleToken(ci.google.url, aud)), 'ci/google');
        expect(event.claims).toMatchObject({ sub: '110987294251917851298', '/google/compute_engine/project_id': 'eng-serenity-231813' });
      });

      it('trap: a person’s Google sign-in token from the same issuer is refused, with or without an email', async () => {
        const person = fixtures.googleEndUserToken(ci.google.url, aud);
        await refused(await sign(ci.google, person), 'claims_invalid');
        const { email: _email, email_verified: _verified, ...withoutEmail } = person;
        await refused(await sign(ci.google, withoutEmail), 'claims_invalid');
      });

      it('trap: a different service account, which anyone can create and mint for any audience, is refused', async () => {
        const other = fixtures.googleToken(ci.google.url, aud, {
          sub: '104857600000000000001',
          azp: '104857600000000000001',
          email: 'deployer@attacker-project.iam.gserviceaccount.com',
        });
        await refused(await sign(ci.google, other), 'no_policy_matched');
      });

      it('refuses an email that is not verified', async () => {
        await refused(await sign(ci.google, fixtures.googleToken(ci.google.url, aud, { email_verified: false })), 'claims_invalid');
      });
    });

    describe('Kubernetes service accounts', () => {
      it('accepts a projected token from EKS (RS256), GKE (ES256), AKS (ES384, trailing slash) and a self-managed cluster (ES512)', async () => {
        const { event } = await granted(await sign(ci.eks, fixtures.kubernetesToken(ci.eks.url, aud)), 'ci/kubernetes-eks');
        expect(event.claims).toMatchObject({ '/kubernetes.io/namespace': 'ci', '/kubernetes.io/serviceaccount/name': 'deployer' });
        await granted(await sign(ci.gke, fixtures.kubernetesToken(ci.gke.url, aud), 'ES256'), 'ci/kubernetes-gke');
        await granted(await sign(ci.aks, fixtures.kubernetesToken(ci.aks.url, aud), 'ES384'), 'ci/kubernetes-aks');
        await granted(await sign(ci.selfManagedCluster, fixtures.kubernetesToken(ci.selfManagedCluster.url, aud), 'ES512'), 'ci/kubernetes-self-managed');
      });

      it('refuses an AKS token whose iss lacks the trailing slash: issuers match byte for byte', async () => {
        await refused(await sign(ci.aks, fixtures.kubernetesToken(ci.aks.url.slice(0, -1), aud), 'ES384'), 'issuer_untrusted');
      });

      it('trap: a service account of the same name in another namespace is refused', async () => {
        const other = fixtures.kubernetesToken(ci.eks.url, aud, {
          sub: 'system:serviceaccount:sandbox:deployer',
          'kubernetes.io': { namespace: 'sandbox', serviceaccount: { name: 'deployer', uid: '9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d' } },
        });
        await refused(await sign(ci.eks, other), 'no_policy_matched');
      });

      it('trap: a year-long token is refused, however fresh, and so is one issued hours ago', async () => {
        const iat = Math.floor(Date.now() / 1000);
        const yearLong = (issuedAt: number) =>
          fixtures.kubernetesToken(ci.eks.url, aud, {
            iat: issuedAt,
            nbf: issuedAt,
            exp: issuedAt + 365 * 24 * 3600,
            'kubernetes.io': { ...(fixtures.kubernetesToken(ci.eks.url, aud)['kubernetes.io'] as object), warnafter: issuedAt + 3607 },
          });
        await refused(await sign(ci.eks, yearLong(iat)), 'token_lifetime_too_long');
        await refused(await sign(ci.eks, yearLong(iat - 2 * 3600)), 'token_too_old');
        // The default audience is the API server's, which no keyway policy names.
        await refused(await sign(ci.eks, fixtures.kubernetesToken(ci.eks.url, ci.eks.url)), 'audience_mismatch');
      });

      it('takes a token that lives exactly the 24h cap, and refuses one that lives a second longer', async () => {
        const iat = Math.floor(Date.now() / 1000);
        const living = (seconds: number) => fixtures.kubernetesToken(ci.eks.url, aud, { iat, nbf: iat, exp: iat + seconds });
        await granted(await sign(ci.eks, living(24 * 3600)), 'ci/kubernetes-eks');
        await refused(await sign(ci.eks, living(24 * 3600 + 1)), 'token_lifetime_too_long');
      });
    });

    describe('HCP Terraform and Terraform Enterprise', () => {
      it('grants the apply phase write access, at HCP Terraform and at a Terraform Enterprise instance', async () => {
        const { body } = await granted(await sign(ci.terraform, fixtures.terraformToken(ci.terraform.url, aud)), 'ci/terraform-apply');
        expect(body['scope']).toBe('infra:write infra:read');
        await granted(await sign(ci.terraformEnterprise, fixtures.terraformToken(ci.terraformEnterprise.url, aud)), 'ci/terraform-enterprise');
      });

      it('trap: the plan phase, which runs unreviewed code, gets read access only', async () => {
        const plan = fixtures.terraformToken(ci.terraform.url, aud, {
          terraform_run_phase: 'plan',
          sub: 'organization:my-org:project:Default Project:workspace:my-workspace:run_phase:plan',
        });
        const { body } = await granted(await sign(ci.terraform, plan), 'ci/terraform-plan');
        expect(body['scope']).toBe('infra:read');
        await refused(await sign(ci.terraform, plan), 'scope_not_granted', 'invalid_scope', { scope: 'infra:write' });
      });

      it('refuses another organization on the shared issuer', async () => {
        await refused(
          await sign(ci.terraform, fixtures.terraformToken(ci.terraform.url, aud, { terraform_organization_id: 'org-AnotherOrg12345' })),
          'no_policy_matched',
        );
      });
    });

    describe('Forgejo Actions', () => {
      it('accepts the documented token', async () => {
        const { event } = await granted(await sign(ci.forgejo, fixtures.forgejoToken(ci.forgejo.url, aud)), 'ci/forgejo');
        expect(event.claims).toMatchObject({ repository: 'acme/api', ref_protected: 'true' });
      });

      it('refuses a token without any one of the claims every Actions token carries', async () => {
        await refusedEach(ci.forgejo, fixtures.forgejoToken(ci.forgejo.url, aud), without('repository', 'repository_owner', 'ref', 'event_name', 'run_id'));
      });

      it('refuses ref_protected as a JSON boolean, or as a list: Forgejo sends it as the string "true"', async () => {
        await refusedEach(ci.forgejo, fixtures.forgejoToken(ci.forgejo.url, aud), [
          ['ref_protected', true],
          ['ref_protected', ['true']],
        ]);
      });

      it('refuses an id that is not a number in a string, from an instance that sends ids', async () => {
        await refusedEach(ci.forgejo, fixtures.forgejoToken(ci.forgejo.url, aud), notNumbers('repository_id', 'repository_owner_id', 'actor_id'));
      });

      it('refuses the same repository name on another instance, which is another issuer', async () => {
        await refused(await sign(ci.otherForgejo, fixtures.forgejoToken(ci.otherForgejo.url, aud)), 'issuer_untrusted');
      });
    });

    it('refuses a token signed with ES256 from GitLab, Buildkite or Forgejo, which sign with RS256 only', async () => {
      for (const [issuer, token] of [
        [ci.gitlab, fixtures.gitlabToken(ci.gitlab.url, aud)],
        [ci.buildkite, fixtures.buildkiteToken(ci.buildkite.url, aud)],
        [ci.forgejo, fixtures.forgejoToken(ci.forgejo.url, aud)],
      ] as const) {
        await refused(await sign(issuer, token, 'ES256'), 'algorithm_not_allowed');
      }
    });
  });
}
