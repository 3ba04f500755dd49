import { recordMacKeys } from '../../src/core/audit/record-mac.ts';
import { generateMasterKey, parseMasterKey } from '../../src/core/secrets/master-keys.ts';

/** The record MAC keys of a master key made for the test run: what a broker's stores are given from its master key. */
export const TEST_MAC_KEYS = recordMacKeys({ current: parseMasterKey(generateMasterKey(), 'test'), previous: [] });
