import { describe, expect, it } from 'vitest';
import { decide } from '../../src/core/policy/decide.ts';
import { loadPolicies, PolicyLoadError } from '../../src/core/policy/load-policies.ts';
import { normaliseProxyPath } from '../../src/core/policy/proxy-path.ts';
import { compileProxyRule, matchProxyRule, ProxyRuleError } from '../../src/core/policy/proxy-rule.ts';
import { readBrokerSettings } from '../../src/config/broker-settings.ts';
import { parseProxyUpstreams } from '../../src/features/proxy/proxy-settings.ts';
import { github } from '../../src/core/verify/presets/github.ts';
import { ConfigError } from '../../src/core/settings/read-settings.ts';
import { leaked } from '../support/secret-files.ts';

const ISSUER = 'https://keyway.example.com';

describe('the proxied path, normalised once', () => {
  it.each([
    ['/repos/acme/api/issues', ['repos', 'acme', 'api', 'issues'], '/repos/acme/api/issues'],
    ['/repos/acme/api/contents/a%20b.md', ['repos', 'acme', 'api', 'contents', 'a b.md'], '/repos/acme/api/contents/a%20b.md'],
    ['/repos/acme/api/git/refs/heads%3Amain', ['repos', 'acme', 'api', 'git', 'refs', 'heads:main'], '/repos/acme/api/git/refs/heads:main'],
    ['/x/caf%C3%A9', ['x', 'café'], '/x/caf%C3%A9'],
    ['/w/release.yml%40refs', ['w', 'release.yml@refs'], '/w/release.yml@refs'],
    ['/', [], '/'],
  ])('%s decodes to its segments and is forwarded as %s', (raw, segments, path) => {
    expect(normaliseProxyPath(raw)).toEqual({ ok: true, segments, path });
  });

  it.each([
    ['/a/../b', '. or ..'],
    ['/a/./b', '. or ..'],
    ['/a/%2e%2e/b', '. or ..'],
    ['/a/%2E/b', '. or ..'],
    ['/a/..;/b', ';'],
    ['/a/b;jsessionid=1', ';'],
    ['/a/%3b/b', ';'],
    ['/a/%252e%252e/b', 'double encoding'],
    ['/a/..%2fb', 'slash'],
    ['/a/..%2Fb', 'slash'],
    ['/a/..%5cb', 'slash'],
    ['/a\\b', 'backslash'],
    ['/a/%c0%ae%c0%ae/b', 'UTF-8'],
    ['/a/%e0%80%ae/b', 'UTF-8'],
    ['/a/%ff/b', 'UTF-8'],
    ['/a/%ef%bc%8e%ef%bc%8e/b', 'NFKC'],
    ['/a/%e2%80%a4/b', 'NFKC'],
    ['/a/%e2%80%8b/b', 'invisible'],
    // A byte order mark is a format character too: never taken off as a decoder's BOM would be.
    ['/a/%ef%bb%bfb', 'invisible'],
    ['/a/%00/b', 'control'],
    ['/a/%0a/b', 'control'],
    ['/a//b', 'empty segment'],
    ['/a/b/', 'empty segment'],
    ['/a/%zz', 'UTF-8'],
    ['/a/%2', 'UTF-8'],
    ['/a/b c', 'not percent-encoded'],
    ['/a/é', 'not percent-encoded'],
    ['a/b', 'start with /'],
  ])('%s is refused (%s)', (raw, why) => {
    const normal = normaliseProxyPath(raw);
    expect(normal.ok).toBe(false);
    expect(normal.ok ? '' : normal.why).toContain(why);
  });
});

