import { REPOSITORY_PERMISSIONS, type PermissionLevel } from '../../../core/policy/github-permissions.ts';
import { readPermissionCeilings } from '../app/permission-ceilings.ts';
import { isLoopbackHttpUrl } from '../../../core/outbound/loopback-http-url.ts';
import { ConfigError, type SettingsSource } from '../../../core/settings/read-settings.ts';

/** What the operator lets repository-owned policies (`.github/keyway/NAME.yaml`) use. */
export interface RepositoryPolicySettings {
  /** KEYWAY_REPOSITORY_POLICY_PERMISSIONS: permission → the highest level a repository's own policy may grant. */
  readonly permissions: Readonly<Record<string, PermissionLevel>>;
  /** KEYWAY_REPOSITORY_POLICY_ISSUERS: issuer URLs they may name; undefined means every issuer the central set trusts. */
  readonly issuers: readonly string[] | undefined;
  /** KEYWAY_REPOSITORY_POLICY_ORG_GUARDRAILS: the organisations whose own guardrails (in `<org>/.github`) hold for their repositories' policies. */
  readonly orgGuardrails: readonly OrgGuardrailPin[];
}

/** An organisation that publishes guardrails, pinned by ids GitHub never gives twice: its account's and its `.github` repository's. */
export interface OrgGuardrailPin {
  readonly owner: string;
  readonly ownerId: number;
  readonly repositoryId: number;
}

/**
 * What a writer of a repository can do there anyway: push, open issues and pull requests, report
 * statuses and deployments, read checks. Never `administration`, `secrets`, `workflows` or anything
 * else a writer without admin rights could use to escalate (organization permissions are never
 * grantable at all), nor `checks: write`, which would be keyway's own App's (repository-policies.ts).
 */
export const DEFAULT_REPOSITORY_POLICY_PERMISSIONS: Readonly<Record<string, PermissionLevel>> = {
  actions: 'read',
  checks: 'read',
  contents: 'write',
  deployments: 'write',
  issues: 'write',
  metadata: 'read',
  pull_requests: 'write',
  statuses: 'write',
};

const list = (value: string): string[] => value.split(/[\s,]+/).filter((item) => item !== '');

function readIssuers(env: SettingsSource): readonly string[] | undefined {
  const name = 'KEYWAY_REPOSITORY_POLICY_ISSUERS';
  const value = env[name];
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new ConfigError(`${name} must be a string`);
  const issuers = list(value);
  for (const issuer of issuers) {
    const url = URL.canParse(issuer) ? new URL(issuer) : undefined;
    if (url === undefined || (url.protocol !== 'https:' && !isLoopbackHttpUrl(url))) {
      throw new ConfigError(`${name}: ${JSON.stringify(issuer)} is not an issuer URL (https, exactly as its tokens write iss)`);
    }
  }
  return issuers;
}

const ORG_GUARDRAIL_ENTRY = /^([A-Za-z0-9](?:[A-Za-z0-9-]{0,38})):([1-9][0-9]{0,15}):([1-9][0-9]{0,15})$/;

/** `acme:1200934:88001122 other:…`: each organisation's login, account id and the id of its `.github` repository. */
function readOrgGuardrails(env: SettingsSource): readonly OrgGuardrailPin[] {
  const name = 'KEYWAY_REPOSITORY_POLICY_ORG_GUARDRAILS';
  const value = env[name];
  if (value === undefined || value === '') return [];
  if (typeof value !== 'string') throw new ConfigError(`${name} must be a string`);
  const pins: OrgGuardrailPin[] = [];
  for (const entry of list(value)) {
    const [, owner, ownerId, repositoryId] = ORG_GUARDRAIL_ENTRY.exec(entry) ?? [];
    if (owner === undefined || !Number.isSafeInteger(Number(ownerId)) || !Number.isSafeInteger(Number(repositoryId))) {
      throw new ConfigError(
        `${name}: ${JSON.stringify(entry)} is not ORG:ORG_ID:REPOSITORY_ID (the organisation, its account id and the id of its .github repository: ` +
          'ids, because a name freed by a deletion or a rename can be taken by someone else)',
      );
    }
    if (pins.some((pin) => pin.owner.toLowerCase() === owner.toLowerCase())) throw new ConfigError(`${name} names ${owner} twice`);
    pins.push({ owner, ownerId: Number(ownerId), repositoryId: Number(repositoryId) });
  }
  return pins;
}

/** Read by both runtimes (Node environment, Worker vars) through readBrokerSettings. */
export function readRepositoryPolicySettings(env: SettingsSource): RepositoryPolicySettings {
  return {
    permissions: readPermissionCeilings(env, 'KEYWAY_REPOSITORY_POLICY_PERMISSIONS', REPOSITORY_PERMISSIONS, DEFAULT_REPOSITORY_POLICY_PERMISSIONS),
    issuers: readIssuers(env),
    orgGuardrails: readOrgGuardrails(env),
  };
}
