import { existsSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { keyJson, rotationJson, withdrawalJson, type KeyJson, type RotationJson, type WithdrawalJson } from '../core/mint/key-json.ts';
import { silentLogger } from '../core/log.ts';
import { nodeConfigFromEnv, type NodeBrokerConfig } from '../config/node-config.ts';
import { loadNodeMasterKeys, MASTER_KEY_FILE } from '../storage/master-key-file.ts';
import { DATABASE_FILE, openSqliteFile, type SqliteFile } from '../storage/sqlite-file.ts';
import { SecretBox, SecretBoxError } from '../core/secrets/secret-box.ts';
import type { MasterKeys } from '../core/secrets/master-keys.ts';
import { checkSchema, migrate } from '../storage/migrate.ts';
import { SqliteKeyStore } from '../storage/sqlite-key-store.ts';
import { keyLifeCycle } from '../core/mint/key-life-cycle.ts';
import { RecordMacs, recordMacKeys } from '../core/audit/record-mac.ts';
import { rotateSigningKeys, withdrawSigningKey, type KeyOperationRecord, type SigningKeyOperationDeps } from '../core/revocation/signing-key-operations.ts';
import { inert } from '../core/inert-text.ts';
import { SqliteAuditStore } from '../storage/sqlite-audit-store.ts';
import { ANSWER_BYTES, answerJson, brokerError } from './bounded-answer.ts';
import { brokerOrigin, fetchBroker, REMOTE_DEADLINES_MS, type RemoteDeadlines } from './broker-fetch.ts';
import { CliError } from './command.ts';
import { openCommandDataDir } from './existing-data-dir.ts';

/** Where `keyway keys …` works: a Node broker's data directory, or a broker's /v1/keys API. Same answers. */
export interface KeySource {
  list(): Promise<KeyJson[]>;
  rotate(): Promise<RotationJson>;
  withdraw(kid: string): Promise<WithdrawalJson>;
  close(): void;
}

export const KEYS_SOURCE_USAGE = `source (one of):
  --data-dir DIR            the broker's data directory (default KEYWAY_DATA_DIR or .keyway)
  --url URL                 a broker (https unless on loopback); the only way on Workers
  --token TOKEN             with --url: a keyway access token for that broker with scope keys:read
                            (list), keys:rotate (rotate) or keys:withdraw (withdraw); or set KEYWAY_TOKEN
  --json                    machine-readable output`;

const SCOPES = { list: 'keys:read', rotate: 'keys:rotate', withdraw: 'keys:withdraw' } as const;

/** `rotate` and `withdraw` need the master key locally: new keys are sealed under it. Only `withdraw` takes a positional (the kid). */
export async function openKeySource(
  args: readonly string[],
  purpose: keyof typeof SCOPES,
  deadlines: RemoteDeadlines = REMOTE_DEADLINES_MS,
): Promise<{ source: KeySource; json: boolean; positionals: string[] }> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { 'data-dir': { type: 'string' }, url: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean', default: false } },
    strict: true,
    allowPositionals: purpose === 'withdraw',
  });
  const json = values.json === true;
  if (values.url !== undefined) {
    if (values['data-dir'] !== undefined) throw new CliError('give --url or --data-dir, not both');
    const token = values.token ?? process.env['KEYWAY_TOKEN'];
    if (token === undefined || token === '') throw new CliError(`--url needs --token (or KEYWAY_TOKEN): an access token with scope ${SCOPES[purpose]}`);
    return { source: remoteSource(values.url, token, deadlines), json, positionals };
  }
  if (values.token !== undefined) throw new CliError('--token goes with --url');
  return { source: await localSource(values['data-dir'], purpose !== 'list'), json, positionals };
}

/**
 * The key store in the data directory, opened beside a running broker (SQLite serialises the
 * writes). `sealed`: with the master key — from KEYWAY_MASTER_KEY or the data dir's master
 * key file, never a new one made up here.
 */
export async function openDataDirKeyStore(
  dataDir: string | undefined,
  sealed: boolean,
): Promise<{ store: SqliteKeyStore; db: SqliteFile; config: NodeBrokerConfig }> {
  const config = nodeConfigFromEnv(dataDir === undefined ? process.env : { ...process.env, KEYWAY_DATA_DIR: dataDir });
  const given = join(config.dataDir, DATABASE_FILE);
  if (!existsSync(given)) throw new CliError(`no broker database at ${given}: start the broker once (npm start) or pass --data-dir`, 1);
  // As the broker holds its own directory at start-up: one someone else could have put in its place is refused.
  return openCommandDataDir(
    'open the key store in',
    config.dataDir,
    async (checked) => {
      const path = join(checked, DATABASE_FILE);
      let box: SecretBox | undefined;
      if (sealed) {
        box = await brokerSecretBox({ ...config, dataDir: checked });
        if (box === undefined)
          throw new CliError(`no master key: set KEYWAY_MASTER_KEY as the broker has it (there is no ${MASTER_KEY_FILE} in ${config.dataDir})`, 1);
      }
      let db;
      try {
        // Never created here, even if the file went away since the check above: a rotation into a new empty database would be lost.
        db = openSqliteFile(path, sealed ? { existing: true } : { readonly: true });
        // Read-only, the schema is still checked: a newer keyway's database is never read half-understood.
        if (sealed) migrate(db);
        else checkSchema(db);
      } catch (error) {
        db?.close();
        throw new CliError(`cannot open the key store at ${path}: ${(error as Error).message}`, 1);
      }
      return { store: new SqliteKeyStore(db, box), db, config };
    },
    { undo: ({ db }) => db.close(), reading: !sealed },
  );
}

