import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { JSONWebKeySet } from 'jose';
import { allRecords } from '../core/audit/all-records.ts';
import { CSV_HEADER, csvRow } from '../core/audit/csv.ts';
import { ndjsonLine } from '../core/audit/ndjson-line.ts';
import { fromRecordJson, toRecordJson, type AuditRecordJson } from '../core/audit/record-json.ts';
import type { AuditEvent } from '../core/audit/audit-event.ts';
import { AuditQueryError, parseAuditQuery, parseAuditStatsQuery, type AuditStats } from '../core/audit/audit-query.ts';
import { buildInventory, parseInventoryQuery, type ClaimUsageRow, type Inventory, type UsageRow, type UsageWindow } from '../core/audit/inventory.ts';
import type { AuditLogSource } from '../core/audit/verify-chain.ts';
import { nodeConfigFromEnv, type NodeBrokerConfig } from '../config/node-config.ts';
import { MASTER_KEY_FILE } from '../storage/master-key-file.ts';
import { DATABASE_FILE, openSqliteFile, type SqliteFile } from '../storage/sqlite-file.ts';
import { SqliteAuditStore } from '../storage/sqlite-audit-store.ts';
import { USAGE_ROLLUP_LIMITS } from '../storage/sqlite-audit-usage.ts';
import { checkSchema } from '../storage/migrate.ts';
import { sqliteAuditLogSource } from '../storage/sqlite-audit-log-source.ts';
import { CliError } from './command.ts';
import { openCommandDataDir } from './existing-data-dir.ts';
import { remoteAuditLog, successful, type BrokerGet } from './remote-audit-log.ts';
import type { ShardedLogSource } from '../core/audit/verify-shards.ts';
import { brokerMasterKeys } from './key-source.ts';
import { withRecordMacs, type MasterKeyUse } from './master-key-option.ts';
import { SecretBox } from '../core/secrets/secret-box.ts';
import { ANSWER_BYTES, answerJson } from './bounded-answer.ts';
import { brokerOrigin, fetchBroker, REMOTE_DEADLINES_MS, type RemoteDeadlines } from './broker-fetch.ts';

/** Where `keyway audit …` reads: the broker's SQLite file, or a broker's /v1/audit API. Same filters, same answers. */
export interface AuditSource {
  query(params: URLSearchParams): Promise<{ events: AuditRecordJson[]; next_cursor?: string }>;
  stats(params: URLSearchParams): Promise<AuditStats>;
  /** One event by its id; undefined when the log has none. */
  event(id: string): Promise<AuditEvent | undefined>;
  /** The identity inventory (`keyway inventory`): GET /v1/inventory, or built from the file's usage roll-up and records. */
  inventory(params: URLSearchParams): Promise<Inventory>;
  /** The window's usage groups and claims of grants (`keyway policy suggest`): GET /v1/inventory/usage, or the file's. */
  usage(window: UsageWindow): Promise<{ rows: UsageRow[]; claims: ClaimUsageRow[] }>;
  /** The export, as text chunks: NDJSON or CSV. */
  export(params: URLSearchParams, format: 'ndjson' | 'csv'): AsyncIterable<string>;
  /**
   * Everything `audit verify` needs. The keys it trusts: `pinned` (a JWKS the auditor saved from
   * GET /v1/audit/keys), and those the broker vouches for: what its /v1/audit/keys publishes, or in
   * the data directory, those the master key attests. Without the master key, the pinned ones only.
   * `master`: a master key given in place of the broker's settings, and whether to check the records'
   * MACs with it, which only the data directory carries.
   */
  verification(pinned?: JSONWebKeySet, master?: MasterKeyUse): Promise<AuditLogSource | ShardedLogSource>;
  close(): void;
}

export const SOURCE_USAGE = `source (one of):
  --data-dir DIR            the broker's data directory, read directly (default KEYWAY_DATA_DIR or .keyway)
  --url URL                 a broker, e.g. https://keyway.example.com (https unless on loopback)
  --token TOKEN             with --url: a keyway access token for that broker with scope audit:read
                            (or set KEYWAY_TOKEN, which keeps it out of the process list)`;

