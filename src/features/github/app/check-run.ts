import * as v from 'valibot';
import { repositoryPath, segment, type GitHubClient, type RepositoryLocation } from './github-client.ts';
import { parseAnswer } from './parse-answer.ts';

export interface CheckRunAnnotation {
  readonly path: string;
  readonly start_line: number;
  readonly end_line: number;
  readonly annotation_level: 'notice' | 'warning' | 'failure';
  readonly message: string;
  readonly title?: string;
}

/** The body of `POST /repos/{owner}/{repo}/check-runs`, as GitHub documents it (the fields keyway uses). */
export interface CheckRunRequest {
  readonly name: string;
  readonly head_sha: string;
  readonly status?: 'queued' | 'in_progress' | 'completed';
  readonly conclusion?: 'success' | 'failure' | 'neutral' | 'action_required';
  readonly details_url?: string;
  readonly external_id?: string;
  readonly output?: { readonly title: string; readonly summary: string; readonly text?: string; readonly annotations?: readonly CheckRunAnnotation[] };
}

/**
 * The body of `PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}`: what changes (GitHub takes a conclusion as completing
 * the check run, and wants one with `status: completed`).
 */
export type CheckRunUpdate = Omit<CheckRunRequest, 'name' | 'head_sha'>;

const CheckRunAnswer = v.looseObject({ id: v.number(), html_url: v.optional(v.string()) });

/** Publishes a check run on a commit, with an installation token that has `checks: write`. */
export async function createCheckRun(
  client: GitHubClient,
  token: string,
  repository: RepositoryLocation,
  checkRun: CheckRunRequest,
): Promise<{ readonly id: number; readonly htmlUrl: string | undefined }> {
  const { body } = await client.request({
    method: 'POST',
    path: `${repositoryPath(repository)}/check-runs`,
    auth: { as: 'installation', token },
    body: checkRun,
    expect: [201],
  });
  const answer = parseAnswer(CheckRunAnswer, body, 'check run');
  return { id: answer.id, htmlUrl: answer.html_url };
}

/** Updates a check run the App created (only that App may), with an installation token that has `checks: write`. */
export async function updateCheckRun(client: GitHubClient, token: string, repository: RepositoryLocation, id: number, update: CheckRunUpdate): Promise<void> {
  await client.request({
    method: 'PATCH',
    path: `${repositoryPath(repository)}/check-runs/${segment(id)}`,
    auth: { as: 'installation', token },
    body: update,
    expect: [200],
  });
}
