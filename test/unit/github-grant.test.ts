import { describe, expect, it } from 'vitest';
import { githubWebOrigin, parseGitHubAccessRequest } from '../../src/core/exchange/github-access-request.ts';
import { parseTokenExchangeRequest, TOKEN_TYPE } from '../../src/core/exchange/token-exchange-request.ts';
import { decide } from '../../src/core/policy/decide.ts';
import { compilePolicyFiles, loadPolicies, PolicyLoadError, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import { lintPolicies } from '../../src/core/policy/lint/lint-policies.ts';

const OPTIONS: PolicyLoadOptions = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: false };
const PINNED = '  repository_owner_id: "1200934"\n  repository_id: "734201"\n';
const SAFE_CONTEXT = '  event_name: push\n  runner_environment: github-hosted\n  ref_protected: "true"\n';

/** The claims of a push to a protected branch on a GitHub-hosted runner, pinned by owner and repository id. */
const PUSH_CLAIMS = {
  aud: 'https://keyway.test',
  repository_owner: 'acme',
  repository_owner_id: '1200934',
  repository_id: '734201',
  event_name: 'push',
  runner_environment: 'github-hosted',
  ref_protected: 'true',
  sub: 's',
};

const policy = (grant: string, match = PINNED + SAFE_CONTEXT) => `version: 1\nissuer: github\nmatch:\n${match}grant:\n${grant}`;

function problems(grant: string): string[] {
  try {
    loadPolicies([{ path: 'p.yaml', text: policy(grant) }], OPTIONS);
    return [];
  } catch (error) {
    if (error instanceof PolicyLoadError) return error.problems.map((problem) => problem.message);
    throw error;
  }
}

describe('grant.github at load time', () => {
  it('loads a GitHub grant alone or beside an audience, the owner from the repositories or explicit', () => {
    expect(problems('  github: { repositories: [acme/api, acme/docs], permissions: { contents: read } }\n')).toEqual([]);
    expect(problems('  github: { owner: acme, repositories: [api, Docs.site], permissions: { contents: write, pull_requests: write } }\n')).toEqual([]);
    expect(problems('  audience: https://deploy.acme.dev\n  github: { repositories: [acme/api], permissions: { repository_projects: admin } }\n')).toEqual([]);
    const set = loadPolicies([{ path: 'p.yaml', text: policy('  github: { owner: acme, repositories: [api], permissions: { contents: read } }\n') }], OPTIONS);
    expect(set.policies[0]?.grant).toMatchObject({ audiences: [], github: { owner: 'acme', repositories: ['api'], permissions: { contents: 'read' } } });
  });

  it.each([
    ['no audience and no github', '  ttl: 5m\n', /needs an audience, a github token, a cloud token, proxied requests, or more than one/],
    ['repositories under two owners', '  github: { repositories: [acme/api, evil/api], permissions: { contents: read } }\n', /one owner/],
    ['an owner the repositories contradict', '  github: { owner: acme, repositories: [evil/api], permissions: { contents: read } }\n', /one owner/],
    ['no owner at all', '  github: { repositories: [api], permissions: { contents: read } }\n', /needs an owner/],
    ['a repository twice', '  github: { repositories: [acme/api, acme/API], permissions: { contents: read } }\n', /names API twice/],
    ['an unknown permission', '  github: { repositories: [acme/api], permissions: { contnets: read } }\n', /a permission is one of/],
    ['an organization permission', '  github: { repositories: [acme/api], permissions: { members: read } }\n', /a permission is one of/],
    ['an unknown level', '  github: { repositories: [acme/api], permissions: { contents: all } }\n', /permission level is read, write, admin/],
    [
      'a level the permission does not have',
      '  github: { repositories: [acme/api], permissions: { contents: admin } }\n',
      /contents can be read or write, not admin/,
    ],
    ['no permissions', '  github: { repositories: [acme/api], permissions: {} }\n', /at least one permission/],
    ['no repositories', '  github: { repositories: [], permissions: { contents: read } }\n', /at least one repository/],
    ['an unknown field', '  github: { repositories: [acme/api], permissions: { contents: read }, org: acme }\n', /org/],
    [
      'a TTL longer than GitHub tokens live',
      '  github: { repositories: [acme/api], permissions: { contents: read } }\n  ttl: 2h\n',
      /longer than GitHub installation tokens live|cap/,
    ],
  ])('refuses %s', (_what, grant, message) => {
    expect(problems(grant).join('\n')).toMatch(message);
  });

  it('refuses a ttl a second longer than GitHub tokens live even where the broker allows longer tokens', () => {
    const withTtl = (ttl: string) => [
      { path: 'p.yaml', text: policy(`  github: { repositories: [acme/api], permissions: { contents: read } }\n  ttl: ${ttl}\n`) },
    ];
    const longer = { ...OPTIONS, maxTtlSeconds: 7200 };
    expect(loadPolicies(withTtl('1h'), longer).policies[0]?.grant?.ttlSeconds).toBe(3600);
    expect(() => loadPolicies(withTtl('3601s'), longer)).toThrow(/grant.ttl 3601s is longer than GitHub installation tokens live \(1h\)/);
  });
});