export const FILTER_USAGE = `filters:
  --since TIME              RFC 3339 time, a date, or a span back from now (90m, 24h, 7d)
  --until TIME              exclusive
  --decision D[,D]          granted, denied, malformed, error
  --reason R[,R]            reason codes (docs/reference/reason-codes.md)
  --issuer URL  --subject SUB  --repository OWNER/NAME  --policy ID  --jti JTI  --upstream NAME`;

const FILTERS = ['since', 'until', 'decision', 'reason', 'issuer', 'subject', 'repository', 'policy', 'jti', 'upstream'] as const;

export const SOURCE_OPTIONS = {
  'data-dir': { type: 'string' },
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean', default: false },
  ...Object.fromEntries(FILTERS.map((name) => [name, { type: 'string' }])),
} as const;

type ParsedValues = Record<string, string | boolean | undefined>;

/** Parses a command's arguments: the source, the filters, and the command's own `options`. */
export function parseAuditArgs(args: readonly string[], extra: NonNullable<ParseArgsConfig['options']>, allowPositionals = false) {
  const { values, positionals } = parseArgs({ args: [...args], options: { ...SOURCE_OPTIONS, ...extra }, strict: true, allowPositionals });
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    const value = (values as ParsedValues)[name];
    if (typeof value === 'string') params.set(name, value);
  }
  return { values: values as ParsedValues, params, positionals };
}

export async function openAuditSource(values: ParsedValues, deadlines: RemoteDeadlines = REMOTE_DEADLINES_MS): Promise<AuditSource> {
  const url = values['url'];
  if (typeof url === 'string') {
    if (values['data-dir'] !== undefined) throw new CliError('give --url or --data-dir, not both');
    const token = (values['token'] as string | undefined) ?? process.env['KEYWAY_TOKEN'];
    if (token === undefined || token === '') throw new CliError('--url needs --token (or KEYWAY_TOKEN): an access token with scope audit:read');
    return remoteSource(url, token, deadlines);
  }
  if (values['token'] !== undefined) throw new CliError('--token goes with --url');
  const dataDir = values['data-dir'];
  return localSource(nodeConfigFromEnv(typeof dataDir === 'string' ? { ...process.env, KEYWAY_DATA_DIR: dataDir } : process.env));
}

/**
 * The audit log in a data directory, held to what the broker holds its own to (openInExistingDataDir): verify trusts the
 * keys that directory's master key attests, so a directory someone put in place of the broker's must not be read.
 */
async function localSource(given: NodeBrokerConfig): Promise<AuditSource> {
  const { db, config } = await openCommandDataDir(
    'open the audit log in',
    given.dataDir,
    (checked): { readonly db: SqliteFile; readonly config: NodeBrokerConfig } => {
      const path = join(checked, DATABASE_FILE);
      let file: SqliteFile | undefined;
      try {
        file = openSqliteFile(path, { readonly: true });
        checkSchema(file);
        return { db: file, config: { ...given, dataDir: checked } };
      } catch (error) {
        file?.close();
        throw new CliError(`cannot open the audit log at ${path}: ${(error as Error).message}`, 1);
      }
    },
    { undo: ({ db }) => db.close(), reading: true },
  );
  // Read-only, and serving no one: what the broker has not rolled up yet is summed from the records here, however much.
  const store = new SqliteAuditStore(db, { usage: { ...USAGE_ROLLUP_LIMITS, readBacklog: Number.POSITIVE_INFINITY } });
  const parsed = <T>(parse: () => T): T => {
    try {
      return parse();
    } catch (error) {
      if (error instanceof AuditQueryError) throw new CliError(error.message);
      throw error;
    }
  };
  return {
    async query(params) {
      const page = await store.query(parsed(() => parseAuditQuery(params, Date.now())));
      return { events: page.records.map(toRecordJson), ...(page.next === undefined ? {} : { next_cursor: page.next }) };
    },
    stats: async (params) => store.stats(parsed(() => parseAuditStatsQuery(params, Date.now()))),
    event: (id) => store.get(id),
    async inventory(params) {
      const query = parsed(() => parseInventoryQuery(params, Date.now()));
      return buildInventory(await store.usage(query), query);
    },
    usage: async (window) => ({ rows: await store.usage(window), claims: await store.claimUsage(window) }),
    async *export(params, format) {
      const query = { ...parsed(() => parseAuditQuery(params, Date.now(), 'asc')), limit: 500 };
      if (format === 'csv') yield CSV_HEADER;
      for await (const record of allRecords(store, query)) yield format === 'csv' ? csvRow(record) : ndjsonLine(toRecordJson(record));
    },
    async verification(pinned, master) {
      // A key is in the same database as the checkpoints it would verify: whoever could write one could write the other.
      const masterKeys = master?.given ?? brokerMasterKeys(config);
      const box = masterKeys === undefined ? undefined : await SecretBox.fromMasterKeys(masterKeys);
      const where = `set KEYWAY_MASTER_KEY as the broker has it (there is no ${MASTER_KEY_FILE} in ${config.dataDir})`;
      if (box === undefined && pinned === undefined) {
        throw new CliError(
          `verify --data-dir trusts no key on the database's word: ${where}, or pass --keys FILE, a JWKS saved earlier from GET /v1/audit/keys`,
        );
      }
      const trust = { ...(box === undefined ? {} : { box }), ...(pinned === undefined ? {} : { pinned }) };
      const log = await sqliteAuditLogSource(db, trust, { macs: master?.macs === true });
      return withRecordMacs(log, masterKeys, master, where);
    },
    close: () => db.close(),
  };
}

