import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/settings/read-settings.ts';
import { lintPolicies } from '../../src/core/policy/lint/lint-policies.ts';
import { compilePolicyFiles, loadPolicies, PolicyLoadError, type PolicyFile } from '../../src/core/policy/load-policies.ts';
import { decide } from '../../src/core/policy/decide.ts';
import { readGitHubAppSettings } from '../../src/features/github/app/github-settings.ts';

const OPTIONS = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: false };
const MATCH =
  'match:\n  repository_owner_id: "1200934"\n  repository_id: "734201"\n  event_name: push\n  runner_environment: github-hosted\n  ref_protected: "true"\n';
const policy = (github: string): PolicyFile => ({ path: 'org.yaml', text: `version: 1\nissuer: github\n${MATCH}grant:\n  github: ${github}\n` });
const PINNED = '{ owner: acme, owner_id: "1200934", repositories: [api], permissions: { contents: read }, organization_permissions: { members: read } }';

const problems = (file: PolicyFile): string[] => {
  try {
    loadPolicies([file], OPTIONS);
    return [];
  } catch (error) {
    if (!(error instanceof PolicyLoadError)) throw error;
    return error.problems.map((problem) => problem.message);
  }
};

describe('grant.github.organization_permissions', () => {
  it('loads for an organization named and pinned by id, kept apart from repository permissions', () => {
    const set = loadPolicies([policy(PINNED)], OPTIONS);
    expect(set.policies[0]?.grant?.github).toMatchObject({
      owner: 'acme',
      ownerId: '1200934',
      permissions: { contents: 'read' },
      organizationPermissions: { members: 'read' },
    });
  });

  it('needs the owner named and pinned by its numeric id', () => {
    const message =
      'grant.github.organization_permissions needs the organization named (owner) and pinned by its numeric id (owner_id): a login can be renamed';
    expect(problems(policy(PINNED.replace('owner_id: "1200934", ', '')))).toEqual([message]);
    expect(problems(policy(PINNED.replace('owner: acme, ', '').replace('[api]', '[acme/api]')))).toEqual([message]);
    expect(problems(policy(PINNED.replace('"1200934"', '"acme"')))).toEqual([expect.stringContaining('owner_id is the numeric id of the GitHub account')]);
  });

  it('takes only organization permissions, at the levels GitHub offers', () => {
    expect(problems(policy(PINNED.replace('members: read', 'contents: read')))).toEqual([
      expect.stringContaining('an organization permission is one of members,'),
    ]);
    expect(problems(policy(PINNED.replace('members: read', 'organization_plan: write')))).toEqual([
      'grant.github.organization_permissions.organization_plan can be read, not write',
    ]);
  });

  it('gives the caller what it asks within the grant, repository and organization permissions each against their own', () => {
    const set = loadPolicies([policy(PINNED)], OPTIONS);
    const claims = {
      iss: 'https://token.actions.githubusercontent.com',
      aud: 'https://keyway.test',
      sub: 'x',
      repository_owner_id: '1200934',
      repository_id: '734201',
      event_name: 'push',
      runner_environment: 'github-hosted',
      ref_protected: 'true',
    };
    const ask = (permissions: Record<string, string>) =>
      decide(set, { issuer: set.issuers[0]!, claims }, { audiences: [], scopes: undefined, github: { repositories: undefined, permissions } });
    const members = ask({ members: 'read' });
    // toEqual, not toMatchObject: an empty object there would match any permissions at all.
    expect(members.granted && members.grant.github).toEqual({
      owner: 'acme',
      ownerId: '1200934',
      repositories: ['api'],
      permissions: {},
      organizationPermissions: { members: 'read' },
    });
    const contents = ask({ contents: 'read' });
    expect(contents.granted && contents.grant.github).toEqual({
      owner: 'acme',
      ownerId: '1200934',
      repositories: ['api'],
      permissions: { contents: 'read' },
      organizationPermissions: {},
    });
    expect(ask({ members: 'write' })).toMatchObject({ granted: false, reason: 'github_permission_not_granted' });
  });

  it('is flagged by write-from-untrusted when an organization write is reachable from an untrusted context', () => {
    const written = policy(PINNED.replace('members: read', 'members: write'));
    const loose = { ...written, text: written.text.replace('  event_name: push\n', '') };
    const findings = lintPolicies(compilePolicyFiles([loose], OPTIONS)).filter((finding) => finding.rule === 'write-from-untrusted');
    expect(findings.length).toBeGreaterThan(0);
    expect(findings[0]?.message).toContain('github organization members:write reachable from');
    expect(lintPolicies(compilePolicyFiles([written], OPTIONS)).filter((finding) => finding.rule === 'write-from-untrusted')).toEqual([]);
    const reading = { ...loose, text: loose.text.replace('members: write', 'members: read') };
    expect(lintPolicies(compilePolicyFiles([reading], OPTIONS)).filter((finding) => finding.rule === 'write-from-untrusted')).toEqual([]);
  });
});

describe('KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS', () => {
  const app = { KEYWAY_GITHUB_APP_ID: '1', KEYWAY_GITHUB_APP_PRIVATE_KEY: '-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----' };
  it('allows no organization permission unless set, and takes permission:level entries', () => {
    expect(readGitHubAppSettings(app)?.organizationPermissions).toEqual({});
    expect(
      readGitHubAppSettings({ ...app, KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS: 'members:read, organization_secrets:write' })?.organizationPermissions,
    ).toEqual({
      members: 'read',
      organization_secrets: 'write',
    });
  });

  it('refuses entries that are not organization permissions at their levels', () => {
    for (const value of ['contents:read', 'members:admin', 'members', 'members:read members:write']) {
      expect(() => readGitHubAppSettings({ ...app, KEYWAY_GITHUB_ORGANIZATION_PERMISSIONS: value })).toThrow(ConfigError);
    }
  });
});
