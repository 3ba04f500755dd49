import type { Command } from './command.ts';
import { KEYS_SOURCE_USAGE, openKeySource } from './key-source.ts';
import { inertLines } from './terminal-text.ts';

const USAGE = `usage: keyway keys rotate [source] [--json]

Starts a rotation of the broker's signing key now: publishes a new next key (or brings the
pending one forward). It starts signing once it has been published for one JWKS cache
lifetime, one key ring reload and a minute of clock skew (7 minutes), so no relying party
meets an unknown kid; the broker switches at its first key upkeep after that, and keeps the
old key published until its last token has expired. Locally it needs the master key
(KEYWAY_MASTER_KEY, or the data dir's master key file).

${KEYS_SOURCE_USAGE}`;

export const keysRotate: Command = {
  summary: 'start a signing key rotation now',
  usage: USAGE,
  async run(args) {
    const { source, json } = await openKeySource(args, 'rotate');
    try {
      const result = await source.rotate();
      const { next } = result;
      if (json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
      } else if (next === undefined) {
        process.stdout.write('no rotation started: the key store holds no current key yet (start the broker once)\n');
      } else {
        // The ES256 ring's next key: another process may have published it while this one published only the RS256 ring's.
        const published = result.transitions.some((transition) => transition.kind === 'publish' && transition.kid === next.kid);
        const what = published ? 'published next key' : 'rotation already under way: next key';
        // With --url the kid and time are the broker's to choose: shown inert, as keys withdraw shows them.
        process.stdout.write(inertLines([`${what} ${next.kid}; it signs from ${next.signs_from} (the broker switches at its first key upkeep after that)`]));
      }
      return next === undefined ? 1 : 0;
    } finally {
      source.close();
    }
  },
};
