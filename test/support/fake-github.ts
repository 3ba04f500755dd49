import type { Misbehaviour } from './misbehaviour.ts';

/**
 * A file the fake serves. With `symlink`, a symlink to a file of that text (at the path given, or of the same name at the
 * repository's root): listed as one, read as the file it points at, under that file's path. With `base64`, the file holds
 * those bytes, not `text`. With `submodule` (its repository's URL), a submodule there, `text` empty: listed as a file of
 * size 0, read as a submodule.
 */
export interface FakeFile {
  readonly owner: string;
  readonly repo: string;
  readonly path: string;
  readonly ref?: string;
  readonly text: string;
  readonly base64?: string;
  readonly symlink?: boolean | string;
  readonly submodule?: string;
}

export interface FakeInstallation {
  readonly id: number;
  readonly owner: string;
  readonly ownerType?: 'Organization' | 'User';
  /** The account's numeric id (GitHub's `account.id`); default: ten times the installation id. */
  readonly ownerId?: number;
  /** With `public`, a repository any installation token may read (contents, metadata), as on GitHub. */
  readonly repositories: readonly { readonly id: number; readonly name: string; readonly public?: boolean }[];
  readonly permissions: Readonly<Record<string, string>>;
  /** When set, `POST /app/installations/{id}/access_tokens` answers this status (a 5xx: GitHub failing for this one account). */
  readonly tokenStatus?: number;
  /** When set, `POST /app/installations/{id}/access_tokens` answers this many milliseconds late, the token minted (GitHub slow to mint). */
  readonly tokenDelayMs?: number;
  /** How long the tokens it mints live, in milliseconds; default GitHub's hour. */
  readonly tokenLifetimeMs?: number;
  /** When set, the answer to a token request leaves out the `repositories` list it is scoped to. */
  readonly tokenAnswerNamesNoRepository?: boolean;
  /** When set, the answer to a token request says `repository_selection: all` (what GitHub says of a token of every repository), with the list asked for. */
  readonly tokenAnswerForEveryRepository?: boolean;
  /** How many `DELETE /installation/token` calls for this installation's tokens fail (502) before GitHub takes them again. */
  readonly revokeFailures?: number;
  /** When set, `DELETE /installation/token` for this installation's tokens answers this many milliseconds late, the token revoked only then. */
  readonly revokeDelayMs?: number;
}

export interface FakeCall {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  /** `app` (a valid App JWT), `token:<sha256 prefix>` (a live installation token), `invalid`, `none`. */
  readonly auth: string;
  readonly body: unknown;
  readonly status: number;
}

/** A commit status as the fake GitHub keeps it, with the App it is attributed to (the one whose token set it). */
export interface FakeCommitStatus {
  readonly repository: string;
  readonly sha: string;
  readonly state: string;
  readonly context: string;
  readonly appId: string;
}

/** A check run as the fake GitHub keeps it: as created, then as each update left it. */
export interface FakeCheckRun {
  readonly id: number;
  /** `owner/name`, as the repository was named when the check run was created. */
  readonly repository: string;
  readonly repositoryId: number | undefined;
  readonly html_url: string;
  /** GitHub requires both; the fake takes a check run without them (a job's own calls through the proxy send only a name). */
  readonly name?: string;
  readonly head_sha?: string;
  readonly status: string;
  readonly conclusion?: string;
  readonly output?: unknown;
}

export interface FakeTokenState {
  readonly sha256: string;
  readonly revoked: boolean;
  readonly repositories: readonly string[];
  readonly permissions: Readonly<Record<string, string>>;
}

/**
 * Client for one App on the fake GitHub API (fake-github-server.ts). Web-standard fetch only,
 * so it runs in Node and inside workerd alike.
 */
export class FakeGitHub {
  /** The API base URL keyway is configured with (`KEYWAY_GITHUB_API_URL`). */
  readonly apiUrl: string;
  readonly appId: string;
  /** PKCS#1, as GitHub hands App keys out. */
  readonly privateKeyPem: string;
  readonly privateKeyPkcs8Pem: string;

  private constructor(app: { apiUrl: string; appId: string; privateKeyPem: string; privateKeyPkcs8Pem: string }) {
    this.apiUrl = app.apiUrl;
    this.appId = app.appId;
    this.privateKeyPem = app.privateKeyPem;
    this.privateKeyPkcs8Pem = app.privateKeyPkcs8Pem;
  }

  /** A new App, with nothing installed. */
  static async create(serverBase: string): Promise<FakeGitHub> {
    const response = await fetch(`${serverBase}/_test/apps`, { method: 'POST' });
    if (!response.ok) throw new Error(`fake GitHub answered ${response.status}`);
    return new FakeGitHub((await response.json()) as { apiUrl: string; appId: string; privateKeyPem: string; privateKeyPkcs8Pem: string });
  }

  /** Settings keyway needs to act as this App. */
  get settings(): Record<string, string> {
    return { KEYWAY_GITHUB_APP_ID: this.appId, KEYWAY_GITHUB_APP_PRIVATE_KEY: this.privateKeyPem, KEYWAY_GITHUB_API_URL: this.apiUrl };
  }

