import { describe, expect, it } from 'vitest';
import { AWS_ROLE, AZURE_CLIENT, AZURE_TENANT, GCP_PROVIDER, GCP_SERVICE_ACCOUNT } from '../suites/cloud-exchange-suite.ts';
import { runProcess, writeTree } from './node-harness.ts';

const ISSUER = 'https://keyway.example.com';
const head = `version: 1
issuer: github
match:
  repository_owner_id: "1200934"
  repository_id: "734201"
grant:
`;
const dir = writeTree({
  'policies/aws/deploy.yaml': `${head}  cloud:\n    provider: aws\n    roles: [${AWS_ROLE}]\n    session_tags: { Repository: "{repository}" }\n`,
  'policies/aws/by-env.yaml': `${head}  subject: "repo:{repository}:env:{environment}"\n  cloud:\n    provider: aws\n    roles: [${AWS_ROLE}]\n`,
  'policies/gcp/deploy.yaml': `${head}  cloud:\n    provider: gcp\n    workload_identity_provider: ${GCP_PROVIDER}\n    service_accounts: [${GCP_SERVICE_ACCOUNT}]\n`,
  'policies/azure/deploy.yaml': `${head}  cloud:\n    provider: azure\n    tenant_id: ${AZURE_TENANT}\n    client_ids: [${AZURE_CLIENT}]\n`,
});
const trust = (cloud: string) =>
  runProcess(process.execPath, ['src/cli/main.ts', 'cloud', 'trust', cloud, `${dir}/policies`, '--issuer', ISSUER], { env: { PATH: process.env['PATH'] } });

describe('keyway cloud trust: the exact trust each cloud needs for the policies that grant it', () => {
  it('AWS: one OIDC provider for sts.amazonaws.com; each role trusts exactly the subs of the policies naming it, TagSession only with tags', async () => {
    const result = await trust('aws');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`aws iam create-open-id-connect-provider --url '${ISSUER}' --client-id-list sts.amazonaws.com`);
    expect(result.stdout).toContain('resource "aws_iam_openid_connect_provider" "keyway" {');
    const document = JSON.parse(/--policy-document '([^']+)'/.exec(result.stdout)?.[1] ?? '{}') as { Statement: unknown[] };
    expect(/--role-name '([^']+)'/.exec(result.stdout)?.[1]).toBe('deploy');
    const principal = { Federated: 'arn:aws:iam::123456789012:oidc-provider/keyway.example.com' };
    const action = ['sts:AssumeRoleWithWebIdentity', 'sts:TagSession'];
    expect(document.Statement).toEqual([
      {
        Effect: 'Allow',
        Principal: principal,
        Action: action,
        Condition: { StringEquals: { 'keyway.example.com:aud': 'sts.amazonaws.com', 'keyway.example.com:sub': ['policy:aws/deploy'] } },
      },
      {
        Effect: 'Allow',
        Principal: principal,
        Action: action,
        Condition: { StringEquals: { 'keyway.example.com:aud': 'sts.amazonaws.com' }, StringLike: { 'keyway.example.com:sub': ['repo:*:env:*'] } },
      },
    ]);
  });

  it('Google: the provider with keyway as issuer, google.subject from sub, a condition admitting only these subs, and the service account binding', async () => {
    const result = await trust('gcp');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('attribute_condition                = "assertion.sub in [\'policy:gcp/deploy\']"');
    expect(result.stdout).toContain(`oidc { issuer_uri = "${ISSUER}" }`);
    expect(result.stdout).toContain(
      "gcloud iam workload-identity-pools providers create-oidc 'keyway' --project='123456789' --location=global --workload-identity-pool='keyway' " +
        `--issuer-uri='${ISSUER}' --attribute-mapping=google.subject=assertion.sub --attribute-condition='assertion.sub in ['\\''policy:gcp/deploy'\\'']'`,
    );
    expect(result.stdout).toContain(
      `gcloud iam service-accounts add-iam-policy-binding '${GCP_SERVICE_ACCOUNT}' --role=roles/iam.workloadIdentityUser ` +
        `--member='principal://iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/keyway/subject/policy:gcp/deploy'`,
    );
  });

  it('Azure: one federated identity credential per policy and application, matched exactly', async () => {
    const result = await trust('azure');
    expect(result.code, result.stderr).toBe(0);
    const parameters = JSON.parse(/--parameters '([^']+)'/.exec(result.stdout)?.[1] ?? '{}') as unknown;
    expect(parameters).toEqual({ name: 'keyway-azure-deploy', issuer: ISSUER, subject: 'policy:azure/deploy', audiences: ['api://AzureADTokenExchange'] });
    expect(result.stdout).toContain(`az ad app federated-credential create --id '${AZURE_CLIENT}'`);
    expect(result.stdout).toContain('resource "azuread_application_federated_identity_credential" "keyway_0_0" {');
    expect((await trust('oci')).code).toBe(2);
  });
});
