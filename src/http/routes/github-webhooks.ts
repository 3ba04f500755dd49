import { Webhooks } from '@octokit/webhooks';
import { Hono, type Context } from 'hono';
import { bodyBudget } from '../middleware/body-budget.ts';
import type { BrokerMetrics } from '../../features/metrics/broker-metrics.ts';
import { bodyLimit } from '../middleware/body-limit.ts';
import { errorText, type Logger } from '../../core/log.ts';
import { sha256Hex } from '../../core/mint/sha256-hex.ts';
import type { DeliveryLog } from '../../features/github/webhooks/delivery-log.ts';
import { checkRunIdOf, githubDeploymentOf, runAttemptOf } from '../../core/claims/github-run.ts';
import { whatEnded, type EndedWorkRevocations, type RunWorkEnded } from '../../features/github/webhooks/revoke-ended-work-tokens.ts';
import { reviewPullRequest, switchOnPush, type Handled, type PolicyEventDeps } from '../../features/github/webhooks/handle-policy-events.ts';
import { isHandledEvent, readWebhookPayload, type HandledEvent, type WebhookPayload } from '../../features/github/webhooks/webhook-payloads.ts';

/** GitHub caps payloads at 25 MB; the events keyway acts on are far smaller, so anything above this is refused unread. */
export const WEBHOOK_BODY_BYTES = 4 * 1024 * 1024;
/**
 * The webhook bodies one process (a Workers isolate) holds at once, and one client network's share: a body is read whole
 * before its signature can be checked, so anyone can make the broker hold them. GitHub's deliveries are tens of KiB. While
 * a body is checked the route holds it about three times over (the bytes, their text, the HMAC's input): 16 MiB of
 * bodies stays well inside a Workers isolate's 128 MB.
 */
export const WEBHOOK_BODIES_HELD_BYTES = 16 * 1024 * 1024;
export const WEBHOOK_BODIES_HELD_PER_CLIENT_BYTES = 8 * 1024 * 1024;
/** The least time between two warnings that webhook deliveries were refused for the bodies held (each is counted). */
const BODIES_WARNING_INTERVAL_MS = 60_000;
const DELIVERY_ID = /^[A-Za-z0-9-]{1,100}$/;
const EVENT_NAME = /^[a-z_]{1,64}$/;
const NO_STORE = { 'Cache-Control': 'no-store' } as const;

export interface GitHubWebhookDeps extends PolicyEventDeps {
  readonly deliveries: DeliveryLog;
  /** The request's client address, as the rate limits read it: whose share of the bodies held a delivery spends. */
  readonly clientIp: (c: Context) => string | undefined;
  /** Where a delivery refused for the bodies held is counted (`webhook_bodies`). */
  readonly metrics: Pick<BrokerMetrics, 'rateLimited'>;
  /**
   * An installation was created, removed or changed its repositories, or its account was renamed: forget what is cached for
   * the account under that login.
   */
  readonly installationChanged?: (owner: string) => void;
  /**
   * A workflow job or run completed: revoke the GitHub tokens minted for it (a job: by `repository_id`, `run_id` and
   * `check_run_id`, and those of its run minted without `check_run_id`; an attempt of the run: all of its and earlier
   * attempts'). Resolves to how many.
   */
  readonly endGitHubTokens?: (ended: RunWorkEnded) => Promise<number>;
  /**
   * Revokes the keyway access tokens granted to a completed job or run, as `endGitHubTokens` picks them; resolves to how
   * many this delivery revoked, and how many of them under another delivery's record.
   */
  readonly endKeywayTokens?: (ended: RunWorkEnded) => Promise<EndedWorkRevocations>;
  /** Records that a job or a run's attempt completed, so its tokens exchanged from now on are refused (EndedCiWork). */
  readonly recordEnded?: (ended: RunWorkEnded) => Promise<void>;
  /**
   * The App's GitHub deployment (`githubDeploymentOf` its API URL): only its completions are acted on. Undefined without an
   * App: any GitHub's, each on its own deployment's jobs alone.
   */
  readonly deployment?: string;
}

