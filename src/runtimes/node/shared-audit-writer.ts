import { lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { ChainLink } from '../../core/audit/audit-event.ts';
import { errorText, type Logger } from '../../core/log.ts';
import type { ReplayClaimResult } from '../../core/replay/replay-guard.ts';
import type { Outcome, WriterRequest } from './audit-writer.ts';

/**
 * One audit writer for every broker process (KEYWAY_PROCESSES): the leader's. A follower sends its
 * batches (appends, single-use claims, alert calls) over a Unix socket in the data directory to the
 * leader, whose group commit takes them into its own batches, one transaction and one fsync for the
 * work of every process; each is answered once it is durable, as a local writer answers. Without it,
 * each process had a writer of its own: they took turns at SQLite's write lock, each with smaller
 * batches, and each commit emptied the other connections' page caches.
 */

const SOCKET_FILE = 'audit-writer.sock';
/** sun_path holds 108 bytes on Linux, 104 on macOS, the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = 103;
/** A line longer than this is no batch a follower sends (512 records of at most a few hundred KiB each would be). */
const MAX_LINE_BYTES = 256 * 1024 * 1024;
const CONNECT_TIMEOUT_MS = 2000;
/**
 * On close, how long the leader waits, once it has ended a connection, for the follower to read what
 * it owes and end its side: destroying it at once would make a follower still writing fail with
 * EPIPE before it read replies already sent; waiting for ever would let a peer that reads nothing
 * hold up the leader's shutdown and its final checkpoint.
 */
const CLOSE_GRACE_MS = 2000;
/**
 * A batch the leader has not answered in this long is taken for lost: the connection ends, the
 * batches on it fail and the follower writes for itself (a leader stopped or stalled must not stall
 * its followers). Far above a commit's time, even with a slow disk's fsync.
 */
export const SHARED_REPLY_TIMEOUT_MS = 10_000;
/** How often a follower writing for itself tries to join a leader again, besides when one announces itself. */
export const REJOIN_SECONDS = 5;

/** The leader's answer to one follower batch: per piece of work, as the leader's own callers are answered. */
export interface SharedWriterReply {
  readonly batch: number;
  readonly appended: readonly Outcome<ChainLink>[];
  readonly claims: readonly Outcome<ReplayClaimResult>[];
  readonly alerts: readonly Outcome<unknown>[];
}

/** A follower's line to the leader's writer. */
export interface SharedWriterConnection {
  send(request: WriterRequest): void;
  /** Ends the connection once what was sent is written. */
  close(): void;
}

/**
 * Where the leader listens: in the data directory, whose owner-only mode (private-data-dir.ts) is
 * the socket's guard, listened at and connected to only while its path names the directory checked
 * at start-up (openInDataDir). Undefined where that cannot be had (Windows' named pipes have no directory to
 * guard them; a path too long for a socket address): every process then writes for itself.
 */
export function sharedWriterPath(dataDir: string): string | undefined {
  if (process.platform === 'win32') return undefined;
  const path = join(dataDir, SOCKET_FILE);
  return Buffer.byteLength(path) <= MAX_SOCKET_PATH_BYTES ? path : undefined;
}

/** Whether a parsed line is a batch: its id and its three lists of pieces. */
function isBatch(request: unknown): request is WriterRequest {
  if (typeof request !== 'object' || request === null) return false;
  const { batch, events, claims, alerts } = request as Record<string, unknown>;
  return Number.isSafeInteger(batch) && Array.isArray(events) && Array.isArray(claims) && Array.isArray(alerts);
}

/** Calls `onLine` with each newline-terminated line `socket` receives; destroys it on a line over the bound. */
function readLines(socket: Socket, onLine: (line: string) => void): void {
  let pending = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    let start = 0;
    let end = chunk.indexOf('\n');
    // Once the socket is destroyed (a line refused, or the bound), nothing after it is read.
    while (end !== -1 && !socket.destroyed) {
      const line = pending + chunk.slice(start, end);
      pending = '';
      onLine(line);
      start = end + 1;
      end = chunk.indexOf('\n', start);
    }
    pending += chunk.slice(start);
    if (pending.length > MAX_LINE_BYTES) socket.destroy(new Error('a line over the shared writer bound'));
  });
}

/** The leader's end: serves each follower batch with `serve` and writes its reply back. */
export interface SharedWriterServer {
  /** Stops taking connections and serving lines; ends each connection once the replies owed on it are written. */
  close(): Promise<void>;
}

/**
 * Listens at `path`, or, when it cannot (something other than a socket has that name), says why in
 * the log and returns undefined: every process then writes for itself, as it did before.
 */
