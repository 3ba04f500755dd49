import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import { inject } from 'vitest';
import { proxyGitHubSuite, proxySuite, type ProxyRuntime } from '../suites/proxy-suite.ts';
import { BROKER_ISSUER, startNodeHarness } from './node-harness.ts';

const masterKey = randomBytes(32).toString('base64');

/** A request whose target goes on the request line exactly as written: no URL parser resolves its dot segments first. */
function sendRaw(url: string, target: string, headers: Record<string, string>): Promise<Response> {
  return new Promise((resolve, reject) => {
    const sent = request(`${url}/`, { path: target, headers }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(answer.headers)) if (typeof value === 'string') responseHeaders.set(name, value);
        resolve(new Response(Buffer.concat(chunks), { status: answer.statusCode ?? 0, headers: responseHeaders }));
      });
    });
    sent.on('error', reject);
    sent.end();
  });
}

/** Raw bytes on a socket, and the first line of the answer. */
function sendBytes(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = connect(Number(port), hostname, () => socket.end(bytes));
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer')));
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
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
