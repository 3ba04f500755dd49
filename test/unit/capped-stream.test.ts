import { describe, expect, it } from 'vitest';
import { cappedStream, redactedStream, type StreamEnd } from '../../src/features/proxy/capped-stream.ts';

const streamOf = (chunks: readonly string[]): ReadableStream<Uint8Array> =>
  new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
      controller.close();
    },
  });

describe('passing an answer on', () => {
  it('redacts the credential wherever it falls, split across chunks or not, and keeps everything else', async () => {
    const secret = 'ghs_SECRETsecret';
    for (const chunks of [[`a${secret}b`], ['a ghs_SEC', 'RETsecret b', secret], ['ghs_', 'SECRET', 'secret', ''], ['ghs_SECRETsecre', 'x']]) {
      const text = await new Response(redactedStream(streamOf(chunks), secret)).text();
      expect(text).not.toContain(secret);
      expect(text).toBe(chunks.join('').replaceAll(secret, '[redacted]'));
    }
  });

  it('redacts the credential written in UTF-16 or UTF-32 of either byte order, with or without a byte order mark, and keeps the body decodable', async () => {
    const secret = 'ghs_SECRETsecret';
    const written = (text: string, encoding: 'utf-16le' | 'utf-16be' | 'utf-32le' | 'utf-32be'): Uint8Array => {
      const size = encoding.startsWith('utf-16') ? 2 : 4;
      const view = new DataView(new ArrayBuffer(text.length * size));
      for (let at = 0; at < text.length; at++) {
        if (size === 2) view.setUint16(at * 2, text.charCodeAt(at), encoding.endsWith('le'));
        else view.setUint32(at * 4, text.charCodeAt(at), encoding.endsWith('le'));
      }
      return new Uint8Array(view.buffer);
    };
    for (const encoding of ['utf-16le', 'utf-16be', 'utf-32le', 'utf-32be'] as const) {
      for (const text of [`{"echo":"Bearer ${secret}"}`, `\ufeff${secret}${secret}`]) {
        const bytes = written(text, encoding);
        // Split inside the secret, at an odd byte: the held-back bytes carry it over.
        const cut = written(text.slice(0, text.indexOf(secret) + 3), encoding).byteLength + 1;
        const source = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(bytes.slice(0, cut));
            controller.enqueue(bytes.slice(cut));
            controller.close();
          },
        });
        const out = new Uint8Array(await new Response(redactedStream(source, secret)).arrayBuffer());
        expect(out).toEqual(written(text.replaceAll(secret, '[redacted]'), encoding));
      }
    }
  });

  it('errors, never truncates silently, once the cap is passed, and says why', async () => {
    const end: StreamEnd = { bytes: 0, error: undefined };
    const { stream, ended } = cappedStream(streamOf(['12345', '67890', 'x']), 10, end);
    await expect(new Response(stream).text()).rejects.toThrow(/too_large/);
    await ended;
    expect(end).toEqual({ bytes: 11, error: 'too_large' });
  });
});
