import { checkOutboundUrl, namedUrl, OutboundUrlError } from '../outbound/check-outbound-url.ts';
import { boundText } from '../audit/bound-audit-event.ts';
import { isLoopbackHttpUrl } from '../outbound/loopback-http-url.ts';
import { GENERIC_PRESET, PRESETS, type IssuerPreset, type IssuerShape } from './presets.ts';
import { KeywayError } from '../errors/keyway-error.ts';

/**
 * What a refused pipeline may learn: nothing beyond the reason (`none`, the default), or the names of the claims
 * that failed for the closest allow policy and the ids of the deny guardrails that fired (`claim-names`).
 */
export const DIAGNOSTICS = ['none', 'claim-names'] as const;
export type Diagnostics = (typeof DIAGNOSTICS)[number];

/** An issuer some policy trusts: its exact `iss` string and the rules for its tokens. */
export interface TrustedIssuer {
  /** Compared byte for byte with `iss`: no trailing-slash or case normalisation. */
  readonly url: string;
  readonly preset: IssuerPreset;
  /** Which deployment of the preset's kind this URL is (`GitHub Enterprise Server`). */
  readonly deployment: string;
  /** One issuer for many tenants: policies must pin one (the preset's `tenantClaims`). */
  readonly shared: boolean;
  /** Why it is shared, completing "<url> …": `signs tokens for every project it serves`, unless its deployment says otherwise. */
  readonly sharedBecause: string;
  /** The preset's algorithms plus any the policies added. */
  readonly algorithms: readonly string[];
  readonly maxTokenAgeSeconds: number;
  /** Claims whose value the issuer URL itself fixes (CircleCI `/org/<uuid>` → `oidc.circleci.com/org-id`). */
  readonly boundClaims: Readonly<Record<string, string>>;
  /** What its refused callers learn, unless a policy says otherwise (`issuer.diagnostics`). */
  readonly diagnostics: Diagnostics;
}

/**
 * The oldest token, by `iat`, that any configuration accepts: `issuer.max_token_age` may lengthen a preset's limit up to
 * this, never further. A single-use claim is kept this long (or to the token's `exp`), so raising an issuer's limit never
 * lets a token already used be exchanged again.
 */
export const MAX_TOKEN_AGE_SECONDS = 24 * 60 * 60;

/** Operator overrides of a preset's rules, written on the policy's `issuer`. */
export interface IssuerOverrides {
  readonly maxTokenAgeSeconds?: number | undefined;
  readonly extraAlgorithms?: readonly string[] | undefined;
  readonly diagnostics?: Diagnostics | undefined;
}

/** How a policy names its issuer: a preset name, an exact URL, or a preset kind (at an instance URL) with overrides. */
export type IssuerReference = string | ({ readonly kind: string; readonly url?: string | undefined } & IssuerOverrides);

export interface IssuerResolutionOptions {
  /** `KEYWAY_ALLOW_HTTP_LOOPBACK=1`: http issuers on 127.0.0.1, localhost or [::1] are accepted. */
  readonly allowHttpLoopback: boolean;
  /** URL of the development issuer when the Node broker runs with `KEYWAY_DEV=1`; otherwise absent. */
  readonly devIssuerUrl?: string | undefined;
}

export class IssuerReferenceError extends KeywayError {
  override readonly name: string = 'IssuerReferenceError';
  readonly code: string = 'issuer_reference_invalid';
}

/** The development issuer is off, so policies naming it are inert. */
export class DevIssuerDisabledError extends IssuerReferenceError {
  override readonly name: string = 'DevIssuerDisabledError';
  override readonly code: string = 'dev_issuer_disabled';
}

function checkIssuerUrl(value: string, options: IssuerResolutionOptions): URL {
  let url: URL;
  try {
    url = checkOutboundUrl(value, options.allowHttpLoopback);
  } catch (error) {
    if (!(error instanceof OutboundUrlError)) throw error;
    throw new IssuerReferenceError(error.message, { cause: error });
  }
  if (url.search !== '' || url.hash !== '' || value.includes('?') || value.includes('#')) {
    throw new IssuerReferenceError(`issuer ${namedUrl(url)} must not have a query or fragment`);
  }
  return url;
}

function presetNamed(name: string): IssuerPreset {
  const preset = PRESETS.get(name);
  if (preset === undefined) {
    throw new IssuerReferenceError(`unknown issuer preset ${JSON.stringify(boundText(name))}; known: ${[...PRESETS.keys()].join(', ')}, or an exact https URL`);
  }
  return preset;
}

/** The path of an issuer URL exactly as written: '' for a bare origin, a trailing slash kept. */
function writtenPath(value: string): string {
  const authority = value.indexOf('//') + 2;
  const slash = value.indexOf('/', authority);
  return slash === -1 ? '' : value.slice(slash);
}

/** The preset whose hosted service lives on this host, if any: its issuers there follow its rules. */
function hostOwner(hostname: string): IssuerPreset | undefined {
  return [...PRESETS.values()].find((preset) => preset.shapes.some((shape) => shape.host?.test(hostname) === true));
}

/**
 * The deployment an issuer URL is, for a preset: on a hosted service's own host, one of that
 * host's shapes; elsewhere, a self-managed shape. A loopback http URL (development and tests,
 * with KEYWAY_ALLOW_HTTP_LOOPBACK=1) stands in for any host, so only its path is checked.
 */
