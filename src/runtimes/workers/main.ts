import { errorText, jsonLogger } from '../../core/log.ts';
import type { PolicyFile } from '../../core/policy/load-policies.ts';
import bundledPolicies from '../../../build/policies.json';
import {
  createWorkerBroker,
  ISOLATE_KEY_RING_SERVED_MS,
  scheduledAuditUpkeep,
  scheduledKeyUpkeep,
  type WorkerBroker,
  type WorkerEnv,
} from './worker-broker.ts';
import { isLoopbackHost, isLoopbackHttpUrl } from '../../core/outbound/loopback-http-url.ts';
import { answerProbe } from '../../http/routes/probes.ts';
import { NO_SNIFF, NO_STORE } from '../../http/oauth-errors.ts';
import { FailureBackoff, retryAfter } from '../failure-backoff.ts';
import { staleKeyRingRefusal } from '../stale-key-ring.ts';
import { AuditShardUpkeepError } from './worker-audit-log.ts';

export { KeywayState } from './keyway-state.ts';
export { ReplayGuardState } from './replay-guard-state.ts';
export { RateLimitState } from './rate-limit-state.ts';
export { AuditShardState } from './audit-shard-state.ts';

const log = jsonLogger({ runtime: 'workers' });
let broker: Promise<WorkerBroker> | undefined;
/** Failed starts of the broker, and failed reloads of its stale key ring: until their wait has passed, refused without a try. */
const starts = new FailureBackoff();
const keyLoads = new FailureBackoff();
const NOT_CONFIGURED = 'the broker is not configured correctly';

/**
 * wrangler.toml ships KEYWAY_ISSUER=http://127.0.0.1:8787 for `wrangler dev`. A Worker reached
 * at any other host was deployed with it: it would mint tokens for an issuer no verifier can
 * reach, so it refuses to serve until KEYWAY_ISSUER names its public origin.
 */
function loopbackIssuerRefusal(request: Request, env: WorkerEnv): string | undefined {
  const served = new URL(request.url);
  if (!URL.canParse(env.KEYWAY_ISSUER) || !isLoopbackHttpUrl(new URL(env.KEYWAY_ISSUER)) || isLoopbackHost(served.hostname)) return undefined;
  const fix = 'set KEYWAY_ISSUER to its public https origin';
  return `KEYWAY_ISSUER is ${env.KEYWAY_ISSUER}, a loopback URL for wrangler dev, but this Worker is served at ${served.host}: ${fix}`;
}

/** A 503 answered in front of the broker's app, never cached as its own answers are not (http/response-headers.ts). */
function unavailable(description: string, retryAfterMs?: number): Response {
  const headers: Record<string, string> = { ...NO_STORE, ...NO_SNIFF };
  if (retryAfterMs !== undefined) headers['Retry-After'] = retryAfter(retryAfterMs);
  return Response.json({ error: 'temporarily_unavailable', error_description: description }, { status: 503, headers });
}

/** The broker this isolate serves with, started on first use; or the 503 that says why it cannot serve. */
async function startedBroker(request: Request, env: WorkerEnv): Promise<WorkerBroker | Response> {
  const refusal = loopbackIssuerRefusal(request, env);
  if (refusal !== undefined) {
    log.error('broker refuses to serve', { error: refusal });
    return unavailable(refusal);
  }
  const arrived = Date.now();
  // A start reads every binding, loads the policies and reads KeywayState: a broken deploy under traffic is not started
  // again on every request, but once its backoff has passed.
  const started = await starts.attempt(
    arrived,
    Date.now,
    () => startOnce(env),
    (error, failure) => log.error('broker failed to start', { error: errorText(error), failures: failure.failures, retry_in_ms: failure.waitMs }),
  );
  if (!('value' in started)) return unavailable(NOT_CONFIGURED, started.waitMs);
  const ready = started.value;
  // Within one refresh period of a rotation the cron made, this isolate signs and publishes as the store says. A ring
  // that cannot be reloaded is not served past that period; KeywayState is asked again once its backoff has passed.
  const refused = await staleKeyRingRefusal(ready.keys, request, {
    arrived,
    clock: Date.now,
    maxAgeMs: ISOLATE_KEY_RING_SERVED_MS,
    backoff: keyLoads,
    log,
  });
  return refused ?? ready;
}

/** The broker's start this isolate shares among the requests that wait on it; forgotten once it fails, so the next tries again. */
function startOnce(env: WorkerEnv): Promise<WorkerBroker> {
  broker ??= createWorkerBroker(env, bundledPolicies as readonly PolicyFile[], { log });
  const attempt = broker;
  return attempt.catch((error: unknown) => {
    if (broker === attempt) broker = undefined;
    throw error;
  });
}

export default {
  async fetch(request, env, ctx): Promise<Response> {
    // Ready: configured for where it is served, policies loaded, signing keys read from KeywayState (within a refresh period).
    const probe = answerProbe(request, async () => !((await startedBroker(request, env)) instanceof Response));
    if (probe !== undefined) return probe;
    const started = await startedBroker(request, env);
    return started instanceof Response ? started : started.app.fetch(request, env, ctx);
  },

  /**
   * The Cron Trigger (wrangler.toml [triggers]): rotates, activates and removes signing keys as they fall due;
   * then signs the audit shards' checkpoints and a root checkpoint over every chain.
   */
  async scheduled(controller, env): Promise<void> {
    // While restoring, only the restore writes: a round overlapping it would sign restored shards (and a root) with the key it replaces.
    if (env.KEYWAY_RESTORE_TOKEN !== undefined && env.KEYWAY_RESTORE_TOKEN !== '') {
      log.warn('scheduled upkeep skipped: KEYWAY_RESTORE_TOKEN is set (restore mode)');
      return;
    }
    const failures: unknown[] = [];
    try {
      for (const transition of await scheduledKeyUpkeep(env, controller.scheduledTime)) log.info('signing key life cycle', { ...transition });
    } catch (error) {
      log.error('signing key upkeep failed', { error: errorText(error) });
      failures.push(error);
    }
    // The audit round signs all the same: key upkeep never withdraws a key, and each of its steps is one transaction, so
    // the ring the round reads from the store holds a current key that is still served, whatever upkeep left undone.
    // Skipping it would leave the log without checkpoints for as long as key upkeep fails.
    try {
      const root = await scheduledAuditUpkeep(env, controller.scheduledTime, log);
      if (root !== undefined) log.info('audit root checkpoint', { time: root.time, chains: Object.keys(root.heads).length });
    } catch (error) {
      // A round that failed for some shards has logged each of them (audit shard upkeep failed).
      if (!(error instanceof AuditShardUpkeepError)) log.error('audit upkeep failed', { error: errorText(error) });
      failures.push(error);
    }
    // The invocation still ends failed (with the first failure; each is logged above), so Cloudflare's Cron history shows
    // the round that did not do all of its work.
    if (failures.length > 0) throw failures[0];
  },
} satisfies ExportedHandler<WorkerEnv>;