describe('grant.proxy rules', () => {
  const claims = { repository: 'acme/api', sub: 'x' };
  const segments = (path: string) => path.slice(1).split('/');
  // As a policy of a `kind: github` issuer compiles them: the preset says which claims fold.
  const rule = (path: string, method = 'GET') => compileProxyRule(method, path, {}, `${method} ${path}`, github.caseFolds);

  it('matches the method exactly, * one segment and ** the rest', () => {
    expect(matchProxyRule(rule('/repos/{repository}/issues/*'), claims, 'GET', segments('/repos/acme/api/issues/7')).matched).toBe(true);
    expect(matchProxyRule(rule('/repos/{repository}/issues/*'), claims, 'get', segments('/repos/acme/api/issues/7')).matched).toBe(false);
    expect(matchProxyRule(rule('/repos/{repository}/issues/*'), claims, 'GET', segments('/repos/acme/api/issues/7/comments')).matched).toBe(false);
    expect(matchProxyRule(rule('/repos/{repository}/**'), claims, 'GET', segments('/repos/acme/api/a/b/c')).matched).toBe(true);
    expect(matchProxyRule(rule('/repos/{repository}/**'), claims, 'GET', segments('/repos/acme/api')).matched).toBe(false);
  });

  it('compares what a claim places as its issuer folds that claim: a ref exactly, a name in another case not, a workflow ref’s name only', () => {
    const ref = { ref: 'refs/heads/MAIN' };
    expect(matchProxyRule(rule('/deploy/{ref}'), ref, 'GET', segments('/deploy/refs/heads/MAIN')).matched).toBe(true);
    expect(matchProxyRule(rule('/deploy/{ref}'), ref, 'GET', segments('/deploy/refs/heads/main')).matched).toBe(false);
    expect(matchProxyRule(rule('/deploy/{ref}-x'), ref, 'GET', segments('/deploy/refs/heads/main-x')).matched).toBe(false);
    expect(matchProxyRule(rule('/x/{repository}-{ref_type}'), { repository: 'acme', ref_type: 'branch' }, 'GET', segments('/x/ACME-branch')).matched).toBe(
      false,
    );
    const workflow = { workflow_ref: 'acme/api/.github/workflows/release.yml@refs/heads/main' };
    expect(matchProxyRule(rule('/w/{workflow_ref}'), workflow, 'GET', segments('/w/ACME/Api/.github/workflows/release.yml@refs/heads/main')).matched).toBe(
      true,
    );
    expect(matchProxyRule(rule('/w/{workflow_ref}'), workflow, 'GET', segments('/w/acme/api/.github/workflows/release.yml@refs/heads/MAIN')).matched).toBe(
      false,
    );
    expect(matchProxyRule(rule('/w/{workflow_ref}'), workflow, 'GET', segments('/w/acme/api/.github/workflows/release.yml@REFS/heads/main')).matched).toBe(
      false,
    );
  });

  it('compares what the claims place without ASCII case, literals exactly, and never lets a claim place a wildcard or a traversal', () => {
    expect(matchProxyRule(rule('/repos/{repository}/**'), claims, 'GET', segments('/repos/ACME/Api/x')).matched).toBe(true);
    expect(matchProxyRule(rule('/repos/{repository}/**'), claims, 'GET', segments('/REPOS/acme/api/x')).matched).toBe(false);
    expect(matchProxyRule(rule('/repos/{repository}/**'), claims, 'GET', segments('/repos/acme/infra/x')).matched).toBe(false);
    // A "." and a full-width letter (NFKC reads it as `a`) included: refused as unsafe to place, not merely unmatched.
    for (const repository of ['acme/..', 'acme/.', 'acme/*', '../x', 'acme//api', 'acme/a%2fb', 'acme/\uff41pi']) {
      const match = matchProxyRule(rule('/repos/{repository}/**'), { repository }, 'GET', segments(`/repos/${repository}/x`));
      expect(match, repository).toEqual({ matched: false, refusal: expect.objectContaining({ key: 'repository', problem: 'unsafe' }) });
    }
  });

  // A ProxyRuleError, which loading turns into the policy file's own error; any other would escape it.
  it.each([
    ['/a/**/b', 'path /a/**/b: ** may only be the last segment'],
    ['/a/b*', 'path /a/b*: * and ** stand for whole segments only'],
    ['/a/../b', 'path /a/../b: segment ".." is not a plain path segment'],
    ['/a//b', 'path /a//b: segment "" is not a plain path segment'],
    ['a/b', 'path a/b must start with /'],
  ])('refuses the rule path %s, which cannot be matched unambiguously', (path, message) => {
    const compiling = () => rule(path);
    expect(compiling).toThrow(ProxyRuleError);
    expect(compiling).toThrow(message);
  });

  const policy = (allow: string) => `version: 1
issuer: github
match: { repository_owner_id: "1", repository: acme/api }
grant:
  proxy: { upstream: github, allow: ${allow} }
`;
  const load = (allow: string) =>
    loadPolicies([{ path: 'p.yaml', text: policy(allow) }], { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: false });

  it('loads chores as their requests and permissions, and refuses unknown chores, methods and bad paths', () => {
    const grant = load('[{ chore: check-run }]').policies[0]!.grant!;
    expect(grant.proxy?.rules.map((each) => [each.method, each.written, each.permissions])).toEqual([
      ['POST', 'chore check-run', { checks: 'write' }],
      ['PATCH', 'chore check-run', { checks: 'write' }],
    ]);
    expect(() => load('[{ chore: delete-repo }]')).toThrow(PolicyLoadError);
    expect(() => load('[{ method: TRACE, path: "/x" }]')).toThrow(PolicyLoadError);
    expect(() => load('[{ method: GET, path: "/a/**/b" }]')).toThrow(/grant.proxy.allow/);
    expect(() => load('[{ method: GET, path: "/x", permissions: { contents: delete } }]')).toThrow(PolicyLoadError);
  });

  it('takes an owner_id as a GitHub account id, and refuses one that is not', () => {
    const grant = load('[{ method: GET, path: "/repos/globex/config/**", owner_id: "4242" }]').policies[0]!.grant!;
    expect(grant.proxy?.rules.map((each) => each.ownerId)).toEqual(['4242']);
    for (const ownerId of ['globex', '0042', '-1', '', '1'.repeat(21)]) {
      expect(() => load(`[{ method: GET, path: "/repos/globex/config/**", owner_id: "${ownerId}" }]`)).toThrow(
        /owner_id is the numeric id of the GitHub account, as a string/,
      );
    }
    expect(() => load('[{ chore: comment, owner_id: "4242" }]')).toThrow(PolicyLoadError);
  });

  it('refuses with the first rule whose path template cannot be placed, when no rule allows the request', () => {
    const set = load('[{ method: GET, path: "/a/{ref_type}/x" }, { method: GET, path: "/b/{environment}/x" }]');
    const issuer = set.issuer('https://token.actions.githubusercontent.com')!;
    const claims = {
      aud: 'https://keyway.test',
      sub: 'repo:acme/api:environment:prod',
      repository_owner_id: '1',
      repository: 'acme/api',
      environment: 'prod/..',
    };
    const decision = decide(
      set,
      { issuer, claims },
      { audiences: [], scopes: undefined, proxy: { upstream: 'github', method: 'GET', segments: ['b', 'prod', 'x'] } },
    );
    expect(decision).toMatchObject({
      granted: false,
      reason: 'template_claim_missing',
      detail: expect.stringContaining('p grant.proxy.allow GET /a/{ref_type}/x reads {ref_type}'),
    });
  });

  it('allows requests only through the upstream the grant names', () => {
    const set = load('[{ method: GET, path: "/x" }]');
    const issuer = set.issuer('https://token.actions.githubusercontent.com')!;
    const claims = { aud: 'https://keyway.test', sub: 'repo:acme/api:ref:refs/heads/main', repository_owner_id: '1', repository: 'acme/api' };
    const through = (upstream: string) =>
      decide(set, { issuer, claims }, { audiences: [], scopes: undefined, proxy: { upstream, method: 'GET', segments: ['x'] } });
    expect(through('github')).toMatchObject({ granted: true, grant: { proxy: { upstream: 'github', rule: 'GET /x' } } });
    expect(through('vendor')).toMatchObject({ granted: false, reason: 'proxy_not_allowed', detail: 'p grants no request through upstream vendor' });
  });

  it('is never single use: /proxy takes the subject token with every request, so a token good for one exchange would be good for any number of calls', () => {
    const options = { brokerIssuer: 'https://keyway.test', maxTtlSeconds: 3600, allowHttpLoopback: false };
    const proxied = 'grant:\n  proxy: { upstream: vendor, allow: [{ method: GET, path: "/x" }] }\n';
    const singleUse = `version: 1\nissuer: github\nsingle_use: true\nmatch: { repository_owner_id: "1" }\n${proxied}`;
    expect(() => loadPolicies([{ path: 'p.yaml', text: singleUse }], options)).toThrow(/grant.proxy cannot be single use/);
    const azureDevOps = `version: 1\nissuer: { kind: azure-devops, url: "https://vstoken.dev.azure.com/0b6e8a7d-2bb8-4f0f-9f7a-0e1c8a7b9c10" }\nmatch: { def_id: "1" }\n${proxied}`;
    expect(() => loadPolicies([{ path: 'p.yaml', text: azureDevOps }], options)).toThrow(/azure-devops tokens are always single use/);
    expect(load('[{ method: GET, path: "/x" }]').policies[0]!.singleUse).toBe(false);
  });
});

