import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runProcess } from './node-harness.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

// A broker whose export sends one record and then stalls, so the CLI is caught mid-write.
describe('keyway audit export --output, interrupted', () => {
  const stalled: ServerResponse[] = [];
  const server = createServer((request, response) => {
    if (!request.url?.startsWith('/v1/audit/export')) return void response.writeHead(404).end();
    response.writeHead(200, { 'content-type': 'application/x-ndjson' });
    response.write('{"id":"01JEXAMPLE0000000000000000"}\n');
    // Asked for granted records only, it finishes: an export that completes.
    if (request.url.includes('decision=granted')) return void response.end();
    stalled.push(response);
  });
  beforeAll(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)));
  afterAll(() => {
    for (const response of stalled) response.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`by ${signal} leaves nothing behind: no FILE, no partial file`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'keyway-interrupted-'));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const child = spawn(process.execPath, ['src/cli/main.ts', 'audit', 'export', '--url', url, '--output', join(dir, 'audit.ndjson')], {
        cwd: ROOT,
        env: { ...process.env, KEYWAY_TOKEN: 'not-checked-here' },
      });
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      // Mid-write: the partial file exists in its staging directory (0700, the writer's alone) and holds the first record.
      const staging = await vi.waitFor(
        () => {
          const name = readdirSync(dir).find((entry) => entry.startsWith('.audit.ndjson.partial-'));
          expect(name).toBeDefined();
          expect(statSync(join(dir, name!, 'audit.ndjson')).size).toBeGreaterThan(0);
          return name!;
        },
        { timeout: 20_000, interval: 25 },
      );
      expect(statSync(join(dir, staging)).mode & 0o777).toBe(0o700);
      child.kill(signal);
      expect(await exited).toBe(128 + constants.signals[signal]);
      expect(readdirSync(dir)).toEqual([]);
    });
  }

  it('refuses a directory others can write to, where they could swap the staging directory; a sticky one is fine', async () => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const exportTo = (file: string) =>
      runProcess(process.execPath, ['src/cli/main.ts', 'audit', 'export', '--url', url, '--decision', 'granted', '--output', file], {
        cwd: ROOT,
        env: { ...process.env, KEYWAY_TOKEN: 'not-checked-here' },
      });
    const open = mkdtempSync(join(tmpdir(), 'keyway-open-'));
    chmodSync(open, 0o777);
    const refused = await exportTo(join(open, 'audit.ndjson'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`${open} can be changed by its group or others (mode 777), who could swap the file while it is written`);
    expect(readdirSync(open)).toEqual([]);
    // Below it, a private directory is refused too: its parent could be renamed away.
    const below = join(open, 'private');
    mkdirSync(below, { mode: 0o700 });
    expect((await exportTo(join(below, 'audit.ndjson'))).stderr).toContain(`${open} can be changed by its group or others`);

    chmodSync(open, 0o1777);
    const written = await exportTo(join(open, 'audit.ndjson'));
    expect(written.code, written.stderr).toBe(0);
    expect(readFileSync(join(open, 'audit.ndjson'), 'utf8')).toBe('{"id":"01JEXAMPLE0000000000000000"}\n');
    expect(statSync(join(open, 'audit.ndjson')).mode & 0o777).toBe(0o600);
    expect(readdirSync(open).sort()).toEqual(['audit.ndjson', 'private']);

    const missing = await exportTo(join(open, 'no-such-directory', 'audit.ndjson'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(
      `cannot write the export to ${join(open, 'no-such-directory', 'audit.ndjson')}: there is no directory ${join(open, 'no-such-directory')}`,
    );
  });
});
