import * as v from 'valibot';
import type { Checkpoint } from '../core/audit/checkpoint.ts';
import { jsonSequence } from '../core/audit/json-sequence.ts';
import { CliError } from './command.ts';
import { readOptionFile } from './option-file.ts';

const KeptCheckpoint = v.object({ seq: v.pipe(v.number(), v.integer()), hash: v.string(), time: v.string(), jws: v.string() });
/** A page of `GET /v1/audit/checkpoints`, or the one checkpoint `GET /v1/audit/checkpoints/latest` answers. */
const Answer = v.union([v.object({ checkpoints: v.array(KeptCheckpoint) }), KeptCheckpoint]);

/**
 * The checkpoints kept elsewhere, as `GET /v1/audit/checkpoints` (and `…/latest`) answered: one
 * answer, a JSON array of them, or answers one after another in the file (as `curl -s … >> FILE`
 * appends them). Their `seq` and `hash` are taken only from the signed JWS, when verified.
 */
export function readKeptCheckpoints(path: string): Checkpoint[] {
  const documents = readOptionFile('--checkpoints', path, jsonSequence);
  const kept: Checkpoint[] = [];
  for (const [index, document] of documents.entries()) {
    for (const answer of Array.isArray(document) ? document : [document]) {
      const parsed = v.safeParse(Answer, answer);
      if (!parsed.success) {
        throw new CliError(`--checkpoints ${path}: answer ${index + 1} is not what GET /v1/audit/checkpoints answers (${parsed.issues[0].message})`);
      }
      kept.push(...('checkpoints' in parsed.output ? parsed.output.checkpoints : [parsed.output]));
    }
  }
  if (kept.length === 0) throw new CliError(`--checkpoints ${path} holds no checkpoint`);
  return kept;
}
