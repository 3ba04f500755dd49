import { keyLifeCycle } from '../tokens/key-life-cycle.ts';
import type { SigningKeyInfo } from '../tokens/key-store.ts';
import { type Command } from './command.ts';
import { isoTime, KEYS_SOURCE_USAGE, openKeyStoreFile } from './key-store-file.ts';
import { formatTable } from './table.ts';

const USAGE = `usage: keyway keys list [--data-dir DIR] [--json]

Lists the broker's signing keys, oldest first: kid, state (next: published, not signing yet;
current: signing; retired: published until its tokens expire; removed: no longer published,
public part kept for audit checkpoints) and the times of each step. Reads public parts only:
needs no master key.

${KEYS_SOURCE_USAGE}`;

export const keysList: Command = {
  summary: 'list the signing keys and where each is in its life cycle',
  usage: USAGE,
  async run(args) {
    const file = await openKeyStoreFile(args, { sealed: false });
    try {
      const { retainMs } = keyLifeCycle(file.config.keys, file.config.maxTtlSeconds);
      const keys = (await file.store.describeKeys()).map((key: SigningKeyInfo) => ({
        kid: key.kid,
        alg: key.alg,
        state: key.state,
        published_at: isoTime(key.createdAt),
        signs_from: isoTime(key.state === 'next' ? key.activatesAt : key.activatedAt),
        retired_at: isoTime(key.retiredAt),
        unpublished_at: isoTime(key.removedAt ?? (key.retiredAt === undefined ? undefined : key.retiredAt + retainMs)),
      }));
      if (file.json) {
        process.stdout.write(`${JSON.stringify({ keys })}\n`);
      } else {
        const header = ['kid', 'state', 'published', 'signs from', 'retired', 'unpublished (due)'];
        process.stdout.write(`${formatTable(header, keys.map((key) => [key.kid, key.state, key.published_at, key.signs_from, key.retired_at, key.unpublished_at]))}\n`);
      }
      return 0;
    } finally {
      file.close();
    }
  },
};