/** The broker's master key: KEYWAY_MASTER_KEY (and KEYWAY_MASTER_KEY_PREVIOUS), or the data dir's master key file; never a new one made up here. */
export function brokerMasterKeys(config: NodeBrokerConfig): MasterKeys | undefined {
  if (config.masterKeys === undefined && !existsSync(join(config.dataDir, MASTER_KEY_FILE))) return undefined;
  return config.masterKeys ?? loadNodeMasterKeys({}, config.dataDir, silentLogger);
}

export async function brokerSecretBox(config: NodeBrokerConfig): Promise<SecretBox | undefined> {
  const keys = brokerMasterKeys(config);
  return keys === undefined ? undefined : SecretBox.fromMasterKeys(keys);
}

async function localSource(dataDir: string | undefined, sealed: boolean): Promise<KeySource> {
  const { store, db, config } = await openDataDirKeyStore(dataDir, sealed);
  const cycle = keyLifeCycle(config.keys, config.maxTtlSeconds);
  /**
   * Refused, nothing written, unless the master key is the broker's current one, whatever the operation needs sealed: a
   * fresh key sealed under another would stop every ring reload, and a record MACed under another would leave every
   * checkpoint after it unsigned.
   */
  const withBrokersMasterKey = async <T>(what: string, change: () => Promise<T>): Promise<T> => {
    try {
      await store.requireCurrentMasterKey();
      return await change();
    } catch (error) {
      if (!(error instanceof SecretBoxError)) throw error;
      throw new CliError(
        `the master key is not the one the broker seals its signing keys under (${error.message}): set KEYWAY_MASTER_KEY as the broker has it (after changing it, restart the broker with it first); nothing was ${what}`,
        1,
      );
    }
  };
  // Recorded in the broker's audit log, as through the API: its appends read the head and extend it in one transaction of
  // the file, so a running broker's writer and this one keep one chain; the MAC is the broker's, from the same master key.
  const operations = (): SigningKeyOperationDeps => {
    const masterKeys = brokerMasterKeys(config);
    const macs = masterKeys === undefined ? {} : { macs: new RecordMacs(recordMacKeys(masterKeys)) };
    return { store, cycle, audit: new SqliteAuditStore(db, macs), issuer: config.issuer, now: Date.now };
  };
  const operator = { local: localAccount() };
  const context = () => ({ requestId: crypto.randomUUID(), clientIp: undefined, userAgent: undefined });
  /** The operation stands; its record did not make it into the log: said, as the API answers 503. */
  const unrecorded = (done: string, record: KeyOperationRecord | undefined) => {
    if (record !== undefined && 'unrecorded' in record)
      throw new CliError(`${done}, but its audit record could not be written (${record.unrecorded}): run the command again to record it`, 1);
  };
  return {
    list: async () => (await store.describeKeys()).map((key) => keyJson(key, cycle.retainMs)),
    rotate: async () => {
      const { transitions, record } = await withBrokersMasterKey('rotated', () => rotateSigningKeys(operations(), operator, context()));
      unrecorded('the rotation was started', record);
      return rotationJson(transitions, await store.describeKeys(), cycle.retainMs);
    },
    withdraw: async (kid) => {
      const { withdrawal, record } = await withBrokersMasterKey('withdrawn', () => withdrawSigningKey(operations(), kid, operator, context()));
      if (withdrawal.status === 'unknown')
        throw new CliError(`the key store in ${config.dataDir} holds no signing key ${kid} (keyway keys list shows them)`, 1);
      // As the broker's upkeep does for a removed key: the private part leaves older WAL frames too.
      if (withdrawal.status === 'withdrawn' && !db.truncateWal())
        process.stderr.write("warning: the withdrawn key's sealed private part stays in older WAL frames until the broker's WAL starts over\n");
      unrecorded(withdrawal.status === 'withdrawn' ? `withdrew signing key ${inert(kid)}` : `signing key ${inert(kid)} was removed already`, record);
      return withdrawalJson(withdrawal, await store.describeKeys(), cycle.retainMs);
    },
    close: () => db.close(),
  };
}

/** Who ran the command, as the system names the account: no token vouches for it, so the record keeps it in its detail alone. */
function localAccount(): string {
  const uid = process.getuid?.();
  let name: string | undefined;
  try {
    name = userInfo().username;
  } catch {
    // An account without a name (a container's uid with no passwd entry): its uid says who.
  }
  return `${name ?? 'an account'}${uid === undefined ? '' : ` (uid ${uid})`} on ${hostname()}`;
}

function remoteSource(base: string, token: string, deadlines: RemoteDeadlines): KeySource {
  const origin = brokerOrigin(base);
  const call = async <T>(path: string, method: 'GET' | 'POST', body?: object): Promise<T> => {
    const url = new URL(path, origin);
    const headers = { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    const init = { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) };
    const response = await fetchBroker(url, init, { whole: deadlines.whole });
    if (!response.ok) throw await brokerError(method, url.pathname, response);
    return answerJson<T>(response, ANSWER_BYTES.small, `${method} ${url.pathname}`);
  };
  return {
    list: async () => (await call<{ keys: KeyJson[] }>('/v1/keys', 'GET')).keys,
    rotate: () => call<RotationJson>('/v1/keys/rotate', 'POST'),
    withdraw: (kid) => call<WithdrawalJson>('/v1/keys/withdraw', 'POST', { kid }),
    close: () => {},
  };
}
