import { KeywayError } from '../errors/keyway-error.ts';

/**
 * How policies read claims. A key starting with `/` is an RFC 6901 JSON Pointer into nested
 * claims (`/kubernetes.io/namespace`); any other key is a top-level claim name, even when it
 * contains dots or slashes (`oidc.circleci.com/org-id`).
 */
export type ClaimReader = (claims: Readonly<Record<string, unknown>>) => unknown;

export class ClaimPathError extends KeywayError {
  override readonly name = 'ClaimPathError';
  readonly code = 'claim_path_invalid';
}

/** The reference tokens of a key: one (the name itself) for a plain name, the unescaped pointer tokens otherwise. */
function claimPath(key: string): string[] {
  if (!key.startsWith('/')) return [key];
  return key
    .slice(1)
    .split('/')
    .map((token) => {
      if (/~[^01]|~$/.test(token)) throw new ClaimPathError(`${key} is not a valid JSON Pointer (~ must be followed by 0 or 1)`);
      return token.replaceAll('~1', '/').replaceAll('~0', '~');
    });
}

/**
 * The plain name a JSON Pointer of one token reads, when that name could be written plainly (`/repository` is
 * `repository`, `/a~1b` is `a/b`); undefined for a plain key, a deeper pointer, or a name only a pointer spells (one
 * starting with `/`, `/~1name`).
 */
export function plainSpellingOf(key: string): string | undefined {
  if (!key.startsWith('/') || key.indexOf('/', 1) !== -1) return undefined;
  try {
    const [name = ''] = claimPath(key);
    return name === '' || name.startsWith('/') ? undefined : name;
  } catch {
    // Not a pointer at all: reading it says why.
    return undefined;
  }
}

/** The top-level claim a key reads: the name itself, or a JSON Pointer's first token. */
export function topLevelClaim(key: string): string {
  return claimPath(key)[0] ?? '';
}

export function claimReader(key: string): ClaimReader {
  if (!key.startsWith('/')) return (claims) => (Object.hasOwn(claims, key) ? claims[key] : undefined);
  const tokens = claimPath(key);
  return (claims) => {
    let node: unknown = claims;
    for (const token of tokens) {
      if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.hasOwn(node, token)) return undefined;
      node = (node as Record<string, unknown>)[token];
    }
    return node;
  };
}

/**
 * Scalars compare by their canonical text: `true` matches the claim "true" (GitHub and GitLab
 * send booleans as strings) and 42 matches "42". Objects, arrays and null have none.
 */
export function canonicalText(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return value;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      return Number.isFinite(value) ? String(value) : undefined;
    default:
      return undefined;
  }
}

/** The texts a claim offers to a matcher: a scalar's own, or each scalar element of an array. */
export function claimTexts(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(canonicalText).filter((text): text is string => text !== undefined);
  const text = canonicalText(value);
  return text === undefined ? [] : [text];
}

export function isPresent(value: unknown): boolean {
  return value !== undefined && value !== null;
}
