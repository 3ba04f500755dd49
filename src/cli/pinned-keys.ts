import { readFileSync } from 'node:fs';
import type { JSONWebKeySet } from 'jose';
import { CliError } from './command.ts';

/** The pinned JWKS: public keys with a kid each, nothing private. */
export function readPinnedKeys(path: string): JSONWebKeySet {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new CliError(`--keys ${path}: ${(error as Error).message}`);
  }
  const keys = typeof parsed === 'object' && parsed !== null && 'keys' in parsed && Array.isArray(parsed.keys) ? (parsed.keys as unknown[]) : undefined;
  if (keys === undefined) throw new CliError(`--keys ${path} is not a JWKS ({"keys": […]}, as GET /v1/audit/keys answers)`);
  for (const key of keys) {
    if (typeof key !== 'object' || key === null || !('kid' in key) || typeof key.kid !== 'string' || 'd' in key) {
      throw new CliError(`--keys ${path} holds a key that is not a public key with a kid`);
    }
  }
  return parsed as JSONWebKeySet;
}
