import { KeywayError } from '../errors/keyway-error.ts';

export class FetchError extends KeywayError {
  override readonly name: string = 'FetchError';
  readonly code: string = 'fetch_failed';
}

/** A whole answer larger than the reader's cap: what was asked is that large, where a body broken off is the server failing. */
export class AnswerTooLargeError extends FetchError {
  override readonly name: string = 'AnswerTooLargeError';
  override readonly code: string = 'answer_too_large';
}

/**
 * Reads a response body up to `maxBytes`, refusing more (declared or streamed) and cancelling the rest
 * unread. Every failure is a FetchError: more bytes than the cap (an AnswerTooLargeError), and a body that
 * breaks off (the connection dropped, the deadline passed) alike, so callers map one error type to "the
 * server is unavailable" unless they know a large answer means more. `request` names what was asked in the
 * message (`GET https://…`).
 */
export async function readBounded(response: Response, maxBytes: number, request: string): Promise<string> {
  const tooLarge = () => new AnswerTooLargeError(`the answer to ${request} is larger than ${maxBytes} bytes: not read further`);
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch (cause) {
      throw new FetchError(`the answer to ${request} broke off while reading its body: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
    const { done, value } = chunk;
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}