const EXPORT_PATH = '/v1/audit/export';

function remoteSource(base: string, token: string, deadlines: RemoteDeadlines): AuditSource {
  const origin = brokerOrigin(base);
  const fetchAnswer: BrokerGet = (path, params, authorized = true) => {
    const url = new URL(path, origin);
    if (params !== undefined) url.search = params.toString();
    // The export streams for as long as the log is long: held to a deadline between bytes, not to one for all of them.
    return fetchBroker(
      url,
      { method: 'GET', headers: authorized ? { authorization: `Bearer ${token}` } : {} },
      path === EXPORT_PATH ? { idle: deadlines.idle } : { whole: deadlines.whole },
    );
  };
  const get = async (path: string, params?: URLSearchParams): Promise<Response> => successful(path, await fetchAnswer(path, params));
  const json = async <T>(path: string, params?: URLSearchParams): Promise<T> => answerJson<T>(await get(path, params), ANSWER_BYTES.page, `GET ${path}`);
  return {
    query: (params) => json('/v1/audit/events', params),
    stats: (params) => json('/v1/audit/stats', params),
    async event(id) {
      const path = `/v1/audit/events/${encodeURIComponent(id)}`;
      const response = await fetchAnswer(path);
      if (response.status === 404) {
        await response.body?.cancel();
        return undefined;
      }
      return fromRecordJson(await answerJson<AuditRecordJson>(await successful(path, response), ANSWER_BYTES.record, `GET ${path}`)).event;
    },
    inventory: (params) => json('/v1/inventory', params),
    usage: (window) =>
      json('/v1/inventory/usage', new URLSearchParams({ since: new Date(window.since).toISOString(), until: new Date(window.until).toISOString() })),
    async *export(params, format) {
      const response = await get(EXPORT_PATH, new URLSearchParams([...params, ['format', format]]));
      for await (const chunk of (response.body ?? new ReadableStream<Uint8Array>()).pipeThrough(new TextDecoderStream())) yield chunk;
    },
    verification(pinned, master) {
      if (master?.macs === true || master?.given !== undefined) {
        throw new CliError(
          "the broker's export (GET /v1/audit/export) does not carry the records' MACs: --macs checks them where they are stored. " +
            'A Workers broker: save its GET /v1/backup (a token with scope backup:read) and give it with --backup FILE; ' +
            'a Node broker: its data directory (--data-dir), on the host or a backup restored with keyway restore',
        );
      }
      return remoteAuditLog(fetchAnswer, pinned);
    },
    close: () => {},
  };
}
