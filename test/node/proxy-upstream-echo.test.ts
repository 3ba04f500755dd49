import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readMasterKeys } from '../../src/core/secrets/master-keys.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { UPSTREAM_SECRET_PURPOSE } from '../../src/features/proxy/proxy-settings.ts';
import { ciClaims } from '../support/test-issuer.ts';
import { freshIssuer, type BrokerHarness } from '../suites/exchange-suite.ts';
import { startNodeHarness } from './node-harness.ts';

const masterKey = randomBytes(32).toString('base64');
/** The static upstream's secret: the caller must never get it back, in any form the caller can read. */
const SECRET = `echoed-secret-${randomBytes(12).toString('hex')}`;
/**
 * A static secret as base64 and vendors write them, with the characters JSON encoders escape beyond what JSON requires,
 * and a tab, the one control character a header value holds, which every encoder writes as `\t`.
 */
const ESCAPED_SECRET = `${randomBytes(12).toString('base64')}/a+b<c>d&e='f"g\\h\`i\tj==`;

/**
 * A static secret with characters beyond ASCII, as a header carries them (U+0080 to U+00FF, one byte each), which JSON
 * encoders that keep their output ASCII write as `\\u00e4`.
 */
const LATIN_SECRET = `p\u00e4ss-${randomBytes(8).toString('hex')}-w\u00f6rd/\u00e9t\u00e9`;

/**
 * A static secret whose end repeats its start (it has a period: the first PERIOD characters, over again): two of it
 * overlapping, PERIOD apart, share the middle, and the second's end, PERIOD characters, tells the whole of it.
 */
const PERIOD = 12;
const PERIODIC_SECRET = (() => {
  const period = `p${randomBytes(8).toString('hex')}`.slice(0, PERIOD);
  return `${period}${period}${period.slice(0, 5)}`;
})();

/** JSON with each character `characters` matches written as a `\\uXXXX` escape, with capital hex digits if told. */
const unicodeEscaped =
  (characters: RegExp, capitals = false) =>
  (json: string): string =>
    json.replace(characters, (character) => {
      const digits = character.charCodeAt(0).toString(16).padStart(4, '0');
      return `\\u${capitals ? digits.toUpperCase() : digits}`;
    });
const beyondAscii = /[\u0080-\uffff]/g;

