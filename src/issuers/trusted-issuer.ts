import { GENERIC_PRESET, PRESETS, type IssuerPreset } from './presets.ts';

/** An issuer some policy trusts: its exact `iss` string and the rules for its tokens. */
export interface TrustedIssuer {
  /** Compared byte for byte with `iss`: no trailing-slash or case normalisation. */
  readonly url: string;
  readonly preset: IssuerPreset;
}

/** How a policy names its issuer: a preset name, an exact URL, or a preset kind at an instance URL. */
export type IssuerReference = string | { readonly kind: string; readonly url: string };

export interface IssuerResolutionOptions {
  /** `KEYWAY_ALLOW_HTTP_LOOPBACK=1`: http issuers on 127.0.0.1, localhost or [::1] are accepted. */
  readonly allowHttpLoopback: boolean;
  /** URL of the development issuer when the Node broker runs with `KEYWAY_DEV=1`; otherwise absent. */
  readonly devIssuerUrl?: string | undefined;
}

export class IssuerReferenceError extends Error {
  override readonly name = 'IssuerReferenceError';
}

/** The development issuer is off, so policies naming it are inert. */
export class DevIssuerDisabledError extends IssuerReferenceError {}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

export function isLoopbackHttpUrl(url: URL): boolean {
  return url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname);
}

/**
 * Checks that a URL may be contacted or trusted: https, or http on loopback when the operator
 * turned that on for development. Used for issuer URLs, discovery and JWKS alike.
 */
export function checkOutboundUrl(value: string, allowHttpLoopback: boolean): URL {
  if (!URL.canParse(value)) throw new IssuerReferenceError(`${JSON.stringify(value)} is not an absolute URL`);
  const url = new URL(value);
  if (url.username !== '' || url.password !== '') throw new IssuerReferenceError(`${value} must not carry credentials`);
  if (url.protocol === 'https:') return url;
  if (isLoopbackHttpUrl(url)) {
    if (allowHttpLoopback) return url;
    throw new IssuerReferenceError(`${value} uses http; set KEYWAY_ALLOW_HTTP_LOOPBACK=1 to allow loopback http issuers in development`);
  }
  throw new IssuerReferenceError(`${value} must use https`);
}

function checkIssuerUrl(value: string, options: IssuerResolutionOptions): string {
  const url = checkOutboundUrl(value, options.allowHttpLoopback);
  if (url.search !== '' || url.hash !== '' || value.includes('?') || value.includes('#')) {
    throw new IssuerReferenceError(`issuer ${value} must not have a query or fragment`);
  }
  return value;
}

function presetNamed(name: string): IssuerPreset {
  const preset = PRESETS.get(name);
  if (preset === undefined) {
    throw new IssuerReferenceError(`unknown issuer preset ${JSON.stringify(name)}; known: ${[...PRESETS.keys()].join(', ')}, or an exact https URL`);
  }
  return preset;
}

/** Resolves a policy's `issuer` to the exact issuer URL and the rules its tokens follow. */
export function resolveIssuer(reference: IssuerReference, options: IssuerResolutionOptions): TrustedIssuer {
  if (typeof reference !== 'string') {
    const preset = presetNamed(reference.kind);
    if (preset.name === 'dev') throw new IssuerReferenceError('the dev issuer has no instances; write issuer: dev');
    return { url: checkIssuerUrl(reference.url, options), preset };
  }
  if (!reference.includes(':')) {
    const preset = presetNamed(reference);
    if (preset.name === 'dev') {
      if (options.devIssuerUrl === undefined) {
        throw new DevIssuerDisabledError('the development issuer is off (start the Node broker with KEYWAY_DEV=1 to use it)');
      }
      return { url: options.devIssuerUrl, preset };
    }
    if (preset.url === undefined) throw new IssuerReferenceError(`preset ${preset.name} needs an instance: { kind: ${preset.name}, url: … }`);
    return { url: preset.url, preset };
  }
  const url = checkIssuerUrl(reference, options);
  // A URL that is a preset's own issuer follows that preset's rules.
  const preset = [...PRESETS.values()].find((candidate) => candidate.url === url) ?? GENERIC_PRESET;
  return { url, preset };
}