type Handlers = { [Name in HandledEvent]: (event: { readonly id: string; readonly payload: WebhookPayload<Name> }) => Promise<Handled> };

const REVIEWED_ACTIONS = new Set(['opened', 'synchronize', 'reopened']);

/**
 * A pull request whose base branch was changed (`edited`, with `changes.base`): the check run on its head holds the diff
 * against the old base, which may already hold what the new one does not, so it is reviewed again.
 */
function retargeted(payload: WebhookPayload<'pull_request'>): boolean {
  return payload.action === 'edited' && payload.changes?.base !== undefined;
}
/** What keyway takes from a pool's other Apps: their installations change, and jobs that used their tokens end. */
const POOL_APP_EVENTS = new Set(['ping', 'installation', 'installation_repositories', 'installation_target', 'workflow_job', 'workflow_run']);
/** A check run's REST path, under whatever API base (GHES serves it under /api/v3): its id is the last segment. */
const CHECK_RUN_PATH = /\/check-runs\/(\d{1,20})$/;

/**
 * The check run of a workflow job, from its `check_run_url` (`https://api.github.com/repos/OWNER/REPO/check-runs/ID`):
 * what the `check_run_id` claim of the job's OIDC tokens holds. Undefined when the URL is missing or not of that form.
 */
function checkRunOfUrl(url: string | null | undefined): string | undefined {
  if (url === undefined || url === null || !URL.canParse(url)) return undefined;
  return checkRunIdOf(CHECK_RUN_PATH.exec(new URL(url).pathname)?.[1]);
}

/** `2 keyway tokens`; those revoked under another delivery's record (which names them, where this one's does not) said apart. */
function keywayCount({ revoked, underAnotherRecord }: EndedWorkRevocations): string {
  return underAnotherRecord === 0 ? `${revoked} keyway tokens` : `${revoked} keyway tokens (${underAnotherRecord} under another delivery's record)`;
}

