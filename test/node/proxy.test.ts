import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { inject } from 'vitest';
import { proxyGitHubSuite, proxySuite, type ProxyRuntime } from '../suites/proxy-suite.ts';
import { startNodeHarness } from './node-harness.ts';

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

const runtime: ProxyRuntime = {
  name: 'Node',
  start: startNodeHarness,
  issuerBase: () => inject('testIssuerBase'),
  upstreamBase: () => inject('fakeUpstreamBase'),
  githubBase: () => inject('fakeGitHubBase'),
  masterKey: () => masterKey,
  sendRaw: (broker, target, headers) => sendRaw(broker.url!, target, headers),
};

proxySuite(runtime);
proxyGitHubSuite(runtime);