describe('GitHub write permissions in lint', () => {
  const findings = (grant: string, match?: string) =>
    lintPolicies(compilePolicyFiles([{ path: 'p.yaml', text: policy(grant, match) }], OPTIONS)).filter((finding) => finding.rule === 'write-from-untrusted');

  it('flags write permissions reachable from untrusted contexts, on the permissions line', () => {
    const found = findings('  github: { repositories: [acme/api], permissions: { contents: write, issues: read } }\n', PINNED);
    expect(found.map((finding) => /reachable from (\S+)/.exec(finding.message)?.[1])).toEqual([
      'pull_request',
      'pull_request_target',
      'workflow_run',
      'issue_comment',
      'pull_request_review',
      'pull_request_review_comment',
      'discussion_comment',
      'issues',
      'discussion',
      'fork',
      'watch',
      'gollum',
      'check_run',
      'check_suite',
      'status',
      'self-hosted',
      'unprotected',
    ]);
    expect(found[0]?.message).toContain('github contents:write');
    expect(found[0]?.line).toBe(7);
  });

  it('leaves read-only GitHub grants and gated write grants alone', () => {
    expect(findings('  github: { repositories: [acme/api], permissions: { contents: read, issues: read } }\n', PINNED)).toEqual([]);
    expect(findings('  github: { repositories: [acme/api], permissions: { contents: write } }\n')).toEqual([]);
  });
});