function handlers(deps: GitHubWebhookDeps): Handlers {
  /**
   * The GitHub deployment a completion is of (`githubDeploymentOf` its repository's REST URL, `repository.url`, signed with
   * the body), whose counters its repository and run ids are of: only that deployment's jobs end with it. Or why it is not
   * acted on: with an App, it is of another deployment than the App's (a second GitHub's App whose deliveries come here
   * signed with the same secret), a payload without a URL taken as the App's; without one, its URL is missing or names no
   * host, so which GitHub's run ended is not known.
   */
  const deploymentOf = ({ url }: { readonly url?: string | undefined }): string | Handled => {
    const host = url === undefined ? deps.deployment : URL.canParse(url) ? githubDeploymentOf(url) : undefined;
    const deployment = host === '' ? undefined : host;
    const named = deployment === undefined ? 'named by no URL' : `on ${deployment}`;
    if (deps.deployment !== undefined && deployment !== deps.deployment)
      return { handled: false, detail: `the repository is ${named}, not of the App's GitHub (${deps.deployment})` };
    return deployment ?? { handled: false, detail: `the repository is ${named}: which GitHub's run ended is not known` };
  };
  const revokeEnded = async (ended: RunWorkEnded, note = ''): Promise<Handled> => {
    if (deps.endGitHubTokens === undefined && deps.endKeywayTokens === undefined) return { handled: false, detail: 'no tokens are revoked here' };
    // Each step runs whatever another's fate: one store down must not keep the others' tokens alive. Any failure fails
    // the delivery after all ran (a redelivery repeats them all; each is idempotent). The record goes first, so a token
    // of the work exchanged while the revocations run is refused, not missed by them.
    const failures: unknown[] = [];
    const attempt = async <T>(step: (() => Promise<T>) | undefined): Promise<T | undefined> => {
      try {
        return await step?.();
      } catch (error) {
        failures.push(error);
        return undefined;
      }
    };
    const { recordEnded, endGitHubTokens, endKeywayTokens } = deps;
    await attempt(recordEnded === undefined ? undefined : () => recordEnded(ended));
    const github = await attempt(endGitHubTokens === undefined ? undefined : () => endGitHubTokens(ended));
    const keyway = await attempt(endKeywayTokens === undefined ? undefined : () => endKeywayTokens(ended));
    if (failures.length > 0) throw failures[0];
    const counts = [...(github === undefined ? [] : [`${github} GitHub tokens`]), ...(keyway === undefined ? [] : [keywayCount(keyway)])];
    return { handled: true, detail: `${counts.join(' and ')} revoked: ${whatEnded(ended)}${note}` };
  };
  const repositoryOf = (repository: { name: string; owner: { login: string } }) => ({ owner: repository.owner.login, name: repository.name });
  const installation = async (owner: string | undefined): Promise<Handled> => {
    if (owner === undefined || deps.installationChanged === undefined) return { handled: false, detail: 'no installation cache' };
    deps.installationChanged(owner);
    return { handled: true, detail: `installation cache of ${owner} refreshed` };
  };
  return {
    ping: async () => ({ handled: true, detail: 'pong' }),
    pull_request: async ({ payload }) => {
      if (!REVIEWED_ACTIONS.has(payload.action) && !retargeted(payload)) return { handled: false, detail: `pull_request ${payload.action} is not reviewed` };
      const pr = payload.pull_request;
      // Repository ids, not names: a fork can be renamed, an id cannot be taken over.
      const fromFork = pr.head.repo === null || pr.head.repo.id !== payload.repository.id;
      const repository = repositoryOf(payload.repository);
      const publicRepository = payload.repository.private !== true;
      const facts = {
        number: pr.number,
        baseSha: pr.base.sha,
        headSha: pr.head.sha,
        author: pr.user?.login,
        sender: payload.sender?.login,
        fromFork,
        publicRepository,
      };
      return reviewPullRequest(deps, { repository, repositoryId: payload.repository.id, ...facts });
    },
    push: async ({ payload }) =>
      switchOnPush(deps, {
        repository: { owner: payload.repository.owner?.login ?? payload.repository.full_name.split('/')[0] ?? '', name: payload.repository.name },
        repositoryId: payload.repository.id,
        ref: payload.ref,
        defaultBranch: payload.repository.default_branch,
        deleted: payload.deleted,
      }),
    installation: async ({ payload }) => installation(accountLogin(payload)),
    installation_repositories: async ({ payload }) => installation(accountLogin(payload)),
    // What is cached under the old login is another account's once someone takes the name, and the new login may have been
    // someone else's until now: both are forgotten, rather than refusing the renamed account's jobs until the entries age out.
    installation_target: async ({ payload }) => {
      if (payload.action !== 'renamed') return { handled: false, detail: `installation_target ${payload.action} needs nothing` };
      const { account, changes } = payload;
      const logins = [changes?.login?.from ?? changes?.slug?.from, account.login ?? account.slug].filter((login) => login !== undefined);
      if (logins.length === 0 || deps.installationChanged === undefined) return { handled: false, detail: 'no installation cache' };
      for (const login of logins) deps.installationChanged(login);
      return { handled: true, detail: `caches of ${logins.join(' and ')} refreshed` };
    },
    workflow_job: async ({ id, payload }) => {
      if (payload.action !== 'completed') return { handled: false, detail: `workflow_job ${payload.action} needs nothing` };
      const deployment = deploymentOf(payload.repository);
      if (typeof deployment !== 'string') return deployment;
      const checkRunId = checkRunOfUrl(payload.workflow_job.check_run_url);
      // Without its check run, the job's own tokens cannot be told from its run's other jobs': only those without one go.
      const unmatched = checkRunId === undefined ? ' (no usable check_run_url: only tokens without check_run_id)' : '';
      return revokeEnded(
        {
          deployment,
          repositoryId: String(payload.repository.id),
          runId: String(payload.workflow_job.run_id),
          runAttempt: runAttemptOf(payload.workflow_job.run_attempt),
          job: { id: String(payload.workflow_job.id), checkRunId },
          deliveryId: id,
        },
        unmatched,
      );
    },
    // The backstop of the jobs': a token exchanged after its job's completion was delivered, or whose job's delivery
    // never came, or that no job's check run matched, ends with its run's attempt (a later attempt's tokens stay).
    workflow_run: async ({ id, payload }) => {
      if (payload.action !== 'completed') return { handled: false, detail: `workflow_run ${payload.action} needs nothing` };
      const { repository, workflow_run: run } = payload;
      const deployment = deploymentOf(repository);
      if (typeof deployment !== 'string') return deployment;
      return revokeEnded({
        deployment,
        repositoryId: String(repository.id),
        runId: String(run.id),
        runAttempt: runAttemptOf(run.run_attempt),
        job: undefined,
        deliveryId: id,
      });
    },
  };
}

