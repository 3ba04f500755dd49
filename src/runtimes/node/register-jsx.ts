import { readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';

/**
 * Node strips TypeScript types but does not compile JSX, and the /audit page is Hono JSX
 * (`.tsx`). This teaches the running process to load `.tsx` files, compiled by esbuild as they
 * are imported: no build step, no output files. Vitest and wrangler compile JSX themselves.
 * Import it before anything that reaches a `.tsx` file (src/runtimes/node/main.ts does).
 */
registerHooks({
  load(url, context, nextLoad) {
    if (!url.startsWith('file:') || !url.endsWith('.tsx')) return nextLoad(url, context);
    const path = fileURLToPath(url);
    const { code } = transformSync(readFileSync(path, 'utf8'), {
      loader: 'tsx',
      jsx: 'automatic',
      jsxImportSource: 'hono/jsx',
      format: 'esm',
      sourcefile: path,
      sourcemap: 'inline',
    });
    return { format: 'module', source: code, shortCircuit: true };
  },
});
