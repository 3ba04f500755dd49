import type { IssuerPreset } from './issuer-preset.ts';
import { azureDevops } from './presets/azure-devops.ts';
import { bitbucket } from './presets/bitbucket.ts';
import { buildkite } from './presets/buildkite.ts';
import { circleci } from './presets/circleci.ts';
import { forgejo } from './presets/forgejo.ts';
import { github } from './presets/github.ts';
import { gitlab } from './presets/gitlab.ts';
import { google } from './presets/google.ts';
import { kubernetes } from './presets/kubernetes.ts';
import { terraform } from './presets/terraform.ts';

export type { ClaimFormat, ClaimType, IssuerPreset, IssuerShape } from './issuer-preset.ts';

/**
 * The development issuer served by `KEYWAY_DEV=1` on loopback. It mints GitHub-shaped tokens,
 * so it shares GitHub's claim rules, but it has no public URL: it exists only when the Node
 * broker is started for development.
 */
const dev: IssuerPreset = {
  ...github,
  name: 'dev',
  url: undefined,
  shapes: [],
  shared: false,
};

/** Any other OIDC issuer, named by its exact URL (or `{ kind: oidc, url }` to give it overrides). */
export const GENERIC_PRESET: IssuerPreset = {
  name: 'oidc',
  shapes: [{ deployment: 'OIDC issuer', path: /^.*$/, example: 'https://issuer.example.com' }],
  algorithms: ['RS256'],
  maxTokenAgeSeconds: 60 * 60,
  requiredClaims: [],
  claimTypes: { sub: 'string', jti: 'string' },
  claimFormats: {},
  caseFolds: {},
  auditClaims: [],
  shared: false,
  tenantClaims: [],
  singleUse: false,
};

export const PRESETS: ReadonlyMap<string, IssuerPreset> = new Map(
  [github, gitlab, circleci, buildkite, bitbucket, azureDevops, google, kubernetes, terraform, forgejo, dev, GENERIC_PRESET].map((preset) => [
    preset.name,
    preset,
  ]),
);
