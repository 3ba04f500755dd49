import * as v from 'valibot';
import { jsonSequence } from './json-sequence.ts';
import { CheckpointError } from './verify-checkpoint.ts';

const KeptRoot = v.object({ jws: v.string() });
/** A page of `GET /v1/audit/root-checkpoints`, or the one root `GET /v1/audit/root-checkpoints/latest` answers. */
const Answer = v.union([v.object({ root_checkpoints: v.array(KeptRoot) }), KeptRoot]);

/**
 * The root checkpoints a witness kept apart from the broker and its exports, as
 * `GET /v1/audit/root-checkpoints` (and `…/latest`) answered: one answer, a JSON array of them, or
 * answers one after another (as `curl -s … >> FILE` appends them). Only each one's JWS is taken:
 * its heads and time are read from it once its signature is verified (verify-shards.ts).
 */
export function keptRootCheckpoints(text: string): string[] {
  let documents: unknown[];
  try {
    documents = jsonSequence(text);
  } catch (error) {
    throw new CheckpointError(`the kept root checkpoints are not JSON: ${(error as Error).message}`);
  }
  const kept: string[] = [];
  for (const [index, document] of documents.entries()) {
    for (const answer of Array.isArray(document) ? document : [document]) {
      const parsed = v.safeParse(Answer, answer);
      if (!parsed.success) {
        throw new CheckpointError(`answer ${index + 1} is not what GET /v1/audit/root-checkpoints answers (${parsed.issues[0].message})`);
      }
      kept.push(...('root_checkpoints' in parsed.output ? parsed.output.root_checkpoints : [parsed.output]).map((root) => root.jws));
    }
  }
  if (kept.length === 0) throw new CheckpointError('they hold no root checkpoint');
  return kept;
}
