import { isPermissionLevel, type PermissionLevel } from '../../../core/policy/github-permissions.ts';
import { ConfigError, type SettingsSource } from '../../../core/settings/read-settings.ts';

/**
 * A setting that lists GitHub permissions with the highest level each may be granted at: `contents:write issues:read`
 * (spaces or commas), or `none`. Unset or empty gives `fallback`. Each entry must name a permission of `table` at one
 * of its levels, once.
 */
export function readPermissionCeilings(
  env: SettingsSource,
  name: string,
  table: Readonly<Record<string, readonly PermissionLevel[]>>,
  fallback: Readonly<Record<string, PermissionLevel>>,
): Readonly<Record<string, PermissionLevel>> {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  if (typeof value !== 'string') throw new ConfigError(`${name} must be a string`);
  if (value.trim() === 'none') return {};
  const ceilings: Record<string, PermissionLevel> = {};
  for (const entry of value.split(/[\s,]+/).filter((item) => item !== '')) {
    const [permission = '', level = '', ...rest] = entry.split(':');
    const levels = Object.hasOwn(table, permission) ? table[permission] : undefined;
    if (levels === undefined || rest.length > 0 || !isPermissionLevel(level) || !levels.includes(level)) {
      const example = Object.keys(table)[0];
      throw new ConfigError(`${name}: ${JSON.stringify(entry)} is not a permission it takes and one of its levels, like ${example}:${table[example!]![0]}`);
    }
    if (permission in ceilings) throw new ConfigError(`${name} names ${permission} twice`);
    ceilings[permission] = level;
  }
  return ceilings;
}
