import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readAlertSettings } from '../../src/alerts/alert-settings.ts';
import { readAuditSettings } from '../../src/audit/audit-settings.ts';
import { silentLogger } from '../../src/log.ts';
import type { NodeBrokerConfig } from '../../src/node/config.ts';
import { openSqliteFile } from '../../src/node/sqlite-file.ts';
import { DATABASE_FILE, startNodeBroker } from '../../src/node/start-node-broker.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import type { StartBroker } from '../suites/exchange-suite.ts';

export const BROKER_ISSUER = 'https://keyway.test';

/** Writes `files` (path → text) under a new temp directory and returns it. */
export function writeTree(files: Readonly<Record<string, string>>, root = mkdtempSync(join(tmpdir(), 'keyway-'))): string {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

export function testConfig(root: string, overrides: Partial<NodeBrokerConfig> = {}): NodeBrokerConfig {
  return {
    port: 0,
    host: '127.0.0.1',
    issuer: BROKER_ISSUER,
    policiesDir: join(root, 'policies'),
    dataDir: join(root, 'data'),
    allowHttpLoopback: true,
    dev: false,
    maxTtlSeconds: 3600,
    audit: readAuditSettings({}),
    alerts: readAlertSettings({}, true),
    ...overrides,
  };
}

/** The real Node broker over real HTTP on 127.0.0.1, its audit log read back from the SQLite file. */
export const startNodeHarness: StartBroker = async (policies, options = {}) => {
  const root = writeTree(Object.fromEntries(Object.entries(policies).map(([path, text]) => [`policies/${path}`, text])));
  const config = testConfig(root);
  const broker = await startNodeBroker(config, {
    log: silentLogger,
    ...(options.jwksCachePolicy === undefined ? {} : { jwksCachePolicy: options.jwksCachePolicy }),
  });
  const reader = openSqliteFile(join(config.dataDir, DATABASE_FILE));
  const audit = new SqliteAuditStore(reader);
  return {
    issuer: config.issuer,
    request: (path, init) => fetch(`${broker.url}${path}`, init),
    auditEvent: (id) => audit.get(id),
    auditUpkeep: () => broker.auditUpkeep(),
    close: async () => {
      reader.close();
      await broker.close();
    },
  };
};
