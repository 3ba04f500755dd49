import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPOSITORY_ROOT, runProcess, writeTree } from './node-harness.ts';

const DEPCRUISE = join(REPOSITORY_ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruiser.mjs');
const CONFIG = join(REPOSITORY_ROOT, '.dependency-cruiser.cjs');

/** The rules `npm run layers` checks, run over a tree: the name of every rule a dependency breaks. */
async function brokenRules(cwd: string): Promise<string[]> {
  const result = await runProcess(process.execPath, [DEPCRUISE, '--config', CONFIG, '--output-type', 'json', 'src'], {
    cwd,
    env: { PATH: process.env['PATH'] },
  });
  const report = JSON.parse(result.stdout) as { summary: { violations: { rule: { name: string }; from: string; to: string }[] } };
  return [...new Set(report.summary.violations.map((violation) => violation.rule.name))].sort();
}

/** A small src/ tree: each file breaks one layer rule, as the import named in its comment shows. */
const FORBIDDEN: Readonly<Record<string, string>> = {
  // core imports http
  'src/core/exchange/use-case.ts': "import { route } from '../../http/routes/route.ts';\nexport const useCase = route;\n",
  // http imports config, config imports storage, storage imports http
  'src/http/routes/route.ts': "import { setting } from '../../config/settings.ts';\nexport const route = setting;\n",
  'src/config/settings.ts': "import { stored } from '../storage/store.ts';\nexport const setting = stored;\n",
  'src/storage/log.ts': "import { route } from '../http/routes/route.ts';\nexport const logged = route;\n",
  // core imports a Node built-in
  'src/core/disk.ts': "import { readFileSync } from 'node:fs';\nexport const read = readFileSync;\n",
  // two core folders import each other, one of them only for a type
  'src/core/a/a.ts': "import { b } from '../b/b.ts';\nexport type A = number;\nexport const a = b;\n",
  'src/core/b/b.ts': "import type { A } from '../a/a.ts';\nexport const b: A = 1;\n",
  // a feature imports storage, from a .tsx file
  'src/features/page/page.tsx': "import { stored } from '../../storage/store.ts';\nexport const Page = () => <p>{stored}</p>;\n",
  'src/storage/store.ts': 'export const stored = 1;\n',
  // the CLI imports a runtime, and one runtime the other
  'src/cli/main.ts': "import { start } from '../runtimes/node/main.ts';\nexport const cli = start;\n",
  'src/runtimes/node/main.ts': "import { cli } from '../../cli/main.ts';\nexport const start = 1;\nexport const both = cli;\n",
  'src/runtimes/workers/main.ts': "import { start } from '../node/main.ts';\nexport const worker = start;\n",
  // an import of nothing
  'src/core/lost.ts': "import { nothing } from './nowhere.ts';\nexport const lost = nothing;\n",
  // the package entry imports a runtime
  'src/index.ts': "export { start } from './runtimes/node/main.ts';\n",
};

describe('the layer rules (npm run layers)', () => {
  const fixture = writeTree(FORBIDDEN);
  afterAll(() => rmSync(fixture, { recursive: true, force: true }));

  it('hold for src/ as it is', async () => {
    expect(await brokenRules(REPOSITORY_ROOT)).toEqual([]);
  });

  it('bite: every rule reports the forbidden import written for it in a small tree, type-only and .tsx imports included', async () => {
    expect(await brokenRules(fixture)).toEqual([
      'cli-imports-neither-runtimes-nor-http',
      'config-imports-core-features-config',
      'core-has-no-runtime',
      'core-imports-only-core',
      'each-runtime-alone',
      'features-import-core-and-features',
      'http-imports-core-features-http',
      'no-folder-cycles',
      'no-unresolvable-imports',
      'nothing-imports-an-entry-point',
      'package-entry-is-core-and-http',
      'runtimes-never-import-the-cli',
      'storage-imports-core-features-storage',
    ]);
  });
});
