import { ConfigError } from '../../core/settings/read-settings.ts';
import type { GitHubTokenMinter } from '../../core/exchange/ports.ts';
import { asciiLowerCase } from '../../core/claims/case-fold.ts';
import { JOSE_JWT_CRYPTO, type JwtCrypto } from '../../core/mint/jwt-crypto.ts';
import type { KeyRing } from '../../core/mint/key-ring.ts';
import { mintAccessToken, type ActorClaim } from '../../core/mint/mint-access-token.ts';
import type { IssuedGrant } from '../../core/policy/decide.ts';
import type { SecretBox } from '../../core/secrets/secret-box.ts';
import { type Redaction, redactionOf } from './capped-stream.ts';
import { staticSecretForms, UPSTREAM_SECRET_PURPOSE, type UpstreamDeclaration } from './proxy-settings.ts';

/** A declared upstream, its static secret (if any) opened, and its redaction prepared: held in memory only, never logged. */
export interface Upstream extends UpstreamDeclaration {
  readonly secret?: string;
  readonly redaction?: Redaction;
}

/**
 * Opens every static upstream's sealed secret once, at start, and prepares its redaction: one that does not open, or is
 * too large (staticSecretForms), stops the broker, never a request.
 */
export async function openUpstreams(declarations: readonly UpstreamDeclaration[], box: SecretBox | undefined): Promise<ReadonlyMap<string, Upstream>> {
  const upstreams = new Map<string, Upstream>();
  for (const declaration of declarations) {
    if (declaration.auth.kind !== 'static') {
      upstreams.set(declaration.name, declaration);
      continue;
    }
    if (box === undefined) throw new ConfigError(`upstream ${declaration.name} holds a sealed secret, and no master key is configured to open it`);
    let secret: string;
    try {
      secret = await box.open(declaration.auth.sealed, UPSTREAM_SECRET_PURPOSE, declaration.name);
    } catch (error) {
      throw new ConfigError(`upstream ${declaration.name}: its sealed secret does not open: ${error instanceof Error ? error.message : String(error)}`);
    }
    const checked = staticSecretForms(secret);
    if ('problem' in checked) throw new ConfigError(`upstream ${declaration.name}: ${checked.problem}`);
    const redaction = redactionOf(checked.forms);
    upstreams.set(declaration.name, { ...declaration, secret, ...(redaction === undefined ? {} : { redaction }) });
  }
  return upstreams;
}

/** What a GitHub App upstream's installation token is scoped to: the one repository the path names, the rule's permissions. */
export interface GitHubScope {
  readonly owner: string;
  readonly repository: string;
  readonly permissions: Readonly<Record<string, string>>;
  /** The account id the owner's installation must be on (a login can be renamed and registered again). */
  readonly ownerId?: string;
}

/** GitHub's installation tokens always carry metadata: read; a rule that names no permission gets that and nothing more. */
const LEAST_PERMISSIONS = { metadata: 'read' } as const;

/**
 * The scope of a GitHub App upstream's token for a normalised path: `/repos/{owner}/{repo}/…` only, so
 * a token is never minted for every repository of an installation. Names are lower-cased: the
 * policy already held them to the claim without regard to case, and GitHub compares them so too.
 */
export function githubScopeOf(segments: readonly string[], permissions: Readonly<Record<string, string>>): GitHubScope | undefined {
  const [root, owner, repository] = segments;
  if (root !== 'repos' || owner === undefined || repository === undefined) return undefined;
  return {
    owner: asciiLowerCase(owner),
    repository: asciiLowerCase(repository),
    permissions: Object.keys(permissions).length === 0 ? LEAST_PERMISSIONS : permissions,
  };
}

/**
 * The path a GitHub App upstream is called at: `/repos/{owner}/{repo}/…` addressed by the id of the repository the token was
 * minted for, `/repositories/{id}/…`, GitHub's alias that a rename does not move. A login renamed and registered again by
 * someone else while the token is still reused reaches the pinned account's repository, never the new holder's.
 */
