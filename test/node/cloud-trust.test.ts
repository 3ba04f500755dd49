import { decodeJwt } from 'jose';
import { describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { startNodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { AWS_ROLE, AZURE_CLIENT, AZURE_TENANT, GCP_PROVIDER, GCP_SERVICE_ACCOUNT } from '../suites/cloud-exchange-suite.ts';
import { exchangeForm, ID_TOKEN, postToken } from '../suites/exchange-suite.ts';
import { ciClaims, TestIssuer } from '../support/test-issuer.ts';
import { runProcess, testConfig, writeTree } from './node-harness.ts';

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
const trustIn = (root: string, cloud: string, env: Record<string, string> = {}) =>
  runProcess(process.execPath, ['src/cli/main.ts', 'cloud', 'trust', cloud, `${root}/policies`, '--issuer', ISSUER], {
    env: { PATH: process.env['PATH'], ...env },
  });
const trust = (cloud: string) => trustIn(dir, cloud);

/** A policy granting `cloud` with `grant.subject: subject`, the subject written as a YAML double-quoted scalar. */
const withSubject = (subject: string, cloud: string) => `${head}  subject: ${JSON.stringify(subject)}\n  cloud:\n${cloud}`;
const AWS_GRANT = `    provider: aws\n    roles: [${AWS_ROLE}]\n`;
const GCP_GRANT = `    provider: gcp\n    workload_identity_provider: ${GCP_PROVIDER}\n    service_accounts: [${GCP_SERVICE_ACCOUNT}]\n`;
const AZURE_GRANT = `    provider: azure\n    tenant_id: ${AZURE_TENANT}\n    client_ids: [${AZURE_CLIENT}]\n`;

/** The CEL string literals of `condition`, read as CEL reads them ('…' with \\ and \' escapes), and the expression around them with each one as S. */
function celLiterals(condition: string): { readonly shape: string; readonly literals: string[] } {
  const literals: string[] = [];
  const shape = condition.replace(/'((?:[^'\\\n]|\\.)*)'/g, (_, body: string) => {
    literals.push(body.replace(/\\(.)/g, '$1'));
    return 'S';
  });
  return { shape, literals };
}

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

  it("Google: a template's condition admits every sub the broker mints for it, one whose placeholder it filled with an empty claim too", async () => {
    const github = new TestIssuer(inject('testIssuerBase'), `trust-${crypto.randomUUID().slice(0, 8)}`);
    const byEnvironment =
      `version: 1\nissuer: { kind: github, url: "${github.url}" }\nmatch:\n  repository_owner_id: "1200934"\n  repository_id: "734201"\n` +
      `grant:\n  subject: "repo:{repository}:environment:{environment}"\n  cloud:\n${GCP_GRANT}`;
    const root = writeTree({ 'policies/gcp/by-environment.yaml': byEnvironment });
    const broker = await startNodeBroker(testConfig(root), { log: silentLogger });
    try {
      const client = { issuer: broker.config.issuer, request: (path: string, init?: RequestInit) => fetch(`${broker.url}${path}`, init) };
      const minted = async (environment: string) => {
        const token = await github.sign(ciClaims(github.url, broker.config.issuer, { environment }));
        const result = await postToken(client, exchangeForm(token, { requested_token_type: ID_TOKEN, audience: GCP_SERVICE_ACCOUNT }));
        expect(result.status, JSON.stringify(result.body)).toBe(200);
        return decodeJwt(result.body['access_token'] as string).sub;
      };
      const subs = [await minted('production'), await minted('')];
      expect(subs).toEqual(['repo:acme/api:environment:production', 'repo:acme/api:environment:']);

      const result = await trustIn(root, 'gcp', { KEYWAY_ALLOW_HTTP_LOOPBACK: '1' });
      expect(result.code, result.stderr).toBe(0);
      const condition = JSON.parse(/^ {2}attribute_condition += (".*")$/m.exec(result.stdout)?.[1] ?? '""') as string;
      const { shape, literals } = celLiterals(condition);
      expect(shape).toBe('assertion.sub.matches(S)');
      const matches = new RegExp(literals[0] ?? '');
      for (const sub of subs) expect(matches.test(sub ?? ''), sub).toBe(true);
      // Still never a value holding the template's delimiter, which keyway never places.
      expect(matches.test('repo:acme/api:environment:prod:x')).toBe(false);
    } finally {
      await broker.close();
    }
  });

  describe('a subject is written into each format exactly, escaped where the format has an escape, never wider than the policy', () => {
    const hostile = writeTree({
      'policies/gcp/inject.yaml': withSubject("deploy'] || true || assertion.sub in ['x", GCP_GRANT),
      'policies/gcp/slash.yaml': withSubject('back\\slash', GCP_GRANT),
      'policies/gcp/braces.yaml': withSubject('lit{{eral}}', GCP_GRANT),
      'policies/gcp/templated.yaml': withSubject("x.{repository}') || true || assertion.sub.matches('y", GCP_GRANT),
      'policies/aws/variable.yaml': withSubject(`\${{keyway.example.com:sub}}`, AWS_GRANT),
      'policies/aws/wildcards.yaml': withSubject('deploy*?$:{repository}', AWS_GRANT),
      'policies/azure/interpolation.yaml': withSubject(`a\${{b}}%{{c}}`, AZURE_GRANT),
      'policies/azure/braces.yaml': withSubject('lit{{eral}}', AZURE_GRANT),
    });

    it("Google: each exact sub is one CEL string literal with \\\\ and \\' escaped, and a template's pattern one literal too", async () => {
      const result = await trustIn(hostile, 'gcp');
      expect(result.code, result.stderr).toBe(0);
      const written = /^ {2}attribute_condition += (".*")$/m.exec(result.stdout)?.[1];
      const condition = JSON.parse(written ?? '""') as string;
      const { shape, literals } = celLiterals(condition);
      expect(shape).toBe('assertion.sub in [S, S, S] || assertion.sub.matches(S)');
      const pattern = literals.pop() ?? '';
      expect(literals.sort()).toEqual(['back\\slash', "deploy'] || true || assertion.sub in ['x", 'lit{eral}']);
      const matches = new RegExp(pattern);
      expect(matches.test("x.octo-app') || true || assertion.sub.matches('y")).toBe(true);
      expect(matches.test('anything')).toBe(false);
      // A placeholder takes no delimiter of its template: what keyway never renders, the cloud never admits.
      expect(matches.test("x.octo'app') || true || assertion.sub.matches('y")).toBe(false);
      expect(result.stdout).toContain(`--attribute-condition='${condition.replaceAll("'", "'\\''")}'`);
      expect(result.stdout).toContain('/subject/lit{eral}"');
    });

    it(`AWS: $ is \${$} in StringEquals, and * ? $ of the fixed text \${*} \${?} \${$} in StringLike; Terraform reads $\${ as \${`, async () => {
      const result = await trustIn(hostile, 'aws');
      expect(result.code, result.stderr).toBe(0);
      const document = JSON.parse(/--policy-document '([^']+)'/.exec(result.stdout)?.[1] ?? '{}') as { Statement: { Condition: unknown }[] };
      expect(document.Statement.map((statement) => statement.Condition)).toEqual([
        { StringEquals: { 'keyway.example.com:aud': 'sts.amazonaws.com', 'keyway.example.com:sub': [`\${$}{keyway.example.com:sub}`] } },
        { StringEquals: { 'keyway.example.com:aud': 'sts.amazonaws.com' }, StringLike: { 'keyway.example.com:sub': [`deploy\${*}\${?}\${$}:*`] } },
      ]);
      expect(result.stdout).toContain('      values   = ["$${$}{keyway.example.com:sub}"]');
      expect(result.stdout).toContain('      values   = ["deploy$${*}$${?}$${$}:*"]');
    });

    it('Azure: the subject exactly as keyway issues it, {{ }} as single braces, ${ and %{ escaped for Terraform', async () => {
      const result = await trustIn(hostile, 'azure');
      expect(result.code, result.stderr).toBe(0);
      const subjects = [...result.stdout.matchAll(/--parameters '([^']+)'/g)].map((match) => (JSON.parse(match[1] ?? '{}') as { subject: string }).subject);
      expect(subjects.sort()).toEqual([`a\${b}%{c}`, 'lit{eral}']);
      expect(result.stdout).toContain('  subject        = "a$${b}%%{c}"');
      expect(result.stdout).toContain('  subject        = "lit{eral}"');
    });

    it('refuses, naming the policy, a sub no format here carries exactly: a control character, or &{ in AWS Terraform', async () => {
      const newline = await trustIn(writeTree({ 'policies/gcp/newline.yaml': withSubject('deploy\nresource "x" "y" {{}}', GCP_GRANT) }), 'gcp');
      expect(newline.code).toBe(1);
      expect(newline.stdout).toBe('');
      expect(newline.stderr).toContain('gcp/newline');
      expect(newline.stderr).toContain('U+000A');
      const ampersand = await trustIn(writeTree({ 'policies/aws/ampersand.yaml': withSubject('a&{{keyway.example.com:sub}}', AWS_GRANT) }), 'aws');
      expect(ampersand.code).toBe(1);
      expect(ampersand.stdout).toBe('');
      expect(ampersand.stderr).toContain('aws/ampersand');
      expect(ampersand.stderr).toContain('&{');
    });
  });
});
