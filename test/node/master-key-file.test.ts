import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger, type Logger } from '../../src/core/log.ts';
import { loadNodeMasterKeys, MASTER_KEY_FILE } from '../../src/storage/master-key-file.ts';
import { generateMasterKey, parseMasterKey } from '../../src/core/secrets/master-keys.ts';

describe('the Node master key', () => {
  it('is generated on first start, readable by its owner only, kept, and announced loudly', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-master-'));
    const warnings: string[] = [];
    const log: Logger = { ...silentLogger, warn: (message) => void warnings.push(message) };
    const first = loadNodeMasterKeys({}, dir, log);
    const path = join(dir, MASTER_KEY_FILE);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(first.current).toEqual(parseMasterKey(readFileSync(path, 'utf8'), path));
    expect(warnings).toEqual(['master key generated']);
    expect(loadNodeMasterKeys({}, dir, log).current).toEqual(first.current);
    expect(warnings).toHaveLength(1);
  });

  it('comes from KEYWAY_MASTER_KEY when set, and then no file is written', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyway-master-'));
    const key = generateMasterKey();
    expect(loadNodeMasterKeys({ KEYWAY_MASTER_KEY: key }, dir, silentLogger).current).toEqual(parseMasterKey(key, 'k'));
    expect(() => statSync(join(dir, MASTER_KEY_FILE))).toThrow();
  });
});
