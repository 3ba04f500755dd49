import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { nodeConfigFromEnv } from '../config/node-config.ts';
import { PROXY_UPSTREAM_NAME } from '../core/policy/proxy-upstream-name.ts';
import { MAX_STATIC_SECRET_LENGTH, MAX_STATIC_SECRET_REDACTION_BYTES, staticSecretForms, UPSTREAM_SECRET_PURPOSE } from '../features/proxy/proxy-settings.ts';
import { CliError, type Command } from './command.ts';
import { brokerSecretBox } from './key-source.ts';
import { openCommandDataDir } from './existing-data-dir.ts';

const USAGE = `usage: keyway keys secret --upstream NAME [--data-dir DIR] < secret

Seals a proxy upstream's static secret (docs/proxy.md) under the broker's master key
(KEYWAY_MASTER_KEY as the broker has it, or the data dir's master key file) and prints the
sealed value to put in the upstream's auth.sealed. The secret is read from standard input,
never from the command line; one trailing newline is dropped. It holds ${MAX_STATIC_SECRET_LENGTH} characters at
most, and its written forms, which answers are searched for (as is and as JSON encoders escape
it, in UTF-8, UTF-16, UTF-32 and ISO-8859-1), ${MAX_STATIC_SECRET_REDACTION_BYTES / (1024 * 1024)} MiB at most: characters JSON
escapes, such as é / " + & =, take many forms. The sealed value opens for that upstream only.

  --upstream NAME           the upstream the secret is for (its name in KEYWAY_PROXY_UPSTREAMS)
  --data-dir DIR            the broker's data directory, for its master key file (default KEYWAY_DATA_DIR or .keyway)`;

export const keysSecret: Command = {
  summary: "seal a proxy upstream's static secret under the master key",
  usage: USAGE,
  async run(args) {
    const options = { upstream: { type: 'string' }, 'data-dir': { type: 'string' } } as const;
    const { values } = parseArgs({ args: [...args], options, strict: true, allowPositionals: false });
    const upstream = values.upstream;
    if (upstream === undefined || !PROXY_UPSTREAM_NAME.test(upstream)) throw new CliError('--upstream NAME is required: a-z, 0-9 and -');
    const dataDir = values['data-dir'];
    const config = nodeConfigFromEnv(dataDir === undefined ? process.env : { ...process.env, KEYWAY_DATA_DIR: dataDir });
    // The master key file is read from a directory held as the broker holds its own: one someone else put there would
    // seal the secret for her.
    const box =
      config.masterKeys !== undefined || !existsSync(config.dataDir)
        ? await brokerSecretBox(config)
        : await openCommandDataDir('read the master key in', config.dataDir, (checked) => brokerSecretBox({ ...config, dataDir: checked }), { reading: true });
    if (box === undefined) throw new CliError('no master key: set KEYWAY_MASTER_KEY as the broker has it, or pass the --data-dir that holds its key file', 1);
    const secret = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
    if (secret === '') throw new CliError('no secret on standard input');
    // Sealed, it would stop the broker at start.
    const checked = staticSecretForms(secret);
    if ('problem' in checked) throw new CliError(checked.problem);
    process.stdout.write(`${await box.seal(secret, UPSTREAM_SECRET_PURPOSE, upstream)}\n`);
    return 0;
  },
};