describe('a GitHub token request', () => {
  const form = (extra: Record<string, string | string[]>) => {
    const params = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: 'a.b.c',
      subject_token_type: TOKEN_TYPE.idToken,
      requested_token_type: TOKEN_TYPE.githubInstallationToken,
    });
    for (const [name, value] of Object.entries(extra)) for (const item of ([] as string[]).concat(value)) params.append(name, item);
    return parseTokenExchangeRequest(params);
  };

  it('names repositories at github.com (or the Enterprise Server host) and permissions as scope entries', () => {
    expect(githubWebOrigin('https://api.github.com')).toBe('https://github.com');
    expect(githubWebOrigin('https://ghe.acme.dev/api/v3')).toBe('https://ghe.acme.dev');
    expect(
      parseGitHubAccessRequest(
        form({ resource: ['https://github.com/acme/api', 'https://github.com/acme/docs/'], scope: 'contents:read pull_requests:write' }),
        'https://github.com',
      ),
    ).toEqual({
      repositories: [
        { owner: 'acme', name: 'api' },
        { owner: 'acme', name: 'docs' },
      ],
      permissions: { contents: 'read', pull_requests: 'write' },
    });
    expect(parseGitHubAccessRequest(form({ audience: 'acme/api' }), 'https://github.com')).toEqual({
      repositories: [{ owner: 'acme', name: 'api' }],
      permissions: undefined,
    });
    expect(parseGitHubAccessRequest(form({}), 'https://github.com')).toEqual({ repositories: undefined, permissions: undefined });
  });

  it.each([
    [{ resource: 'https://ghe.acme.dev/acme/api' }, 'github_repository_not_granted'],
    [{ resource: 'https://github.com/acme/api?ref=x' }, 'github_repository_not_granted'],
    // An audience is any string; as a repository's URL it may carry no fragment, as a resource may not (RFC 8707).
    [{ audience: 'https://github.com/acme/api#x' }, 'github_repository_not_granted'],
    [{ audience: 'https://github.com/acme/api#' }, 'github_repository_not_granted'],
    [{ audience: 'https://github.com/acme/api?' }, 'github_repository_not_granted'],
    [{ resource: 'https://user:pw@github.com/acme/api' }, 'github_repository_not_granted'],
    [{ resource: 'https://:pw@github.com/acme/api' }, 'github_repository_not_granted'],
    [{ audience: '-acme/api' }, 'github_repository_not_granted'],
    [{ audience: 'ac_me/api' }, 'github_repository_not_granted'],
    [{ audience: `acme/${'a'.repeat(101)}` }, 'github_repository_not_granted'],
    [{ audience: 'acme' }, 'github_repository_not_granted'],
    [{ audience: '../acme/api' }, 'github_repository_not_granted'],
    [{ scope: 'contents:read:extra' }, 'github_permission_not_granted'],
    [{ scope: 'contents:none' }, 'github_permission_not_granted'],
    [{ scope: ':read' }, 'github_permission_not_granted'],
  ])('refuses %o, and tells the caller why', (extra, reason) => {
    expect(() => parseGitHubAccessRequest(form(extra), 'https://github.com')).toThrow(expect.objectContaining({ reason, detailIsPublic: true }));
  });

  it('reads a permission named after an Object.prototype member as the name it is, which the decision then refuses', () => {
    const asked = parseGitHubAccessRequest(form({ scope: '__proto__:read constructor:write contents:read' }), 'https://github.com').permissions;
    expect(Object.entries(asked ?? {})).toEqual([
      ['__proto__', 'read'],
      ['constructor', 'write'],
      ['contents', 'read'],
    ]);
    const set = loadPolicies([{ path: 'p.yaml', text: policy('  github: { repositories: [acme/api], permissions: { contents: write } }\n') }], OPTIONS);
    const token = { issuer: set.policies[0]!.issuer, claims: PUSH_CLAIMS };
    expect(decide(set, token, { audiences: [], scopes: undefined, github: { repositories: undefined, permissions: asked } })).toMatchObject({
      granted: false,
      reason: 'github_permission_not_granted',
      detail: 'p does not grant __proto__:read constructor:write',
    });
  });

  it('takes a repository name of up to a hundred letters, digits, dots, underscores and hyphens', () => {
    const longest = `${'a'.repeat(99)}.`;
    expect(parseGitHubAccessRequest(form({ audience: ['acme/Docs.site', `acme/${longest}`, 'a-1/my_repo'] }), 'https://github.com').repositories).toEqual([
      { owner: 'acme', name: 'Docs.site' },
      { owner: 'acme', name: longest },
      { owner: 'a-1', name: 'my_repo' },
    ]);
  });

  it('is decided against grant.github: a subset of repositories and no permission above the grant', () => {
    const set = loadPolicies(
      [{ path: 'p.yaml', text: policy('  github: { repositories: [acme/api, acme/docs], permissions: { contents: write, issues: read } }\n') }],
      OPTIONS,
    );
    const token = {
      issuer: set.policies[0]!.issuer,
      claims: PUSH_CLAIMS,
    };
    const ask = (repositories: { owner: string; name: string }[] | undefined, permissions: Record<string, string> | undefined) =>
      decide(set, token, { audiences: [], scopes: undefined, github: { repositories, permissions } });
    const granted = ask([{ owner: 'ACME', name: 'API' }], { contents: 'read' });
    // With no owner_id, held to the caller's own account: the id its token carries.
    expect(granted.granted && granted.grant.github).toEqual({
      owner: 'acme',
      ownerId: '1200934',
      repositories: ['api'],
      permissions: { contents: 'read' },
      organizationPermissions: {},
    });
    expect(ask(undefined, undefined)).toMatchObject({
      granted: true,
      grant: { github: { repositories: ['api', 'docs'], permissions: { contents: 'write', issues: 'read' } } },
    });
    expect(ask([{ owner: 'acme', name: 'infra' }], undefined)).toMatchObject({ granted: false, reason: 'github_repository_not_granted' });
    expect(ask([{ owner: 'other', name: 'api' }], undefined)).toMatchObject({ granted: false, reason: 'github_repository_not_granted' });
    expect(ask(undefined, { issues: 'write' })).toMatchObject({ granted: false, reason: 'github_permission_not_granted' });
    expect(ask(undefined, { pull_requests: 'read' })).toMatchObject({ granted: false, reason: 'github_permission_not_granted' });
    // A repository asked for twice, in two cases, is one repository of the token.
    expect(
      ask(
        [
          { owner: 'acme', name: 'api' },
          { owner: 'ACME', name: 'API' },
        ],
        undefined,
      ),
    ).toMatchObject({ granted: true, grant: { github: { repositories: ['api'] } } });
    // Another owner's job, or a token of another issuer with claims of those names, is not the owner's own account.
    const other = decide(
      set,
      { ...token, claims: { ...PUSH_CLAIMS, repository_owner: 'globex' } },
      { audiences: [], scopes: undefined, github: { repositories: undefined, permissions: undefined } },
    );
    expect(other).toMatchObject({ granted: false, reason: 'github_repository_not_granted' });
    expect(other.granted === false && other.detail).toContain("without pinning it by id (a central policy's grant.github.owner_id)");
  });

  it("holds the token to the account the policy pins by owner_id, even for the caller's own owner login under another id", () => {
    const set = loadPolicies(
      [{ path: 'p.yaml', text: policy('  github: { owner: acme, owner_id: "4242", repositories: [api], permissions: { contents: read } }\n') }],
      OPTIONS,
    );
    // The login acme renamed and registered again: the caller's repository_owner_id is the new account's, not the pinned one.
    const decision = decide(
      set,
      { issuer: set.policies[0]!.issuer, claims: PUSH_CLAIMS },
      { audiences: [], scopes: undefined, github: { repositories: undefined, permissions: undefined } },
    );
    expect(decision).toMatchObject({ granted: true, grant: { github: { owner: 'acme', ownerId: '4242' } } });
  });

  it('folds only ASCII letters: a repository or owner written with the Kelvin sign is not the granted one', () => {
    const set = loadPolicies([{ path: 'p.yaml', text: policy('  github: { repositories: [kit-co/kube], permissions: { contents: read } }\n') }], OPTIONS);
    const token = {
      issuer: set.policies[0]!.issuer,
      claims: { ...PUSH_CLAIMS, repository_owner: 'kit-co' },
    };
    const ask = (owner: string, name: string) =>
      decide(set, token, { audiences: [], scopes: undefined, github: { repositories: [{ owner, name }], permissions: undefined } });
    expect(ask('KIT-CO', 'KUBE')).toMatchObject({ granted: true, grant: { github: { owner: 'kit-co', repositories: ['kube'] } } });
    // String.toLowerCase turns U+212A KELVIN SIGN into k; GitHub names are ASCII, so these name no repository the policy grants.
    expect(ask('kit-co', '\u212Aube')).toMatchObject({ granted: false, reason: 'github_repository_not_granted' });
    expect(ask('\u212Ait-co', 'kube')).toMatchObject({ granted: false, reason: 'github_repository_not_granted' });
  });
});
