import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface LockEntry {
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly [field: string]: unknown;
}

/**
 * A package-lock.json for a project that depends on nothing but the packed keyway tarball (`spec`,
 * as the project's package.json names it: `file:` and a path relative to the project),
 * taken from the repository's own lock file: same versions, same tarball integrities. With it,
 * `npm ci --offline` installs from the npm cache that the repository's `npm ci` filled, and needs
 * no registry metadata (which `npm install --offline` would).
 */
export function consumerLockfile(repository: string, tarball: { readonly path: string; readonly spec: string }, registry: string): string {
  const lock = JSON.parse(readFileSync(join(repository, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const manifest = JSON.parse(readFileSync(join(repository, 'package.json'), 'utf8')) as LockEntry & { version: string };
  // Where Node (and npm) would find `name` required from the package at `from`: nearest node_modules first.
  const locate = (from: string, name: string): string => {
    for (let base = from; ; base = base.includes('/node_modules/') ? base.slice(0, base.lastIndexOf('/node_modules/')) : '') {
      const path = `${base === '' ? '' : `${base}/`}node_modules/${name}`;
      if (lock.packages[path] !== undefined) return path;
      if (base === '') throw new Error(`${name} (needed by ${from || 'keyway'}) is not in package-lock.json`);
    }
  };
  const packages: Record<string, LockEntry> = {};
  const visit = (from: string, dependencies: Record<string, string>) => {
    for (const name of Object.keys(dependencies)) {
      const path = locate(from, name);
      if (packages[path] !== undefined) continue;
      const { dev: _dev, devOptional: _devOptional, peer: _peer, ...entry } = lock.packages[path] as LockEntry;
      // This repository's lock file records no `resolved` URLs; with one, npm takes the tarball from
      // its cache by `integrity` instead of asking the registry which tarball a version is.
      packages[path] = {
        resolved: registryTarball(registry, path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length), String(entry['version'])),
        ...entry,
      };
      visit(path, { ...entry.dependencies, ...entry.optionalDependencies });
    }
  };
  visit('', { ...manifest.dependencies, ...manifest.optionalDependencies });
  const { spec } = tarball;
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball.path)).digest('base64')}`;
  const { version, license, dependencies, optionalDependencies, bin, engines } = manifest;
  return JSON.stringify({
    name: 'consumer',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'consumer', dependencies: { keyway: spec } },
      'node_modules/keyway': { version, resolved: spec, integrity, license, dependencies, optionalDependencies, bin, engines },
      ...packages,
    },
  });
}

/** Where `registry` (npm's configured one, ending in /) serves a version's tarball. */
function registryTarball(registry: string, name: string, version: string): string {
  return `${registry}${name}/-/${name.slice(name.indexOf('/') + 1)}-${version}.tgz`;
}
