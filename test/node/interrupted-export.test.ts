import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('../..', import.meta.url).pathname;

// A broker whose export sends one record and then stalls, so the CLI is caught mid-write.
describe('keyway audit export --output, interrupted', () => {
  const stalled: ServerResponse[] = [];
  const server = createServer((request, response) => {
    if (!request.url?.startsWith('/v1/audit/export')) return void response.writeHead(404).end();
    response.writeHead(200, { 'content-type': 'application/x-ndjson' });
    response.write('{"id":"01JEXAMPLE0000000000000000"}\n');
    stalled.push(response);
  });
  beforeAll(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)));
  afterAll(() => {
    for (const response of stalled) response.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`by ${signal} leaves nothing behind: no FILE, no partial file`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'keyway-interrupted-'));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const child = spawn(process.execPath, ['src/cli/main.ts', 'audit', 'export', '--url', url, '--output', join(dir, 'audit.ndjson')], {
        cwd: ROOT,
        env: { ...process.env, KEYWAY_TOKEN: 'not-checked-here' },
      });
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      // Mid-write: the partial file exists in its staging directory (0700, the writer's alone) and holds the first record.
      const deadline = Date.now() + 20_000;
      let staging: string | undefined;
      while (Date.now() < deadline) {
        staging = readdirSync(dir).find((name) => name.startsWith('.audit.ndjson.partial-'));
        if (staging !== undefined && statSync(join(dir, staging, 'audit.ndjson'), { throwIfNoEntry: false })?.size) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(staging).toBeDefined();
      expect(statSync(join(dir, staging!)).mode & 0o777).toBe(0o700);
      expect(statSync(join(dir, staging!, 'audit.ndjson')).size).toBeGreaterThan(0);
      child.kill(signal);
      expect(await exited).toBe(signal === 'SIGINT' ? 130 : 143);
      expect(readdirSync(dir)).toEqual([]);
    });
  }
});
