import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/core/log.ts';
import { keyLifeCycle, readKeySettings } from '../../src/core/mint/key-life-cycle.ts';
import { generateMasterKey, parseMasterKey, type MasterKeys } from '../../src/core/secrets/master-keys.ts';
import { startNodeBroker } from '../../src/runtimes/node/start-node-broker.ts';
import { MASTER_KEY_FILE, readMasterKeyFile } from '../../src/storage/master-key-file.ts';
import { runKeyway, testConfig, writeTree } from './node-harness.ts';

const MINUTE = 60_000;
const quiet: Logger = { info() {}, warn() {}, error() {} };
const master = (previous: Uint8Array[] = []): MasterKeys => ({ current: parseMasterKey(generateMasterKey(), 'test'), previous });

describe('keyway keys rotate beside a broker that uses another master key', () => {
  it("refuses to seal a next key under a master key that does not open the broker's keys, so the broker never activates a key it cannot open", async () => {
    const root = writeTree({});
    mkdirSync(join(root, 'policies'));
    // First start without KEYWAY_MASTER_KEY: the data dir's master.key (A) seals the keys.
    let broker = await startNodeBroker(testConfig(root), { log: quiet });
    const dataDir = broker.config.dataDir;
    await broker.close();
    // Then the operator moves to KEYWAY_MASTER_KEY (B) as docs/operations/keys.md says: B with A as previous once, then B alone.
    // master.key (A) is still in the data dir.
    const a = readMasterKeyFile(join(dataDir, MASTER_KEY_FILE)).current;
    const b = master();
    broker = await startNodeBroker(testConfig(root, { masterKeys: { current: b.current, previous: [a] } }), { log: quiet });
    await broker.close();

    let clock = Date.now();
    const config = testConfig(root, { masterKeys: b });
    broker = await startNodeBroker(config, { log: quiet, now: () => clock });
    try {
      // The operator's shell has no KEYWAY_MASTER_KEY: the CLI takes master.key (A), which opens none of the broker's keys.
      const rotated = await runKeyway(['keys', 'rotate', '--data-dir', dataDir], { KEYWAY_MASTER_KEY: undefined, KEYWAY_MASTER_KEY_PREVIOUS: undefined });
      expect(rotated.code, rotated.stdout).toBe(1);
      expect(rotated.stderr).toContain('master key');

      // Whatever the CLI did, the broker goes on rotating and can start again.
      clock += keyLifeCycle(readKeySettings({}), 3600).leadMs + MINUTE;
      await broker.keyUpkeep();
    } finally {
      await broker.close();
    }
    broker = await startNodeBroker(config, { log: quiet, now: () => clock });
    await broker.close();
  }, 60_000);
});
