import * as v from 'valibot';
import { GitHubError } from './github-error.ts';

/** Checks the part of a GitHub answer keyway uses; anything else in it is ignored. */
export function parseAnswer<const S extends v.GenericSchema>(schema: S, body: unknown, what: string): v.InferOutput<S> {
  const result = v.safeParse(schema, body);
  if (!result.success) throw new GitHubError('malformed', `${what}: unexpected answer (${v.summarize(result.issues).split('\n')[0]})`);
  return result.output;
}
