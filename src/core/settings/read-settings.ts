import { KeywayError } from '../errors/keyway-error.ts';

/** Settings come from environment variables (Node) or Worker vars; every feature reads its own through these. */
export type SettingsSource = Readonly<Record<string, unknown>>;

export class ConfigError extends KeywayError {
  override readonly name: string = 'ConfigError';
  readonly code: string = 'config_invalid';
}

export function readFlag(env: SettingsSource, name: string): boolean {
  const value = env[name];
  if (value === undefined || value === '' || value === '0' || value === 'false') return false;
  if (value === '1' || value === 'true') return true;
  throw new ConfigError(`${name} must be 1 or 0, not ${JSON.stringify(value)}`);
}

export function readInteger(env: SettingsSource, name: string, fallback: number, min: number, max: number): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  // Decimal digits only: Number() reads a blank (' ', a line break a template left) as 0, which turns a rate limit or key
  // rotation off, and reads '0x10' or '1e3' as numbers no one wrote. A Worker var may be a number already.
  const parsed = typeof value === 'number' ? value : typeof value === 'string' && /^[0-9]{1,15}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(parsed) || parsed < min || parsed > max) throw new ConfigError(`${name} must be an integer from ${min} to ${max}`);
  return parsed;
}
