import { linkSync, mkdtempSync, rmSync } from 'node:fs';
import { constants } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createPrivateFile } from '../storage/private-data-dir.ts';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Makes a new file at `output` that is 0600 whatever the umask, whole or absent, and never over another file. `write`
 * fills it at a path inside a staging directory beside `output` that mkdtemp makes 0700: nobody else who may write to
 * `output`'s directory can swap the file being written for a link elsewhere, as they could a file placed there by name.
 * It then takes its name by link, not rename: link fails with EEXIST if `output` appeared meanwhile, where rename would
 * replace it. The staging directory goes whatever happens, also when the command is interrupted by a signal.
 */
export async function writeNewPrivateFile(output: string, write: (path: string) => Promise<void>): Promise<void> {
  const staging = mkdtempSync(join(dirname(output), `.${basename(output)}.partial-`));
  const removeStaging = () => rmSync(staging, { recursive: true, force: true });
  const onSignal = (signal: NodeJS.Signals) => {
    removeStaging();
    process.exit(128 + constants.signals[signal]);
  };
  for (const signal of SIGNALS) process.once(signal, onSignal);
  try {
    const partial = join(staging, basename(output));
    createPrivateFile(partial);
    await write(partial);
    linkSync(partial, output);
  } finally {
    for (const signal of SIGNALS) process.off(signal, onSignal);
    removeStaging();
  }
}
