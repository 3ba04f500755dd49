import type { Command } from './command.ts';
import { KEYS_SOURCE_USAGE, openKeySource } from './key-source.ts';
import { formatTable } from './table.ts';

const USAGE = `usage: keyway keys list [source] [--json]

Lists the broker's signing keys, oldest first: kid, state (next: published, not signing yet;
current: signing; retired: published until its tokens expire; removed: no longer published,
public part kept for audit checkpoints) and the times of each step. Locally it reads public
parts only: needs no master key.

${KEYS_SOURCE_USAGE}`;

export const keysList: Command = {
  summary: 'list the signing keys and where each is in its life cycle',
  usage: USAGE,
  async run(args) {
    const { source, json } = await openKeySource(args, 'list');
    try {
      const keys = await source.list();
      if (json) {
        process.stdout.write(`${JSON.stringify({ keys })}\n`);
      } else {
        const header = ['kid', 'state', 'published', 'signs from', 'retired', 'unpublished (due)', 'withdrawn'];
        process.stdout.write(
          `${formatTable(
            header,
            keys.map((key) => [key.kid, key.state, key.published_at, key.signs_from, key.retired_at, key.unpublished_at, key.withdrawn_at]),
          )}\n`,
        );
      }
      return 0;
    } finally {
      source.close();
    }
  },
};
