import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import type { NarrowingSuggestion } from '../../src/core/policy/suggest-narrowing.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { SqliteAuditStore } from '../../src/storage/sqlite-audit-store.ts';
import { DATABASE_FILE, openSqliteFile } from '../../src/storage/sqlite-file.ts';
import { auditEvent } from '../suites/store-contract.ts';
import { writeTree } from './node-harness.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const GITHUB = 'https://token.actions.githubusercontent.com';

function keyway(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('KEYWAY_')));
  const child = spawn(process.execPath, [join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, env: env as NodeJS.ProcessEnv });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const DEPLOY = `version: 1
issuer: github
match:
  repository_owner_id: "9"
  repository_id: "1"
  environment: [production, staging]
  event_name: [push, workflow_dispatch]
grant:
  # the deploy target first
  audience: [https://deploy.example, https://old.example]
  scopes: [deploy:write, artifacts:read, admin:all]
`;
const BOT = `version: 1
issuer: github
match:
  repository_owner_id: "9"
  repository_id: "2"
grant:
  github:
    owner: acme
    repositories: [tools, web]
    permissions: { contents: write, issues: write }
`;
const IDLE = 'version: 1\nissuer: github\nmatch:\n  repository_owner_id: "9"\n  repository_id: "3"\ngrant:\n  audience: https://idle.example\n';

const DAY = 86_400_000;
let sequence = 0;
function grant(policy: string, claims: Record<string, string>, issued: Pick<AuditEvent, 'issued' | 'github'>, daysAgo: number): AuditEvent {
  sequence += 1;
  return auditEvent({
    time: new Date(Date.now() - daysAgo * DAY).toISOString(),
    decision: 'granted',
    reason: 'granted',
    issuer: GITHUB,
    subject: `repo:${claims['repository']}`,
    claims: { repository_owner_id: '9', ref: 'refs/heads/main', sha: String(sequence).repeat(4), ...claims },
    policy: { granted_by: policy, candidates: [policy], matched: [policy], denied_by: [], audit_mode: [] },
    ...issued,
  });
}
const keywayToken = (scope: string[]) => ({ issued: { jti: crypto.randomUUID(), sub: 's', aud: ['https://deploy.example'], scope, exp: 1 } });
const githubToken = (permissions: Record<string, string>) => ({
  github: {
    installation_id: 1,
    owner: 'acme',
    repositories: ['tools'],
    permissions,
    expires_at: new Date().toISOString(),
    github_expires_at: new Date().toISOString(),
    token_sha256: '0'.repeat(64),
  },
});