describe('upstream declarations', () => {
  it('pins an https base and refuses what could name another target', () => {
    expect(
      parseProxyUpstreams('upstreams:\n  api: { url: "https://api.example/v1/", auth: { kind: keyway-jwt, audience: x } }\n', {
        issuer: ISSUER,
        allowHttpLoopback: false,
        githubApp: false,
      })[0]?.url,
    ).toBe('https://api.example/v1');
    for (const url of ['http://api.example', 'https://u:p@api.example', 'https://api.example/?a=1', 'https://api.example/#x']) {
      expect(() =>
        parseProxyUpstreams(`upstreams:\n  api: { url: "${url}", auth: { kind: keyway-jwt, audience: x } }\n`, {
          issuer: ISSUER,
          allowHttpLoopback: false,
          githubApp: false,
        }),
      ).toThrow(/url/);
    }
    expect(() =>
      parseProxyUpstreams('upstreams:\n  gh: { url: "https://evil.example", auth: { kind: github-app } }\n', {
        issuer: ISSUER,
        allowHttpLoopback: false,
        githubApp: true,
      }),
    ).toThrow(/no url/);
    expect(() =>
      parseProxyUpstreams('upstreams:\n  v: { url: "https://v.example", auth: { kind: static, header: host, sealed: x } }\n', {
        issuer: ISSUER,
        allowHttpLoopback: false,
        githubApp: false,
      }),
    ).toThrow();
  });

  it('refuses a github-app upstream when no GitHub App is configured, at start rather than on a request', () => {
    expect(() =>
      parseProxyUpstreams('upstreams:\n  github: { auth: { kind: github-app } }\n', { issuer: ISSUER, allowHttpLoopback: false, githubApp: false }),
    ).toThrow(/needs the GitHub App/);
    expect(
      parseProxyUpstreams('upstreams:\n  github: { auth: { kind: github-app } }\n', { issuer: ISSUER, allowHttpLoopback: false, githubApp: true })[0]?.url,
    ).toBeUndefined();
  });

  const jwtUpstream = (audience: string): string =>
    `upstreams:\n  deploy: { url: "https://deploy.example", auth: { kind: keyway-jwt, audience: "${audience}" } }\n`;

  it.each([
    [
      'sts.amazonaws.com',
      /^KEYWAY_PROXY_UPSTREAMS:2:\d+ upstreams\.deploy\.auth\.audience is aws's STS audience: a keyway access token for it would pass as a cloud token/,
    ],
    ['STS.AmazonAWS.com.cn', /is aws's STS audience/],
    ['api://AzureADTokenExchange', /is azure's STS audience/],
    ['api://AzureADTokenExchangeUSGov', /is azure's STS audience/],
    ['https://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci-pool/providers/keyway', /is gcp's STS audience/],
    ['//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci-pool/providers/keyway', /is gcp's STS audience/],
    [ISSUER, /upstreams\.deploy\.auth\.audience is the broker's own issuer/],
    [`${ISSUER}/`, /is the broker's own issuer/],
    ['HTTPS://KEYWAY.example.com:443', /is the broker's own issuer/],
    [`${ISSUER}/proxy/deploy`, /upstreams\.deploy\.auth\.audience is under the broker's own \/proxy/],
    [`${ISSUER}/proxy/github`, /is under the broker's own \/proxy/],
    [`${ISSUER}/proxy/`, /is under the broker's own \/proxy/],
    [`${ISSUER}/x/../proxy/github`, /is under the broker's own \/proxy/],
  ])(
    'refuses a keyway-jwt upstream whose audience is %s: the upstream could present the token it is handed as a cloud token or to keyway',
    (audience, error) => {
      expect(() => parseProxyUpstreams(jwtUpstream(audience), { issuer: ISSUER, allowHttpLoopback: false, githubApp: false })).toThrow(error);
    },
  );

  it.each([
    'https://deploy.example',
    `${ISSUER}/deploy`,
    `${ISSUER}/proxyish`,
    'https://keyway.example.com.evil.example',
    'http://keyway.example.com',
    'https://keyway.example.com:8443',
    'sts.amazonaws.com.example',
  ])('takes a keyway-jwt upstream whose audience is %s', (audience) => {
    expect(parseProxyUpstreams(jwtUpstream(audience), { issuer: ISSUER, allowHttpLoopback: false, githubApp: false })[0]?.auth).toEqual({
      kind: 'keyway-jwt',
      audience,
    });
  });

  // What a declaration holds in place of an upstream's secret, or beside it; a refusal is printed at start-up, into the log.
  const SECRET = 'Qm7xKw2sPz9LrT4vBn6c';
  const refusal = (text: string): string => {
    try {
      parseProxyUpstreams(text, { issuer: ISSUER, allowHttpLoopback: false, githubApp: false });
    } catch (error) {
      if (error instanceof ConfigError) return error.message;
      throw error;
    }
    throw new Error('expected the declarations to be refused');
  };
  const staticUpstream = (auth: string): string => `upstreams:\n  api:\n    url: https://api.example\n    auth:\n      kind: static\n${auth}`;

  it.each([
    ["a block scalar header on the secret's line", staticUpstream(`      sealed: |${SECRET}\n`), /^KEYWAY_PROXY_UPSTREAMS:6:16 YAML: unexpected text here/],
    ['an unclosed quote', staticUpstream(`      sealed: "${SECRET}\n`), /^KEYWAY_PROXY_UPSTREAMS:7:1 YAML: a character is missing here: a closing quote/],
    ['a map nested in a compact map', staticUpstream(`      sealed: ${SECRET}: x\n`), /^KEYWAY_PROXY_UPSTREAMS:6:15 YAML: /],
    ['an alias naming no anchor', staticUpstream(`      sealed: *${SECRET}\n`), /^KEYWAY_PROXY_UPSTREAMS:6:15 YAML: an alias \(\*name\) names no anchor/],
    [
      'the raw secret where auth goes',
      `upstreams:\n  api:\n    url: https://api.example\n    auth: Bearer ${SECRET}\n`,
      /^KEYWAY_PROXY_UPSTREAMS:4:5 upstreams\.api\.auth: expected Object, got text of 27 characters$/,
    ],
    [
      'the secret as the kind',
      `upstreams:\n  api: { url: "https://api.example", auth: { kind: "${SECRET}", sealed: x } }\n`,
      /^KEYWAY_PROXY_UPSTREAMS:2:\d+ upstreams\.api\.auth\.kind: expected \("github-app" \| "keyway-jwt" \| "static"\), got text of 20 characters$/,
    ],
    [
      'the secret as the header',
      staticUpstream(`      header: "${SECRET}!"\n      sealed: x\n`),
      /^KEYWAY_PROXY_UPSTREAMS:6:7 upstreams\.api\.auth\.header: header is a header name$/,
    ],
    [
      'the secret as a limit',
      `${staticUpstream('      sealed: x\n')}    limits: { request_bytes: "${SECRET}" }\n`,
      /upstreams\.api\.limits\.request_bytes: expected number, got text of 20 characters$/,
    ],
    [
      "a keyway-jwt upstream's audience it refuses",
      `upstreams:\n  api:\n    url: https://api.example\n    auth: { kind: keyway-jwt, audience: "${ISSUER}/proxy/${SECRET}" }\n`,
      /^KEYWAY_PROXY_UPSTREAMS:4:\d+ upstreams\.api\.auth\.audience is under the broker's own \/proxy/,
    ],
    [
      'a url it refuses',
      `upstreams:\n  api:\n    url: "https://api.example/?key=${SECRET}"\n    auth: { kind: keyway-jwt, audience: x }\n`,
      /^KEYWAY_PROXY_UPSTREAMS:3:5 upstreams\.api\.url must have no credentials, query or fragment$/,
    ],
    [
      'the secret written as a key, sealed: forgotten',
      `upstreams:\n  api:\n    url: https://api.example\n    auth: { kind: static, ${SECRET} }\n`,
      /^KEYWAY_PROXY_UPSTREAMS:4:5 upstreams\.api\.auth\.sealed is required$/,
    ],
    [
      'the secret written as a key beside sealed',
      `upstreams:\n  api:\n    url: https://api.example\n    auth: { kind: static, sealed: x, ${SECRET} }\n`,
      /^KEYWAY_PROXY_UPSTREAMS:4:\d+ unknown field in upstreams\.api\.auth$/,
    ],
    [
      "the secret as an upstream's name",
      `upstreams:\n  ${SECRET}: { url: "https://api.example", auth: { kind: static, sealed: 1 } }\n`,
      /^KEYWAY_PROXY_UPSTREAMS:2:3 a key of upstreams: an upstream name is a-z, 0-9 and -$/,
    ],
  ])('refuses %s naming the line, the key path and the problem, never the value', (_, text, message) => {
    const refused = refusal(text);
    expect(leaked(refused, [SECRET])).toEqual([]);
    expect(refused).toMatch(message);
  });

  it("stops the broker at start when a keyway-jwt upstream's audience is its own issuer or under its /proxy, from the settings both runtimes read", () => {
    const upstreams = (audience: string) => ({ KEYWAY_ISSUER: ISSUER, KEYWAY_PROXY_UPSTREAMS: jwtUpstream(audience) });
    expect(() => readBrokerSettings(upstreams(ISSUER))).toThrow(/upstreams\.deploy\.auth\.audience is the broker's own issuer/);
    expect(() => readBrokerSettings(upstreams(`${ISSUER}/proxy/deploy`))).toThrow(/upstreams\.deploy\.auth\.audience is under the broker's own \/proxy/);
    expect(() => readBrokerSettings(upstreams('sts.amazonaws.com'))).toThrow(/upstreams\.deploy\.auth\.audience is aws's STS audience/);
    expect(readBrokerSettings(upstreams('https://deploy.example')).proxyUpstreams?.[0]?.auth).toEqual({
      kind: 'keyway-jwt',
      audience: 'https://deploy.example',
    });
  });
});
