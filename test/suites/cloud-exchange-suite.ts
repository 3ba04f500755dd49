import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DpopKey } from '../support/dpop-key.ts';
import { ciClaims, type TestIssuer } from '../support/test-issuer.ts';
import { exchangeForm, expectRefusal, freshIssuer, ID_TOKEN, postToken, type BrokerHarness, type StartBroker } from './exchange-suite.ts';
import { pageCookie } from '../support/audit-page-sign-in.ts';

export const AWS_ROLE = 'arn:aws:iam::123456789012:role/deploy';
export const AWS_READ_ROLE = 'arn:aws:iam::123456789012:role/read';
export const GCP_PROVIDER = 'projects/123456789/locations/global/workloadIdentityPools/keyway/providers/keyway';
export const GCP_SERVICE_ACCOUNT = 'deployer@acme-prod.iam.gserviceaccount.com';
export const AZURE_TENANT = '8d9f2c6e-1b3a-4c5d-9e7f-0a1b2c3d4e5f';
export const AZURE_CLIENT = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';

/** One policy per cloud, each for the acme/api workflow in its own environment, and one that grants keyway tokens only. */
export function cloudPolicies(github: TestIssuer): Record<string, string> {
  const head = (environment: string) => `version: 1
issuer: { kind: github, url: "${github.url}" }
match:
  repository_owner_id: "1200934"
  repository_id: "734201"
  ref: { glob: "refs/heads/**" }
  environment: ${environment}
`;
  return {
    'cloud/aws.yaml': `${head('cloud-aws')}grant:
  cloud:
    provider: aws
    roles: [${AWS_ROLE}, ${AWS_READ_ROLE}]
    session_tags:
      Repository: "{repository}"
      Ref: "{ref}"
    transitive_tag_keys: [Repository]
`,
    'cloud/gcp.yaml': `${head('cloud-gcp')}grant:
  subject: "gcp:{repository}"
  ttl: 10m
  claims:
    repository: "{repository}"
  cloud:
    provider: gcp
    workload_identity_provider: ${GCP_PROVIDER}
    service_accounts: [${GCP_SERVICE_ACCOUNT}]
`,
    'cloud/azure.yaml': `${head('cloud-azure')}grant:
  cloud:
    provider: azure
    tenant_id: ${AZURE_TENANT}
    client_ids: [${AZURE_CLIENT}]
`,
    'cloud/keyway-only.yaml': `${head('keyway-only')}grant:
  audience: https://deploy.acme.dev
`,
  };
}

