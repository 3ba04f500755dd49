import { Webhooks } from '@octokit/webhooks';

/** A webhook secret for tests (long enough for the setting's check). */
export const WEBHOOK_SECRET = 'test-webhook-secret-0123456789abcdef';

export interface Delivery {
  readonly event: string;
  readonly payload: unknown;
  readonly id?: string;
  /** Signs with this secret instead (a forger's); `null` sends no signature. */
  readonly secret?: string | null;
  /** Replaces the signature header outright. */
  readonly signature?: string;
  /** Sends these bytes, signed as they are, instead of the JSON of `payload`. */
  readonly body?: string;
  /** More headers, e.g. X-GitHub-Hook-Installation-Target-ID (the App a delivery is for). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A delivery as GitHub sends one: the JSON body signed with HMAC-SHA256 (`X-Hub-Signature-256`) by @octokit/webhooks. */
export async function deliveryRequest(delivery: Delivery): Promise<{ id: string; init: RequestInit }> {
  const body = delivery.body ?? JSON.stringify(delivery.payload);
  const id = delivery.id ?? crypto.randomUUID();
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-event': delivery.event,
    'x-github-delivery': id,
    'user-agent': 'GitHub-Hookshot/test',
    ...delivery.headers,
  };
  if (delivery.signature !== undefined) headers['x-hub-signature-256'] = delivery.signature;
  else if (delivery.secret !== null) headers['x-hub-signature-256'] = await new Webhooks({ secret: delivery.secret ?? WEBHOOK_SECRET }).sign(body);
  return { id, init: { method: 'POST', body, headers } };
}

export interface RepositoryPayload {
  readonly owner: string;
  readonly name: string;
}

/** A repository as payloads carry it: private unless `private: false` says it is public. */
const repository = (repo: RepositoryPayload & { readonly id?: number; readonly private?: boolean }) => ({
  id: repo.id ?? 4242,
  name: repo.name,
  full_name: `${repo.owner}/${repo.name}`,
  owner: { login: repo.owner, id: 1200934, type: 'Organization' },
  private: repo.private ?? true,
  default_branch: 'main',
});

/** Payload shapes as GitHub documents them, with the fields keyway reads (and a few around them). */
export const payloads = {
  /**
   * By `author` (default octocat), from a branch of `repo` itself unless `fork` names the head's repository; sent by `sender`
   * (who pushed, on `synchronize`; who reopened, on `reopened`), by default the author.
   */
  pullRequest: (
    repo: RepositoryPayload & { readonly id?: number; readonly private?: boolean },
    pr: {
      number: number;
      baseSha: string;
      headSha: string;
      action?: string;
      author?: string;
      sender?: string;
      fork?: RepositoryPayload & { readonly id: number };
    },
  ) => ({
    action: pr.action ?? 'opened',
    number: pr.number,
    pull_request: {
      number: pr.number,
      state: 'open',
      title: 'Change policies',
      user: { login: pr.author ?? 'octocat', id: 583231, type: 'User' },
      author_association: 'MEMBER',
      head: { ref: 'change', sha: pr.headSha, repo: repository(pr.fork ?? repo) },
      base: { ref: 'main', sha: pr.baseSha, repo: repository(repo) },
    },
    repository: repository(repo),
    installation: { id: 1 },
    sender: { login: pr.sender ?? pr.author ?? 'octocat' },
  }),
  push: (repo: RepositoryPayload & { readonly id?: number }, push: { ref: string; after: string; deleted?: boolean }) => ({
    ref: push.ref,
    before: '0'.repeat(40),
    after: push.after,
    deleted: push.deleted ?? false,
    created: false,
    forced: false,
    commits: [],
    repository: repository(repo),
    installation: { id: 1 },
    sender: { login: 'octocat' },
  }),
  installation: (owner: string, action = 'created') => ({
    action,
    installation: { id: 1, account: { login: owner, type: 'Organization' } },
    sender: { login: 'octocat' },
  }),
  /** An account the App is installed on renamed itself from `from` to `to` (its id stays). */
  installationTarget: (account: { readonly from: string; readonly to: string; readonly id: number }) => ({
    action: 'renamed',
    account: { login: account.to, id: account.id, type: 'Organization', node_id: `O_${account.id}` },
    changes: { login: { from: account.from } },
    target_type: 'Organization',
    installation: { id: 1 },
    sender: { login: 'octocat' },
  }),
};
