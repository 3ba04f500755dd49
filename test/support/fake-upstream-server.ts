import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { UPSTREAM_WORDS, type UpstreamCall } from './fake-upstream.ts';

const KEPT_BODY = 64 * 1024;
const CHUNK = new Uint8Array(64 * 1024).fill(0x61);

/**
 * A fake upstream on 127.0.0.1 for proxy mode, on node:http so it records exactly what arrived
 * (the raw target, the raw headers). Each test takes a tenant (`/t/{tenant}/…` is its base URL)
 * and reads its calls back with `GET /_test/calls/{tenant}`, from Node or from workerd alike.
 * What a tenant's path asks for, it answers:
 * - `…/big/{bytes}`: that many bytes, in 64 KiB chunks;
 * - `…/gate/{id}`: one chunk, then the rest (1 MiB) once `POST /_test/open/{id}` is called;
 * - `…/slow`: headers never sent (until the client goes away);
 * - `…/trickle`: headers and one chunk, then nothing;
 * - `…/status/{code}`: that status, a JSON body and a header of the upstream's own;
 * - `…/redirect-away`, `…/redirect-home`, `…/redirect-relative`: a 302 to another host, to this base, or to `landing?x=2`;
 * - `…/redirect-credential`: a 302 to this base whose query carries the credential it received;
 * - `…/created-home`, `…/created-away`: 201 with a `Location` and a `Content-Location` on this base, or on another host;
 * - `…/created-credential`: 201 with a `Location` and a `Content-Location` on this base whose query carries the credential it
 *   received, split by a tab;
 * - `…/paged`: 200 with a `Link` to a page of this base, one on another host, one beside this base and two relative ones;
 * - `…/paged-credential`: 200 with a `Link` to this base whose query carries the credential it received, split by a tab;
 * - `…/echo-credential`: the Authorization it received, in a header's value, in a header's name, in the reason phrase and in the body;
 * - `…/echo-coded/{name}`: that body alone, in the content coding `name` stands for (CODED), its Content-Length announced;
 * - `…/echo-transfer-coded`: that body alone, gzipped, in the transfer codings `gzip, chunked`;
 * - `…/hop`: hop-by-hop headers, a cookie and a forged Keyway-Error;
 * - anything else: 200 with `{"ok":true}`.
 */
/** The Content-Encoding each `…/echo-coded/{name}` is labelled with, and how its body is encoded to match. */
const CODED: Readonly<Record<string, readonly [string, (body: Buffer) => Buffer]>> = {
  gzip: ['gzip', gzipSync],
  br: ['br', brotliCompressSync],
  'gzip-identity': ['gzip, identity', gzipSync],
  deflate: ['deflate', deflateSync],
  'x-gzip': ['x-gzip', gzipSync],
  'upper-gzip': ['GZIP', gzipSync],
  identity: ['identity', (body) => body],
};

