import { describe, expect, it } from 'vitest';
import { inert } from '../../src/core/inert-text.ts';

describe('inert: what callers wrote, as people should read it', () => {
  it.each([
    ['a right-to-left override, which reverses what follows', 'repo:acme/\u202Edorp', 'repo:acme/\\u202edorp'],
    ['an isolate and a mark', '\u2067x\u2069\u200F', '\\u2067x\\u2069\\u200f'],
    ['zero-width characters, which make two subjects differ unseen', 'acme/\u200Bapi\u200C\u200D\u2060\uFEFF', 'acme/\\u200bapi\\u200c\\u200d\\u2060\\ufeff'],
    ['a soft hyphen, a variation selector and a filler', 'a\u00ADb\uFE0Fc\u3164', 'a\\u00adb\\ufe0fc\\u3164'],
    ['C0 and C1 controls', 'a\u001B[31m\u0007\n\u0085\u009B', 'a\\u001b[31m\\u0007\\u000a\\u0085\\u009b'],
    ['line and paragraph separators', 'a\u2028b\u2029', 'a\\u2028b\\u2029'],
    ['a tag character beyond the BMP, as its two UTF-16 units (as JSON writes it)', 'x\u{E0041}1', 'x\\udb40\\udc411'],
  ])('writes %s as visible escapes', (_name, text, shown) => {
    expect(inert(text)).toBe(shown);
  });

  it('leaves what people can see as it is', () => {
    for (const text of ['repo:acme/api:ref:refs/heads/main', 'café 漢字 ✓ —', 'a b', '𝒳']) expect(inert(text)).toBe(text);
  });
});
