import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { KeyStore } from '../../src/core/mint/key-store.ts';
import { LiveKeyRing } from '../../src/core/mint/live-key-ring.ts';
import { generateMasterKey, parseMasterKey } from '../../src/core/secrets/master-keys.ts';
import { SecretBox } from '../../src/core/secrets/secret-box.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { SqliteKeyStore } from '../../src/storage/sqlite-key-store.ts';

describe('a live key ring reloaded twice at once', () => {
  it('keeps the ring of the later load when the earlier one ends last: a key withdrawn in between is not put back', async () => {
    const db = openSqliteFile(join(mkdtempSync(join(tmpdir(), 'keyway-live-ring-')), 'keyway.db'));
    try {
      migrate(db);
      const store = new SqliteKeyStore(db, await SecretBox.fromMasterKeys({ current: parseMasterKey(generateMasterKey(), 'KEYWAY_MASTER_KEY'), previous: [] }));
      // The real store, whose next read of the keys is held once read, as a slow open of the sealed keys would be.
      let held: Promise<void> | undefined;
      const slow: KeyStore = Object.assign(Object.create(store) as KeyStore, {
        listKeys: async () => {
          const hold = held;
          const keys = await store.listKeys();
          await hold;
          return keys;
        },
      });
      const now = Date.now();
      await LiveKeyRing.open(store, now);
      const live = await LiveKeyRing.open(slow, now);
      const kid = live.ring.signing.kid;

      const release = Promise.withResolvers<void>();
      held = release.promise;
      const earlier = live.refresh(now + 1);
      held = undefined;
      expect(await store.withdrawKey(kid, now + 2)).toMatchObject({ status: 'withdrawn' });
      await live.refresh(now + 3);
      release.resolve();
      await earlier;

      expect(live.ring.signing.kid).not.toBe(kid);
      expect(live.ring.jwks.keys.map((key) => key.kid)).not.toContain(kid);
      expect(live.isOlderThan(now + 3, 1)).toBe(false);
    } finally {
      db.close();
    }
  });
});
