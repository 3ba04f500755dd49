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

  it('errors, never truncates silently, once the cap is passed, and says why', async () => {
    const end: StreamEnd = { bytes: 0, error: undefined };
    const { stream, ended } = cappedStream(streamOf(['12345', '67890', 'x']), 10, end);
    await expect(new Response(stream).text()).rejects.toThrow(/too_large/);
    await ended;
    expect(end).toEqual({ bytes: 11, error: 'too_large' });
  });
});