/** The installation's account: a user's or an organisation's login, or an enterprise's slug. */
function accountLogin({ installation }: WebhookPayload<'installation'>): string | undefined {
  return installation.account?.login ?? installation.account?.slug;
}

/** The event's handler bound to its delivery and payload, once the payload is of the shape the handler reads. */
function bindHandler<Name extends HandledEvent>(
  handlers: Handlers,
  name: Name,
  id: string,
  body: unknown,
): { readonly ok: true; readonly handle: () => Promise<Handled> } | { readonly ok: false; readonly problem: string } {
  const read = readWebhookPayload(name, body);
  if (!read.ok) return read;
  const handler: Handlers[Name] = handlers[name];
  return { ok: true, handle: () => handler({ id, payload: read.payload }) };
}

/**
 * What a delivery is known by in the DeliveryLog: the SHA-256 of its event's name and its signed body. The body is what the
 * HMAC covers; the name (X-GitHub-Event) is not, and a body means something only under its own event.
 */
function deliveryKey(event: string, body: string): string {
  return sha256Hex(`${event}\n${body}`);
}

/**
 * `POST /webhooks/github`. In this order: a signature header must be present, the bodies held must leave room for this
 * one as it arrives (503 otherwise), the body must fit, and `X-Hub-Signature-256` must verify over the exact bytes (401 otherwise, before anything
 * else is read or stored); events keyway does not act on are acknowledged (202) and ignored; a payload without the
 * fields its handler reads, of the types GitHub sends (webhook-payloads.ts), is refused (400) unclaimed, so each copy of it
 * is refused alike; then the delivery's key (deliveryKey: the event's name and the signed body) is claimed, so a
 * redelivery or a replayed body (under any delivery id) is handled once. A handler that fails gives its claim back and answers 503, so
 * GitHub's redelivery can try again; one that finishes marks it handled, and one that never
 * finishes (the process stopped) leaves a claim a redelivery takes over after its lease.
 */
