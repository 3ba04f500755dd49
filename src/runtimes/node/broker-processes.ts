import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { KeywayError } from '../../core/errors/keyway-error.ts';
import { errorText, type Logger } from '../../core/log.ts';
import { ConfigError, readInteger, type SettingsSource } from '../../core/settings/read-settings.ts';

/** What one broker process tells the others, through the supervisor. */
export type ClusterEvent = 'policies-switched' | 'revocations-scheduled' | 'audit-writer-listening';

/**
 * Whether a leader serves, as the supervisor last told this process: while none does (it stopped and is being
 * started again, or keeps failing to start), no audit checkpoint is signed, no signing key rotates and no GitHub
 * token is revoked.
 */
export type LeaderStatus =
  | { readonly serving: true }
  | {
      readonly serving: false;
      /** When the last leader stopped serving (ms since the epoch, the supervisor's clock). */
      readonly since: number;
      /** Why none serves: how the last one stopped, or why the latest one started did not start. */
      readonly reason: string;
    };

/** A broker process's part among several on one data directory (KEYWAY_PROCESSES). */
export interface BrokerCluster {
  /**
   * The leader runs the timers: audit checkpoints and retention, the signing key life cycle,
   * GitHub token revocation; and the audit writer every process sends its appends, single-use
   * claims and alert writes to (shared-audit-writer.ts). Every process serves, reloads its key ring
   * and watches the policies.
   */
  readonly leader: boolean;
  /**
   * The data directory the first leader opened, as its device and inode (`dev:ino`), for every process started after it
   * (the followers, and any started again): each must reach that directory, never one put in its place.
   */
  readonly dataDir?: string | undefined;
  /** Tells every other broker process. */
  announce(event: ClusterEvent): void;
  /** Whether a leader serves now (the leader itself: always). */
  leaderStatus(): LeaderStatus;
}

/** What a broker process offers the process model (runtimes/node/start-node-broker.ts's NodeBroker). */
export interface ServingBroker {
  readonly url: string;
  /** The device and inode (`dev:ino`) of the data directory it opened. */
  readonly dataDirIdentity: string;
  /** SIGHUP: the policies loaded again. */
  reloadPolicies(): unknown;
  /** Another process announced `event`. */
  heard(event: ClusterEvent): void;
  close(): Promise<void>;
  /** What a shutdown under way still waits on (graceful-shutdown.ts logs it). */
  closing(): Record<string, unknown>;
  /** How long the oldest write its audit writer thread has not answered has waited, in seconds (0 when none waits). */
  auditWriterWaitingSeconds(): number;
}

/** The brokers of one `npm start`, whichever process model serves them. */
export interface RunningBrokers {
  readonly url: string;
  /** The broker this process serves; undefined in a supervisor, which serves none itself. */
  readonly serving: ServingBroker | undefined;
  /** SIGHUP, to every broker process. */
  reload(): void;
  /**
   * Stops every broker process, the leader last (its parting checkpoint anchors everyone's last
   * records); resolves to the exit code the worst of them left with (0 when all finished).
   */
  stop(): Promise<number>;
}

/** A broker process that stopped before it served: its own output says why. */
export class BrokerProcessError extends KeywayError {
  override readonly name = 'BrokerProcessError';
  readonly code = 'broker_process_failed';
}

const MAX_PROCESSES = 256;
/** Waits before a broker process that stopped while serving is started again: 1 s, doubling up to a minute while they keep failing. */
const RESTART_DELAY_MS = { first: 1000, max: 60_000 } as const;
/** KEYWAY_PROCESS_UNRESPONSIVE_SECONDS' default: three times the shared audit writer's reply timeout. */
const UNRESPONSIVE_SECONDS = 30;
/** The most of a start failure's reason the supervisor passes on (a policy load error lists every problem). */
const MAX_REASON_CHARS = 2000;
const ROLE = 'KEYWAY_PROCESS_ROLE';
const DATA_DIR = 'KEYWAY_PROCESS_DATA_DIR';

type ToSupervisor =
  | { readonly keyway: 'serving'; readonly url: string; readonly dataDir: string }
  | { readonly keyway: 'event'; readonly event: ClusterEvent }
  | { readonly keyway: 'failed'; readonly reason: string }
  | { readonly keyway: 'pong'; readonly auditWriterWaitingSeconds: number };
