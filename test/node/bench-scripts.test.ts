import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// Proves `npm run bench` and `npm run soak` run end to end, with tiny durations and low rates.
// Their figures are not checked here (a timed test proves nothing on a shared machine); the
// soak's fault handling is, since it does not depend on timing: no token without a record.
const ROOT = resolve(import.meta.dirname, '../..');

function run(script: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [script], { cwd: ROOT, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

describe('the benchmark scripts', () => {
  it('npm run bench prints every figure with its target and writes the JSON summary', async () => {
    const results = join(mkdtempSync(join(tmpdir(), 'keyway-bench-smoke-')), 'latest.json');
    const bench = await run('bench/bench.ts', {
      BENCH_SECONDS: '1',
      BENCH_ROUNDS: '1',
      BENCH_RATE: '50',
      BENCH_RATE_SECONDS: '1',
      BENCH_CONNECTIONS: '4',
      BENCH_FLOOR_SECONDS: '1',
      BENCH_TOKENS: '40',
      BENCH_WARM_UP: '10',
      BENCH_LARGE_POLICY_SET: '100',
      BENCH_RESULTS: results,
    });
    expect(bench.stderr).toBe('');
    expect(bench.code).toBe(0);
    for (const figure of ['throughput / crypto floor', 'latency at 50/s', '10 vs 100 policies', 'Worker bundle', 'JWKS fetches, steady state']) {
      expect(bench.stdout).toMatch(new RegExp(`\\| ${figure} +\\| .+ \\| (MET|MISSED) +\\|`));
    }
    const summary = JSON.parse(readFileSync(results, 'utf8')) as { failures: number; jwks: { fetchesDuringWarmUp: number }; bundle: { gzipBytes: number }; targets: Record<string, { verdict: string }> };
    expect(Object.keys(summary.targets)).toEqual(['floorRatio', 'p99AtRate', 'policyCost', 'bundleGzip', 'jwksFetchesSteady']);
    expect(summary.failures).toBe(0);
    expect(summary.jwks.fetchesDuringWarmUp).toBeGreaterThan(0);
    expect(summary.bundle.gzipBytes).toBeGreaterThan(0);
  }, 180_000);

  it('npm run soak runs the steady phase and both faults, and no token leaves without its audit record', async () => {
    const results = join(mkdtempSync(join(tmpdir(), 'keyway-soak-smoke-')), 'soak.json');
    const soak = await run('bench/soak.ts', {
      SOAK_SECONDS: '4',
      SOAK_INTERVAL_SECONDS: '2',
      SOAK_RATE: '20',
      SOAK_CONNECTIONS: '4',
      SOAK_TOKENS: '40',
      SOAK_ISSUER_DOWN_SECONDS: '2',
      SOAK_STORE_FAULT_SECONDS: '3',
      SOAK_RESULTS: results,
    });
    expect(soak.stderr).toBe('');
    const { criteria } = JSON.parse(readFileSync(results, 'utf8')) as { criteria: Record<string, { verdict: string; value: unknown }> };
    // Memory and latency flatness are timing: printed, not asserted.
    for (const name of ['steadyErrors', 'issuerDown', 'storeFailing', 'storeRecovered', 'everyGrantRecorded', 'chainIntact']) {
      expect({ name, ...criteria[name] }).toMatchObject({ name, verdict: 'HELD' });
    }
    expect(soak.code === 0 || /NOT HELD (rssFlat|heapFlat|latencyFlat)/.test(soak.stdout)).toBe(true);
  }, 180_000);
});
