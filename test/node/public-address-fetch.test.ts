import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { REPOSITORY_ROOT, runProcess } from './node-harness.ts';

it("loading the Node broker's outbound fetch leaves Node's own fetch its own dispatcher: undici does not take it over", async () => {
  // A process of its own: in this one Node's fetch may have run already, and then undici could not take the slot anyway.
  const outbound = pathToFileURL(join(REPOSITORY_ROOT, 'src/runtimes/node/public-address-fetch.ts')).href;
  const script = `
    await import(${JSON.stringify(outbound)});
    const { Agent } = await import('undici');
    const dispatcher = globalThis[Symbol.for('undici.globalDispatcher.1')];
    process.stdout.write(dispatcher === undefined ? 'none' : dispatcher instanceof Agent ? "undici's" : "node's");
  `;
  const result = await runProcess(process.execPath, ['--input-type=module', '-e', script], { cwd: REPOSITORY_ROOT, env: { PATH: process.env['PATH'] ?? '' } });
  expect(result.stderr).toBe('');
  expect(result.stdout).toBe("node's");
});
