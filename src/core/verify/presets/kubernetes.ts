import { documentedClaims, UUID_SOURCE, type IssuerPreset } from '../issuer-preset.ts';

// https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/ — claims nest under "kubernetes.io".
export const kubernetes: IssuerPreset = {
  name: 'kubernetes',
  shapes: [
    {
      deployment: 'Amazon EKS',
      host: /^oidc\.eks\.[a-z0-9-]+\.amazonaws\.com$/,
      path: /^\/id\/[A-Za-z0-9]+$/,
      example: 'https://oidc.eks.<region>.amazonaws.com/id/<cluster-oidc-id>',
    },
    {
      deployment: 'Google GKE',
      host: /^container\.googleapis\.com$/,
      path: /^\/v1\/projects\/[^/]+\/locations\/[^/]+\/clusters\/[^/]+$/,
      example: 'https://container.googleapis.com/v1/projects/<project>/locations/<location>/clusters/<cluster>',
    },
    // AKS issuers end in a slash, and `iss` is compared byte for byte.
    {
      deployment: 'Azure AKS',
      host: /^[a-z0-9-]+\.oic\.prod-aks\.azure\.com$/,
      path: new RegExp(`^/${UUID_SOURCE}/${UUID_SOURCE}/$`, 'i'),
      example: 'https://<region>.oic.prod-aks.azure.com/<tenant-id>/<uuid>/',
    },
    { deployment: 'self-managed cluster', path: /^(\/[^/]+)*\/?$/, example: 'https://<the cluster --service-account-issuer>' },
  ],
  algorithms: ['RS256', 'ES256', 'ES384', 'ES512'],
  // Projected tokens default to an hour, and the kubelet replaces them at 80% of that.
  maxTokenAgeSeconds: 60 * 60,
  // Default-audience tokens may be extended to a year; they outlive the pod they name, which no verifier outside the cluster can check.
  maxTokenLifetimeSeconds: 24 * 60 * 60,
  requiredClaims: ['/kubernetes.io/namespace', '/kubernetes.io/serviceaccount/name', '/kubernetes.io/serviceaccount/uid'],
  claimTypes: {
    sub: 'string',
    jti: 'string',
    'kubernetes.io': 'object',
    '/kubernetes.io/namespace': 'string',
    '/kubernetes.io/serviceaccount': 'object',
    '/kubernetes.io/serviceaccount/name': 'string',
    '/kubernetes.io/serviceaccount/uid': 'string',
    '/kubernetes.io/pod': 'object',
    '/kubernetes.io/pod/name': 'string',
    '/kubernetes.io/pod/uid': 'string',
    '/kubernetes.io/node/name': 'string',
    '/kubernetes.io/secret/name': 'string',
    '/kubernetes.io/warnafter': 'number',
  },
  claimFormats: {
    sub: { pattern: /^system:serviceaccount:[^:]+:[^:]+$/, description: 'system:serviceaccount:<namespace>:<name>' },
  },
  caseFolds: {},
  auditClaims: [
    '/kubernetes.io/namespace',
    '/kubernetes.io/serviceaccount/name',
    '/kubernetes.io/serviceaccount/uid',
    '/kubernetes.io/pod/name',
    '/kubernetes.io/node/name',
  ],
  // One issuer per cluster, but anyone who can create a service account in a namespace can hold its tokens.
  shared: false,
  tenantClaims: ['/kubernetes.io/namespace', '/kubernetes.io/serviceaccount/name', '/kubernetes.io/serviceaccount/uid', 'sub'],
  singleUse: false,
  claimNames: documentedClaims(['kubernetes.io']),
  lint: {
    // A service account deleted and created again under the same name gets a new uid.
    namesWithIds: { '/kubernetes.io/serviceaccount/name': '/kubernetes.io/serviceaccount/uid' },
    ownerFirstNames: [],
    untrustedContexts: [],
    spoofable: {},
    // sub is system:serviceaccount:<namespace>:<name>; a service account deleted and created again under that name gets a new uid.
    nameBasedSubject: {
      pattern: /^system:serviceaccount:/,
      advice:
        'A service account deleted and created again under the same name (by anyone who may create one in the namespace) has the same sub: pin /kubernetes.io/serviceaccount/uid beside it',
      idsBeside: ['/kubernetes.io/serviceaccount/uid'],
    },
    // --api-audiences: usually the issuer, https://kubernetes.default.svc(.cluster.local) on many clusters.
    defaultAudience: {
      matches: (audience, issuerUrl) => audience === issuerUrl || /^https:\/\/kubernetes\.default\.svc(?:\.cluster\.local)?$/.test(audience),
      what: "the Kubernetes API server's audience (--api-audiences: usually the issuer, or https://kubernetes.default.svc), the aud of every pod's default service account token",
    },
    askForKeyway: 'mount a projected service account token with audience: <keyway URL>',
  },
};
