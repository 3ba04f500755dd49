import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from '../middleware/body-limit.ts';
import * as v from 'valibot';
import { duplicateMember } from '../../core/audit/duplicate-member.ts';

const NO_STORE = { 'Cache-Control': 'no-store' } as const;

/** An RFC 6749-style 400 for a JSON API request that is not one this route takes. */
export const invalidRequest = (description: string): Response =>
  Response.json({ error: 'invalid_request', error_description: description }, { status: 400, headers: NO_STORE });

/** A body limit of `maxSize` bytes, answered as an invalid request past it, or when the body ended before it was whole. */
export const jsonBodyLimit = (maxSize: number): MiddlewareHandler =>
  bodyLimit({
    maxSize,
    onError: () => invalidRequest(`the request body is larger than ${maxSize} bytes`),
    onIncomplete: () => invalidRequest('the request body ended before it was received whole'),
  });

/** For a route that takes no body: one sent is refused, never ignored (and never read past its first byte). */
export const noRequestBody = (): MiddlewareHandler =>
  bodyLimit({ maxSize: 0, onError: () => invalidRequest('this request takes no body'), onIncomplete: () => invalidRequest('this request takes no body') });

const JSON_MEDIA_TYPE = /^application\/json[\t ]*(;|$)/i;

/**
 * The request's JSON body as `schema` reads it, or the 400 answer that says why not: a body not declared
 * `application/json` (a form a browser may post across origins unasked), not JSON, or naming a member of an object
 * twice (JSON.parse keeps the last, another reader of the same request may take the first).
 */
export async function readJsonBody<S extends v.GenericSchema>(
  c: Context,
  schema: S,
): Promise<{ readonly ok: true; readonly value: v.InferOutput<S> } | { readonly ok: false; readonly answer: Response }> {
  if (!JSON_MEDIA_TYPE.test(c.req.header('content-type') ?? ''))
    return { ok: false, answer: invalidRequest('the request body must be JSON, sent with Content-Type: application/json') };
  let body: unknown;
  try {
    const text = await c.req.text();
    body = JSON.parse(text);
    if (duplicateMember(text) !== undefined) return { ok: false, answer: invalidRequest('the request body names a member of an object twice') };
  } catch {
    return { ok: false, answer: invalidRequest('the request body must be a JSON object') };
  }
  const parsed = v.safeParse(schema, body);
  if (!parsed.success) return { ok: false, answer: invalidRequest(parsed.issues.map((issue) => issue.message).join('; ')) };
  return { ok: true, value: parsed.output };
}
