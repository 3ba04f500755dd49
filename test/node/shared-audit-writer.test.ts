import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import type { ReplayGuard } from '../../src/core/replay/replay-guard.ts';
import { canonicalEvent } from '../../src/core/audit/chain-hash.ts';
import { GroupCommitAuditStore } from '../../src/runtimes/node/group-commit-audit-store.ts';
import { connectSharedWriter, serveSharedWriter, sharedWriterPath, type SharedWriterServer } from '../../src/runtimes/node/shared-audit-writer.ts';
import { writerThreadAlertStore, writerThreadReplayGuard } from '../../src/runtimes/node/writer-thread-stores.ts';
import { generateMasterKey, parseMasterKey } from '../../src/core/secrets/master-keys.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { openSqliteFile, type SqliteFile } from '../../src/storage/sqlite-file.ts';
import { SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';
import { replayGuardContract } from '../suites/replay-guard-contract.ts';
import { auditEvent, storeContract } from '../suites/store-contract.ts';
import { TEST_MAC_KEYS } from '../support/record-mac-keys.ts';

// KEYWAY_PROCESSES' followers send their audit appends, single-use claims and alert writes to the leader's writer
// over a Unix socket in the data directory. Real parts: SQLite files, the leader's writer thread, the socket.

interface Leader {
  readonly dir: string;
  readonly databasePath: string;
  readonly socket: string;
  readonly store: GroupCommitAuditStore;
  readonly server: SharedWriterServer;
  /** Records per commit of the leader's writer, its followers' included. */
  readonly commits: number[];
}

/** A fresh data directory: its SQLite file (migrated, and open as `db`), and the socket its leader would listen at. */
function freshDataDir() {
  const dir = mkdtempSync(join(tmpdir(), 'keyway-shared-'));
  return { dir, ...openDatabase(dir) };
}

/** The data directory's SQLite file, migrated, on a connection of its own (what each broker process has), and its socket. */
function openDatabase(dir: string) {
  const databasePath = join(dir, 'keyway.db');
  const db = openSqliteFile(databasePath);
  migrate(db);
  return { databasePath, db, socket: sharedWriterPath(dir) as string };
}

/**
 * A follower store on `db`, joined to whatever listens at `socket`. Its own writer thread (while it has no leader) would
 * open `ownWriterPath`: one in a directory that does not exist makes anything it wrote without the leader fail.
 */
async function joinedFollower(socket: string, db: SqliteFile, ownWriterPath: string, options: { replyTimeoutMs?: number } = {}) {
  const store = new GroupCommitAuditStore(db, ownWriterPath, { macKeys: TEST_MAC_KEYS });
  expect(await store.useSharedWriter((onReply, onClose) => connectSharedWriter(socket, onReply, onClose, options))).toBe(true);
  expect(store.shared).toBe(true);
  return store;
}

async function startLeader(dir = mkdtempSync(join(tmpdir(), 'keyway-shared-'))): Promise<Leader> {
  const { databasePath, db, socket } = openDatabase(dir);
  const commits: number[] = [];
  const store = new GroupCommitAuditStore(db, databasePath, { onCommit: (records) => commits.push(records), macKeys: TEST_MAC_KEYS });
  const server = (await serveSharedWriter(socket, (request) => store.serveShared(request), silentLogger)) as SharedWriterServer;
  expect(server).toBeDefined();
  return { dir, databasePath, socket, store, server, commits };
}

/** A follower on the leader's file, joined to its writer; its own writer could not open the file. */
async function startFollower(leader: Leader) {
  const db = openSqliteFile(leader.databasePath);
  return { db, store: await joinedFollower(leader.socket, db, unopenable(leader.dir)) };
}

/** A database path in a directory that does not exist: a writer thread on it fails. */
const unopenable = (dir: string) => join(dir, 'no-such-directory', 'keyway.db');

storeContract("Node (a follower process's stores, through the leader's shared writer)", async () => {
  const leader = await startLeader();
  const { db, store } = await startFollower(leader);
  return {
    audit: store,
    keys: new SqliteKeyStore(db, await SecretBox.fromMasterKeys({ current: parseMasterKey(generateMasterKey(), 'test'), previous: [] })),
    alerts: writerThreadAlertStore(store, db),
    tamper: async (sql, params) => void db.run(sql, params),
  };
});

const leadersOf = new WeakMap<ReplayGuard, Leader>();
const followerGuard = async (leader: Leader): Promise<ReplayGuard> => {
  const guard = writerThreadReplayGuard((await startFollower(leader)).store);
  leadersOf.set(guard, leader);
  return guard;
};
replayGuardContract(
  "Node (a follower process's claims, group-committed by the leader's shared writer)",
  async () => followerGuard(await startLeader()),
  // The twin is another follower of the same leader: the second broker process of three.
  async (guard) => followerGuard(leadersOf.get(guard) as Leader),
);

describe('the shared audit writer of several broker processes', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
  });

  /** A stand-in for a leader at `socket`: a plain server that does with each connection what `onConnection` says. */
  async function standIn(socket: string, onConnection: (connection: Socket) => void): Promise<Server> {
    const server = createServer(onConnection);
    servers.push(server);
    server.listen(socket);
    await once(server, 'listening');
    return server;
  }

  it("commits the appends of the leader and its followers together in the leader's batches", async () => {
    const leader = await startLeader();
    const followers = [await startFollower(leader), await startFollower(leader)];
    const appended = await Promise.all([
      ...Array.from({ length: 10 }, (_, index) => leader.store.append(auditEvent({ id: `leader-${index}` }))),
      ...followers.flatMap(({ store }, follower) =>
        Array.from({ length: 10 }, (_, index) => store.append(auditEvent({ id: `follower-${follower}-${index}` }))),
      ),
    ]);
    expect(appended.map((link) => link.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, index) => index + 1));
    // Fewer commits than records: the followers' appends rode in the leader's batches (their own writers could not even open the file).
    expect(leader.commits.reduce((sum, records) => sum + records, 0)).toBe(30);
    expect(leader.commits.length).toBeLessThan(30);
  });

  it('answers a follower batch piece by piece: an append that fails fails alone, and its neighbours are committed once', async () => {
    const leader = await startLeader();
    const { db, store } = await startFollower(leader);
    await store.append(auditEvent({ id: 'taken' }));
    const results = await Promise.allSettled([
      store.append(auditEvent({ id: 'first' })),
      store.append(auditEvent({ id: 'taken' })),
      store.append(auditEvent({ id: 'third' })),
    ]);
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/UNIQUE/);
    const rows = db.all<{ id: string }>('SELECT id FROM audit_events ORDER BY seq');
    expect(rows.map((row) => row.id).sort()).toEqual(['first', 'taken', 'third']);
  });

  it('takes an event only as canonicalEvent makes it: any other is answered with an error and not stored, and its neighbours are', async () => {
    const leader = await startLeader();
    const peer = createConnection(leader.socket);
    await once(peer, 'connect');
    peer.setEncoding('utf8');
    const replies: string[] = [];
    let buffered = '';
    peer.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() as string;
      replies.push(...lines);
    });
    const reply = async (batch: object) => {
      const before = replies.length;
      peer.write(`${JSON.stringify(batch)}\n`);
      await expect.poll(() => replies.length).toBe(before + 1);
      return JSON.parse(replies[before] as string) as { appended: ({ result: { seq: number } } | { error: string })[] };
    };
    const good = canonicalEvent(auditEvent({ id: 'good' }));
    const planted = canonicalEvent(auditEvent({ id: 'planted' }));
    const { text, index } = planted;
    const sent = [
      { text: 'not json at all', index },
      { text: '["an array"]', index },
      // The same event in another form: members out of JCS order, and spaces.
      { text: JSON.stringify(JSON.parse(text), Object.keys(JSON.parse(text)).reverse(), 1), index },
      // Its text, and an index that says it granted.
      { text, index: { ...index, decision: 'granted' } },
      { text, index: null },
      { text: '{"id":"planted"}', index },
      good,
      { text: 5, index },
      null,
    ];
    const { appended } = await reply({ batch: 1, events: sent, claims: [], alerts: [] });
    expect(appended.map((outcome) => ('error' in outcome ? outcome.error : outcome.result.seq))).toEqual([
      'TypeError: an audit event whose text is not JSON',
      'TypeError: an audit event whose text is not a JSON object',
      'TypeError: an audit event whose text is not the canonical (JCS) text of its event',
      'TypeError: an audit event whose decision column is not the one its event gives',
      'TypeError: an audit event whose id column is not the one its event gives',
      'TypeError: an audit event without the members its index columns come from',
      1,
      'TypeError: an audit event without its text',
      'TypeError: an audit event without its text',
    ]);
    const db = openSqliteFile(leader.databasePath);
    expect(db.all<{ id: string; event: string }>('SELECT id, event FROM audit_events ORDER BY seq')).toEqual([{ id: 'good', event: good.text }]);
    // The leader writes on, for itself and on the same connection.
    expect(leader.store.writable()).toBe(true);
    expect((await reply({ batch: 2, events: [planted], claims: [], alerts: [] })).appended).toEqual([{ result: expect.objectContaining({ seq: 2 }) }]);
    expect((await leader.store.append(auditEvent({ id: 'leader' }))).seq).toBe(3);
    peer.destroy();
    db.close();
  });

  it('fails the batch in flight when the leader goes away, writes for itself after, and joins a leader that listens again', async () => {
    const { dir, socket, databasePath, db } = freshDataDir();
    // A leader that dies with a batch in flight: it reads the batch and drops the connection without an answer.
    const dying = await standIn(socket, (connection) => connection.once('data', () => connection.destroy()));
    const follower = await joinedFollower(socket, db, databasePath);

    await expect(follower.append(auditEvent({ id: 'in-flight' }))).rejects.toThrow('the connection to the shared audit writer ended');
    expect(follower.shared).toBe(false);
    // Nobody was told it was committed, and nothing was: then the follower's own writer thread takes the next.
    const own = await follower.append(auditEvent({ id: 'own-writer' }));
    expect(own.seq).toBe(1);
    expect(db.all<{ id: string }>('SELECT id FROM audit_events').map((row) => row.id)).toEqual(['own-writer']);

    await new Promise((resolve) => dying.close(resolve));
    const leader = await startLeader(dir);
    expect(await follower.useSharedWriter((onReply, onClose) => connectSharedWriter(socket, onReply, onClose))).toBe(true);
    const shared = await follower.append(auditEvent({ id: 'through-the-new-leader' }));
    expect(shared.seq).toBe(2);
    expect(leader.commits).toEqual([1]);
    await follower.close();
    await leader.server.close();
    await leader.store.close();
  });

  it('a follower finds no leader to join when none listens, and writes for itself', async () => {
    const { socket, databasePath, db } = freshDataDir();
    const follower = new GroupCommitAuditStore(db, databasePath);
    expect(await follower.useSharedWriter((onReply, onClose) => connectSharedWriter(socket, onReply, onClose))).toBe(false);
    expect((await follower.append(auditEvent({ id: 'alone' }))).seq).toBe(1);
    await follower.close();
  });

  it.each([
    ['not JSON', 'GET / HTTP/1.1\n'],
    ['JSON, but no batch', '{"batch":1}\n'],
  ])('drops a connection that sends a line that is %s, and goes on serving the others', async (_, line) => {
    const leader = await startLeader();
    const { store } = await startFollower(leader);
    const stranger = createConnection(leader.socket);
    await once(stranger, 'connect');
    stranger.write(line);
    await once(stranger, 'close');
    expect((await store.append(auditEvent({ id: 'after-the-stranger' }))).seq).toBe(1);
  });

  it.each([
    ['not JSON', () => 'not json\n'],
    ['short of the pieces its batch had', (batch: number) => `${JSON.stringify({ batch, appended: [], claims: [], alerts: [] })}\n`],
    ['an outcome that is not an object', (batch: number) => `${JSON.stringify({ batch, appended: [null], claims: [], alerts: [] })}\n`],
  ])('fails its batch on a reply that is %s, and writes for itself after', async (_, reply) => {
    const { socket, databasePath, db } = freshDataDir();
    await standIn(socket, (connection) =>
      connection.once('data', (request: Buffer) => connection.write(reply((JSON.parse(request.toString()) as { batch: number }).batch))),
    );
    const follower = await joinedFollower(socket, db, databasePath);
    await expect(follower.append(auditEvent({ id: 'garbled' }))).rejects.toThrow('the connection to the shared audit writer ended');
    expect((await follower.append(auditEvent({ id: 'own-writer' }))).seq).toBe(1);
    await follower.close();
  });

  it('on close, answers the batches it owes, serves no line that comes after, and is not held open by a peer that keeps its end open', async () => {
    const { socket, databasePath, db } = freshDataDir();
    const store = new GroupCommitAuditStore(db, databasePath);
    // The leader's commits take a while here, so that its close finds a batch owed.
    let received: () => void = () => undefined;
    const arrived = new Promise<void>((resolve) => (received = resolve));
    const server = (await serveSharedWriter(
      socket,
      async (request) => {
        received();
        await new Promise((resolve) => setTimeout(resolve, 300));
        return store.serveShared(request);
      },
      silentLogger,
    )) as SharedWriterServer;
    const peer = createConnection({ path: socket, allowHalfOpen: true });
    await once(peer, 'connect');
    let replies = '';
    peer.setEncoding('utf8');
    peer.on('data', (chunk: string) => (replies += chunk));
    const batch = (id: number, event: string) =>
      `${JSON.stringify({ batch: id, events: [canonicalEvent(auditEvent({ id: event }))], claims: [], alerts: [] })}\n`;
    peer.write(batch(1, 'owed'));
    await arrived;
    const closed = server.close();
    peer.write(batch(2, 'after-close'));
    await closed;
    await new Promise((resolve) => setTimeout(resolve, 500));
    // The owed batch was committed and answered; the line after the close was neither.
    expect(
      replies
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { batch: number }).batch),
    ).toEqual([1]);
    expect(db.all<{ id: string }>('SELECT id FROM audit_events').map((row) => row.id)).toEqual(['owed']);
    await store.close();
  });

  it("sends its next batch without waiting for the leader's answer to the one before", async () => {
    const leader = await startLeader();
    const received: number[] = [];
    // Between the follower and the leader: holds every batch until two have come, then passes them on.
    const relayPath = join(leader.dir, 'relay.sock');
    await standIn(relayPath, (follower) => {
      const upstream = createConnection(leader.socket);
      upstream.pipe(follower);
      let held = '';
      follower.setEncoding('utf8');
      follower.on('data', (chunk: string) => {
        held += chunk;
        received.push(...[...chunk.matchAll(/"batch":(\d+)/g)].map((match) => Number(match[1])));
        if (received.length >= 2) {
          upstream.write(held);
          held = '';
        }
      });
    });
    const follower = await joinedFollower(relayPath, openSqliteFile(leader.databasePath), unopenable(leader.dir));
    const first = follower.append(auditEvent({ id: 'first' }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = follower.append(auditEvent({ id: 'second' }));
    expect((await Promise.all([first, second])).map((link) => link.seq)).toEqual([1, 2]);
    expect(received).toEqual([1, 2]);
    await follower.close();
  });

  it('takes a batch its leader does not answer for lost: the connection ends, the batch fails, and the follower writes for itself', async () => {
    const { socket, databasePath, db } = freshDataDir();
    // A leader that is there, reads and says nothing (stalled).
    await standIn(socket, (connection) => connection.resume());
    const follower = await joinedFollower(socket, db, databasePath, { replyTimeoutMs: 300 });
    await expect(follower.append(auditEvent({ id: 'unanswered' }))).rejects.toThrow('the connection to the shared audit writer ended');
    expect(follower.shared).toBe(false);
    expect((await follower.append(auditEvent({ id: 'own-writer' }))).seq).toBe(1);
    await follower.close();
  });

  it.each([
    ['not JSON', 'not json'],
    ['JSON, but no batch', '{}'],
  ])('reads nothing more from a connection once a line on it was refused (%s), even what came in the same write', async (_, refused) => {
    const leader = await startLeader();
    const { db, store } = await startFollower(leader);
    const stranger = createConnection(leader.socket);
    await once(stranger, 'connect');
    const claim = { key: 'after-a-refused-line', expiresAt: 4_000_000_000, auditEventId: '01AUDIT', now: Date.now() };
    stranger.write(`${refused}\n${JSON.stringify({ batch: 1, events: [], claims: [claim], alerts: [] })}\n`);
    await once(stranger, 'close');
    // A claim served from that line would have been queued before this append, so committed by the time it is.
    await store.append(auditEvent({ id: 'after-the-stranger' }));
    expect(db.all('SELECT key FROM replay_claims')).toEqual([]);
  });

  it('on a leader restarted under load, a follower is told of every batch the leader committed, and of none it did not', async () => {
    const leader = await startLeader();
    const db = openSqliteFile(leader.databasePath);
    // Its own writer is a real one here: between leaders, it writes for itself.
    const follower = new GroupCommitAuditStore(db, leader.databasePath);
    const join = () => follower.useSharedWriter((onReply, onClose) => connectSharedWriter(leader.socket, onReply, onClose));
    expect(await join()).toBe(true);
    const told = new Map<string, boolean>();
    let stop = false;
    // Open-loop load, as connections bring it: 20 appends every 2 ms whatever is still in flight.
    const answers: Promise<unknown>[] = [];
    let next = 0;
    const load = (async () => {
      while (!stop) {
        for (let index = 0; index < 20; index += 1) {
          next += 1;
          const id = `load-${next}`;
          answers.push(
            follower.append(auditEvent({ id })).then(
              () => told.set(id, true),
              () => told.set(id, false),
            ),
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    let server = leader.server;
    for (let restart = 0; restart < 4; restart += 1) {
      await new Promise((resolve) => setTimeout(resolve, 150));
      await server.close();
      server = (await serveSharedWriter(leader.socket, (request) => leader.store.serveShared(request), silentLogger)) as SharedWriterServer;
      await join();
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
    stop = true;
    await load;
    await Promise.all(answers);
    const committed = new Set(db.all<{ id: string }>('SELECT id FROM audit_events').map((row) => row.id));
    const failedButCommitted = [...told].filter(([id, ok]) => !ok && committed.has(id));
    const grantedButMissing = [...told].filter(([id, ok]) => ok && !committed.has(id));
    expect({ failedButCommitted, grantedButMissing }).toEqual({ failedButCommitted: [], grantedButMissing: [] });
    expect(told.size).toBeGreaterThan(100);
    await server.close();
    await follower.close();
  }, 30_000);

  it('closes within its grace period when a connected peer reads none of the replies it owes', async () => {
    const leader = await startLeader();
    const peer = createConnection({ path: leader.socket, allowHalfOpen: true });
    await once(peer, 'connect');
    peer.pause();
    const events = (batch: number) => Array.from({ length: 200 }, (_, index) => canonicalEvent(auditEvent({ id: `unread-${batch}-${index}` })));
    for (let batch = 1; batch <= 40; batch += 1) peer.write(`${JSON.stringify({ batch, events: events(batch), claims: [], alerts: [] })}\n`);
    // Every batch committed (its replies, unread, fill the socket's buffers), then the close.
    const db = openSqliteFile(leader.databasePath);
    const deadline = Date.now() + 20_000;
    while (db.all<{ n: number }>('SELECT count(*) AS n FROM audit_events')[0]?.n !== 8000 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const started = performance.now();
    await leader.server.close();
    expect(performance.now() - started).toBeLessThan(5000);
    expect(peer.destroyed || peer.readableEnded || peer.isPaused()).toBe(true);
    peer.destroy();
    db.close();
  }, 30_000);

  it('judges a batch overdue only after reading what came: a reply that arrived while the follower was busy is taken', async () => {
    const { dir, socket, db } = freshDataDir();
    // A leader that answers at once, then keeps this process (the follower's too) busy past the reply timeout.
    await standIn(socket, (connection) =>
      connection.on('data', (request: Buffer) => {
        const { batch } = JSON.parse(request.toString()) as { batch: number };
        connection.write(`${JSON.stringify({ batch, appended: [{ result: { seq: 1, hash: 'a'.repeat(64) } }], claims: [], alerts: [] })}\n`);
        const until = performance.now() + 700;
        while (performance.now() < until);
      }),
    );
    const follower = await joinedFollower(socket, db, unopenable(dir), { replyTimeoutMs: 300 });
    expect(await follower.append(auditEvent({ id: 'answered-while-busy' }))).toEqual({ seq: 1, hash: 'a'.repeat(64) });
    expect(follower.shared).toBe(true);
    await follower.close();
  });

  it('does not remove a file of its name that is not a socket, and then serves nobody', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-shared-'));
    const socket = sharedWriterPath(dir) as string;
    writeFileSync(socket, 'not a socket');
    const warnings: string[] = [];
    const log = { ...silentLogger, warn: (message: string) => void warnings.push(message) };
    expect(await serveSharedWriter(socket, () => Promise.reject(new Error('never called')), log)).toBeUndefined();
    expect(readFileSync(socket, 'utf8')).toBe('not a socket');
    expect(warnings).toEqual(['the shared audit writer cannot listen: every broker process writes the audit log for itself']);
  });

  it('takes no socket where the data directory gives no path for one', () => {
    expect(sharedWriterPath(`/${'d'.repeat(120)}`)).toBeUndefined();
    expect(sharedWriterPath('/var/lib/keyway')).toBe('/var/lib/keyway/audit-writer.sock');
  });
});
