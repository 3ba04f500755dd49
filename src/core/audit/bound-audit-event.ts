import type { AuditEvent } from './audit-event.ts';

/**
 * How much of what a caller chose an audit record keeps. Sizes are counted as the record
 * serializes them (JSON characters, escapes included), so a record's size has a bound
 * whatever the request and its token hold.
 */
export const AUDIT_BOUNDS = {
  /** One caller-chosen string: claimed iss/sub/jti, request id, user agent, subject, an audience or scope entry. */
  text: 256,
  /** A refusal's detail (the operator's context around caller text), and an error description the caller is sent. */
  detail: 1024,
  /** One caller-chosen list (audience, scope) or one recorded claim's value, whole. */
  value: 2048,
  /** Entries kept of one list or object. */
  entries: 16,
} as const;

const CUT = '…';

/** Characters `char` (one UTF-16 code unit or a surrogate pair) takes in JSON: escapes count in full, a lone surrogate is `\udxxx`. */
function jsonSize(char: string): number {
  return JSON.stringify(char).length - 2;
}

/** `text`, or its head ending in … when it would serialize to more than `max` characters; a surrogate pair is never split. */
export function boundText(text: string, max: number = AUDIT_BOUNDS.text): string {
  if (JSON.stringify(text).length - 2 <= max) return text;
  let size = CUT.length;
  let end = 0;
  while (end < text.length) {
    const code = text.codePointAt(end) ?? 0;
    const units = code > 0xffff ? 2 : 1;
    const cost = jsonSize(text.slice(end, end + units));
    if (size + cost > max) break;
    size += cost;
    end += units;
  }
  return `${text.slice(0, end)}${CUT}`;
}

/** Room kept for the marker a cut list or object ends with (`,"…99 more"`). */
const MARKER_ROOM = 16;

/**
 * A copy of a JSON value a caller chose that serializes to at most `budget` characters:
 * strings cut (boundText), arrays and objects cut to AUDIT_BOUNDS.entries entries and to what
 * fits, nested values sharing the budget. A cut array ends in a `…N more` entry, a cut object
 * has a `…` key saying the same, so a cut is never mistaken for the value itself.
 */
export function boundJson(value: unknown, budget: number): unknown {
  if (typeof value === 'string') return boundText(value, Math.max(CUT.length, Math.min(AUDIT_BOUNDS.text, budget - 2)));
  if (typeof value !== 'object' || value === null) return value;
  const array = Array.isArray(value);
  const entries: [string, unknown][] = array ? value.map((item: unknown, index) => [String(index), item]) : Object.entries(value);
  const kept: [string, unknown][] = [];
  let left = budget - 2 - MARKER_ROOM;
  for (const [key, item] of entries) {
    if (kept.length === AUDIT_BOUNDS.entries) break;
    const name = array ? key : boundText(key);
    const keySize = array ? 0 : JSON.stringify(name).length + 1;
    const bounded = boundJson(item, left - keySize - 1);
    const size = keySize + JSON.stringify(bounded ?? null).length + 1;
    if (size > left) break;
    kept.push([name, bounded]);
    left -= size;
  }
  const more = entries.length - kept.length;
  if (array) return [...kept.map(([, item]) => item), ...(more > 0 ? [`${CUT}${more} more`] : [])];
  return Object.fromEntries(more > 0 ? [...kept, [CUT, `${more} more`]] : kept);
}

function boundList(list: readonly string[]): string[] {
  return boundJson(list, AUDIT_BOUNDS.value) as string[];
}

/**
 * The record as it is appended: every string and list a caller chose (in the request, in the
 * subject token verified or not, and echoed in the detail) bounded by AUDIT_BOUNDS. The one
 * place this happens, so no call site has to remember it. What configuration decides (the
 * issuer URL, policy ids, GitHub grants) is kept as it is.
 */
export function boundAuditEvent(event: AuditEvent): AuditEvent {
  const { request, subject_token: token, issued } = event;
  return {
    ...event,
    ...(event.detail === undefined ? {} : { detail: boundText(event.detail, AUDIT_BOUNDS.detail) }),
    request: {
      ...request,
      id: boundText(request.id),
      ...(request.client_ip === undefined ? {} : { client_ip: boundText(request.client_ip) }),
      ...(request.user_agent === undefined ? {} : { user_agent: boundText(request.user_agent) }),
      ...(request.audience === undefined ? {} : { audience: boundList(request.audience) }),
      ...(request.scope === undefined ? {} : { scope: boundList(request.scope) }),
    },
    ...(token === undefined
      ? {}
      : {
          subject_token: {
            ...token,
            ...(token.jti === undefined ? {} : { jti: boundText(token.jti) }),
            ...(token.claimed_iss === undefined ? {} : { claimed_iss: boundText(token.claimed_iss) }),
            ...(token.claimed_sub === undefined ? {} : { claimed_sub: boundText(token.claimed_sub) }),
          },
        }),
    ...(event.subject === undefined ? {} : { subject: boundText(event.subject) }),
    ...(event.claims === undefined
      ? {}
      : { claims: Object.fromEntries(Object.entries(event.claims).map(([name, value]) => [name, boundJson(value, AUDIT_BOUNDS.value)])) }),
    ...(event.proxy === undefined
      ? {}
      : {
          proxy: {
            ...event.proxy,
            upstream: boundText(event.proxy.upstream),
            method: boundText(event.proxy.method),
            path: boundText(event.proxy.path, AUDIT_BOUNDS.value),
          },
        }),
    ...(issued === undefined ? {} : { issued: { ...issued, sub: boundText(issued.sub), aud: boundList(issued.aud), scope: boundList(issued.scope) } }),
  };
}
