import { expect } from 'vitest';
import type { BrokerClient } from '../suites/exchange-suite.ts';

/** Posts the /audit sign-in form with `body` as the page's own form sends it (a browser says Sec-Fetch-Site: same-origin). */
export function postSignInForm(broker: BrokerClient, body: BodyInit, headers: Record<string, string> = {}): Promise<Response> {
  return broker.request('/audit/sign-in', {
    method: 'POST',
    body,
    redirect: 'manual',
    duplex: 'half',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin', ...headers },
  } as RequestInit);
}

/** Posts the /audit sign-in form with `token` pasted. */
export function signInToPage(broker: BrokerClient, token: string, headers: Record<string, string> = {}): Promise<Response> {
  return postSignInForm(broker, new URLSearchParams({ token }), headers);
}

/** Signs in to the /audit page with `token`; resolves to the session cookie the page set, as a Cookie header's `name=value`. */
export async function pageCookie(broker: BrokerClient, token: string): Promise<string> {
  const signedIn = await signInToPage(broker, token);
  expect(signedIn.status).toBe(303);
  const set = signedIn.headers.get('set-cookie') ?? '';
  return set.slice(0, set.indexOf(';'));
}
