import { foldCase, type CaseFold } from '../claims/case-fold.ts';
import { compileTemplate, type Template, type TemplateRefusal } from './template.ts';
import { normaliseProxyPath } from './proxy-path.ts';
import { KeywayError } from '../errors/keyway-error.ts';

/** The methods a rule may name; matched exactly, as HTTP methods are case-sensitive. */
export const PROXY_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/**
 * One segment of a rule's path: literal text (exact), `*` (one segment), `**` (one or more, last
 * only), or a template over the claims. A segment that is one placeholder alone (`{repository}`)
 * may render several segments (`acme/api`), which compare as the issuer's preset compares that claim
 * in `match` (GitHub's owner and repository names without ASCII case, a ref exactly: `refs/heads/MAIN`
 * is another branch); a template with text around its placeholders compares exactly.
 */
type RuleSegment =
  | { readonly kind: 'literal'; readonly text: string }
  | { readonly kind: 'one' }
  | { readonly kind: 'rest' }
  | { readonly kind: 'claim'; readonly template: Template; readonly spans: boolean; readonly fold: CaseFold };

/** `grant.proxy.allow`, one entry compiled: a method, a path pattern, and for a GitHub App upstream the permissions it needs. */
export interface ProxyRule {
  /** As the policy wrote it (`POST /repos/{repository}/issues/*\/comments`, or `chore comment`): what the audit record names. */
  readonly written: string;
  readonly method: string;
  readonly segments: readonly RuleSegment[];
  readonly permissions: Readonly<Record<string, string>>;
  /** A GitHub App upstream: the account id the path's owner must be (`owner_id`). */
  readonly ownerId?: string;
}

export interface ProxyGrant {
  readonly upstream: string;
  readonly rules: readonly ProxyRule[];
}

/** A `grant.proxy` rule that cannot be matched unambiguously: the policy does not load. */
export class ProxyRuleError extends KeywayError {
  override readonly name = 'ProxyRuleError';
  readonly code = 'proxy_rule_invalid';
}

/**
 * Compiles a rule's path, its claims folded as `caseFolds` (the issuer preset's) says; throws ProxyRuleError (or the
 * template's syntax error) when it cannot be matched unambiguously.
 */
export function compileProxyRule(
  method: string,
  path: string,
  permissions: Readonly<Record<string, string>>,
  written: string,
  caseFolds: Readonly<Record<string, CaseFold>>,
  ownerId?: string,
): ProxyRule {
  if (!path.startsWith('/')) throw new ProxyRuleError(`path ${path} must start with /`);
  const parts = path === '/' ? [] : path.slice(1).split('/');
  const segments = parts.map((part, index): RuleSegment => {
    if (part === '**') {
      if (index !== parts.length - 1) throw new ProxyRuleError(`path ${path}: ** may only be the last segment`);
      return { kind: 'rest' };
    }
    if (part === '*') return { kind: 'one' };
    if (part.includes('{')) {
      const template = compileTemplate(part);
      const [only] = template.shape;
      const spans = template.shape.length === 1 && only !== undefined && 'placeholder' in only;
      return { kind: 'claim', template, spans, fold: spans ? (caseFolds[only.placeholder] ?? 'exact') : 'exact' };
    }
    if (part.includes('*')) throw new ProxyRuleError(`path ${path}: * and ** stand for whole segments only`);
    const normal = normaliseProxyPath(`/${part}`);
    if (!normal.ok || normal.segments[0] !== part) throw new ProxyRuleError(`path ${path}: segment ${JSON.stringify(part)} is not a plain path segment`);
    return { kind: 'literal', text: part };
  });
  return { written, method, segments, permissions, ...(ownerId === undefined ? {} : { ownerId }) };
}

export type ProxyRuleMatch = { readonly matched: true } | { readonly matched: false; readonly refusal?: TemplateRefusal };

/** Whether a normalised request (method, decoded segments) is one the rule allows for a token with these claims. */
export function matchProxyRule(rule: ProxyRule, claims: Readonly<Record<string, unknown>>, method: string, segments: readonly string[]): ProxyRuleMatch {
  if (rule.method !== method) return { matched: false };
  type Expected =
    | { readonly kind: 'literal'; readonly text: string }
    | { readonly kind: 'claim'; readonly pieces: readonly string[]; readonly fold: CaseFold }
    | { readonly kind: 'one' | 'rest' };
  const expected: Expected[] = [];
  for (const segment of rule.segments) {
    if (segment.kind !== 'claim') {
      expected.push(segment);
      continue;
    }
    const rendered = segment.template.render(claims);
    if (!rendered.ok) return { matched: false, refusal: rendered };
    const pieces = segment.spans ? rendered.value.split('/') : [rendered.value];
    const unsafe = pieces.find((piece) => !isPlainPiece(piece));
    if (unsafe !== undefined) {
      return { matched: false, refusal: { ok: false, key: segment.template.claims[0] ?? '', problem: 'unsafe', why: 'is not a plain path segment' } };
    }
    expected.push({ kind: 'claim', pieces, fold: segment.fold });
  }
  let at = 0;
  for (const [index, want] of expected.entries()) {
    if (want.kind === 'rest') return { matched: index === expected.length - 1 && segments.length > at };
    const width = want.kind === 'claim' ? want.pieces.length : 1;
    if (segments.length < at + width) return { matched: false };
    if (want.kind === 'literal' && segments[at] !== want.text) return { matched: false };
    // Folded whole, as `match` folds the claim: `before-@` folds up to the value's first `@`, wherever the segments part it.
    if (want.kind === 'claim' && foldCase(segments.slice(at, at + width).join('/'), want.fold) !== foldCase(want.pieces.join('/'), want.fold)) {
      return { matched: false };
    }
    at += width;
  }
  return { matched: at === segments.length };
}

/** A claim's value placed in a path: one plain segment, which the request's own segments are held to after normalisation. */
function isPlainPiece(piece: string): boolean {
  if (piece === '' || piece === '.' || piece === '..') return false;
  if (/[%\\;*?#\p{Cc}\p{Cf}]/u.test(piece)) return false;
  return piece.normalize('NFKC') === piece;
}

/**
 * Whether the rule lets a token with these claims call some path under `/repos/{owner}/{name}/`: its literal segments
 * name that repository, its wildcards stand for it, or its templates render it from the claims.
 */
export function proxyRuleReachesRepository(rule: ProxyRule, claims: Readonly<Record<string, unknown>>, owner: string, name: string): boolean {
  const wanted = ['repos', owner, name];
  const segments: string[] = [];
  for (const segment of rule.segments) {
    if (segment.kind === 'literal') segments.push(segment.text);
    else if (segment.kind === 'one') segments.push(wanted[segments.length] ?? 'x');
    else if (segment.kind === 'rest') segments.push(...wanted.slice(segments.length), 'x');
    else {
      const rendered = segment.template.render(claims);
      if (!rendered.ok) return false;
      segments.push(...(segment.spans ? rendered.value.split('/') : [rendered.value]));
    }
  }
  const [repos, pathOwner, pathName] = segments;
  return (
    repos === 'repos' &&
    pathOwner?.toLowerCase() === owner.toLowerCase() &&
    pathName?.toLowerCase() === name.toLowerCase() &&
    matchProxyRule(rule, claims, rule.method, segments).matched
  );
}
