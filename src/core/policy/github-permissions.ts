/** GitHub fixes an installation token's life at one hour: no policy may grant one for longer. */
export const GITHUB_TOKEN_LIFETIME_SECONDS = 3600;

/** Installation token permission levels, weakest first. */
export const PERMISSION_LEVELS = ['read', 'write', 'admin'] as const;
export type PermissionLevel = (typeof PERMISSION_LEVELS)[number];

/**
 * The repository permissions an installation token can carry, with the levels GitHub offers for
 * each (REST API, "Create an installation access token for an app"). Organization and account
 * permissions are not grantable: keyway's tokens are scoped to repositories.
 */
export const REPOSITORY_PERMISSIONS: Readonly<Record<string, readonly PermissionLevel[]>> = {
  actions: ['read', 'write'],
  administration: ['read', 'write'],
  attestations: ['read', 'write'],
  checks: ['read', 'write'],
  codespaces: ['read', 'write'],
  contents: ['read', 'write'],
  dependabot_secrets: ['read', 'write'],
  deployments: ['read', 'write'],
  environments: ['read', 'write'],
  issues: ['read', 'write'],
  merge_queues: ['read', 'write'],
  metadata: ['read'],
  packages: ['read', 'write'],
  pages: ['read', 'write'],
  pull_requests: ['read', 'write'],
  repository_custom_properties: ['read', 'write'],
  repository_hooks: ['read', 'write'],
  repository_projects: ['read', 'write', 'admin'],
  secret_scanning_alerts: ['read', 'write'],
  secrets: ['read', 'write'],
  security_events: ['read', 'write'],
  single_file: ['read', 'write'],
  statuses: ['read', 'write'],
  vulnerability_alerts: ['read', 'write'],
  workflows: ['write'],
};

/**
 * The organization permissions an installation token can carry (same REST API), with their levels. Grantable only by
 * a central policy, for an owner pinned by id (`grant.github.owner_id`), and only those on the operator's allowlist
 * (`KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS`): a repository policy that handed out `members: write` was a real incident.
 */
export const ORGANIZATION_PERMISSIONS: Readonly<Record<string, readonly PermissionLevel[]>> = {
  members: ['read', 'write'],
  organization_administration: ['read', 'write'],
  organization_announcement_banners: ['read', 'write'],
  organization_copilot_seat_management: ['write'],
  organization_custom_org_roles: ['read', 'write'],
  organization_custom_properties: ['read', 'write', 'admin'],
  organization_custom_roles: ['read', 'write'],
  organization_events: ['read'],
  organization_hooks: ['read', 'write'],
  organization_packages: ['read', 'write'],
  organization_personal_access_token_requests: ['read', 'write'],
  organization_personal_access_tokens: ['read', 'write'],
  organization_plan: ['read'],
  organization_projects: ['read', 'write', 'admin'],
  organization_secrets: ['read', 'write'],
  organization_self_hosted_runners: ['read', 'write'],
  organization_user_blocking: ['read', 'write'],
  team_discussions: ['read', 'write'],
};

export function isOrganizationPermission(name: string): boolean {
  return Object.hasOwn(ORGANIZATION_PERMISSIONS, name);
}

export function isPermissionLevel(value: string): value is PermissionLevel {
  return (PERMISSION_LEVELS as readonly string[]).includes(value);
}

/** True when `held` (e.g. `write`) includes `wanted` (e.g. `read`). */
export function levelCovers(held: string | undefined, wanted: string): boolean {
  if (held === undefined || !isPermissionLevel(held) || !isPermissionLevel(wanted)) return false;
  return PERMISSION_LEVELS.indexOf(held) >= PERMISSION_LEVELS.indexOf(wanted);
}

/** True when every permission in `wanted` is held at that level or above. */
export function permissionsCovered(held: Readonly<Record<string, string>>, wanted: Readonly<Record<string, string>>): boolean {
  return Object.entries(wanted).every(([name, level]) => levelCovers(held[name], level));
}