function shapeOf(preset: IssuerPreset, value: string, url: URL, options: IssuerResolutionOptions): IssuerShape {
  const standIn = options.allowHttpLoopback && isLoopbackHttpUrl(url);
  if (!standIn) {
    const owner = hostOwner(url.hostname);
    if (owner !== undefined && owner !== preset)
      throw new IssuerReferenceError(`${boundText(value)} is a ${owner.name} issuer; write issuer: { kind: ${owner.name}, url: … }`);
  }
  const hosted = preset.shapes.filter((shape) => shape.host?.test(url.hostname) === true);
  const candidates = standIn ? preset.shapes : hosted.length > 0 ? hosted : preset.shapes.filter((shape) => shape.host === undefined);
  const path = writtenPath(value);
  const shape = candidates.find((candidate) => candidate.path.test(path));
  if (shape === undefined) {
    const expected = (candidates.length > 0 ? candidates : preset.shapes).map((candidate) => candidate.example);
    throw new IssuerReferenceError(`${boundText(value)} is not a ${preset.name} issuer URL; expected ${expected.join(' or ')}`);
  }
  return shape;
}

const DEV_SHAPE: IssuerShape = { deployment: 'keyway development issuer', path: /^\/dev-issuer$/, example: 'http://127.0.0.1:8787/dev-issuer' };

function trust(preset: IssuerPreset, value: string, shape: IssuerShape, overrides: IssuerOverrides = {}): TrustedIssuer {
  const tenant = shape.tenantClaim === undefined ? undefined : shape.path.exec(writtenPath(value))?.groups?.['tenant'];
  return {
    url: value,
    preset,
    deployment: shape.deployment,
    shared: shape.shared ?? preset.shared,
    sharedBecause: shape.sharedBecause ?? 'signs tokens for every project it serves',
    algorithms: [...new Set([...preset.algorithms, ...(overrides.extraAlgorithms ?? [])])],
    maxTokenAgeSeconds: overrides.maxTokenAgeSeconds ?? preset.maxTokenAgeSeconds,
    boundClaims: shape.tenantClaim === undefined || tenant === undefined ? {} : { [shape.tenantClaim]: tenant },
    diagnostics: overrides.diagnostics ?? 'none',
  };
}

function trustAt(preset: IssuerPreset, value: string, options: IssuerResolutionOptions, overrides: IssuerOverrides = {}): TrustedIssuer {
  return trust(preset, value, shapeOf(preset, value, checkIssuerUrl(value, options), options), overrides);
}

function publicUrl(preset: IssuerPreset): string {
  if (preset.url !== undefined) return preset.url;
  throw new IssuerReferenceError(
    `${preset.name} issuers are per tenant or instance: write issuer: { kind: ${preset.name}, url: ${preset.shapes[0]?.example ?? '…'} }`,
  );
}

/** Resolves a policy's `issuer` to the exact issuer URL and the rules its tokens follow. */
export function resolveIssuer(reference: IssuerReference, options: IssuerResolutionOptions): TrustedIssuer {
  if (typeof reference !== 'string') {
    const preset = presetNamed(reference.kind);
    if (preset.name === 'dev') throw new IssuerReferenceError('the dev issuer has no instances; write issuer: dev');
    return trustAt(preset, reference.url ?? publicUrl(preset), options, reference);
  }
  if (!reference.includes(':')) {
    const preset = presetNamed(reference);
    if (preset.name !== 'dev') return trustAt(preset, publicUrl(preset), options);
    if (options.devIssuerUrl === undefined) {
      throw new DevIssuerDisabledError('the development issuer is off (start the Node broker with KEYWAY_DEV=1 to use it)');
    }
    return trust(preset, options.devIssuerUrl, DEV_SHAPE);
  }
  // A URL on a hosted CI service's own host follows that service's rules; any other, the plain OIDC ones.
  const preset = hostOwner(checkIssuerUrl(reference, options).hostname) ?? GENERIC_PRESET;
  return trustAt(preset, reference, options);
}

/**
 * Why a policy may not write this bare issuer URL: its path is one only a self-managed deployment has (GitHub Enterprise
 * Server's `/_services/token`, Forgejo's `/api/actions`, CircleCI server's `/org/<uuid>`), so written bare it would be a
 * plain OIDC issuer, trusted without the rules its tokens need. Undefined for any other reference. A policy's to say, not
 * the resolver's: naming an issuer to explain or test a request (`--issuer`) only looks the policies' issuers up. One
 * with credentials, a query or a fragment is left to the resolver, which refuses it without quoting them.
 */
export function bareLookalikeProblem(reference: string): string | undefined {
  if (!URL.canParse(reference)) return undefined;
  const url = new URL(reference);
  const secretBearing = url.username !== '' || url.password !== '' || reference.includes('?') || reference.includes('#');
  if (secretBearing || hostOwner(url.hostname) !== undefined) return undefined;
  const path = writtenPath(reference);
  const shown = boundText(reference);
  for (const preset of PRESETS.values()) {
    for (const shape of preset.shapes) {
      const distinctive = shape.host === undefined && !shape.path.test('') && !shape.path.test('/x');
      if (distinctive && shape.path.test(path)) {
        return (
          `${shown} has the path of a ${shape.deployment} issuer: write issuer: { kind: ${preset.name}, url: ${shown} } so its rules ` +
          `hold (tenant pins, claim types, case folding), or { kind: oidc, url: ${shown} } if it is not one`
        );
      }
    }
  }
  return undefined;
}
