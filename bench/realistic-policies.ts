// The policy sets the benchmarks measure with: one deploy policy per repository (ids, ref,
// environment, events, a workflow glob), plus two guardrails, as a real organisation writes them.
import type { PolicyFile } from '../src/core/policy/load-policies.ts';

/** `size` policy files, all trusting `issuer` (a policy's `issuer:` value, written as YAML). */
export function realisticPolicyFiles(size: number, issuer: string): PolicyFile[] {
  const files: PolicyFile[] = [
    {
      path: 'guardrails/untrusted-triggers.yaml',
      text: `version: 1\neffect: deny\nissuer: ${issuer}\nmatch:\n  event_name: [pull_request_target, workflow_run]\n`,
    },
    { path: 'guardrails/self-hosted.yaml', text: `version: 1\neffect: deny\nmode: audit\nissuer: ${issuer}\nmatch:\n  runner_environment: self-hosted\n` },
  ];
  const repositories = size - files.length;
  for (let i = 0; i < repositories; i++) {
    files.push({
      path: `repos/repo-${String(i).padStart(5, '0')}.yaml`,
      text: `version: 1
issuer: ${issuer}
match:
  repository_owner_id: "${1000 + (i % 50)}"
  repository_id: "${500_000 + i}"
  ref: refs/heads/main
  ref_protected: "true"
  environment: production
  event_name: [push, workflow_dispatch]
  runner_environment: github-hosted
  job_workflow_ref: { glob: "acme/workflows/.github/workflows/deploy.yml@refs/tags/v*" }
grant:
  audience: https://deploy.acme.dev
  scopes: [deploy:write, artifacts:read]
  ttl: 10m
  subject: "github:{repository}:{environment}"
  claims:
    repository: "{repository}"
`,
    });
  }
  return files;
}

/** The claims of a GitHub Actions job (without iss, aud and times) that the policy in the middle of a set of `size` grants. */
export function claimsGrantedIn(size: number): Record<string, unknown> {
  return { ...claimsOfRepository(Math.floor(size / 2) - 1), sub: 'repo:acme/api:environment:production' };
}

/** The claims of a production deploy job of repository `i` of a realistic policy set, its `sub` its own as GitHub writes it. */
export function claimsOfRepository(i: number): Record<string, unknown> {
  return {
    sub: `repo:acme/repo-${i}:environment:production`,
    repository: `acme/repo-${i}`,
    repository_id: String(500_000 + i),
    repository_owner: 'acme',
    repository_owner_id: String(1000 + (i % 50)),
    ref: 'refs/heads/main',
    ref_type: 'branch',
    ref_protected: 'true',
    environment: 'production',
    event_name: 'push',
    runner_environment: 'github-hosted',
    run_id: '1',
    job_workflow_ref: 'acme/workflows/.github/workflows/deploy.yml@refs/tags/v2.4.0',
  };
}
