import { inert } from './inert-text.ts';

export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export type LogLevel = 'info' | 'warn' | 'error';

export interface JsonLoggerOptions {
  /** Where a line goes; by default info to stdout, warn and error to stderr. */
  readonly write?: (line: string, level: LogLevel) => void;
}

/**
 * A compact JWS anywhere in a line: a JOSE header always starts `eyJ` (`{"`). Callers never log
 * tokens (hashes and ids only); this keeps one that slips into an error message out of the logs too.
 */
const COMPACT_JWS = /eyJ[\w-]*\.[\w-]+\.[\w-]*/g;

/**
 * One JSON object per line on stdout/stderr. Callers never pass tokens; only hashes and ids. What JSON.stringify leaves as
 * it is but a terminal acts on or draws as nothing (a bidi override in a pipeline's subject, a line separator, an 8-bit
 * CSI) is written as its `\uXXXX` escape (inert): the same JSON once parsed, shown as it is by `journalctl` or `less`.
 */
export function jsonLogger(base: LogFields = {}, options: JsonLoggerOptions = {}): Logger {
  const sink = options.write ?? ((line, level) => (level === 'info' ? console.log(line) : console.error(line)));
  const write = (level: LogLevel, message: string, fields: LogFields = {}): void => {
    sink(inert(JSON.stringify({ time: new Date().toISOString(), level, message, ...base, ...fields }).replace(COMPACT_JWS, '[redacted token]')), level);
  };
  return {
    info: (message, fields) => write('info', message, fields),
    warn: (message, fields) => write('warn', message, fields),
    error: (message, fields) => write('error', message, fields),
  };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

/** What a log line (or a report of a failure) says of an error: its name and message, or what it is when not an Error. */
export function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