/** `grant.cloud` end to end on a runtime: the token each cloud verifies, its audit record, and every refusal with its record. */
export function cloudExchangeSuite(runtime: string, start: StartBroker, issuerBase: () => string): void {
  describe(`cloud tokens (grant.cloud) on ${runtime}`, () => {
    let broker: BrokerHarness;
    let github: TestIssuer;
    const ciToken = (environment: string, overrides: Record<string, unknown> = {}) =>
      github.sign(ciClaims(github.url, broker.issuer, { environment, ...overrides }));
    const cloudForm = async (environment: string, extra: Record<string, string | string[]> = {}, overrides: Record<string, unknown> = {}) =>
      exchangeForm(await ciToken(environment, overrides), { requested_token_type: ID_TOKEN, ...extra });
    const jwks = async (): Promise<JSONWebKeySet> => (await (await broker.request('/.well-known/jwks.json')).json()) as JSONWebKeySet;

    /** Verifies the issued token as the cloud would: the broker's JWKS, its issuer, the cloud's audience, only `alg`. */
    async function verifyAsCloud(token: string, audience: string, alg: 'ES256' | 'RS256') {
      const header = decodeProtectedHeader(token);
      expect(header).toMatchObject({ typ: 'JWT', alg });
      const keys = await jwks();
      expect(keys.keys.find((key) => key.kid === header.kid)).toMatchObject({ alg, kty: alg === 'RS256' ? 'RSA' : 'EC', use: 'sig' });
      const { payload } = await jwtVerify(token, createLocalJWKSet(keys), { issuer: broker.issuer, audience, algorithms: [alg], typ: 'JWT' });
      expect(Number.isInteger(payload.iat) && Number.isInteger(payload.exp)).toBe(true);
      expect(payload.aud).toBe(audience);
      return payload;
    }

    beforeAll(async () => {
      github = freshIssuer(issuerBase(), 'cloud-gh');
      // The suite's auditors read the records on the /audit page (audience: the broker, as a harness runs it).
      broker = await start({
        ...cloudPolicies(github),
        'auditors.yaml': `version: 1
issuer: { kind: github, url: "${github.url}" }
match: { repository_owner_id: "1200934", repository_id: "555", environment: keyway-auditors }
grant: { audience: https://keyway.test, scopes: [audit:read, tokens:introspect, tokens:revoke] }
`,
      });
    });
    afterAll(async () => broker?.close());

    it('mints an AWS web-identity token: typ JWT, aud sts.amazonaws.com, sub policy:<id>, session tags, and an audit record joining it', async () => {
      const result = await postToken(broker, await cloudForm('cloud-aws'));
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      expect(result.body).toMatchObject({ issued_token_type: ID_TOKEN, token_type: 'N_A', expires_in: 300 });
      const payload = await verifyAsCloud(result.body['access_token'] as string, 'sts.amazonaws.com', 'ES256');
      expect(payload.sub).toBe('policy:cloud/aws');
      expect(payload.exp! - payload.iat!).toBe(300);
      expect(payload['https://aws.amazon.com/tags']).toEqual({
        principal_tags: { Repository: ['acme/api'], Ref: ['refs/heads/main'] },
        transitive_tag_keys: ['Repository'],
      });
      expect(payload).not.toHaveProperty('scope');
      const event = await broker.auditEvent(result.body['audit_event_id'] as string);
      expect(event?.cloud).toEqual({
        provider: 'aws',
        identity: AWS_ROLE,
        session_tags: { Repository: 'acme/api', Ref: 'refs/heads/main' },
        transitive_tag_keys: ['Repository'],
        jti: payload.jti,
      });
      expect(event?.issued).toMatchObject({ jti: payload.jti, sub: 'policy:cloud/aws', aud: ['sts.amazonaws.com'] });
      expect(event?.policy?.granted_by).toBe('cloud/aws');
    });

    it("shows the cloud token's provider, role and session tags on the /audit page's event view", async () => {
      const result = await postToken(broker, await cloudForm('cloud-aws'));
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      const auditor = await postToken(broker, exchangeForm(await ciToken('keyway-auditors', { repository_id: '555' }), { scope: 'audit:read' }));
      expect(auditor.status, JSON.stringify(auditor.body)).toBe(200);
      const page = await broker.request(`/audit/events/${String(result.body['audit_event_id'])}`, {
        headers: { cookie: await pageCookie(broker, String(auditor.body['access_token'])) },
      });
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('<dd data-field="cloud">aws</dd>');
      expect(html).toContain(`<dd data-field="cloud identity">${AWS_ROLE}</dd>`);
      expect(html).toContain('<dd data-field="cloud session tags">Ref=refs/heads/main, Repository=acme/api</dd>');
      expect(html).not.toContain('data-field="GitHub repositories"');
    });

    it('answers a cloud token as no keyway access token: inactive at /introspect, refused as an operator credential', async () => {
      const cloud = await postToken(broker, await cloudForm('cloud-aws'));
      expect(cloud.status, JSON.stringify(cloud.body)).toBe(200);
      const token = String(cloud.body['access_token']);
      const introspector = await postToken(broker, exchangeForm(await ciToken('keyway-auditors', { repository_id: '555' }), { scope: 'tokens:introspect' }));
      expect(introspector.status, JSON.stringify(introspector.body)).toBe(200);
      // Signed by the broker's own keys, live, issued by it: only its typ (JWT, not at+jwt) says it is for a cloud's STS.
      const introspected = await broker.request('/introspect', {
        method: 'POST',
        body: new URLSearchParams({ token }),
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${String(introspector.body['access_token'])}` },
      });
      expect(introspected.status).toBe(200);
      expect(await introspected.json()).toEqual({ active: false });
      const asOperator = await broker.request('/v1/audit/events', { headers: { authorization: `Bearer ${token}` } });
      expect(asOperator.status).toBe(401);
    });

    it("refuses to revoke a cloud token by its jti (POST /v1/tokens/revoke): the cloud checks that token, never keyway's list", async () => {
      const cloud = await postToken(broker, await cloudForm('cloud-aws'));
      expect(cloud.status, JSON.stringify(cloud.body)).toBe(200);
      const operator = await postToken(broker, exchangeForm(await ciToken('keyway-auditors', { repository_id: '555' }), { scope: 'tokens:revoke' }));
      expect(operator.status, JSON.stringify(operator.body)).toBe(200);
      const response = await broker.request('/v1/tokens/revoke', {
        method: 'POST',
        body: JSON.stringify({ jti: decodeJwt(String(cloud.body['access_token'])).jti }),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${String(operator.body['access_token'])}` },
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({
        error: 'invalid_request',
        error_description: `the jti is a cloud token's (granted in ${String(cloud.body['audit_event_id'])}): the cloud checks it, not keyway; end its session in the cloud`,
      });
    });

    it('records the role the caller names when the policy grants it', async () => {
      const result = await postToken(broker, await cloudForm('cloud-aws', { audience: AWS_READ_ROLE }));
      expect(result.status).toBe(200);
      expect((await broker.auditEvent(result.body['audit_event_id'] as string))?.cloud?.identity).toBe(AWS_READ_ROLE);
    });

    it('refuses a role no policy grants (cloud_role_not_granted), with a record and no token', async () => {
      const result = await postToken(broker, await cloudForm('cloud-aws', { audience: 'arn:aws:iam::123456789012:role/admin' }));
      const event = await expectRefusal(broker, result, { error: 'invalid_target', reason: 'cloud_role_not_granted' });
      expect(event.detail).toContain('arn:aws:iam::123456789012:role/admin');
      expect(event).not.toHaveProperty('cloud');
    });

    it('compares a role ARN exactly as the policy writes it: only Azure client ids compare without case', async () => {
      const result = await postToken(broker, await cloudForm('cloud-aws', { audience: AWS_ROLE.replace('role/deploy', 'role/Deploy') }));
      await expectRefusal(broker, result, { error: 'invalid_target', reason: 'cloud_role_not_granted' });
    });

    it('refuses a cloud request naming two roles, even two the policy grants: a cloud token is for one role', async () => {
      const result = await postToken(broker, await cloudForm('cloud-aws', { audience: [AWS_ROLE, AWS_READ_ROLE] }));
      const event = await expectRefusal(broker, result, { error: 'invalid_target', reason: 'cloud_role_not_granted' });
      expect(event.detail).toContain('a cloud token is for one role');
    });

    it('refuses a cloud token from a policy that grants none, and a keyway token from a policy that grants only a cloud token', async () => {
      await expectRefusal(broker, await postToken(broker, await cloudForm('keyway-only')), { error: 'invalid_target', reason: 'cloud_role_not_granted' });
      await expectRefusal(broker, await postToken(broker, exchangeForm(await ciToken('cloud-aws'))), {
        error: 'invalid_target',
        reason: 'audience_not_granted',
      });
    });

    it('refuses a DPoP proof with a cloud request, and a subject token bound with cnf: a cloud token cannot carry the binding', async () => {
      const key = await DpopKey.generate();
      const withProof = async (form: URLSearchParams) => {
        const answer = await broker.request('/token', {
          method: 'POST',
          body: form,
          headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await key.proof('POST', `${broker.issuer}/token`) },
        });
        return { status: answer.status, headers: answer.headers, body: (await answer.json()) as Record<string, unknown> };
      };
      await expectRefusal(broker, await withProof(await cloudForm('cloud-aws')), { error: 'invalid_request', reason: 'dpop_not_supported' });
      // A stolen bound token must not become a cloud token anyone can replay, with its key's proof or without one.
      const bound = await cloudForm('cloud-aws', {}, { cnf: { jkt: key.jkt } });
      await expectRefusal(broker, await withProof(bound), { error: 'invalid_request', reason: 'dpop_not_supported' });
      await expectRefusal(broker, await postToken(broker, await cloudForm('cloud-aws', {}, { cnf: { jkt: key.jkt } })), {
        error: 'invalid_dpop_proof',
        reason: 'subject_token_bound',
      });
    });

    it.each([
      ['a character AWS refuses', 'refs/heads/fix#1', 'session tag Ref holds a character AWS does not allow'],
      ['a value over 256 characters', `refs/heads/${'a'.repeat(250)}`, 'session tag Ref is 261 characters; AWS takes at most 256'],
    ])('refuses a session tag value with %s (cloud_limit_exceeded), never cutting it', async (_, ref, detail) => {
      const result = await postToken(broker, await cloudForm('cloud-aws', {}, { ref }));
      const event = await expectRefusal(broker, result, { error: 'invalid_request', reason: 'cloud_limit_exceeded' });
      expect(event.detail).toContain(detail);
    });

    it('mints a Google token: ES256, the Workload Identity provider as audience, the templated sub and claims, the service account recorded', async () => {
      const result = await postToken(broker, await cloudForm('cloud-gcp', { audience: GCP_SERVICE_ACCOUNT }));
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      const payload = await verifyAsCloud(result.body['access_token'] as string, `https://iam.googleapis.com/${GCP_PROVIDER}`, 'ES256');
      expect(payload.sub).toBe('gcp:acme/api');
      // What a Workload Identity pool's attribute mapping reads (assertion.repository).
      expect(payload['repository']).toBe('acme/api');
      expect(payload.exp! - payload.iat!).toBe(600);
      expect(payload).not.toHaveProperty('https://aws.amazon.com/tags');
      expect((await broker.auditEvent(result.body['audit_event_id'] as string))?.cloud).toEqual({
        provider: 'gcp',
        identity: GCP_SERVICE_ACCOUNT,
        jti: payload.jti,
      });
    });

    it('mints an Azure token signed RS256 with a published RSA key, for api://AzureADTokenExchange', async () => {
      const result = await postToken(broker, await cloudForm('cloud-azure', { audience: AZURE_CLIENT.toUpperCase() }));
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      const payload = await verifyAsCloud(result.body['access_token'] as string, 'api://AzureADTokenExchange', 'RS256');
      expect(payload.sub).toBe('policy:cloud/azure');
      expect((await broker.auditEvent(result.body['audit_event_id'] as string))?.cloud).toMatchObject({ provider: 'azure', identity: AZURE_CLIENT });
    });
  });
}
