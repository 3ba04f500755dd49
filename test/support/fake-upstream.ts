/** One request as the fake upstream (fake-upstream-server.ts) received it: the request line's target, every header, the body's size and its first 64 KiB. */
export interface UpstreamCall {
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly bodyBytes: number;
  readonly body: string;
}

/** The `error_description` of the fake upstream's `…/status/{code}` answers: one RFC 6749 would not allow keyway to send. */
export const UPSTREAM_WORDS = 'the upstream\'s own "words" — passed on as sent';

/** What the fake upstream received for one tenant, in order; web-standard fetch, so it runs in Node and inside workerd alike. */
export async function fakeUpstreamCalls(base: string, tenant: string): Promise<UpstreamCall[]> {
  return (await (await fetch(`${base}/_test/calls/${tenant}`)).json()) as UpstreamCall[];
}

/** Lets the fake upstream send the rest of a `…/gate/{id}` answer. */
export async function openFakeUpstreamGate(base: string, id: string): Promise<void> {
  await (await fetch(`${base}/_test/open/${id}`, { method: 'POST' })).arrayBuffer();
}