export async function serveSharedWriter(
  path: string,
  serve: (request: WriterRequest) => Promise<SharedWriterReply>,
  log: Logger,
): Promise<SharedWriterServer | undefined> {
  // A socket a broker that stopped left behind; anything else of that name is not ours to remove.
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const connections = new Map<Socket, Set<Promise<void>>>();
  let closing = false;
  const server = createServer((socket) => {
    const owed = new Set<Promise<void>>();
    connections.set(socket, owed);
    socket.on('close', () => connections.delete(socket));
    socket.on('error', (error) => log.warn('shared audit writer: a follower connection failed', { error: errorText(error) }));
    readLines(socket, (line) => {
      // Once closing, nothing more is committed that could not be answered: the follower's batch fails and it writes for itself.
      if (closing) return;
      let request: WriterRequest;
      try {
        request = JSON.parse(line) as WriterRequest;
      } catch {
        socket.destroy(new Error('a line that is not JSON'));
        return;
      }
      // Refused here, before anything of it is served, so that no line after it on the connection is read.
      if (!isBatch(request)) {
        socket.destroy(new Error('a line that is not a batch'));
        return;
      }
      // A batch whose pieces serve cannot take ends the connection too.
      const reply = serve(request).then(
        (answer) => void (socket.destroyed || socket.write(`${JSON.stringify(answer)}\n`)),
        () => void socket.destroy(new Error('a batch that could not be served')),
      );
      owed.add(reply);
      void reply.finally(() => owed.delete(reply));
    });
  });
  const listening = await new Promise<boolean>((resolve) => {
    const refused = (error: Error): void => {
      log.warn('the shared audit writer cannot listen: every broker process writes the audit log for itself', { path, error: errorText(error) });
      resolve(false);
    };
    server.once('error', refused);
    server.listen(path, () => {
      server.off('error', refused);
      resolve(true);
    });
  });
  if (!listening) return undefined;
  server.on('error', (error) => log.warn('shared audit writer failed', { error: errorText(error) }));
  return {
    close: async () => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all(
        [...connections].map(async ([socket, owed]) => {
          await Promise.allSettled([...owed]);
          const ended = new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));
          socket.end();
          let grace: NodeJS.Timeout | undefined;
          await Promise.race([ended, new Promise<void>((resolve) => (grace = setTimeout(resolve, CLOSE_GRACE_MS)))]);
          clearTimeout(grace);
          socket.destroy();
        }),
      );
      await closed;
    },
  };
}

/**
 * A follower's end: connected to the leader at `path`, or undefined when no leader listens there
 * (the follower then writes for itself). `onReply` hears each reply; `onClose` once, when the
 * connection ends for whatever reason.
 */
export async function connectSharedWriter(
  path: string,
  onReply: (reply: SharedWriterReply) => void,
  onClose: () => void,
  options: { replyTimeoutMs?: number } = {},
): Promise<SharedWriterConnection | undefined> {
  const replyTimeoutMs = options.replyTimeoutMs ?? SHARED_REPLY_TIMEOUT_MS;
  const socket = createConnection(path);
  const connected = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (!connected) {
    socket.destroy();
    return undefined;
  }
  /** When each batch unanswered yet was sent. */
  const unanswered = new Map<number, number>();
  // Timed on the monotonic clock; and a batch found overdue is judged again after the socket was read, since after a stall
  // of this process the timer runs before the replies that came meanwhile are read.
  const isOverdue = (): boolean => {
    const [oldest] = unanswered.values();
    return oldest !== undefined && performance.now() - oldest > replyTimeoutMs;
  };
  const overdue = setInterval(
    () => {
      if (isOverdue()) setImmediate(() => isOverdue() && socket.destroy(new Error('the shared audit writer did not answer')));
    },
    Math.min(1000, replyTimeoutMs / 4),
  );
  overdue.unref();
  socket.on('error', () => socket.destroy());
  socket.once('close', () => {
    clearInterval(overdue);
    onClose();
  });
  readLines(socket, (line) => {
    // A line that is not a reply ends the connection: the batch it should have answered fails.
    try {
      const reply = JSON.parse(line) as SharedWriterReply;
      unanswered.delete(reply.batch);
      onReply(reply);
    } catch {
      socket.destroy();
    }
  });
  socket.unref();
  return {
    send: (request) => {
      unanswered.set(request.batch, performance.now());
      socket.write(`${JSON.stringify(request)}\n`);
    },
    close: () => void socket.end(),
  };
}