export function pathByRepositoryId(path: string, repositoryId: number): string {
  const rest = path.split('/').slice(4);
  return `/repositories/${repositoryId}${rest.length === 0 ? '' : `/${rest.join('/')}`}`;
}

/**
 * What GitHub answers at the id alias (a `Link`, a `Location`), named again as the caller named the repository:
 * `/repositories/{id}/…` of the token's repository → `/repos/{owner}/{repo}/…` of `callerPath`. Any other path as it is.
 */
export function pathByRepositoryName(path: string, callerPath: string, repositoryId: number): string {
  const alias = `/repositories/${repositoryId}`;
  if (path !== alias && !path.startsWith(`${alias}/`)) return path;
  return `${callerPath.split('/').slice(0, 4).join('/')}${path.slice(alias.length)}`;
}

/** The header keyway adds upstream, and the secret inside it (dropped from any response header that echoes it). */
export interface UpstreamCredential {
  readonly header: string;
  readonly value: string;
  readonly secret: string;
  /** The secret's redaction where it serves many requests (a static secret, a reused installation token); else built per answer. */
  readonly redaction?: Redaction;
  /**
   * What the outcome record keeps of a credential keyway minted, so the upstream's own log can be joined to it: a keyway
   * JWT's jti, an installation token's SHA-256 (GitHub's audit log's `hashed_token` is its base64), the id of the
   * repository it holds, which the call is addressed by, and when keyway revokes it. Never the credential.
   */
  readonly recorded?: { readonly jti: string } | { readonly token_sha256: string; readonly repository_id: number; readonly expires_at: string };
  /** A GitHub App upstream's: the id of the one repository the token holds, which the call is addressed by. */
  readonly repositoryId?: number;
  /**
   * Present when this call minted the installation token (none taken from the cache): takes it back from GitHub at once and
   * hands it to no later request. For a token no audit record can name.
   */
  readonly revokeNow?: () => Promise<void>;
}

export interface CredentialDeps {
  readonly issuer: string;
  readonly keys: () => KeyRing;
  readonly now: () => number;
  readonly crypto?: JwtCrypto;
  readonly github?: GitHubTokenMinter;
}

/** How long a proxy installation token is kept (and when keyway revokes it); a minute before that it is no longer handed to a request. */
export const PROXY_GITHUB_TOKEN_SECONDS = 600;
const REUSE_MARGIN_MS = 60_000;
/** A keyway JWT for an upstream lives long enough for one request. */
const KEYWAY_JWT_SECONDS = 60;
const MAX_CACHED_TOKENS = 1000;

/**
 * Credentials for upstreams: installation tokens minted through the GitHub App machinery (the
 * pool, the sealed revocation schedule) and cached for their lifetime per repository and
 * permissions, so several calls cost one mint; a keyway JWT per request; or the static secret.
 */
export class UpstreamCredentials {
  readonly #deps: CredentialDeps;
  readonly #tokens = new Map<string, GitHubToken>();

  constructor(deps: CredentialDeps) {
    this.#deps = deps;
  }

  /** Where a GitHub App upstream's requests go: the App's own API, never a URL a declaration or a request names. */
  get githubApiUrl(): string | undefined {
    return this.#deps.github?.apiUrl;
  }

  /** The GitHub deployment of that API (the App's): whose jobs' own accounts a rule that pins no owner_id takes. */
  get githubDeployment(): string | undefined {
    return this.#deps.github?.deployment;
  }

