import type { AuditEvent } from './audit-event.ts';
import type { RecordedRun } from './run-grants.ts';

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
  /**
   * What a record that names no verified identity (its subject token did not verify, or none was read) keeps of its
   * detail, each requested list (audience, scope) and a proxied path, instead of `detail` and `value`: anyone can send
   * what earns such a record.
   */
  unverified: 512,
} as const;

const CUT = '…';

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/** Characters `char` (one UTF-16 code unit or a surrogate pair) takes in JSON: escapes count in full, a lone surrogate is `\udxxx`. */
function jsonSize(char: string): number {
  return JSON.stringify(char).length - 2;
}

/** Printable ASCII but `"` and `\`: each such character is one in JSON. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Characters `text` takes in JSON, quotes aside. */
function jsonLength(text: string): number {
  return PLAIN.test(text) ? text.length : JSON.stringify(text).length - 2;
}

/** `text`, or its head ending in … when it would serialize to more than `max` characters; a surrogate pair is never split. */
export function boundText(text: string, max: number = AUDIT_BOUNDS.text): string {
  if (jsonLength(text) <= max) return text;
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

/** What boundJson cuts one string to, given what is left of its budget. */
const textBound = (budget: number): number => Math.max(CUT.length, Math.min(AUDIT_BOUNDS.text, budget - 2));

/** Characters a value boundJson kept takes in its list or object. */
const keptSize = (bounded: unknown): number => (typeof bounded === 'string' ? jsonLength(bounded) + 2 : JSON.stringify(bounded ?? null).length);

/**
 * A copy of a JSON value a caller chose that serializes to at most `budget` characters:
 * strings cut (boundText), arrays and objects cut to AUDIT_BOUNDS.entries entries and to what
 * fits, nested values sharing the budget. A cut array ends in a `…N more` entry, a cut object
 * has a `…` key saying the same, so a cut is never mistaken for the value itself.
 */
export function boundJson(value: unknown, budget: number): unknown {
  if (typeof value === 'string') return boundText(value, textBound(budget));
  if (typeof value !== 'object' || value === null) return value;
  const array = Array.isArray(value);
  const entries: [string, unknown][] = array ? value.map((item: unknown, index) => [String(index), item]) : Object.entries(value);
  const kept: [string, unknown][] = [];
  let left = budget - 2 - MARKER_ROOM;
  for (const [key, item] of entries) {
    if (kept.length === AUDIT_BOUNDS.entries) break;
    const name = array ? key : boundText(key);
    const keySize = array ? 0 : jsonLength(name) + 3;
    const bounded = boundJson(item, left - keySize - 1);
    const size = keySize + keptSize(bounded) + 1;
    if (size > left) break;
    kept.push([name, bounded]);
    left -= size;
  }
  const more = entries.length - kept.length;
  if (array) return [...kept.map(([, item]) => item), ...(more > 0 ? [`${CUT}${more} more`] : [])];
  return Object.fromEntries(more > 0 ? [...kept, [CUT, `${more} more`]] : kept);
}

/** The most characters one character takes in JSON (`\u0000`, a lone surrogate's `\udxxx`). */
const WIDEST_CHAR = 6;

/**
 * Whether `text`, as boundText(…, max) recorded it, has the shape a cut leaves: it ends in … and takes more than `max`
 * less one character's widest JSON size (the cut stops where the next character no longer fits). A value of exactly
 * that shape kept whole reads the same, and the record cannot tell the two apart: it counts as cut.
 */
export function textShowsCut(text: string, max: number = AUDIT_BOUNDS.text): boolean {
  return text.endsWith(CUT) && jsonLength(text) > max - WIDEST_CHAR;
}

/** The entry a cut list ends with. */
const MORE = /^…[1-9][0-9]* more$/;

/**
 * Whether a value, as boundJson(…, budget) recorded it, shows a cut anywhere: a string textShowsCut reads as cut, a
 * list ending in its `…N more` entry, an object with a `…` key or a cut key. A list's entries are read with the budget
 * boundJson gave each (the record keeps their order); an object's members are not, the record keeping them in JCS
 * order rather than the order they were cut in, so any string in one that ends in … counts as cut (a budget of 0).
 */
export function jsonShowsCut(value: unknown, budget: number): boolean {
  if (typeof value === 'string') return textShowsCut(value, textBound(budget));
  if (typeof value !== 'object' || value === null) return false;
  if (!Array.isArray(value)) {
    return Object.entries(value).some(([key, member]) => key === CUT || textShowsCut(key) || jsonShowsCut(member, 0));
  }
  const last: unknown = value.at(-1);
  if (typeof last === 'string' && MORE.test(last)) return true;
  let left = budget - 2 - MARKER_ROOM;
  for (const item of value as unknown[]) {
    if (jsonShowsCut(item, left - 1)) return true;
    left -= keptSize(item) + 1;
  }
  return false;
}

function boundList(list: readonly string[], budget: number = AUDIT_BOUNDS.value): string[] {
  return boundJson(list, budget) as string[];
}

/**
 * A copy of `object` with its members in UTF-16 code unit order, the order of the record's JCS text, so that jcs() can
 * encode the record with JSON.stringify. For the record's own objects only: a caller's key could be `__proto__`.
 */
function inJcsOrder<T extends object>(object: T): Writable<T> {
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(object).sort()) copy[key] = (object as Record<string, unknown>)[key];
  return copy as Writable<T>;
}

