// Bundles the GitHub Action (action/src) into the single files the runner executes (action/dist),
// committed so that `uses: OWNER/keyway/action@v1` needs no install. `npm run build:action`.
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export async function buildAction(outdir: string): Promise<void> {
  await build({
    absWorkingDir: ROOT,
    entryPoints: { main: 'action/src/main.ts', post: 'action/src/post.ts', proxy: 'action/src/proxy.ts' },
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    legalComments: 'eof',
    banner: { js: '// Built by `npm run build:action` from action/src; do not edit.' },
    logLevel: 'warning',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildAction(`${ROOT}action/dist`);
