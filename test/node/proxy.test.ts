import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { readMasterKeys } from '../../src/core/secrets/master-keys.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { UPSTREAM_SECRET_PURPOSE } from '../../src/features/proxy/proxy-settings.ts';
import { proxyGitHubSuite, proxySuite, type ProxyRuntime } from '../suites/proxy-suite.ts';
import { BROKER_ISSUER, runProcess, startNodeHarness, type Environment } from './node-harness.ts';

const masterKey = randomBytes(32).toString('base64');

/** A request whose target goes on the request line exactly as written: no URL parser resolves its dot segments first. */
function sendRaw(url: string, target: string, headers: Record<string, string>): Promise<Response> {
  return new Promise((resolve, reject) => {
    const sent = request(`${url}/`, { path: target, headers }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        const responseHeaders = new Headers();
        // node:http gives set-cookie as an array: each value kept, so an assertion that none passed can fail.
        for (const [name, value] of Object.entries(answer.headers)) {
          for (const each of Array.isArray(value) ? value : value === undefined ? [] : [value]) responseHeaders.append(name, each);
        }
        resolve(new Response(Buffer.concat(chunks), { status: answer.statusCode ?? 0, headers: responseHeaders }));
      });
    });
    sent.on('error', reject);
    sent.end();
  });
}

/** Raw bytes on a socket, the socket left open, and the first line of the answer once it comes (or of nothing, once closed). */
function sendBytes(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = connect(Number(port), hostname, () => socket.write(bytes));
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer')));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) {
        resolve(answer.split('\r\n')[0] ?? '');
        socket.destroy();
      }
    });
    socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''));
    socket.on('error', reject);
  });
}

const runtime: ProxyRuntime = {
  name: 'Node',
  start: startNodeHarness,
  issuerBase: () => inject('testIssuerBase'),
  upstreamBase: () => inject('fakeUpstreamBase'),
  githubBase: () => inject('fakeGitHubBase'),
  brokerIssuer: BROKER_ISSUER,
  masterKey: () => masterKey,
  sendRaw: (broker, target, headers) => sendRaw(broker.url!, target, headers),
  sendBytes: (broker, bytes) => sendBytes(broker.url!, bytes),
};

proxySuite(runtime);
proxyGitHubSuite(runtime);

describe('keyway keys secret', () => {
  const cli = (args: readonly string[], env: Environment, stdin: string) =>
    runProcess(process.execPath, ['src/cli/main.ts', 'keys', 'secret', ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdin });

  it('seals a secret read from standard input under the master key, for that upstream only', async () => {
    const result = await cli(['--upstream', 'vendor'], { KEYWAY_MASTER_KEY: masterKey }, 'vendor-secret\n');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const sealed = result.stdout.trim();
    expect(sealed).not.toContain('vendor-secret');
    const box = await SecretBox.fromMasterKeys(readMasterKeys({ KEYWAY_MASTER_KEY: masterKey })!);
    expect(await box.open(sealed, UPSTREAM_SECRET_PURPOSE, 'vendor')).toBe('vendor-secret');
    await expect(box.open(sealed, UPSTREAM_SECRET_PURPOSE, 'other')).rejects.toThrow();
  });

  it('refuses without an upstream, a master key or a secret, or with a secret longer than the broker takes', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'keyway-seal-'));
    expect((await cli([], { KEYWAY_MASTER_KEY: masterKey }, 'x')).code).toBe(2);
    expect((await cli(['--upstream', 'vendor', '--data-dir', empty], {}, 'x')).code).toBe(1);
    expect((await cli(['--upstream', 'vendor'], { KEYWAY_MASTER_KEY: masterKey }, '')).code).toBe(2);
    expect((await cli(['--upstream', 'vendor'], { KEYWAY_MASTER_KEY: masterKey }, `${'k'.repeat(8192)}\n`)).code).toBe(0);
    const long = await cli(['--upstream', 'vendor'], { KEYWAY_MASTER_KEY: masterKey }, 'k'.repeat(8193));
    expect({ code: long.code, stdout: long.stdout }).toEqual({ code: 2, stdout: '' });
    expect(long.stderr).toContain('the secret is 8193 characters, more than the 8192 a static secret may hold');
    expect(long.stderr).not.toContain('kkkk');
    // As long as a PEM key, but of characters every encoder writes otherwise: its search would hold hundreds of MB.
    const escaped = await cli(['--upstream', 'vendor'], { KEYWAY_MASTER_KEY: masterKey }, 'é/‹"+&=\t€\\'.repeat(820).slice(0, 8192));
    expect({ code: escaped.code, stdout: escaped.stdout }).toEqual({ code: 2, stdout: '' });
    expect(escaped.stderr).toMatch(
      /the secret's written forms, which answers are searched for, come to \d+ bytes, more than the 2097152 a static secret's may/,
    );
    expect(escaped.stderr).not.toContain('é/‹');
    // The bound is the bytes': 738 of those characters come to 2,095,420 bytes of written forms, 739 to 2,098,674.
    const edge = 'é/‹"+&=\t€\\'.repeat(74);
    expect((await cli(['--upstream', 'vendor'], { KEYWAY_MASTER_KEY: masterKey }, edge.slice(0, 738))).code).toBe(0);
    expect((await cli(['--upstream', 'vendor'], { KEYWAY_MASTER_KEY: masterKey }, edge.slice(0, 739))).stderr).toMatch(
      /come to 2098674 bytes, more than the 2097152/,
    );
  });

  it('names both bounds a secret is held to in its usage: its characters, and the bytes of its written forms', async () => {
    const help = await cli(['--help'], {}, '');
    expect(help.code).toBe(0);
    const text = help.stdout.replace(/\s+/g, ' ');
    expect(text).toContain('It holds 8192 characters at most, and its written forms, which answers are searched for');
    expect(text).toContain('2 MiB at most');
  });
});
