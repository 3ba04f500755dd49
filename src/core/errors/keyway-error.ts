/**
 * The one base of every error keyway throws on purpose, in the spirit of jose's typed errors:
 * `code` is stable (callers decide on it, logs and tests match it; a code is never renamed or
 * reused), and `name` is the class's own, so a log line says which error it was. Each subclass
 * declares both; test/node/error-model.test.ts holds every class in src/ to that.
 */
export abstract class KeywayError extends Error {
  abstract readonly code: string;
}