  async for(
    upstream: Upstream,
    request: { readonly grant: IssuedGrant; readonly source: { readonly iss: string; readonly sub: string }; readonly actors?: ActorClaim },
    scope: GitHubScope | undefined,
    auditEventId: string,
  ): Promise<UpstreamCredential> {
    const { grant, source, actors } = request;
    const auth = upstream.auth;
    if (auth.kind === 'static') {
      const secret = upstream.secret ?? '';
      return { header: auth.header, value: `${auth.prefix}${secret}`, secret, ...(upstream.redaction === undefined ? {} : { redaction: upstream.redaction }) };
    }
    if (auth.kind === 'keyway-jwt') {
      const now = this.#deps.now();
      const minted = await mintAccessToken({
        issuer: this.#deps.issuer,
        key: this.#deps.keys().signing,
        grant: { policy: grant.policy, audiences: [auth.audience], scopes: [], ttlSeconds: KEYWAY_JWT_SECONDS, subject: grant.subject, claims: {} },
        source,
        now,
        crypto: this.#deps.crypto ?? JOSE_JWT_CRYPTO,
        // The upstream learns who acts for the subject, as a service given the caller's own token would.
        ...(actors === undefined ? {} : { actor: actors }),
      });
      return { header: 'authorization', value: `Bearer ${minted.token}`, secret: minted.token, recorded: { jti: minted.jti } };
    }
    if (scope === undefined || this.#deps.github === undefined) throw new Error('a github-app upstream needs the GitHub App and a repository scope');
    const { token, redaction, repositoryId, revokeAt, revokeNow } = await this.#githubToken(scope, auditEventId);
    const recorded = {
      token_sha256: (this.#deps.crypto ?? JOSE_JWT_CRYPTO).sha256Hex(token),
      repository_id: repositoryId,
      expires_at: new Date(revokeAt).toISOString(),
    };
    return {
      header: 'authorization',
      value: `Bearer ${token}`,
      secret: token,
      ...(redaction === undefined ? {} : { redaction }),
      recorded,
      repositoryId,
      ...(revokeNow === undefined ? {} : { revokeNow }),
    };
  }

  async #githubToken(scope: GitHubScope, auditEventId: string): Promise<GitHubToken & { readonly revokeNow?: () => Promise<void> }> {
    const now = this.#deps.now();
    const permissions = Object.entries(scope.permissions).sort(([a], [b]) => a.localeCompare(b));
    const key = `${scope.owner}/${scope.repository}\n${scope.ownerId ?? ''}\n${JSON.stringify(permissions)}`;
    const cached = this.#tokens.get(key);
    if (cached !== undefined && cached.until > now) return cached;
    const minted = await this.#deps.github!.mint({
      owner: scope.owner,
      repositories: [scope.repository],
      permissions: scope.permissions,
      organizationPermissions: {},
      ownerId: scope.ownerId,
      revocationId: auditEventId,
      revokeAt: now + PROXY_GITHUB_TOKEN_SECONDS * 1000,
      // Shared by every job of the repository, so no one job's end revokes it: it is revoked at its own time.
      repositoryId: undefined,
      runId: undefined,
      checkRunId: undefined,
      runAttempt: undefined,
      actorJob: undefined,
    });
    const held = minted.repositories.find((repository) => asciiLowerCase(repository.name) === scope.repository);
    if (held === undefined) {
      // Without the id the call could only be addressed by a name that may have changed hands: no call, and the token taken back.
      await minted.revokeNow().catch(() => undefined);
      throw new Error(`GitHub did not say which repository id the token for ${scope.owner}/${scope.repository} holds; the token was revoked`);
    }
    const redaction = redactionOf(minted.token);
    const token = {
      token: minted.token,
      ...(redaction === undefined ? {} : { redaction }),
      repositoryId: held.id,
      revokeAt: minted.revokeAt,
      until: Math.min(minted.revokeAt, minted.githubExpiresAt) - REUSE_MARGIN_MS,
    };
    if (this.#tokens.size >= MAX_CACHED_TOKENS) for (const [old, entry] of this.#tokens) if (entry.until <= now) this.#tokens.delete(old);
    if (this.#tokens.size < MAX_CACHED_TOKENS) this.#tokens.set(key, token);
    const revokeNow = (): Promise<void> => {
      if (this.#tokens.get(key) === token) this.#tokens.delete(key);
      return minted.revokeNow();
    };
    return { ...token, revokeNow };
  }
}

/** An installation token for one repository (its redaction prepared once for the requests it serves), the repository's id, when keyway revokes it, and until when it is handed to requests. */
interface GitHubToken {
  readonly token: string;
  readonly redaction?: Redaction;
  readonly repositoryId: number;
  readonly revokeAt: number;
  readonly until: number;
}
