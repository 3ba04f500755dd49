import { keyLifeCycle } from '../tokens/key-life-cycle.ts';
import { type Command } from './command.ts';
import { isoTime, KEYS_SOURCE_USAGE, openKeyStoreFile } from './key-store-file.ts';

const USAGE = `usage: keyway keys rotate [--data-dir DIR] [--json]

Starts a rotation of the broker's signing key now: publishes a new next key (or brings the
pending one forward). It starts signing once it has been published for one JWKS cache
lifetime plus one key ring refresh (7 minutes), so no relying party meets an unknown kid; the
running broker switches at its first key upkeep after that, and keeps the old key published
until its last token has expired. Needs the master key (KEYWAY_MASTER_KEY, or the data dir's
master key file).

${KEYS_SOURCE_USAGE}`;

export const keysRotate: Command = {
  summary: 'start a signing key rotation now',
  usage: USAGE,
  async run(args) {
    const file = await openKeyStoreFile(args, { sealed: true });
    try {
      const now = Date.now();
      const cycle = keyLifeCycle(file.config.keys, file.config.maxTtlSeconds);
      const transitions = await file.store.advanceKeys({ now, cycle, rotate: true, upkeep: false });
      const next = (await file.store.describeKeys()).find((key) => key.state === 'next');
      const result = { transitions, next: next === undefined ? undefined : { kid: next.kid, published_at: isoTime(next.createdAt), signs_from: isoTime(next.activatesAt) } };
      if (file.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
      } else if (next === undefined) {
        process.stdout.write('no rotation started: the key store holds no current key yet (start the broker once)\n');
      } else {
        const what = transitions.some((transition) => transition.kind === 'publish') ? 'published next key' : 'rotation already under way: next key';
        process.stdout.write(`${what} ${next.kid}; it signs from ${result.next?.signs_from} (the broker switches at its first key upkeep after that)\n`);
      }
      return next === undefined ? 1 : 0;
    } finally {
      file.close();
    }
  },
};