export async function startFakeUpstreamServer(): Promise<{ base: string; close(): Promise<void> }> {
  const calls = new Map<string, UpstreamCall[]>();
  const gates = new Map<string, () => void>();
  // Headers well past any broker's own limit (Node's 16 KiB; workerd's is larger), so whatever a broker forwards is
  // received and recorded, never refused here with a 431 of the fake's own making.
  const server = createServer({ maxHeaderSize: 256 * 1024 }, (request, response) => void handle(request, response));

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = request.url ?? '/';
    const control = /^\/_test\/(calls|open)\/([\w-]+)$/.exec(url);
    if (control !== null) {
      if (control[1] === 'calls') return json(response, 200, calls.get(control[2]!) ?? []);
      gates.get(control[2]!)?.();
      return json(response, 200, {});
    }
    const tenant = /^\/t\/([\w-]+)(\/.*)?$/.exec(url);
    if (tenant === null) return json(response, 404, { message: 'Not Found' });
    let bodyBytes = 0;
    let body = '';
    for await (const chunk of request as AsyncIterable<Buffer>) {
      bodyBytes += chunk.length;
      if (body.length < KEPT_BODY) body += chunk.toString('utf8').slice(0, KEPT_BODY - body.length);
    }
    const list = calls.get(tenant[1]!) ?? [];
    list.push({ method: request.method ?? '', url, headers: request.headers, bodyBytes, body });
    calls.set(tenant[1]!, list);
    const path = tenant[2] ?? '/';
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/t/${tenant[1]}`;
    const big = /\/big\/(\d+)$/.exec(path);
    if (big !== null) return stream(response, Number(big[1]));
    // As /big, but announced: a Content-Length the proxy can refuse before any of the body passes.
    const announced = /\/announced\/(\d+)$/.exec(path);
    if (announced !== null) {
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': announced[1] });
      return stream(response, Number(announced[1]), false);
    }
    const gate = /\/gate\/([\w-]+)$/.exec(path);
    if (gate !== null) {
      response.writeHead(200, { 'content-type': 'application/octet-stream' });
      response.write(CHUNK);
      await new Promise<void>((resolve) => gates.set(gate[1]!, resolve));
      return stream(response, 1024 * 1024, false);
    }
    // Never answers: the client's deadline ends it.
    if (path.endsWith('/slow')) return;
    // Answers, sends one chunk, and stalls: the deadline must end the body too.
    if (path.endsWith('/trickle')) {
      response.writeHead(200, { 'content-type': 'application/octet-stream' });
      return void response.write(CHUNK);
    }
    const status = /\/status\/(\d{3})$/.exec(path);
    if (status !== null) {
      response.setHeader('x-upstream-own', 'kept');
      // An error_description keyway would never send (a quote, non-ASCII): the upstream's own words pass on as they are.
      return json(response, Number(status[1]), {
        message: 'from the upstream',
        documentation_url: 'https://upstream.example/docs',
        error_description: UPSTREAM_WORDS,
      });
    }
    if (path.endsWith('/redirect-away')) return redirect(response, 'https://elsewhere.example/steal');
    if (path.endsWith('/redirect-home')) return redirect(response, `${base}/landing?x=1`);
    if (path.endsWith('/redirect-relative')) return redirect(response, 'landing?x=2');
    // The same host and port, outside this upstream's base path.
    if (path.endsWith('/redirect-sideways')) return redirect(response, `${base.replace(/\/t\/[^/]+$/, '/t/someone-else')}/landing`);
    // A signed-URL style redirect to itself that carries the credential it was called with.
    if (path.endsWith('/redirect-credential')) {
      const credential = String(request.headers['authorization'] ?? '').replace(/^Bearer /, '');
      // Every character percent-encoded, as a URL may carry it: found only by decoding.
      const encoded = [...credential].map((character) => `%${character.charCodeAt(0).toString(16).padStart(2, '0')}`).join('');
      return redirect(response, `${base}/landing?token=${encoded}`);
    }
    // A resource created (201), named by a Location and a Content-Location on this base, or on another host.
    const created = (url: string) => void response.writeHead(201, { location: url, 'content-location': url }).end();
    if (path.endsWith('/created-home')) return created(`${base}/items/7`);
    if (path.endsWith('/created-away')) return created('https://elsewhere.example/items/7');
    if (path.endsWith('/created-credential')) {
      const credential = String(request.headers['authorization'] ?? '').replace(/^Bearer /, '');
      const half = Math.floor(credential.length / 2);
      return created(`${base}/items/7?t=${credential.slice(0, half)}\t${credential.slice(half)}`);
    }
    if (path.endsWith('/paged')) {
      const sideways = `${base.replace(/\/t\/[^/]+$/, '/t/someone-else')}/items?page=2`;
      const links = [`<${base}/items?page=2>; rel="next"`, '<https://elsewhere.example/items?page=9>; rel="last"', `<${sideways}>; rel="other"`];
      response.setHeader('link', [...links, '<?page=3>; rel="prev"', '<more>; rel="more"'].join(', '));
      return json(response, 200, [{ id: 1 }]);
    }
    if (path.endsWith('/paged-credential')) {
      const credential = String(request.headers['authorization'] ?? '').replace(/^Bearer /, '');
      const half = Math.floor(credential.length / 2);
      response.setHeader('link', `<${base}/items?t=${credential.slice(0, half)}\t${credential.slice(half)}>; rel="next"`);
      return json(response, 200, [{ id: 1 }]);
    }
    if (path.endsWith('/echo-credential')) {
      const credential = String(request.headers['authorization'] ?? '');
      response.setHeader('x-echo', credential);
      // And as a header's name, as a server that turns what it received into header names writes it.
      response.setHeader(`x-seen-${credential.replace(/^Bearer /, '')}`, '1');
      // And as the reason phrase of its status line, as a server that reports what it received there writes it.
      response.statusMessage = credential;
      return json(response, 200, { credential });
    }
    const coded = /\/echo-coded\/([\w-]+)$/.exec(path);
    if (coded !== null && CODED[coded[1]!] !== undefined) {
      const [label, encode] = CODED[coded[1]!]!;
      const encoded = encode(Buffer.from(JSON.stringify({ credential: String(request.headers['authorization'] ?? '') })));
      // Announced: the length of the bytes as sent, which decoding and redaction change.
      response.writeHead(200, { 'content-type': 'application/json', 'content-encoding': label, 'content-length': encoded.length });
      return void response.end(encoded);
    }
    // Transfer-Encoding `gzip, chunked`: node:http chunks what it is given, the body gzipped here.
    if (path.endsWith('/echo-transfer-coded')) {
      response.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'gzip, chunked' });
      return void response.end(gzipSync(Buffer.from(JSON.stringify({ credential: String(request.headers['authorization'] ?? '') }))));
    }
    if (path.endsWith('/hop')) {
      response.writeHead(200, {
        'content-type': 'application/json',
        connection: 'X-Named-Hop, x-second-hop',
        'x-named-hop': 'dropped',
        'x-second-hop': 'dropped',
        // Chunked, which node:http takes a Trailer with.
        'transfer-encoding': 'chunked',
        trailer: 'x-checksum',
        'keep-alive': 'timeout=77, max=3',
        'proxy-authenticate': 'Basic',
        'set-cookie': 'session=upstream',
        'set-cookie2': 'session=upstream; Version=1',
        'keyway-error': 'forged',
        'alt-svc': 'h3=":443"; ma=86400',
        'strict-transport-security': 'max-age=63072000; includeSubDomains; preload',
        'clear-site-data': '"cookies", "storage"',
        nel: '{"report_to":"upstream","max_age":31536000,"include_subdomains":true,"success_fraction":1.0}',
        'report-to': '{"group":"upstream","max_age":31536000,"endpoints":[{"url":"https://reports.upstream.example/nel"}]}',
        // Said to the reverse proxy or CDN in front of keyway, which acts on them in an answer it relays.
        'x-accel-redirect': '/internal/metrics',
        'X-Accel-Expires': '86400',
        'x-sendfile': '/etc/keyway/master.key',
        'x-sendfile2': '/etc/keyway/master.key 0-',
        'x-lighttpd-send-file': '/etc/keyway/master.key',
        'x-envoy-immediate-health-check-fail': 'true',
        'x-envoy-degraded': 'true',
        'surrogate-control': 'max-age=86400',
        'cdn-cache-control': 'public, max-age=86400',
        'cloudflare-cdn-cache-control': 'public, max-age=86400',
        'vercel-cdn-cache-control': 'max-age=86400',
        'Netlify-CDN-Cache-Control': 'public, max-age=86400',
        'edge-control': '!no-store, max-age=86400',
        // Storable by every shared cache, whose request carried keyway's credential: in front of keyway, by one that would hand it to anyone.
        'cache-control': 'public, max-age=86400, s-maxage=86400, proxy-revalidate, must-revalidate',
        'x-upstream-own': 'kept',
      });
      return void response.end('{"ok":true}');
    }
    return json(response, 200, { ok: true });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const open of gates.values()) open();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

function redirect(response: ServerResponse, location: string): void {
  response.writeHead(302, { location });
  response.end();
}

async function stream(response: ServerResponse, bytes: number, head = true): Promise<void> {
  if (head) response.writeHead(200, { 'content-type': 'application/octet-stream' });
  for (let sent = 0; sent < bytes && !response.destroyed; sent += CHUNK.length) {
    const chunk = CHUNK.subarray(0, Math.min(CHUNK.length, bytes - sent));
    if (!response.write(chunk)) await new Promise((resolve) => response.once('drain', resolve));
  }
  response.end();
}