const byName = ([a]: [string, unknown], [b]: [string, unknown]): number => (a < b ? -1 : 1);

/**
 * The record as it is appended: every string and list a caller chose (in the request, in the
 * subject token verified or not, and echoed in the detail) bounded by AUDIT_BOUNDS. The one
 * place this happens, so no call site has to remember it. What configuration decides (the
 * issuer URL, policy ids, GitHub grants) is kept as it is. The record and the objects copied
 * here have their members in the order its JCS text has them (the text does not depend on it).
 * A record that names no verified identity is cut tighter (AUDIT_BOUNDS.unverified): a stranger's is small.
 */
export function boundAuditEvent(event: AuditEvent): AuditEvent {
  // Copies assigned field by field: one object each, where spreading a `{}` or `{ field }` per optional field made two.
  const { request, subject_token: token, actor, issued, policy } = event;
  const verified = event.issuer !== undefined;
  const detail = verified ? AUDIT_BOUNDS.detail : AUDIT_BOUNDS.unverified;
  const value = verified ? AUDIT_BOUNDS.value : AUDIT_BOUNDS.unverified;
  const bounded = inJcsOrder(event);
  if (event.detail !== undefined) bounded.detail = boundText(event.detail, detail);
  const boundedRequest = inJcsOrder(request);
  boundedRequest.id = boundText(request.id);
  if (request.client_ip !== undefined) boundedRequest.client_ip = boundText(request.client_ip);
  if (request.user_agent !== undefined) boundedRequest.user_agent = boundText(request.user_agent);
  if (request.audience !== undefined) boundedRequest.audience = boundList(request.audience, value);
  if (request.scope !== undefined) boundedRequest.scope = boundList(request.scope, value);
  bounded.request = boundedRequest;
  if (token !== undefined) {
    const boundedToken = inJcsOrder(token);
    if (token.jti !== undefined) boundedToken.jti = boundText(token.jti);
    if (token.claimed_iss !== undefined) boundedToken.claimed_iss = boundText(token.claimed_iss);
    if (token.claimed_sub !== undefined) boundedToken.claimed_sub = boundText(token.claimed_sub);
    bounded.subject_token = boundedToken;
  }
  if (event.subject !== undefined) bounded.subject = boundText(event.subject);
  if (actor !== undefined) {
    const boundedActor = inJcsOrder(actor);
    if (actor.subject !== undefined) boundedActor.subject = boundText(actor.subject);
    if (actor.run !== undefined) {
      boundedActor.run = Object.fromEntries(
        Object.entries(actor.run)
          .sort(byName)
          .map(([name, text]) => [name, boundText(text)]),
      ) as unknown as RecordedRun;
    }
    bounded.actor = boundedActor;
  }
  if (event.claims !== undefined) {
    // Claim names are the operator's (the claims policies record), but made members the way JSON.parse makes them all the same.
    bounded.claims = Object.fromEntries(
      Object.entries(event.claims)
        .sort(byName)
        .map(([name, value]) => [name, boundJson(value, AUDIT_BOUNDS.value)]),
    );
  }
  if (policy !== undefined) bounded.policy = inJcsOrder(policy);
  if (event.proxy !== undefined) {
    const boundedProxy = inJcsOrder(event.proxy);
    boundedProxy.upstream = boundText(event.proxy.upstream);
    boundedProxy.method = boundText(event.proxy.method);
    boundedProxy.path = boundText(event.proxy.path, value);
    bounded.proxy = boundedProxy;
  }
  if (issued !== undefined) {
    const boundedIssued = inJcsOrder(issued);
    boundedIssued.sub = boundText(issued.sub);
    boundedIssued.aud = boundList(issued.aud);
    boundedIssued.scope = boundList(issued.scope);
    bounded.issued = boundedIssued;
  }
  return bounded;
}
