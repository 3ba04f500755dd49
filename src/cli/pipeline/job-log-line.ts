import { inert } from '../../core/inert-text.ts';

/**
 * One line of the job log, as written. A runner reads every line of a step, on either stream, as a possible workflow command
 * (`::set-output`, `::stop-commands::`): what others answered (a broker's refusal, a cloud's message) is made inert, so a
 * line feed in it does not start a line of its own, nor an escape sequence act on a terminal.
 */
export function jobLogLine(line: string): string {
  return `keyway: ${inert(line)}\n`;
}
