import { request } from 'node:http';
import { inject } from 'vitest';
import { freshIssuer } from '../suites/exchange-suite.ts';
import { proxyDotSegmentsSuite, type AsSentInit } from '../suites/proxy-dot-segments-suite.ts';
import { startNodeHarness } from './node-harness.ts';

/** The target on the request line as written: no URL parser on the client's side resolves it first. */
function sendAsSent(url: string, target: string, init: AsSentInit = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const sent = request(`${url}/`, { path: target, method: init.method ?? 'GET', headers: init.headers ?? {} }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(answer.headers)) if (typeof value === 'string') headers.set(name, value);
        resolve(new Response(Buffer.concat(chunks), { status: answer.statusCode ?? 0, headers }));
      });
    });
    sent.on('error', reject);
    sent.end(init.body);
  });
}

// Node's request line may be in absolute form (RFC 9112 §3.2.2), as a client sends it to a forward proxy: its path as
// sent is the part after the authority, and a dot segment there at /proxy/ is the proxy's recorded refusal too.
proxyDotSegmentsSuite('Node', async () => {
  const issuer = freshIssuer(inject('testIssuerBase'), 'proxy-dot-segments');
  const policy = `version: 1\nissuer: { kind: github, url: "${issuer.url}" }\nmatch: { repository_owner_id: "1200934" }\ngrant: { audience: https://deploy.acme.dev }\n`;
  const broker = await startNodeHarness({ 'ci/deploy.yaml': policy });
  return { send: (target, init) => sendAsSent(broker.url!, target, init), auditEvent: (id) => broker.auditEvent(id), close: () => broker.close() };
}, [
  'http://keyway.test/proxy/../v1/audit/events',
  'http://127.0.0.1/proxy/vendor/%2e%2e/%2e%2e/token',
  'http://keyway.test/proxy/vendor/repos/acme/api/../infra/issues',
]);
