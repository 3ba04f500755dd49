import { parseArgs } from 'node:util';
import type { Command } from './command.ts';
import { openDataDirKeyStore } from './key-source.ts';

const USAGE = `usage: keyway keys seal [--data-dir DIR] [--json]

Seals, once, the signing keys a keyway from before sealing stored in the clear in a Node data
directory, under the master key (KEYWAY_MASTER_KEY as the broker has it, or the data dir's
master key file). The broker refuses to start while a key is stored in the clear: whoever
could write the database could have planted it, so only you can say it is yours. Running it
again changes nothing. What the sealed values replace is zeroed and the WAL emptied into
the file; backups made before still hold the keys in the clear (rotate if they may have
leaked). On Workers the state object seals such keys itself, once, when it first opens them.

  --data-dir DIR            the broker's data directory (default KEYWAY_DATA_DIR or .keyway)
  --json                    machine-readable output: {"sealed": [kid…]}`;

export const keysSeal: Command = {
  summary: 'seal signing keys an earlier keyway stored in the clear (once, on a data dir)',
  usage: USAGE,
  async run(args) {
    const options = { 'data-dir': { type: 'string' }, json: { type: 'boolean', default: false } } as const;
    const { values } = parseArgs({ args: [...args], options, strict: true, allowPositionals: false });
    const { store, db } = await openDataDirKeyStore(values['data-dir'], true);
    try {
      // Zeroes what the sealed values replace, then moves the WAL into the file and empties it, so no copy of the plaintext stays in either.
      db.exec('PRAGMA secure_delete = ON');
      const sealed = await store.sealPlaintextKeys();
      db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
      if (values.json === true) {
        process.stdout.write(`${JSON.stringify({ sealed })}\n`);
      } else if (sealed.length === 0) {
        process.stdout.write('no signing key is stored in the clear: nothing to seal\n');
      } else {
        process.stdout.write(`sealed ${sealed.length} signing key${sealed.length === 1 ? '' : 's'} under the master key: ${sealed.join(', ')}\n`);
      }
      return 0;
    } finally {
      db.close();
    }
  },
};
