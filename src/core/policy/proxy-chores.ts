/**
 * The GitHub vocabulary of `grant.proxy.allow`: common CI chores by name (`{ chore: comment }`),
 * each the requests it takes and the least installation-token permissions they need. Paths
 * read `{repository}` (GitHub's `owner/name` claim), so a job's chore reaches its own repository only.
 */
export interface ChoreRequest {
  readonly method: string;
  readonly path: string;
}

export interface Chore {
  readonly description: string;
  readonly requests: readonly ChoreRequest[];
  readonly permissions: Readonly<Record<string, 'read' | 'write'>>;
}

export const GITHUB_CHORES = {
  comment: {
    description: 'comment on an issue or pull request',
    requests: [{ method: 'POST', path: '/repos/{repository}/issues/*/comments' }],
    permissions: { issues: 'write' },
  },
  'commit-status': {
    description: 'set a commit status',
    requests: [{ method: 'POST', path: '/repos/{repository}/statuses/*' }],
    permissions: { statuses: 'write' },
  },
  'check-run': {
    description: 'create a check run, and update it',
    requests: [
      { method: 'POST', path: '/repos/{repository}/check-runs' },
      { method: 'PATCH', path: '/repos/{repository}/check-runs/*' },
    ],
    permissions: { checks: 'write' },
  },
  release: {
    description: 'create a release (assets go to uploads.github.com, which this upstream does not reach)',
    requests: [{ method: 'POST', path: '/repos/{repository}/releases' }],
    permissions: { contents: 'write' },
  },
  dispatch: {
    description: 'dispatch a workflow (workflow_dispatch)',
    requests: [{ method: 'POST', path: '/repos/{repository}/actions/workflows/*/dispatches' }],
    permissions: { actions: 'write' },
  },
} as const satisfies Record<string, Chore>;

export type ChoreName = keyof typeof GITHUB_CHORES;
export const CHORE_NAMES = Object.keys(GITHUB_CHORES) as ChoreName[];