type ToBroker =
  | { readonly keyway: 'event'; readonly event: ClusterEvent }
  | { readonly keyway: 'leader'; readonly status: LeaderStatus }
  | { readonly keyway: 'ping' };

/** KEYWAY_PROCESSES: broker processes to serve with; `auto` is one per CPU (os.availableParallelism()). Default 1. */
export function readProcessCount(env: SettingsSource): number {
  if (env['KEYWAY_PROCESSES'] === 'auto') return availableParallelism();
  if (typeof env['KEYWAY_PROCESSES'] === 'string' && !/^\d+$/.test(env['KEYWAY_PROCESSES'])) {
    throw new ConfigError(`KEYWAY_PROCESSES must be auto or an integer from 1 to ${MAX_PROCESSES}`);
  }
  return readInteger(env, 'KEYWAY_PROCESSES', 1, 1, MAX_PROCESSES);
}

/**
 * KEYWAY_PROCESS_UNRESPONSIVE_SECONDS: how long a serving broker process may leave the supervisor's heartbeat
 * unanswered (its event loop blocked, or the process stopped), or a write to its audit writer thread (the thread stuck,
 * its disk not returning), before the supervisor kills it and starts another.
 */
export function readUnresponsiveSeconds(env: SettingsSource): number {
  return readInteger(env, 'KEYWAY_PROCESS_UNRESPONSIVE_SECONDS', UNRESPONSIVE_SECONDS, 1, 3600);
}

/** Fields every log line of this process carries: its number among the broker processes, when there are several. */
export function processLogFields(): Record<string, number> {
  return cluster.isWorker ? { process: cluster.worker?.id ?? 0 } : {};
}

/**
 * Runs the Node broker as `npm start` does. With one process, `start` runs here. With more, this
 * process is their supervisor (node:cluster runs the same script again in each, where `start`
 * runs with its BrokerCluster): the leader starts first and alone, so a first start's work
 * (schema, master key, first signing key) happens once; then the others. They share the port
 * (node:cluster hands each new connection to the next process in turn) and the SQLite file.
 * The supervisor forwards SIGHUP and the processes' announcements, starts a process that
 * stops while serving again, in the same part, and kills one that answers no heartbeat, or whose audit writer
 * answers no write, for `unresponsiveSeconds` (then started again as any that stopped). It tells every process whether a
 * leader serves. Resolves once every process serves.
 */
export async function runBrokerProcesses(
  count: number,
  start: (cluster: BrokerCluster | undefined) => Promise<ServingBroker>,
  log: Logger,
  options: { readonly unresponsiveSeconds?: number } = {},
): Promise<RunningBrokers> {
  if (cluster.isWorker) return serveInCluster(start);
  if (count <= 1) {
    const broker = await start(undefined);
    return { url: broker.url, serving: broker, reload: () => void broker.reloadPolicies(), stop: () => broker.close().then(() => 0) };
  }
  return supervise(count, log, (options.unresponsiveSeconds ?? UNRESPONSIVE_SECONDS) * 1000);
}

async function serveInCluster(start: (cluster: BrokerCluster | undefined) => Promise<ServingBroker>): Promise<RunningBrokers> {
  const send = (message: ToSupervisor): void => void process.send?.(message);
  let broker: ServingBroker | undefined;
  let leaderStatus: LeaderStatus = { serving: true };
  // The heartbeat is answered from this event loop: a process whose loop is blocked answers none. The answer says how long
  // its audit writer thread has left a write unanswered, which this loop goes on regardless of.
  process.on('message', (message: ToBroker) => {
    if (message?.keyway === 'ping') send({ keyway: 'pong', auditWriterWaitingSeconds: broker?.auditWriterWaitingSeconds() ?? 0 });
    else if (message?.keyway === 'leader') leaderStatus = message.status;
    else if (message?.keyway === 'event') broker?.heard(message.event);
  });
  try {
    broker = await start({
      leader: process.env[ROLE] === 'leader',
      dataDir: process.env[DATA_DIR],
      announce: (event) => send({ keyway: 'event', event }),
      leaderStatus: () => leaderStatus,
    });
  } catch (error) {
    // The supervisor logs why, and, for a leader, tells the others: this process's own output alone is easily missed.
    const reason = errorText(error).slice(0, MAX_REASON_CHARS);
    await new Promise<void>((resolve) =>
      process.send === undefined ? resolve() : process.send({ keyway: 'failed', reason } satisfies ToSupervisor, undefined, undefined, () => resolve()),
    );
    throw error;
  }
  const serving = broker;
  const stop = (): Promise<number> => serving.close().then(() => 0);
  // Without its supervisor (killed), node:cluster ends this process at once, by its own 'disconnect' handler: no drain, but
  // no token either, as none is answered before its record is durable. The next leader removes the socket left behind.
  send({ keyway: 'serving', url: serving.url, dataDir: serving.dataDirIdentity });
  return { url: serving.url, serving, reload: () => void serving.reloadPolicies(), stop };
}

