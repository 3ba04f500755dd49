import { CliError, type Command } from './command.ts';
import { KEYS_SOURCE_USAGE, openKeySource } from './key-source.ts';
import { inert } from '../core/inert-text.ts';

const USAGE = `usage: keyway keys withdraw KID [source] [--json]

Withdraws a signing key whose private part leaked (a stolen backup with its master key, a core
dump), at once and for good: the key is removed (its private part destroyed, its public part kept
so the audit checkpoints it signed stay verifiable) and leaves the JWKS now, whatever its state.
keyway refuses every token it signed from then on: the process that withdrew it at once, every
other broker process within a minute (when it reloads its key ring). If it was the current key, its
ring's next key (or a fresh one) signs in its place at once, without the usual 7 minutes of lead:
a relying party holding a JWKS cached before it may refuse the new key's tokens for up to the
JWKS max-age (5 minutes). That is the cost of an emergency. Withdrawing a removed key changes
nothing. Locally it needs the master key (KEYWAY_MASTER_KEY, or the data dir's master key file).
A kid that starts with '-' (one in 64 does) goes last, after '--': keyway keys withdraw --url URL -- -KID.

${KEYS_SOURCE_USAGE}`;

/** What a relying party may see once the current key was withdrawn: said on every withdrawal that replaced one. */
const CACHED_JWKS_COST =
  'relying parties with a JWKS cached before now may refuse its tokens for up to 5 minutes (the JWKS max-age), until they fetch it again';

export const keysWithdraw: Command = {
  summary: 'withdraw a compromised signing key now',
  usage: USAGE,
  async run(args) {
    const { source, json, positionals } = await openKeySource(args, 'withdraw');
    try {
      const [kid, ...more] = positionals;
      if (kid === undefined || kid === '' || more.length > 0) throw new CliError('give the kid of one key to withdraw (keyway keys list shows them)');
      const result = await source.withdraw(kid);
      if (json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
        return 0;
      }
      const shown = inert(kid);
      if (result.status === 'already_removed') {
        const how = result.key.withdrawn_at === undefined ? 'removed' : 'withdrawn';
        process.stdout.write(`signing key ${shown} was ${how} already at ${result.key.unpublished_at}: nothing changed\n`);
        return 0;
      }
      process.stdout.write(`withdrew signing key ${shown} (${result.key.alg}): unpublished now, keyway refuses the tokens it signed\n`);
      const replaced = result.transitions.some((transition) => transition.kind === 'activate');
      if (replaced && result.current !== undefined) {
        const fresh = result.transitions.some((transition) => transition.kind === 'publish');
        process.stdout.write(`${fresh ? 'a fresh key' : 'the next key'} ${inert(result.current.kid)} signs in its place now; ${CACHED_JWKS_COST}\n`);
      }
      return 0;
    } finally {
      source.close();
    }
  },
};
