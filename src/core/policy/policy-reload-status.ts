import { errorText } from '../log.ts';
import { PolicyLoadError } from './load-policies.ts';

/** The outcome of the last attempt to replace the live policy set, for the log and `GET /v1/health`. */
export interface PolicyReloadStatus {
  readonly ok: boolean;
  /** ISO 8601. */
  readonly at: string;
  /** Active policies in the set now serving. */
  readonly policies: number;
  /** Where the new set came from, when not the policy directory: `github push <sha>`. */
  readonly source?: string;
  /** Why the new set was refused, `file:line:column message` each (at most 20); the old set still serves. */
  readonly problems?: readonly string[];
}

const MAX_REPORTED_PROBLEMS = 20;

/** A refused set's problems as `GET /v1/health` shows them. */
export function reloadProblems(error: unknown): string[] {
  const problems =
    error instanceof PolicyLoadError
      ? error.problems.map((problem) => `${problem.file}:${problem.line}:${problem.column} ${problem.message}`)
      : [errorText(error)];
  return problems.slice(0, MAX_REPORTED_PROBLEMS);
}
