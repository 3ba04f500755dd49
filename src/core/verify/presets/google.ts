import { documentedClaims, type IssuerPreset } from '../issuer-preset.ts';

// https://cloud.google.com/docs/authentication/get-id-token
export const google: IssuerPreset = {
  name: 'google',
  url: 'https://accounts.google.com',
  shapes: [{ deployment: 'Google', host: /^accounts\.google\.com$/, path: /^$/, example: 'https://accounts.google.com' }],
  algorithms: ['RS256'],
  // Tokens live an hour, and the metadata server hands out a cached one until it nearly expires.
  maxTokenAgeSeconds: 60 * 60,
  // `format=full` / `--include-email`: without the email, a service account token cannot be told from a person's.
  requiredClaims: ['email', 'email_verified'],
  claimTypes: { sub: 'string', azp: 'string', email: 'string', email_verified: 'boolean', google: 'object' },
  claimFormats: {
    // The service account's unique id: an email can be deleted and created again by someone else; this id cannot.
    sub: { pattern: /^\d{1,64}$/, description: 'the numeric unique id of the service account, like "110987294251917851298"' },
    // The same issuer signs every Google sign-in; keyway's google preset is for workloads, so service accounts only.
    email: {
      pattern: /^[^@\s]+@([a-z0-9-]+\.)*gserviceaccount\.com$/i,
      description: 'a service account email, like "deployer@acme-prod.iam.gserviceaccount.com"',
    },
    email_verified: { pattern: /^true$/, description: 'true' },
  },
  caseFolds: { email: 'whole' },
  auditClaims: ['sub', 'email', 'azp', '/google/compute_engine/project_id', '/google/compute_engine/instance_name'],
  // Every Google identity of every customer, people included.
  shared: true,
  tenantClaims: ['sub'],
  singleUse: false,
  claimNames: documentedClaims(['azp', 'email', 'email_verified', 'google']),
  lint: {
    // A deleted service account's email can be created again by someone else; its numeric id never comes back.
    namesWithIds: { email: 'sub' },
    ownerFirstNames: [],
    untrustedContexts: [],
    spoofable: {},
    askForKeyway:
      "the metadata server's identity?audience=<keyway URL>&format=full, or gcloud auth print-identity-token --audiences=<keyway URL> (keyway exchange does it)",
  },
};