/** The credential in a JSON string as an encoder writes it: JSON.stringify, then the escapes that encoder adds. */
const JSON_ENCODERS: Readonly<Record<string, (json: string) => string>> = {
  // PHP's json_encode escapes `/` by default, and writes each character beyond ASCII as `\\u00e4`.
  php: (json) => unicodeEscaped(beyondAscii)(json.replaceAll('/', '\\/')),
  // Python's json.dumps writes each character beyond ASCII so (ensure_ascii, its default).
  python: unicodeEscaped(beyondAscii),
  // Go's encoding/json (and Rails) escape `<`, `>` and `&` to keep the output safe inside HTML.
  go: unicodeEscaped(/[<>&]/g),
  // Gson escapes `=` and `'` too.
  gson: unicodeEscaped(/[<>&=']/g),
  // .NET's System.Text.Json (ASP.NET Core's default) escapes `"`, `&`, `'`, `+`, `<`, `>` and `` ` `` with capital hex
  // digits, `"` as `\u0022` rather than `\"`; a `\` stays `\\`.
  // And each character beyond ASCII so too.
  dotnet: (json) =>
    unicodeEscaped(
      beyondAscii,
      true,
    )(
      json.replace(/\\["\\]|[&'+<>`]/g, (written) =>
        written === '\\\\' ? written : `\\u${written.at(-1)!.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`,
      ),
    ),
};
const ENCODERS = Object.keys(JSON_ENCODERS);

/**
 * An upstream that echoes the Authorization it received (a debugging endpoint, a reflected error), each path in one
 * more way real servers write a body or a header.
 */
function echo(request: IncomingMessage, response: ServerResponse): void {
  const path = (request.url ?? '/').split('?')[0]!;
  const body = JSON.stringify({ credential: String(request.headers['authorization'] ?? '') });
  // Gzip, listed with a coding fetch does not decode: fetch hands the bytes over as they came.
  if (path === '/echo/gzip-then-identity') {
    response.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip, identity' });
    return void response.end(gzipSync(body));
  }
  // As Spring MVC negotiates it: the charset parameter of the caller's Accept becomes the answer's charset.
  if (path === '/echo/negotiated-charset') {
    const charset = /charset=([\w-]+)/i.exec(String(request.headers['accept'] ?? ''))?.[1]?.toLowerCase() ?? 'utf-8';
    response.writeHead(200, { 'content-type': `application/json; charset=${charset}` });
    return void response.end(Buffer.from(body, charset === 'utf-16le' ? 'utf16le' : 'utf8'));
  }
  // The credential written twice overlapping, its period apart (a prefix shown, then the whole, with nothing between).
  if (path === '/echo/overlapping') {
    const credential = String(request.headers['authorization'] ?? '').replace(/^Bearer /, '');
    response.writeHead(200, { 'content-type': 'application/json' });
    return void response.end(JSON.stringify({ credential: `${credential.slice(0, PERIOD)}${credential}` }));
  }
  // The credential in UTF-16LE, then in UTF-16BE begun on the first's last byte, a zero: the two share it.
  if (path === '/echo/both-byte-orders') {
    const credential = String(request.headers['authorization'] ?? '').replace(/^Bearer /, '');
    const le = Buffer.from(credential, 'utf16le');
    response.writeHead(200, { 'content-type': 'application/octet-stream' });
    return void response.end(Buffer.concat([le, Buffer.from(le).swap16().subarray(1), Buffer.from('}')]));
  }
  // The credential as a header's name: a server that turns what it received into header names (x-<value>).
  if (path === '/echo/header-name') {
    const credential = String(request.headers['authorization'] ?? '').replace(/^Bearer /, '');
    response.writeHead(200, { 'content-type': 'application/json', [`x-seen-${credential}`]: '1' });
    return void response.end('{"ok":true}');
  }
  // Gzip as a transfer coding (HTTP/1.1 lets a server apply one): fetch takes the chunking off, never the gzip.
  if (path === '/echo/gzip-transfer-coding') {
    const gzipped = gzipSync(body);
    response.socket?.end(
      Buffer.concat([
        Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: gzip, chunked\r\n\r\n${gzipped.length.toString(16)}\r\n`),
        gzipped,
        Buffer.from('\r\n0\r\n\r\n'),
      ]),
    );
    return;
  }
  // As a static file server or a cache in front of one serves it: a Range of bytes is answered 206 with those bytes alone.
  if (path === '/echo/ranged') {
    const bytes = Buffer.from(body);
    const [, first, last] = /^bytes=(\d+)-(\d+)$/.exec(String(request.headers['range'] ?? '')) ?? [];
    if (first === undefined || last === undefined) {
      response.writeHead(200, { 'content-type': 'application/json', 'accept-ranges': 'bytes' });
      return void response.end(bytes);
    }
    const slice = bytes.subarray(Number(first), Number(last) + 1);
    response.writeHead(206, {
      'content-type': 'application/json',
      'accept-ranges': 'bytes',
      'content-range': `bytes ${first}-${Number(first) + slice.length - 1}/${bytes.length}`,
    });
    return void response.end(slice);
  }
  const encoder = JSON_ENCODERS[path.replace(/^\/echo\/json-/, '')];
  if (path.startsWith('/echo/json-') && encoder !== undefined) {
    response.writeHead(200, { 'content-type': 'application/json' });
    return void response.end(encoder(body));
  }
  response.writeHead(404, { 'content-type': 'application/json' });
  response.end('{"message":"Not Found"}');
}

describe('proxy mode: an upstream that echoes keyway’s credential', () => {
  let broker: BrokerHarness;
  let upstream: ReturnType<typeof createServer>;
  let job: () => Promise<string>;

  beforeAll(async () => {
    upstream = createServer(echo);
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const issuer = freshIssuer(inject('testIssuerBase'), 'proxy-echo');
    const box = await SecretBox.fromMasterKeys(readMasterKeys({ KEYWAY_MASTER_KEY: masterKey })!);
    const sealed = await box.seal(SECRET, UPSTREAM_SECRET_PURPOSE, 'echo');
    const sealedEscaped = await box.seal(ESCAPED_SECRET, UPSTREAM_SECRET_PURPOSE, 'escaping');
    const sealedLatin = await box.seal(LATIN_SECRET, UPSTREAM_SECRET_PURPOSE, 'latin');
    const sealedPeriodic = await box.seal(PERIODIC_SECRET, UPSTREAM_SECRET_PURPOSE, 'periodic');
    broker = await startNodeHarness(
      {
        'proxy/echo.yaml': `version: 1
issuer: { kind: github, url: "${issuer.url}" }
match: { repository_owner_id: "1200934", repository: acme/api }
grant:
  proxy: { upstream: echo, allow: [{ method: GET, path: "/echo/*" }] }
`,
        'proxy/escaping.yaml': `version: 1
issuer: { kind: github, url: "${issuer.url}" }
match: { repository_owner_id: "1200934", repository: acme/api }
grant:
  proxy: { upstream: escaping, allow: [{ method: GET, path: "/echo/*" }] }
`,
        'proxy/latin.yaml': `version: 1
issuer: { kind: github, url: "${issuer.url}" }
match: { repository_owner_id: "1200934", repository: acme/api }
grant:
  proxy: { upstream: latin, allow: [{ method: GET, path: "/echo/*" }] }
`,
        'proxy/periodic.yaml': `version: 1
issuer: { kind: github, url: "${issuer.url}" }
match: { repository_owner_id: "1200934", repository: acme/api }
grant:
  proxy: { upstream: periodic, allow: [{ method: GET, path: "/echo/*" }] }
`,
      },
      {
        settings: {
          KEYWAY_MASTER_KEY: masterKey,
          KEYWAY_ALLOW_HTTP_LOOPBACK: '1',
          KEYWAY_PROXY_UPSTREAMS: `upstreams:
  echo:
    url: http://127.0.0.1:${(upstream.address() as AddressInfo).port}
    auth: { kind: static, sealed: "${sealed}" }
  escaping:
    url: http://127.0.0.1:${(upstream.address() as AddressInfo).port}
    auth: { kind: static, sealed: "${sealedEscaped}" }
  latin:
    url: http://127.0.0.1:${(upstream.address() as AddressInfo).port}
    auth: { kind: static, sealed: "${sealedLatin}" }
  periodic:
    url: http://127.0.0.1:${(upstream.address() as AddressInfo).port}
    auth: { kind: static, sealed: "${sealedPeriodic}" }
`,
        },
      },
    );
    job = () => issuer.sign(ciClaims(issuer.url, broker.issuer));
  });
  afterAll(async () => {
    await broker?.close();
    upstream?.closeAllConnections();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  const get = async (path: string, headers: Record<string, string> = {}): Promise<Response> =>
    broker.request(path, { headers: { ...headers, authorization: `Bearer ${await job()}` } });

  /**
   * What the caller reads of the answer, as sent and gunzipped, holds no credential; and it is keyway's refusal of an
   * answer it cannot redact (502, Keyway-Error, no-store, recorded with the upstream's status), not a pass nor a 500.
   */
  const expectNoReadableSecret = async (response: Response, path: string): Promise<void> => {
    const bytes = Buffer.from(await response.arrayBuffer());
    const readable = [bytes.toString('utf8')];
    try {
      readable.push(gunzipSync(bytes).toString('utf8'));
    } catch {
      // Not gzip: nothing more to read.
    }
    for (const text of readable) expect(text).not.toContain(SECRET);
    expect({ status: response.status, keywayError: response.headers.get('keyway-error'), cache: response.headers.get('cache-control') }).toEqual({
      status: 502,
      keywayError: 'proxy_upstream_unavailable',
      cache: 'no-store',
    });
    const body = JSON.parse(readable[0]!) as Record<string, unknown>;
    expect(body['error']).toBe('temporarily_unavailable');
    expect(await broker.auditEvent(body['audit_event_id'] as string)).toMatchObject({
      reason: 'proxy_upstream_unavailable',
      proxy: { status: 200, path },
    });
  };

  it('hands back no body the caller can decode to the credential: a content coding fetch left undecoded is not passed on unlabelled', async () => {
    // The upstream labelled it gzip; keyway drops the label, not the coding.
    await expectNoReadableSecret(await get('/proxy/echo/echo/gzip-then-identity'), '/echo/gzip-then-identity');
  });

  it('hands back no echo of the credential in a charset the caller asked for (UTF-16, as Spring negotiates it)', async () => {
    const response = await get('/proxy/echo/echo/negotiated-charset', { accept: 'application/json; charset=utf-16le' });
    expect(response.status).toBe(200);
    const bytes = Buffer.from(await response.arrayBuffer());
    expect(bytes.toString('utf8')).not.toContain(SECRET);
    // Passed on, in the caller's charset, with the credential redacted in that charset.
    expect(bytes.toString('utf16le')).toBe(JSON.stringify({ credential: 'Bearer [redacted]' }));
  });

  it('hands back no header whose name holds the credential', async () => {
    const response = await get('/proxy/echo/echo/header-name');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
    for (const [name, value] of response.headers) expect(`${name}: ${value}`).not.toContain(SECRET);
    expect([...response.headers.keys()].filter((name) => name.startsWith('x-seen-'))).toEqual([]);
  });

  it('hands back no piece of the credential a Range would cut out of an echo of it: the caller’s Range is not forwarded', async () => {
    // {"credential":"Bearer echoed-secret-…"}: two ranges that each stop short of the whole secret, joined, would hold it.
    const at = JSON.stringify({ credential: 'Bearer ' }).length - 2;
    const half = at + Math.floor(SECRET.length / 2);
    const pieces = await Promise.all([
      get('/proxy/echo/echo/ranged', { range: `bytes=0-${half}` }),
      get('/proxy/echo/echo/ranged', { range: `bytes=${half + 1}-1000` }),
    ]);
    const joined = (await Promise.all(pieces.map((response) => response.text()))).join('');
    expect(joined).not.toContain(SECRET);
    for (const response of pieces) {
      expect(response.status).toBe(200);
      expect(response.headers.has('content-range')).toBe(false);
    }
    expect(joined).toContain('[redacted]');
  });

  it.each(ENCODERS)('hands back no echo of the credential in a JSON string as %s escapes it', async (encoder) => {
    const response = await get(`/proxy/escaping/echo/json-${encoder}`);
    expect(response.status).toBe(200);
    const text = await response.text();
    // Read as the caller's JSON reader reads it: the escapes undone.
    expect(JSON.parse(text)).toEqual({ credential: 'Bearer [redacted]' });
    expect(text).not.toContain(ESCAPED_SECRET);
  });

  it.each(['php', 'python', 'dotnet'])(
    'hands back no echo of a credential with characters beyond ASCII in a JSON string as %s writes them, \\u00e4',
    async (encoder) => {
      const response = await get(`/proxy/latin/echo/json-${encoder}`);
      expect(response.status).toBe(200);
      const text = await response.text();
      expect(text).not.toMatch(/[\u0080-\uffff]/);
      expect(JSON.parse(text)).toEqual({ credential: 'Bearer [redacted]' });
    },
  );

  it('hands back no end of a credential that overlaps another echo of it: the two are one [redacted]', async () => {
    // Resumed past the first, the search passed the second's end on: its last PERIOD characters, the secret's period.
    const response = await get('/proxy/periodic/echo/overlapping');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ credential: '[redacted]' });
  });

  it('hands back no echo of the credential in one byte order that overlaps an echo in the other by a zero', async () => {
    // The first was replaced, and the second, begun inside it, was passed on whole but for that zero.
    const response = await get('/proxy/echo/echo/both-byte-orders');
    expect(response.status).toBe(200);
    const bytes = new Uint8Array(await response.arrayBuffer());
    expect(Buffer.from(bytes.filter((byte) => byte !== 0)).toString('latin1')).toBe('[redacted]}');
  });

  it('hands back no body the caller can decode to the credential: a gzip transfer coding fetch left on is not passed on unlabelled', async () => {
    await expectNoReadableSecret(await get('/proxy/echo/echo/gzip-transfer-coding'), '/echo/gzip-transfer-coding');
  });
});