describe('keyway policy suggest', () => {
  let root: string;
  beforeAll(async () => {
    root = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/bot.yaml': BOT, 'p/idle.yaml': IDLE });
    mkdirSync(join(root, 'data'), { mode: 0o700 });
    const db = openSqliteFile(join(root, 'data', DATABASE_FILE));
    migrate(db);
    const audit = new SqliteAuditStore(db);
    const api = { repository: 'acme/api', repository_id: '1', environment: 'production' };
    const tools = { repository: 'acme/tools', repository_id: '2', event_name: 'push' };
    // Known usage over 60 days: deploy granted 4 times (never admin:all, never old.example, always production),
    // the bot 3 times (contents:read only, only tools), idle never; one grant of deploy older than the window.
    for (const event of [
      grant('deploy', { ...api, event_name: 'push' }, keywayToken(['deploy:write']), 50),
      grant('deploy', { ...api, event_name: 'push' }, keywayToken(['deploy:write']), 20),
      grant('deploy', { ...api, event_name: 'workflow_dispatch' }, keywayToken(['deploy:write', 'artifacts:read']), 3),
      grant('deploy', { ...api, event_name: 'push' }, keywayToken(['deploy:write']), 0.01),
      grant('deploy', { ...api, environment: 'staging', event_name: 'push' }, keywayToken(['admin:all']), 200),
      grant('bot', tools, githubToken({ contents: 'read' }), 40),
      grant('bot', tools, githubToken({ contents: 'read' }), 10),
      grant('bot', tools, githubToken({ contents: 'read' }), 1),
    ]) {
      await audit.append(event);
    }
    db.close();
  });

  const suggest = async (...extra: string[]) => {
    const result = await keyway(['policy', 'suggest', join(root, 'p'), '--data-dir', join(root, 'data'), ...extra]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    return result;
  };

  it('removes exactly the unused scopes, audiences, permissions and repositories, lowers a level, and proposes the pins the data supports', async () => {
    const suggestion = JSON.parse((await suggest('--window', '90d', '--format', 'json')).stdout) as NarrowingSuggestion & { written: boolean };
    expect(suggestion.written).toBe(false);
    const status = (policy: string) =>
      suggestion.findings
        .filter((finding) => finding.policy === policy)
        .map((finding) => `${finding.status} ${finding.element} ${finding.value} ${finding.count}`);
    expect(status('deploy')).toEqual([
      'used policy deploy 4',
      'used scope deploy:write 4',
      'used scope artifacts:read 1',
      'unused scope admin:all 0',
      'used audience https://deploy.example 4',
      'unused audience https://old.example 0',
      // environment narrows a two-value line; ref and repository are new lines; event_name varied, sha is per run.
      'pin claim environment: production 4',
      'pin claim ref: refs/heads/main 4',
      'pin claim repository: acme/api 4',
    ]);
    expect(status('bot')).toEqual([
      'used policy bot 3',
      'used github_repository tools 3',
      'unused github_repository web 0',
      'narrower github_permission contents:write 3',
      'unused github_permission issues:write 0',
      'pin claim event_name: push 3',
      'pin claim ref: refs/heads/main 3',
      'pin claim repository: acme/tools 3',
    ]);
    expect(status('idle')).toEqual(['unused policy idle 0']);
    expect(suggestion.findings.find((finding) => finding.policy === 'idle')?.evidence).toMatch(/^granted nothing in the 90 days from \d{4}-\d\d-\d\d/);

    // Nothing is written without --write, and every change narrows.
    expect(readFileSync(join(root, 'p/deploy.yaml'), 'utf8')).toBe(DEPLOY);
    expect(suggestion.diffs.map((diff) => [diff.id, diff.status])).toEqual([
      ['bot', 'narrowed'],
      ['deploy', 'narrowed'],
    ]);
    const deploy = parseYaml(suggestion.files.find((file) => file.path === 'deploy.yaml')?.text ?? '') as Record<string, Record<string, unknown>>;
    expect(deploy['grant']).toEqual({ audience: 'https://deploy.example', scopes: ['deploy:write', 'artifacts:read'] });
    expect(deploy['match']).toEqual({
      repository_owner_id: '9',
      repository_id: '1',
      environment: 'production',
      event_name: ['push', 'workflow_dispatch'],
      ref: 'refs/heads/main',
      repository: 'acme/api',
    });
    expect(suggestion.files.find((file) => file.path === 'deploy.yaml')?.text).toContain('# the deploy target first');
    const bot = parseYaml(suggestion.files.find((file) => file.path === 'bot.yaml')?.text ?? '') as Record<string, Record<string, unknown>>;
    expect(bot['grant']).toEqual({ github: { owner: 'acme', repositories: ['tools'], permissions: { contents: 'read' } } });
    expect(suggestion.files.map((file) => file.path)).toEqual(['bot.yaml', 'deploy.yaml']);
  });

  it('a shorter window sees less: only the pins of the grants in it, and nothing for a policy it saw too little of', async () => {
    const suggestion = JSON.parse((await suggest('--window', '5d', '--format', 'json')).stdout) as NarrowingSuggestion;
    // Two deploy grants and one bot grant in 5 days: too few to pin anything.
    expect(suggestion.findings.filter((finding) => finding.status === 'pin')).toEqual([]);
    expect(suggestion.findings.filter((finding) => finding.status === 'unused').map((finding) => `${finding.policy} ${finding.value}`)).toEqual([
      'bot web',
      'bot issues:write',
      'deploy admin:all',
      'deploy https://old.example',
      'idle idle',
    ]);
  });

  it('prints the evidence and the diff, writes only with --write, and then has nothing left to narrow', async () => {
    const text = (await suggest()).stdout;
    expect(text).toContain('  unused   scope admin:all: never granted in the 90 days from ');
    expect(text).toContain('  pin      claim environment: production: every one of the 4 grants in the 90 days from');
    expect(text).toContain('suggested narrowing (not written; --write writes it):\nbot: narrowed\n');
    expect(text).toContain('\ndeploy: narrowed\n  match.environment: ["production","staging"] → "production" [narrowed]\n');
    expect(text).toMatch(/grant\.scopes: .*admin:all.* \[narrowed\]/);
    const written = (await suggest('--write')).stdout;
    expect(written).toContain('suggested narrowing (written):');
    expect(readFileSync(join(root, 'p/deploy.yaml'), 'utf8')).not.toContain('admin:all');
    expect((await suggest()).stdout).toContain('\nnothing to narrow\n');
  });

  it('exits 2 on a malformed window, 1 when the policies do not load', async () => {
    for (const window of ['90', 'last quarter', '2026-01-01', '5w', '-5d']) {
      const bad = await keyway(['policy', 'suggest', join(root, 'p'), '--data-dir', join(root, 'data'), `--window=${window}`]);
      expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining('--window is a span back from now') });
    }
    const broken = writeTree({ 'p/d.yaml': DEPLOY.replace('scopes:', 'scope:') });
    const failed = await keyway(['policy', 'suggest', join(broken, 'p'), '--data-dir', join(root, 'data')]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('the policies do not load');
  });
});