interface Member {
  worker: Worker;
  readonly leader: boolean;
  serving: boolean;
  /**
   * What the others announced while it started, told once it serves: it may have read the state an announcement is
   * about (the live policy set, the revocation schedule) before that changed, and has no handler for it until then.
   */
  readonly missed: Set<ClusterEvent>;
  /** When the heartbeat it has not answered yet was sent (performance.now()). */
  pinged?: number | undefined;
  /** Why the supervisor killed it (SIGKILL): it left the heartbeat, or its audit writer a write, unanswered. */
  killed?: string;
  /** Why it did not start, as it said before it exited. */
  failure?: string;
}

async function supervise(count: number, log: Logger, unresponsiveMs: number): Promise<RunningBrokers> {
  const members: Member[] = [];
  let stopping = false;
  let failures = 0;
  let url: string | undefined;
  // The first leader's: a process started later (a follower, one started again) must open that directory.
  let dataDir: string | undefined;
  // Since when, and why, no leader serves; told to every process, for its /healthz and /metrics.
  let leaderDown: { readonly since: number; readonly reason: string } | undefined;
  // Not to a process whose channel closed as it exits: that send would fail as an 'error' event nothing handles.
  const tellLeaderStatus = (member: Member): void => {
    if (!member.worker.isConnected()) return;
    const status: LeaderStatus = leaderDown === undefined ? { serving: true } : { serving: false, ...leaderDown };
    member.worker.send({ keyway: 'leader', status } satisfies ToBroker);
  };
  const leaderStopped = (reason: string): void => {
    leaderDown = { since: leaderDown?.since ?? Date.now(), reason };
    for (const member of members) if (member.serving) tellLeaderStatus(member);
  };
  const nextDelay = (): number => {
    const delay = Math.min(RESTART_DELAY_MS.max, RESTART_DELAY_MS.first * 2 ** failures);
    failures += 1;
    return delay;
  };

  const fork = (leader: boolean): Promise<Member> => {
    const env = { [ROLE]: leader ? 'leader' : 'follower', ...(dataDir === undefined ? {} : { [DATA_DIR]: dataDir }) };
    const member: Member = { worker: cluster.fork(env), leader, serving: false, missed: new Set() };
    const { worker } = member;
    members.push(member);
    return new Promise((resolve, reject) => {
      worker.on('message', (message: ToSupervisor) => {
        if (message?.keyway === 'pong') {
          member.pinged = undefined;
          const waiting = message.auditWriterWaitingSeconds;
          if (waiting * 1000 > unresponsiveMs) {
            const seconds = Math.round(waiting);
            kill(
              member,
              `its audit writer left a write unanswered for ${seconds} s`,
              "broker process's audit writer answers nothing: killing it to start another",
              {
                audit_writer_waiting_seconds: seconds,
              },
            );
          }
        } else if (message?.keyway === 'failed') member.failure = message.reason;
        else if (message?.keyway === 'serving') {
          member.serving = true;
          failures = 0;
          url ??= message.url;
          dataDir ??= message.dataDir;
          for (const event of member.missed) worker.send({ keyway: 'event', event } satisfies ToBroker);
          member.missed.clear();
          if (leader && leaderDown !== undefined) {
            log.info('a leader serves again', { process: worker.id, no_leader_seconds: Math.round((Date.now() - leaderDown.since) / 1000) });
            leaderDown = undefined;
            for (const other of members) if (other.serving && other !== member) tellLeaderStatus(other);
          } else if (!leader) tellLeaderStatus(member);
          resolve(member);
        } else if (message?.keyway === 'event') {
          for (const other of members) {
            if (other === member) continue;
            if (other.serving) other.worker.send({ keyway: 'event', event: message.event } satisfies ToBroker);
            else other.missed.add(message.event);
          }
        }
      });
      worker.once('exit', (code, signal) => {
        members.splice(members.indexOf(member), 1);
        const how = member.killed !== undefined ? `SIGKILL, sent as ${member.killed}` : signal === null ? `code ${code}` : signal;
        if (!member.serving) {
          const why = member.failure === undefined ? '' : `: ${member.failure}`;
          reject(new BrokerProcessError(`a broker process (${leader ? 'the leader' : 'a follower'}) stopped with ${how} before it served${why}`));
        }
        if (stopping || !member.serving) return;
        const delay = nextDelay();
        log.error('broker process stopped while serving; starting another', { process: worker.id, leader, exit: how, restart_in_ms: delay });
        if (leader) leaderStopped(`the leader stopped with ${how}`);
        setTimeout(() => void restart(leader), delay).unref();
      });
    });
  };
  const restart = async (leader: boolean): Promise<void> => {
    if (stopping) return;
    try {
      await fork(leader);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      const delay = nextDelay();
      if (leader) {
        leaderStopped(reason);
        log.error('no leader serves: no audit checkpoints, signing key rotation or GitHub token revocations until one starts; trying again', {
          reason,
          no_leader_seconds: Math.round((Date.now() - (leaderDown?.since ?? Date.now())) / 1000),
          restart_in_ms: delay,
        });
      } else log.error('broker process did not start again; trying again', { leader, error: reason, restart_in_ms: delay });
      setTimeout(() => void restart(leader), delay).unref();
    }
  };
  // A serving process whose event loop answers no heartbeat in unresponsiveMs (blocked, or the process stopped), or whose
  // audit writer thread leaves a write unanswered as long (stuck on a disk that does not return; the heartbeat's answer
  // says), is killed, and started again as one that stopped: it holds its share of the connections, and a leader its
  // followers' audit batches, without answering any. Killing it issues no token: none leaves before its record is
  // durable. A heartbeat is judged again after this loop has read its IPC, since after a stall of the supervisor itself
  // the timer runs before the answers; the writer's wait is measured in the process, so no stall here lengthens it.
  const kill = (member: Member, why: string, message: string, fields: Record<string, unknown> = {}): void => {
    if (member.killed !== undefined) return;
    member.killed = why;
    log.error(message, {
      process: member.worker.id,
      leader: member.leader,
      pid: member.worker.process.pid,
      ...fields,
      unresponsive_seconds: unresponsiveMs / 1000,
    });
    member.worker.process.kill('SIGKILL');
  };
  const overdue = (member: Member): boolean => member.pinged !== undefined && performance.now() - member.pinged > unresponsiveMs;
  const heartbeat = setInterval(
    () => {
      for (const member of members) {
        if (!member.serving || member.killed !== undefined || !member.worker.isConnected()) continue;
        if (member.pinged === undefined) {
          member.pinged = performance.now();
          member.worker.send({ keyway: 'ping' } satisfies ToBroker);
        } else if (overdue(member)) {
          setImmediate(() => {
            if (overdue(member)) {
              kill(member, `it answered no heartbeat in ${unresponsiveMs / 1000} s`, 'broker process answered no heartbeat: killing it to start another');
            }
          });
        }
      }
    },
    Math.min(1000, unresponsiveMs / 4),
  );
  heartbeat.unref();
  // Each process shuts down gracefully on SIGTERM, within KEYWAY_SHUTDOWN_SECONDS of its own.
  const stopMember = async (member: Member): Promise<number> => {
    const exited = once(member.worker, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    member.worker.process.kill('SIGTERM');
    const [code] = await exited;
    return code ?? 1;
  };
  let stopped: Promise<number> | undefined;
  const stop = (): Promise<number> =>
    (stopped ??= (async () => {
      stopping = true;
      const followers = await Promise.all(members.filter((member) => !member.leader).map(stopMember));
      const leaders = await Promise.all(members.map(stopMember));
      clearInterval(heartbeat);
      return Math.max(0, ...followers, ...leaders);
    })());

  try {
    await fork(true);
    await Promise.all(Array.from({ length: count - 1 }, () => fork(false)));
  } catch (error) {
    await stop();
    throw error;
  }
  // Each process logs its own start as it listens; this line, once the supervisor heard every one say it serves, is when
  // a process that stops is started again rather than failing the start.
  log.info('broker processes serving', { processes: count, url });
  return {
    url: url as string,
    serving: undefined,
    reload: () => {
      // A process still starting has no SIGHUP handler yet (and loads the policies as it starts anyway).
      for (const member of members) if (member.serving) member.worker.process.kill('SIGHUP');
    },
    stop,
  };
}