  async #admin(method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`${this.apiUrl}/_test/${path}`, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
    });
    if (!response.ok) throw new Error(`fake GitHub ${path} answered ${response.status}: ${await response.text()}`);
    return response.json();
  }

  async install(installation: FakeInstallation): Promise<void> {
    await this.#admin('POST', 'installations', installation);
  }

  async uninstall(id: number): Promise<void> {
    await this.#admin('DELETE', `installations/${id}`);
  }

  async putFile(file: FakeFile): Promise<void> {
    await this.#admin('POST', 'files', file);
  }

  /** Points a branch at a commit (`GET /repos/{owner}/{repo}/branches/{branch}`). */
  async setBranch(branch: { owner: string; repo: string; branch: string; sha: string }): Promise<void> {
    await this.#admin('POST', 'branches', branch);
  }

  /** Gives a user a role on a repository (`GET /repos/{owner}/{repo}/collaborators/{username}/permission`). */
  async setRole(role: { owner: string; repo: string; username: string; role: 'admin' | 'maintain' | 'write' | 'triage' | 'read' }): Promise<void> {
    await this.#admin('POST', 'roles', role);
  }

  async setDown(down: boolean): Promise<void> {
    await this.#admin('POST', 'settings', { down });
  }

  /** Makes every API call fail as `how` says (`null`: answer again). */
  async misbehave(how: Misbehaviour | null): Promise<void> {
    await this.#admin('POST', 'settings', { misbehaviour: how });
  }

  /** While on, every API call is answered 403 with `x-ratelimit-remaining: 0`, as GitHub answers once the quota is spent. */
  /**
   * Gives the App a rate limit that every call counts down (reported in x-ratelimit-* headers, reset in `resetInSeconds`);
   * at 0 every call is refused with 403 as GitHub does. `null` takes it away.
   */
  async setQuota(quota: { remaining: number; resetInSeconds: number } | null): Promise<void> {
    await this.#admin('POST', 'settings', { quota });
  }

  /** The API base every App shares, as on github.com: the fake tells Apps apart by their JWT's iss or their token. */
  get sharedApiUrl(): string {
    return this.apiUrl.replace(/\/apps\/\d+$/, '/apps/shared');
  }

  /** Settings that make this App the `n`th of keyway's pool (n from 2), on the shared API base. */
  poolSettings(n: number): Record<string, string> {
    return { [`KEYWAY_GITHUB_APP_${n}_ID`]: this.appId, [`KEYWAY_GITHUB_APP_${n}_PRIVATE_KEY`]: this.privateKeyPem };
  }

  async setRateLimited(rateLimited: boolean): Promise<void> {
    await this.#admin('POST', 'settings', { rateLimited });
  }

  /**
   * Holds every contents read at `ref` (a listing or a file; with `suffix`, only those whose path ends so) as a slow GitHub
   * would, for races between deliveries: `held` waits until `reads` of them are waiting (so the test knows where a handler
   * stands), `waiting` says how many are, `release` answers them and holds no more, `fail` answers them with that status instead.
   */
  async holdReads(
    ref: string,
    suffix = '',
  ): Promise<{ held(reads?: number): Promise<void>; waiting(): Promise<number>; release(): Promise<void>; fail(status: number): Promise<void> }> {
    await this.#admin('POST', 'hold', { ref, suffix });
    const waiting = async () => ((await this.#admin('GET', 'hold')) as { waiting: number }).waiting;
    return {
      held: async (reads = 1) => {
        for (let attempt = 0; attempt < 100; attempt += 1) {
          if ((await waiting()) >= reads) return;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        throw new Error(`fewer than ${reads} reads at ${ref} reached the fake GitHub within 5 s`);
      },
      waiting,
      release: async () => {
        await this.#admin('DELETE', 'hold');
      },
      fail: async (status) => {
        await this.#admin('DELETE', `hold?status=${status}`);
      },
    };
  }

  /** Every API call the App received, oldest first. */
  async calls(): Promise<FakeCall[]> {
    return (await this.#admin('GET', 'calls')) as FakeCall[];
  }

  /** The App's check runs as they stand now, oldest first. */
  async checkRuns(): Promise<FakeCheckRun[]> {
    return (await this.#admin('GET', 'check-runs')) as FakeCheckRun[];
  }

  /** The commit statuses set with this App's tokens, oldest first. */
  async statuses(): Promise<FakeCommitStatus[]> {
    return (await this.#admin('GET', 'statuses')) as FakeCommitStatus[];
  }

  /** Sets a commit status with an installation token on the API base every App shares, as a job's `gh api` would on github.com. */
  async setCommitStatus(token: string, repository: string, sha: string, status: { state: string; context: string }): Promise<number> {
    const response = await fetch(`${this.sharedApiUrl}/repos/${repository}/statuses/${sha}`, {
      method: 'POST',
      body: JSON.stringify(status),
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/vnd.github+json',
        'x-github-api-version': '2022-11-28',
        'content-type': 'application/json',
      },
    });
    await response.body?.cancel();
    return response.status;
  }

  async tokens(): Promise<FakeTokenState[]> {
    return (await this.#admin('GET', 'tokens')) as FakeTokenState[];
  }

  /** What a token can see (`GET /installation/repositories`), as any caller of the API would. */
  /** What an installation token may do at the organization level: `GET /orgs/{org}/members` (needs `members: read`). */
  async organizationMembersStatus(token: string, org: string): Promise<number> {
    const response = await fetch(`${this.apiUrl}/orgs/${org}/members`, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' },
    });
    await response.body?.cancel();
    return response.status;
  }

  async repositoriesVisibleTo(token: string): Promise<{ status: number; names: string[] }> {
    const response = await fetch(`${this.apiUrl}/installation/repositories`, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' },
    });
    if (response.status !== 200) {
      await response.body?.cancel();
      return { status: response.status, names: [] };
    }
    const body = (await response.json()) as { repositories: { name: string }[] };
    return { status: 200, names: body.repositories.map((repository) => repository.name) };
  }
}
