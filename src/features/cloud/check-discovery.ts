import { CLOUD_PROFILES, type CloudProvider } from '../../core/policy/cloud-profile.ts';

/** What `keyway cloud check` fetched from a broker: its discovery document and JWKS as they came, and how. */
export interface FetchedDiscovery {
  /** The URL the operator gave: the issuer the clouds will be configured with. */
  readonly issuer: string;
  readonly metadata: unknown;
  readonly jwks: unknown;
  readonly jwksCacheControl: string | null;
  /** How long the JWKS took to fetch. */
  readonly jwksMilliseconds: number;
}

export interface CloudFindings {
  readonly cloud: CloudProvider;
  /** What the cloud would refuse or trip on, each a sentence; empty when nothing is missing. */
  readonly problems: readonly string[];
}

/** The algorithms each cloud verifies (docs/cloud/). */
const ACCEPTED_ALGORITHMS: Readonly<Record<CloudProvider, readonly string[]>> = {
  aws: ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'],
  gcp: ['RS256', 'ES256'],
  azure: ['RS256'],
};
/** AWS fails the call when keys take longer than about this to fetch. */
const AWS_JWKS_FETCH_MS = 5000;
const AWS_MAX_ISSUER_CHARS = 255;
const AZURE_MAX_ISSUER_CHARS = 600;
const AZURE_MAX_KEYS = 100;

type Json = Readonly<Record<string, unknown>>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []);

/**
 * Checks a broker's discovery document and JWKS against what each cloud's OIDC federation
 * documents, and names every gap per cloud. Pure: the caller fetches.
 */
export function checkCloudDiscovery(fetched: FetchedDiscovery, clouds: readonly CloudProvider[]): CloudFindings[] {
  const metadata = isObject(fetched.metadata) ? fetched.metadata : {};
  const keys = isObject(fetched.jwks) && Array.isArray(fetched.jwks['keys']) ? fetched.jwks['keys'].filter(isObject) : [];
  const common: string[] = [];
  if (!isObject(fetched.metadata)) common.push('the discovery document is not a JSON object');
  const issuer = metadata['issuer'];
  if (issuer !== fetched.issuer)
    common.push(`the discovery document's issuer ${JSON.stringify(issuer)} is not ${JSON.stringify(fetched.issuer)}, byte for byte`);
  if (!fetched.issuer.startsWith('https://')) common.push('the issuer is not an https URL');
  const jwksUri = metadata['jwks_uri'];
  if (typeof jwksUri !== 'string' || !jwksUri.startsWith('https://')) common.push('jwks_uri is missing or not an https URL');
  if (!strings(metadata['response_types_supported']).includes('id_token')) common.push('response_types_supported does not list id_token');
  if (strings(metadata['subject_types_supported']).length === 0) common.push('subject_types_supported is missing');
  const claims = strings(metadata['claims_supported']);
  if (!claims.includes('sub') || !claims.includes('aud')) common.push('claims_supported does not list sub and aud');
  if (keys.length === 0) common.push('the JWKS has no keys');
  if (keys.some((key) => typeof key['kid'] !== 'string')) common.push('a JWKS key has no kid');
  const cache = fetched.jwksCacheControl ?? '';
  if (!/max-age=[1-9]/.test(cache) || /no-store|no-cache/.test(cache)) {
    common.push(`the JWKS Cache-Control (${JSON.stringify(fetched.jwksCacheControl)}) does not let a cloud cache the keys for a while`);
  }

  return clouds.map((cloud) => {
    const problems = [...common];
    const algs = strings(metadata['id_token_signing_alg_values_supported']);
    const wanted = CLOUD_PROFILES[cloud].alg;
    if (!algs.includes(wanted)) problems.push(`id_token_signing_alg_values_supported does not list ${wanted}, which keyway signs ${cloud} tokens with`);
    const usable = keys.filter((key) => typeof key['alg'] === 'string' && ACCEPTED_ALGORITHMS[cloud].includes(key['alg']) && key['use'] !== 'enc');
    if (!usable.some((key) => key['alg'] === wanted)) problems.push(`the JWKS has no ${wanted} signing key, which ${cloud} needs`);
    if (cloud === 'aws') {
      const url = URL.canParse(fetched.issuer) ? new URL(fetched.issuer) : undefined;
      if (url !== undefined && (url.port !== '' || url.search !== '' || url.hash !== '')) problems.push('AWS takes no port, query or fragment in the issuer');
      if (fetched.issuer.length > AWS_MAX_ISSUER_CHARS) problems.push(`AWS takes an issuer of at most ${AWS_MAX_ISSUER_CHARS} characters`);
      if (fetched.jwksMilliseconds > AWS_JWKS_FETCH_MS) {
        problems.push(`the JWKS took ${Math.round(fetched.jwksMilliseconds)} ms; AWS gives up after about ${AWS_JWKS_FETCH_MS} ms`);
      }
    }
    if (cloud === 'azure') {
      if (fetched.issuer.length > AZURE_MAX_ISSUER_CHARS) problems.push(`Entra takes an issuer of at most ${AZURE_MAX_ISSUER_CHARS} characters`);
      if (keys.length > AZURE_MAX_KEYS) problems.push(`Entra keeps only the first ${AZURE_MAX_KEYS} keys of the JWKS; it has ${keys.length}`);
    }
    return { cloud, problems };
  });
}