export function githubWebhookRoutes(secret: string, deps: GitHubWebhookDeps): Hono {
  const app = new Hono();
  const webhooks = new Webhooks({ secret });
  // A pool's other Apps sign with their own secrets; GitHub names the App in X-GitHub-Hook-Installation-Target-ID.
  const poolApps = new Map(Object.entries(deps.settings.appSecrets).map(([appId, appSecret]) => [appId, new Webhooks({ secret: appSecret })]));
  const handle = handlers(deps);
  const log: Logger = deps.log;
  let bodiesWarnedAt = Number.NEGATIVE_INFINITY;
  const unauthorized = () =>
    Response.json(
      { error: 'invalid_signature', error_description: 'X-Hub-Signature-256 is missing or does not match the body' },
      { status: 401, headers: NO_STORE },
    );

  app.post(
    '/github',
    async (c, next) => (c.req.header('x-hub-signature-256') === undefined ? unauthorized() : next()),
    bodyBudget({
      totalBytes: WEBHOOK_BODIES_HELD_BYTES,
      perClientBytes: WEBHOOK_BODIES_HELD_PER_CLIENT_BYTES,
      maxBodyBytes: WEBHOOK_BODY_BYTES,
      clientIp: deps.clientIp,
      onExhausted: (c) => {
        deps.metrics.rateLimited('webhook_bodies', 'webhook');
        // At most one line a minute, however the refusals come: a flood that lets a small body in between them writes no more.
        const now = deps.now();
        if (now - bodiesWarnedAt >= BODIES_WARNING_INTERVAL_MS) {
          bodiesWarnedAt = now;
          log.warn('webhook deliveries refused: the bodies being received fill the room', { client_ip: deps.clientIp(c) ?? null });
        }
        return Response.json(
          { error: 'temporarily_unavailable', error_description: 'too many webhook bodies are being received at once: redeliver later' },
          { status: 503, headers: { ...NO_STORE, 'Retry-After': '5' } },
        );
      },
    }),
    bodyLimit({
      maxSize: WEBHOOK_BODY_BYTES,
      onError: () =>
        Response.json(
          { error: 'request_too_large', error_description: `webhook bodies larger than ${WEBHOOK_BODY_BYTES} bytes are refused` },
          { status: 413, headers: NO_STORE },
        ),
      // A body that ended early is not the body signed, as one that is not UTF-8 is not (below).
      onIncomplete: unauthorized,
    }),
    async (c) => {
      // Verified over the exact bytes: decoded keeping a byte order mark and refusing what is not UTF-8, the text is them.
      let body: string;
      try {
        body = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(await c.req.arrayBuffer());
      } catch {
        return unauthorized();
      }
      const signature = c.req.header('x-hub-signature-256') ?? '';
      const target = c.req.header('x-github-hook-installation-target-id');
      const poolApp = target === undefined ? undefined : poolApps.get(target);
      let verified = false;
      try {
        verified = await (poolApp ?? webhooks).verify(body, signature);
      } catch {
        verified = false;
      }
      if (!verified) return unauthorized();

      const delivery = c.req.header('x-github-delivery') ?? '';
      const name = c.req.header('x-github-event') ?? '';
      if (!DELIVERY_ID.test(delivery) || !EVENT_NAME.test(name)) {
        return c.json({ error: 'invalid_request', error_description: 'X-GitHub-Delivery and X-GitHub-Event are required' }, 400, NO_STORE);
      }
      if (!isHandledEvent(name)) return c.json({ status: 'ignored', event: name }, 202, NO_STORE);
      // Reviews and the live set are the primary App's: another App's copy of a pull_request or push is not acted on twice.
      if (poolApp !== undefined && !POOL_APP_EVENTS.has(name))
        return c.json({ status: 'ignored', event: name, detail: 'handled through the primary App' }, 202, NO_STORE);
      let payload: unknown;
      try {
        payload = JSON.parse(body);
      } catch {
        return c.json({ error: 'invalid_request', error_description: 'the body is not JSON' }, 400, NO_STORE);
      }
      // Checked before the claim: a payload GitHub would never send is refused, each time it comes, and never handled.
      const run = bindHandler(handle, name, delivery, payload);
      if (!run.ok) {
        log.warn('github webhook payload refused', { delivery, event: name, problem: run.problem });
        return c.json({ error: 'invalid_request', error_description: run.problem }, 400, NO_STORE);
      }

      // The event's name is not signed: with the body it names the delivery, so a copy of a body sent under another name
      // (which its handler cannot act on) is another delivery, and never makes GitHub's own copy of it a duplicate.
      const key = deliveryKey(name, body);
      if (!(await deps.deliveries.claim(key, name, deps.now()))) {
        log.info('github webhook delivery already handled', { delivery, event: name, delivery_key: key });
        return c.json({ status: 'duplicate', delivery }, 200, NO_STORE);
      }
      try {
        const outcome = await run.handle();
        await deps.deliveries.finish(key, deps.now());
        log.info('github webhook handled', { delivery, event: name, handled: outcome.handled, detail: outcome.detail });
        return c.json({ status: outcome.handled ? 'handled' : 'ignored', detail: outcome.detail }, 200, NO_STORE);
      } catch (error) {
        await deps.deliveries.release(key);
        log.error('github webhook failed; the delivery may be sent again', {
          delivery,
          event: name,
          error: errorText(error),
        });
        return c.json({ error: 'temporarily_unavailable', error_description: 'the event could not be handled now; redeliver it later' }, 503, NO_STORE);
      }
    },
  );
  return app;
}
