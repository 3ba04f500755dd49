import canonicalize from 'canonicalize';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { boundAuditEvent } from '../../src/core/audit/bound-audit-event.ts';
import { jcs } from '../../src/core/audit/jcs.ts';

// jcs() must write exactly the text the `canonicalize` package writes (RFC 8785), or fail exactly as it fails, for any
// value: the chain hashes it, and anyone re-verifying a log uses some other JCS implementation.

/** What an encoder made of a value: its text, or its error's message. */
function outcome(encode: (value: unknown) => string | undefined, value: unknown): { text?: string; error?: string } {
  try {
    return { text: encode(value) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/** A copy of plain JSON data with every object's members in code unit order, as boundAuditEvent builds a record. */
function ordered(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(ordered);
  if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return value;
  const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1));
  return Object.fromEntries(entries.map(([key, member]) => [key, ordered(member)]));
}

/** Every value of the corpus as it is and with its members in order (so that both of jcs's paths are taken). */
function expectSameAsCanonicalize(value: unknown): void {
  for (const form of [value, ordered(value)]) expect(outcome(jcs, form)).toEqual(outcome(canonicalize, form));
}

const realistic: AuditEvent = {
  id: '01JF0000ABCDEFGHJKMNPQRSTV',
  time: '2026-12-03T20:00:00.000Z',
  decision: 'granted',
  reason: 'granted',
  request: { id: 'req-1', client_ip: '203.0.113.7', user_agent: 'keyway-action/1.4', audience: ['https://keyway.example/deploy'], scope: ['deploy:write'] },
  subject_token: {
    sha256: 'ab'.repeat(32),
    jti: 'jti-1',
    claimed_iss: 'https://token.actions.githubusercontent.com',
    claimed_sub: 'repo:acme/api:environment:production',
  },
  issuer: 'https://token.actions.githubusercontent.com',
  subject: 'repo:acme/api:environment:production',
  claims: { repository: 'acme/api', repository_id: '500004', ref: 'refs/heads/main', ref_protected: 'true', run_attempt: 1, environment: 'production' },
  policy: {
    candidates: ['api-deploy', 'org-read'],
    matched: ['api-deploy'],
    denied_by: [],
    audit_mode: [{ policy: 'new-rule', would: 'deny' }],
    set_version: 'abc123',
    granted_by: 'api-deploy',
  },
  issued: {
    jti: '01JG0000XYZ',
    sub: 'repo:acme/api',
    aud: ['https://keyway.example/deploy'],
    scope: ['deploy:write'],
    exp: 1_800_000_300,
    cnf_jkt: 'j'.repeat(43),
  },
};

const ADVERSARIAL: [string, unknown][] = [
  ['a realistic granted record', realistic],
  ['a realistic refusal', { ...realistic, decision: 'denied', reason: 'no_policy_matched', detail: 'no policy matched', issued: undefined }],
  ['keys that integer-like enumeration puts first', { z: 1, '10': 'ten', '2': 'two', '1a': 0, '': 'empty', A: [] }],
  ['keys ordered by code unit, not code point', { '\uffff': 1, '😀': 2, é: 3, e: 4, E: 5, '\u0000': 6 }],
  ['strings JSON escapes', { quote: '"\\\u0001\u001f\u007f\u2028\u2029</script>', tab: '\t\n\r\b\f' }],
  ['unicode text', { text: 'é ẞ 🔑 日本語', pair: '\ud83d\ude00' }],
  ['a lone high surrogate in a value', { sub: 'x\ud800' }],
  ['a lone low surrogate in a value', { sub: ['ok', '\udfff'] }],
  ['a lone surrogate in a key', { 'k\ud800': 1 }],
  [
    'numbers at the edges of their forms',
    { a: 1e21, b: 1e-7, c: -0, d: 5e-324, e: 2 ** 53 + 2, f: 0.1 + 0.2, g: -1.5e-300, h: 123456789012345680000, i: 1e20 },
  ],
  ['Infinity', { n: Number.POSITIVE_INFINITY }],
  ['NaN', { n: [Number.NaN] }],
  ['nested arrays', { a: [[[]], [[1, [2, [3, { b: [{}] }]]]], []] }],
  ['empty containers', { o: {}, a: [], n: null, t: true, f: false }],
  ['a top-level array', [3, 'x', { b: 1, a: 2 }]],
  ['a top-level string', 'x\u2028'],
  ['a top-level number', -0],
  ['null', null],
  ['undefined members', { a: undefined, b: 1, c: undefined }],
  ['an undefined array element', { a: [1, undefined, 2] }],
  ['a hole in an array', { a: Object.assign(new Array<unknown>(3), { 0: 1, 2: 2 }) }],
  ['a function member', { f: () => 1, g: 1 }],
  ['a symbol member', { s: Symbol('s'), t: 1 }],
  ['a date', { d: new Date(0) }],
  ['a toJSON', { v: { toJSON: () => ({ b: 1, a: 2 }) } }],
  [
    'a toJSON on a prototype',
    {
      v: new (class Claim {
        toJSON = undefined;
      })(),
      w: new (class Grant {
        toJSON() {
          return { b: 1, a: 2 };
        }
      })(),
    },
  ],
  [
    'a toJSON on an array’s prototype',
    {
      a: new (class Claims extends Array<unknown> {
        toJSON() {
          return { b: 1, a: 2 };
        }
      })(),
    },
  ],
  ['a toJSON that is data', { toJSON: 'x', a: 1 }],
  ['boxed primitives', { n: Object(1), s: Object('s'), b: Object(false) }],
  ['a class instance', { m: new Map([[1, 2]]) }],
  ['a null-prototype object', { o: Object.assign(Object.create(null), { b: 1, a: 2 }) }],
  ['a __proto__ member, as JSON.parse makes it', JSON.parse('{"b":1,"__proto__":{"x":1},"a":[{"__proto__":null}]}')],
  ['a bigint', { n: 1n }],
  ['a typed array', { t: new Uint8Array([1, 2]) }],
];

describe('jcs: the RFC 8785 text of the audit log, as canonicalize writes it', () => {
  it.each(ADVERSARIAL)('%s', (_title, value) => expectSameAsCanonicalize(value));

  it('writes any of thousands of random JSON values as canonicalize does', () => {
    let seed = 0x9e3779b9;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) >>> 0;
      return seed / 2 ** 32;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const PIECES = ['a', 'b', 'Z', '0', '9', '_', '-', ' ', 'é', 'ẞ', '\u2028', '"', '\\', '\u0001', '\u007f', '😀', '\uffff', '\ud800', '\udfff'];
    const NUMBERS = [0, -0, 1, -1, 0.5, 1e21, 1e-7, 5e-324, 2 ** 53, 1.7976931348623157e308, Number.NaN, Number.POSITIVE_INFINITY];
    const text = (): string => Array.from({ length: Math.floor(random() * 6) }, () => pick(PIECES)).join('');
    const value = (depth: number): unknown => {
      const kind = Math.floor(random() * (depth > 3 ? 5 : 7));
      if (kind === 0) return random() < 0.9 ? pick(NUMBERS.slice(0, 10)) : pick(NUMBERS);
      if (kind === 1) return (random() - 0.5) * 10 ** Math.floor(random() * 40 - 20);
      if (kind === 2) return random() < 0.97 ? text().replace(/[\ud800-\udfff]/g, 'x') : text();
      if (kind === 3) return pick([true, false, null]);
      if (kind === 4) return Math.floor(random() * 1e6);
      if (kind === 5) return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
      return object(depth);
    };
    const object = (depth: number): Record<string, unknown> => {
      const keys = Array.from({ length: Math.floor(random() * 6) }, () => (random() < 0.97 ? text().replace(/[\ud800-\udfff]/g, 'x') : text()));
      return Object.fromEntries(keys.map((key) => [key, value(depth + 1)]));
    };
    const paths = { stringify: 0, canonicalize: 0 };
    for (let round = 0; round < 5000; round += 1) {
      const generated = object(0);
      const form = random() < 0.5 ? generated : ordered(generated);
      const expected = outcome(canonicalize, form);
      expect(outcome(jcs, form), JSON.stringify(form)).toEqual(expected);
      paths[expected.text !== undefined && JSON.stringify(form) === expected.text ? 'stringify' : 'canonicalize'] += 1;
    }
    // Both paths were taken many times: plain data in JCS order (JSON.stringify) and everything else (canonicalize).
    expect(paths.stringify).toBeGreaterThan(1000);
    expect(paths.canonicalize).toBeGreaterThan(1000);
  });

  it('finds a record as boundAuditEvent builds it in JCS order already, so JSON.stringify encodes it', () => {
    const bounded = boundAuditEvent(realistic);
    expect(JSON.stringify(bounded)).toBe(canonicalize(bounded));
    expect(jcs(bounded)).toBe(canonicalize(realistic));
  });
});
