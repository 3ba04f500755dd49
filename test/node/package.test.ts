import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { consumerLockfile } from '../support/consumer-lockfile.ts';
import { REPOSITORY_ROOT, runProcess, writeTree, type Environment } from './node-harness.ts';

/**
 * keyway as a user gets it from the npm registry: `npm pack`, then installed into a fresh
 * project, offline, from the tarball and the npm cache. Under node_modules Node refuses to strip
 * TypeScript, so this proves the published package runs on its built JavaScript alone.
 */
describe('the published package', () => {
  let project: string;
  // The bin's `#!/usr/bin/env node` must find a Node as new as the one running the tests.
  const env: Environment = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}` };

  beforeAll(async () => {
    const work = writeTree({});
    const packed = await runProcess('npm', ['pack', '--silent', '--pack-destination', work], { env });
    expect(packed, packed.stderr).toMatchObject({ code: 0 });
    const registry = await runProcess('npm', ['config', 'get', 'registry'], { env });
    const name = packed.stdout.trim().split('\n').at(-1) ?? '';
    const tarball = { path: join(work, name), spec: `file:../${name}` };
    project = join(work, 'consumer');
    writeTree(
      {
        'package.json': JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { keyway: tarball.spec } }),
        'package-lock.json': consumerLockfile(REPOSITORY_ROOT, tarball, registry.stdout.trim().replace(/\/?$/, '/')),
      },
      project,
    );
    const installed = await runProcess('npm', ['ci', '--offline', '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund'], { env, cwd: project });
    expect(installed, installed.stderr).toMatchObject({ code: 0 });
  }, 120_000);

  it('ships built JavaScript and type declarations, no TypeScript source', () => {
    const files = [...walk(join(project, 'node_modules/keyway'))].map((file) => relative(join(project, 'node_modules/keyway'), file));
    expect(files).toContain('dist/cli/main.js');
    expect(files).toContain('dist/index.d.ts');
    expect(files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))).toEqual([]);
  });

  it('runs `keyway --help` and `keyway exchange --help` from node_modules/.bin', async () => {
    const help = await runProcess(join(project, 'node_modules/.bin/keyway'), ['--help'], { env, cwd: project });
    expect(help, help.stderr).toMatchObject({ code: 0 });
    expect(help.stderr).toMatch(/exchange\s+swap this CI job's OIDC token/);
    const exchange = await runProcess(join(project, 'node_modules/.bin/keyway'), ['exchange', '--help'], { env, cwd: project });
    expect(exchange).toMatchObject({ code: 0, stdout: expect.stringContaining('usage: keyway exchange') });
  });

  it('exports verifyAccessToken and keywayAuth, which run', async () => {
    const script = `
      import { AccessTokenError, keywayAuth, verifyAccessToken } from 'keyway';
      const error = await verifyAccessToken('not-a-jwt', { issuer: 'https://keyway.test', audience: 'https://api.test', keys: async () => { throw new Error('unreachable'); } }).catch((e) => e);
      console.log(JSON.stringify({ middleware: typeof keywayAuth({ issuer: 'https://keyway.test', audience: 'https://api.test' }), error: error instanceof AccessTokenError ? error.code : String(error) }));
    `;
    const result = await runProcess(process.execPath, ['--input-type=module', '-e', script], { env, cwd: project });
    expect(result, result.stderr).toMatchObject({ code: 0 });
    expect(JSON.parse(result.stdout)).toEqual({ middleware: 'function', error: 'invalid_token' });
  });

  it('carries its types: a TypeScript consumer type-checks, and misuse is a type error', async () => {
    writeTree(
      {
        'tsconfig.json': JSON.stringify({
          compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: [] },
          files: ['consumer.ts'],
        }),
        'consumer.ts': `
import { keywayAuth, verifyAccessToken, type KeywayAccessToken } from 'keyway';
export async function check(token: string): Promise<string> {
  const claims: KeywayAccessToken = await verifyAccessToken(token, { issuer: 'https://keyway.test', audience: 'https://api.test', scopes: ['deploy:write'] });
  // @ts-expect-error the audience is required
  await verifyAccessToken(token, { issuer: 'https://keyway.test' });
  keywayAuth({ issuer: 'https://keyway.test', audience: 'https://api.test' });
  return claims.client_id;
}
`,
      },
      project,
    );
    const result = await runProcess(join(REPOSITORY_ROOT, 'node_modules/.bin/tsc'), ['-p', project], { env, cwd: project });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
  });
});

function* walk(directory: string): Generator<string> {
  for (const entry of readdirSync(directory)) {
    const path = join(directory, entry);
    if (statSync(path).isDirectory()) yield* walk(path);
    else yield path;
  }
}
