import { NO_SNIFF, NO_STORE } from '../oauth-errors.ts';

/** Where an orchestrator asks whether the process answers (`/livez`) and whether to send it traffic (`/readyz`). */
export const LIVENESS_PATH = '/livez';
export const READINESS_PATH = '/readyz';

/**
 * `GET /livez` and `GET /readyz`: anonymous, so they say up or not and nothing else (no version,
 * no reason; the operator's detail is `GET /v1/health`). They are not decisions, so they leave no
 * audit record, and they do no I/O, so they need no rate limit. The runtimes answer them in front
 * of the broker's app, so that they answer while it starts or after it failed to: `ready` is the
 * runtime's own cheap judgement. `undefined` when the request is not a probe.
 */
export function answerProbe(request: Request, ready: () => boolean | Promise<boolean>): Promise<Response> | undefined {
  if (request.method !== 'GET' && request.method !== 'HEAD') return undefined;
  const { pathname } = new URL(request.url);
  if (pathname === LIVENESS_PATH) return Promise.resolve(probeAnswer(request, true));
  // A readiness check that fails is an answer too: not ready.
  if (pathname === READINESS_PATH)
    return Promise.resolve()
      .then(ready)
      .then(
        (yes) => probeAnswer(request, yes),
        () => probeAnswer(request, false),
      );
  return undefined;
}

function probeAnswer(request: Request, ok: boolean): Response {
  const headers = { ...NO_STORE, ...NO_SNIFF, 'Content-Type': 'text/plain; charset=utf-8' };
  return new Response(request.method === 'HEAD' ? null : ok ? 'ok' : 'not ready', { status: ok ? 200 : 503, headers });
}
