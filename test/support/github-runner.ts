import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Reads a GitHub Actions environment file ($GITHUB_OUTPUT, $GITHUB_ENV, $GITHUB_STATE) the way
 * the runner does: `name=value` lines and `name<<DELIMITER` blocks.
 */
export function readEnvironmentFile(path: string): Record<string, string> {
  const lines = readFileSync(path, 'utf8').split('\n');
  const values: Record<string, string> = {};
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index] as string;
    if (line === '') continue;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc !== null) {
      const end = lines.indexOf(heredoc[2] as string, index + 1);
      if (end === -1) throw new Error(`${path}: no closing delimiter for ${heredoc[1]}`);
      values[heredoc[1] as string] = lines.slice(index + 1, end).join('\n');
      index = end;
      continue;
    }
    const at = line.indexOf('=');
    if (at < 1) throw new Error(`${path}: unreadable line ${JSON.stringify(line)}`);
    values[line.slice(0, at)] = line.slice(at + 1);
  }
  return values;
}

/** The files a runner gives a step: empty GITHUB_OUTPUT, GITHUB_ENV and GITHUB_STATE under `directory`. */
export function runnerFiles(directory: string): { GITHUB_OUTPUT: string; GITHUB_ENV: string; GITHUB_STATE: string } {
  const files = { GITHUB_OUTPUT: join(directory, 'output'), GITHUB_ENV: join(directory, 'env'), GITHUB_STATE: join(directory, 'state') };
  for (const file of Object.values(files)) writeFileSync(file, '');
  return files;
}
