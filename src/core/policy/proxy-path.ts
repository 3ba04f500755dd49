/**
 * The path of a proxied request (`/proxy/{upstream}{path}`), normalised once, before any rule
 * sees it; the upstream receives exactly the normalised path (a GitHub App upstream at the
 * repository's id), so what was matched is what is called. Ambiguity is refused, never
 * resolved: whatever two parsers could read two ways
 * (an upstream, a framework, a cache in between) never reaches a rule.
 *
 * Each segment is percent-decoded once, as strict UTF-8 (an overlong `%c0%ae` or a stray
 * byte does not decode), and refused when the decoded text still holds a `%` (`%252e` would
 * decode again), a `/` or `\` (`%2f`, `%5c`), a `;` (path parameters: `/..;/`), a control
 * character, or anything Unicode compatibility normalisation changes (a full-width `．` or the
 * one-dot leader `․` reads as `.` to an upstream that normalises). `.` and `..` segments are
 * refused, as are empty ones (`//`, a trailing `/`): neither is resolved nor collapsed.
 */
export type NormalisedPath = { readonly ok: true; readonly segments: readonly string[]; readonly path: string } | { readonly ok: false; readonly why: string };

const CONTROL = /[\p{Cc}\p{Cf}]/u;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function normaliseProxyPath(raw: string): NormalisedPath {
  if (!raw.startsWith('/')) return { ok: false, why: 'the path must start with /' };
  if (raw === '/') return { ok: true, segments: [], path: '/' };
  const segments: string[] = [];
  for (const encoded of raw.slice(1).split('/')) {
    const decoded = decodeSegment(encoded);
    if (!decoded.ok) return decoded;
    segments.push(decoded.text);
  }
  return { ok: true, segments, path: `/${segments.map(encodeSegment).join('/')}` };
}

function decodeSegment(encoded: string): { readonly ok: true; readonly text: string } | { readonly ok: false; readonly why: string } {
  if (encoded === '') return { ok: false, why: 'the path has an empty segment (// or a trailing /)' };
  if (encoded.includes('\\')) return { ok: false, why: 'the path holds a backslash' };
  if (encoded.includes(';')) return { ok: false, why: 'the path holds a ; (path parameters are refused)' };
  if (!/^[\x21-\x7e]+$/.test(encoded)) return { ok: false, why: 'the path holds a space, a control or a non-ASCII character that is not percent-encoded' };
  let text: string;
  try {
    text = STRICT_UTF8.decode(percentBytes(encoded));
  } catch {
    return { ok: false, why: 'a path segment does not percent-decode to UTF-8 (overlong or invalid bytes)' };
  }
  if (text.includes('%')) return { ok: false, why: 'a path segment still holds % after one decode (double encoding)' };
  if (text.includes('/') || text.includes('\\')) return { ok: false, why: 'a path segment holds an encoded slash or backslash' };
  if (text.includes(';')) return { ok: false, why: 'a path segment holds an encoded ; (path parameters are refused)' };
  if (CONTROL.test(text)) return { ok: false, why: 'a path segment holds a control or invisible format character' };
  if (text.normalize('NFKC') !== text) return { ok: false, why: 'a path segment changes under Unicode normalisation (NFKC)' };
  if (text === '.' || text === '..') return { ok: false, why: 'the path holds a . or .. segment' };
  return { ok: true, text };
}

/** The bytes of an ASCII segment with every `%XX` decoded; a `%` without two hex digits after it throws. */
function percentBytes(encoded: string): Uint8Array {
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    if (encoded[i] !== '%') {
      bytes.push(encoded.charCodeAt(i));
      continue;
    }
    const hex = encoded.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new Error('a % without two hex digits');
    bytes.push(Number.parseInt(hex, 16));
    i += 2;
  }
  return new Uint8Array(bytes);
}

/** What the upstream receives: each decoded segment encoded again, only the characters a path segment may hold left as they are. */
export function encodeSegment(text: string): string {
  return encodeURIComponent(text).replace(/%(24|26|2B|2C|3A|3D|40)/g, (encoded) => decodeURIComponent(encoded));
}
