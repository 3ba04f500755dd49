import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { inert } from '../../core/inert-text.ts';

/**
 * GitHub Actions workflow commands and environment files, as the runner reads them
 * (the same formats as @actions/core).
 */

/** `::add-mask::` must reach the log before the value can appear anywhere else. */
export function addMask(value: string): string {
  return `::add-mask::${escapeData(value)}\n`;
}

/** An annotation on the run's summary page, besides its line in the log: one line, inert as the log's are. */
export function annotation(level: 'error' | 'warning', message: string): string {
  return `::${level}::${escapeData(inert(message))}\n`;
}

function escapeData(value: string): string {
  return value.replaceAll('%', '%25').replaceAll('\r', '%0D').replaceAll('\n', '%0A');
}

/**
 * Appends `name=value` to an environment file ($GITHUB_OUTPUT, $GITHUB_ENV, $GITHUB_STATE) in
 * the multi-line form, with a random delimiter that neither name nor value may contain.
 */
export function appendEnvironmentFile(path: string | undefined, variable: string, name: string, value: string): void {
  if (!path) throw new Error(`$${variable} is not set: this is not a GitHub Actions step`);
  const delimiter = `ghadelimiter_${randomUUID()}`;
  if (name.includes(delimiter) || value.includes(delimiter)) throw new Error('the value contains its own delimiter');
  appendFileSync(path, `${name}<<${delimiter}\n${value}\n${delimiter}\n`, 'utf8');
}
