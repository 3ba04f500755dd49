import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { writeTree } from './node-harness.ts';
import { ALL_SECRETS, leaked, SECRET_FILES } from '../support/secret-files.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const BIN = join(ROOT, 'src/cli/main.ts');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real `keyway` binary in `cwd`, with the broker settings at their defaults. */
function keyway(args: readonly string[], options: { cwd?: string; stdin?: string; env?: Record<string, string> } = {}): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('KEYWAY_') && name !== 'PORT'));
  const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? ROOT, env: { ...env, ...options.env } as NodeJS.ProcessEnv });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.stdin.end(options.stdin ?? '');
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const DEPLOY = `version: 1
description: deploy acme/api
issuer: github
match:
  repository_owner_id: "1200934"
  repository_id: "734201"
  ref: refs/heads/main
  ref_protected: "true"
  environment: production
  event_name: [push, workflow_dispatch]
  runner_environment: github-hosted
grant:
  audience: https://deploy.acme.dev
  scopes: [deploy:write, artifacts:read]
  ttl: 10m
  subject: "github:{repository}:{environment}"
`;
const GUARD = 'version: 1\neffect: deny\nissuer: github\nmatch:\n  event_name: [pull_request_target, workflow_run]\n';
const CLAIMS = {
  iss: 'https://token.actions.githubusercontent.com',
  aud: 'http://127.0.0.1:8787',
  sub: 'repo:acme/api:environment:production',
  repository: 'acme/api',
  repository_id: '734201',
  repository_owner_id: '1200934',
  ref: 'refs/heads/main',
  ref_protected: 'true',
  environment: 'production',
  event_name: 'push',
  runner_environment: 'github-hosted',
  run_id: '1',
};

describe('keyway policy check', () => {
  it.each(['policies', 'examples/policies'])('passes %s clean', async (dir) => {
    const result = await keyway(['policy', 'check', dir]);
    expect(result).toMatchObject({ code: 0, stdout: '' });
    expect(result.stderr).toMatch(/^keyway policy check: \d+ policy files, 0 errors, 0 warnings, 0 notices\n$/);
  });

  it('runs through npx as the package bin, and checks $KEYWAY_POLICIES by default', async () => {
    const dir = writeTree({ 'p/d.yaml': DEPLOY });
    const child = spawn('npx', ['--no-install', 'keyway', 'policy', 'check'], { cwd: ROOT, env: { ...process.env, KEYWAY_POLICIES: join(dir, 'p') } });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(stderr).toContain('keyway policy check: 1 policy file, 0 errors');
  });

  it('reads a ConfigMap mounted as Kubernetes mounts it: each file once, by the name of its link, none from ..data or ..<timestamp>', async () => {
    const dir = writeTree({ 'p/..2026_12_05_06_00_00.1/deploy.yaml': DEPLOY, 'p/..2026_12_05_06_00_00.1/guard.yaml': GUARD });
    symlinkSync('..2026_12_05_06_00_00.1', join(dir, 'p/..data'));
    for (const name of ['deploy.yaml', 'guard.yaml']) symlinkSync(`..data/${name}`, join(dir, 'p', name));
    const result = await keyway(['policy', 'check', join(dir, 'p'), '--format', 'json']);
    expect(result).toMatchObject({ code: 0, stdout: '[]\n' });
    expect(result.stderr).toBe('keyway policy check: 2 policy files, 0 errors, 0 warnings, 0 notices\n');
  });

  it('refuses a policy directory holding a file that ends in .YAML or .Yml: a guardrail saved so would never be read', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/team/Guard.YAML': GUARD });
    const result = await keyway(['policy', 'check', join(dir, 'p')]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("team/Guard.YAML: a policy file's name ends in .yaml or .yml, in lower case");
  });

  it('refuses a link named as a policy file that names no file (dangling, or a directory): a guardrail linked so would never be read', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY, 'shared/guards/guard.yaml': GUARD });
    // The guardrail's target not mounted (yet), and a directory linked under a policy's name.
    symlinkSync(join(dir, 'shared/missing.yaml'), join(dir, 'p/guard.yaml'));
    symlinkSync(join(dir, 'shared/guards'), join(dir, 'p/guards.yaml'));
    const result = await keyway(['policy', 'check', join(dir, 'p')]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('guard.yaml');
    expect(result.stderr).toContain('guards.yaml');
  });

  it('names a policy that is a link to a file of secrets in the tree, and its problem, quoting none of the file', async () => {
    const dir = writeTree({
      'p/deploy.yaml': DEPLOY,
      ...Object.fromEntries(Object.entries(SECRET_FILES).map(([name, file]) => [`p/home/${name}`, file.text])),
    });
    const links = Object.keys(SECRET_FILES).map((name) => `linked${name}.yaml`);
    for (const [i, name] of Object.keys(SECRET_FILES).entries()) symlinkSync(join(dir, 'p', 'home', name), join(dir, 'p', links[i]!));
    for (const args of [['check'], ['check', '--format', 'json'], ['check', '--format', 'github'], ['test']]) {
      const result = await keyway(['policy', ...args, join(dir, 'p')]);
      const output = `${result.stdout}${result.stderr}`;
      expect(leaked(output, ALL_SECRETS), args.join(' ')).toEqual([]);
      expect(result.code, args.join(' ')).toBe(1);
      for (const link of links) expect(output, args.join(' ')).toContain(link);
      for (const problem of ['expected Object, got text of', 'version is required', 'YAML: ']) expect(output, args.join(' ')).toContain(problem);
      if (args.length === 1 && args[0] === 'check') expect(result.stdout).toContain(`${links[0]}:1:1 error expected Object, got text of`);
    }
  });

  it('refuses a link out of the policy directory (to the host, to another team, through a planted ..data), reading nothing there, as the broker does', async () => {
    const dir = writeTree({
      'p/deploy.yaml': DEPLOY,
      'other-team/guard.yaml': GUARD,
      'other-team/shared/deploy.yaml': DEPLOY,
      'p-team/guard.yaml': GUARD,
      ...Object.fromEntries(Object.entries(SECRET_FILES).map(([name, file]) => [`home/${name}`, file.text])),
    });
    const links = Object.keys(SECRET_FILES).map((name) => `linked${name}.yaml`);
    for (const [i, name] of Object.keys(SECRET_FILES).entries()) symlinkSync(join(dir, 'home', name), join(dir, 'p', links[i]!));
    symlinkSync('../other-team/guard.yaml', join(dir, 'p', 'guard.yaml'));
    // Out too, though its path begins with the policy directory's: p-team is not under p.
    symlinkSync('../p-team/guard.yaml', join(dir, 'p', 'sibling.yaml'));
    // A ..data link made to look like a ConfigMap's, and a policy named through it.
    symlinkSync('../other-team', join(dir, 'p', '..data'));
    symlinkSync('..data/shared/deploy.yaml', join(dir, 'p', 'mapped.yaml'));
    for (const args of [['check'], ['check', '--format', 'json'], ['test']]) {
      const result = await keyway(['policy', ...args, join(dir, 'p')]);
      const output = `${result.stdout}${result.stderr}`;
      expect(leaked(output, ALL_SECRETS), args.join(' ')).toEqual([]);
      expect(result.code, args.join(' ')).not.toBe(0);
      for (const link of [...links, 'guard.yaml', 'sibling.yaml', 'mapped.yaml'])
        expect(output, args.join(' ')).toContain(`${link}: a link out of the policy directory (to `);
      expect(output, args.join(' ')).not.toContain('expected Object');
    }
    // A directory linked in from outside is not walked either.
    const team = writeTree({ 'p/deploy.yaml': DEPLOY, 'other-team/guard.yaml': GUARD });
    symlinkSync(join(team, 'other-team'), join(team, 'p', 'team'));
    const walked = await keyway(['policy', 'check', join(team, 'p')]);
    expect(walked.code).not.toBe(0);
    expect(walked.stderr).toMatch(/^keyway: team: a link out of the policy directory \(to .*other-team\)/);
    // Links that stay inside, as a mounted ConfigMap's do, still read.
    symlinkSync('p/deploy.yaml', join(team, 'inside.yaml'));
    symlinkSync('p', join(team, 'linked'));
    rmSync(join(team, 'p', 'team'));
    const inside = await keyway(['policy', 'check', team]);
    expect(inside.stderr).toBe('keyway policy check: 4 policy files, 0 errors, 0 warnings, 0 notices\n');
  });

  it('reads a policy in a directory whose name begins with .. when the directory is no ConfigMap: a deny kept there is not passed over unseen', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/..guards/guard.yaml': GUARD });
    const result = await keyway(['policy', 'check', join(dir, 'p')]);
    expect(result.stderr).toBe('keyway policy check: 2 policy files, 0 errors, 0 warnings, 0 notices\n');
  });

  it('reads a deny in a .. directory beside a ..data entry that is no ConfigMap link (a plain file or directory so named)', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/..guards/guard.yaml': GUARD, 'p/..data': '' });
    const result = await keyway(['policy', 'check', join(dir, 'p')]);
    expect(result.stderr).toBe('keyway policy check: 2 policy files, 0 errors, 0 warnings, 0 notices\n');
  });

  /**
   * `keyway policy check DIR` held to file modes: as root, without the capabilities that pass over them (setpriv,
   * util-linux), so still the owner of a checkout in a 0700 directory (which another user, nobody say, could not run).
   */
  const READ_OVERRIDES = '-dac_override,-dac_read_search';
  const checkHeldToModes = async (dir: string): Promise<{ code: unknown; stderr: string }> => {
    const child =
      process.getuid?.() === 0
        ? spawn('setpriv', [`--bounding-set=${READ_OVERRIDES}`, `--inh-caps=${READ_OVERRIDES}`, process.execPath, BIN, 'policy', 'check', dir], { cwd: ROOT })
        : spawn(process.execPath, [BIN, 'policy', 'check', dir], { cwd: ROOT });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const code = await new Promise((resolve) => child.on('close', resolve));
    return { code, stderr };
  };

  it.skipIf(process.platform === 'win32')(
    'refuses a policy directory with a subdirectory it cannot read, naming it, where it threw EACCES with a stack trace',
    async () => {
      const dir = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/guards/guard.yaml': GUARD });
      chmodSync(join(dir, 'p/guards'), 0o000);
      const { code, stderr } = await checkHeldToModes(join(dir, 'p'));
      expect(code).not.toBe(0);
      expect(stderr).toMatch(/^keyway: .*guards/);
      expect(stderr).not.toContain('    at ');
    },
  );

  it.skipIf(process.platform === 'win32')('refuses a policy file it cannot read, naming it, where it threw EACCES with a stack trace', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/guard.yaml': GUARD });
    chmodSync(join(dir, 'p/guard.yaml'), 0o000);
    const { code, stderr } = await checkHeldToModes(join(dir, 'p'));
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/^keyway: guard\.yaml: cannot be read \(EACCES\)/);
    expect(stderr).not.toContain('    at ');
  });

  it('reads the policies in a directory whose own name ends in .yaml, as any directory', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/guards.yaml/guard.yaml': GUARD });
    const result = await keyway(['policy', 'check', join(dir, 'p')]);
    expect(result.stderr).toBe('keyway policy check: 2 policy files, 0 errors, 0 warnings, 0 notices\n');
  });

  it('refuses a link back to a directory the walk is in, naming it, where two such read some 2^40 paths and never ended', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY });
    symlinkSync('.', join(dir, 'p/loop'));
    symlinkSync('.', join(dir, 'p/again'));
    const result = await keyway(['policy', 'check', join(dir, 'p')]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/^keyway: (again|loop): a link back to a directory it is in/);
  });

  it('refuses a link named as a policy that loops back on itself, naming it, where it threw ELOOP with a stack trace', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY });
    symlinkSync('guard.yaml', join(dir, 'p/guard.yaml'));
    const result = await keyway(['policy', 'check', join(dir, 'p')]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/^keyway: .*guard\.yaml/);
    expect(result.stderr).not.toContain('    at ');
  });

  it.skipIf(process.platform === 'win32')('refuses a FIFO named as a policy, as a link to one is refused: a guardrail there is never read', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY });
    execFileSync('mkfifo', [join(dir, 'p/guard.yaml')]);
    const result = await keyway(['policy', 'check', join(dir, 'p')]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('guard.yaml');
  });

  it('prints file:line:col severity message [rule] and exits 1 on an error', async () => {
    const dir = writeTree({
      'policies/deploy.yaml': DEPLOY,
      'policies/team/wide.yaml': DEPLOY.replace('  repository_owner_id: "1200934"\n  repository_id: "734201"\n', '').replace('ttl: 10m', 'ttl: 30m'),
      'policies/team/typo.yaml': DEPLOY.replace('  scopes:', '  scope:'),
      'policies/team/named.yaml': DEPLOY.replace('  repository_id: "734201"', '  repository: acme/api').replace(
        '  event_name',
        '  workflow: Deploy\n  event_name',
      ),
    });
    const result = await keyway(['policy', 'check', 'policies'], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stdout.split('\n')).toEqual([
      'policies/team/named.yaml:6:3 warning repository is a name that can be renamed and registered again by someone else: pin repository_id beside it [name-without-id]',
      'policies/team/named.yaml:10:3 warning workflow is chosen by whoever edits the pipeline: workflow is the free-text name: of a workflow; gate on workflow_ref or job_workflow_ref [spoofable-claim]',
      'policies/team/typo.yaml:14:3 error unknown field grant.scope [invalid-policy]',
      expect.stringMatching(
        /^policies\/team\/wide.yaml:4:1 error https:\/\/token.actions.githubusercontent.com signs tokens for every project .* \[unpinned-tenant\]$/,
      ),
      'policies/team/wide.yaml:13:3 warning grant.ttl is 1800s; keep grants at 15 minutes or less [long-ttl]',
      '',
    ]);
    expect(result.stderr).toBe('keyway policy check: 4 policy files, 2 errors, 3 warnings, 0 notices\n');
  });

  it('--format json gives each finding with its rule and why', async () => {
    const dir = writeTree({ 'p/named.yaml': DEPLOY.replace('  workflow: x', '').replace('  event_name', '  workflow: Deploy\n  event_name') });
    const result = await keyway(['policy', 'check', join(dir, 'p'), '--format', 'json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([
      {
        file: join(dir, 'p/named.yaml'),
        line: 10,
        column: 3,
        severity: 'warning',
        rule: 'spoofable-claim',
        message: expect.stringContaining('workflow_ref'),
        why: expect.stringContaining('chooses this value freely'),
      },
    ]);
  });

  it('--format github prints workflow annotations, escaped', async () => {
    const dir = writeTree({ 'policies/a,b.yaml': DEPLOY.replace('  repository_owner_id: "1200934"\n  repository_id: "734201"\n', '') });
    const result = await keyway(['policy', 'check', 'policies', '--format', 'github'], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^::error file=policies\/a%2Cb.yaml,line=4,col=1,title=keyway unpinned-tenant::https%3A|^::error file=policies\/a%2Cb.yaml,line=4,col=1,title=keyway unpinned-tenant::https:/,
    );
    expect(result.stdout).toContain('%0A(unpinned-tenant: a shared issuer signs tokens');
    expect(result.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('honours lint.ignore with a reason, and reports one that silences nothing', async () => {
    const silenced = DEPLOY.replace('ttl: 10m', 'ttl: 1h').replace(
      'version: 1\n',
      'version: 1\nlint:\n  ignore:\n    long-ttl: "the migration job runs for 50 minutes"\n    spoofable-claim: "left over"\n',
    );
    const result = await keyway(['policy', 'check', 'p'], { cwd: writeTree({ 'p/d.yaml': silenced }) });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('p/d.yaml:5:5 warning lint.ignore.spoofable-claim silences nothing here any more [unused-ignore]\n');
  });

  it("refuses, with the broker's own settings, a policy taking the broker's tokens for a keyway-jwt proxy upstream's audience", async () => {
    const trustingTheBroker = (audience: string) =>
      `version: 1\nissuer: { kind: oidc, url: "https://keyway.example.com", extra_algorithms: [ES256] }\nsubject_audience: ${audience}\nmatch: { client_id: deploy }\ngrant: { audience: https://api.example }\n`;
    const dir = writeTree({
      'policies/relay.yaml': trustingTheBroker('https://deploy.internal'),
      'policies/other.yaml': trustingTheBroker('https://other.internal'),
      'policies/deploy.yaml': `version: 1\nissuer: https://oidc.acme.dev\nmatch: { sub: svc }\ngrant: { audience: [https://deploy.internal, https://other.internal] }\n`,
      'upstreams.yaml': 'upstreams:\n  deploy: { url: "https://deploy.example", auth: { kind: keyway-jwt, audience: "https://deploy.internal" } }\n',
    });
    const env = { KEYWAY_ISSUER: 'https://keyway.example.com' };
    const refused = await keyway(['policy', 'check', 'policies'], { cwd: dir, env: { ...env, KEYWAY_PROXY_UPSTREAMS_FILE: 'upstreams.yaml' } });
    expect(refused.code).toBe(1);
    expect(refused.stdout.split('\n').filter((line) => line.includes(' error '))).toEqual([
      expect.stringMatching(/^policies\/relay\.yaml:3:1 error subject_audience https:\/\/deploy\.internal is the audience of a keyway-jwt proxy upstream/),
    ]);
    // Without that upstream declared, the same policies load.
    expect((await keyway(['policy', 'check', 'policies'], { cwd: dir, env })).stdout).not.toMatch(/ error /);
  });

  it('exits 2 on bad usage', async () => {
    expect(await keyway(['policy', 'check', 'policies', '--format', 'xml'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--format is one of text, json, github'),
    });
    expect(await keyway(['policy', 'check', '/nonexistent/dir'])).toMatchObject({ code: 2, stderr: expect.stringContaining('is not a directory') });
    expect(await keyway(['policy', 'check', '--help'])).toMatchObject({ code: 0, stdout: expect.stringContaining('usage: keyway policy check') });
  });
});

describe('keyway policy explain', () => {
  const dir = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/guard.yaml': GUARD });

  it('--claims FILE: every line with ✓/✗ and the actual value, then the grant', async () => {
    const claimsDir = writeTree({ 'claims.json': JSON.stringify(CLAIMS) });
    const result = await keyway(['policy', 'explain', join(dir, 'p'), '--claims', join(claimsDir, 'claims.json')]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      '✓ deploy  allow  — deploy acme/api\n    ✓ aud includes "http://127.0.0.1:8787"  — token has aud "http://127.0.0.1:8787"\n    ✓ repository_owner_id: "1200934"  — token has "1200934"',
    );
    expect(result.stdout).toContain('✗ guard  deny\n    ✗ event_name: ["pull_request_target","workflow_run"]  — token has "push"');
    expect(result.stdout).toContain(
      'deny guardrails fired: none\ndecision: GRANTED by deploy\n  audience  https://deploy.acme.dev\n  scope     deploy:write artifacts:read\n  ttl       600s\n  subject   github:acme/api:production\n',
    );
    expect(result.stdout).not.toContain('WITHOUT verifying');
  });

  it('--claims - reads standard input (YAML or JSON), and shows why a guardrail denies', async () => {
    const result = await keyway(['policy', 'explain', join(dir, 'p'), '--claims', '-', '--scope', 'deploy:write'], {
      stdin: Object.entries({ ...CLAIMS, event_name: 'pull_request_target' })
        .map(([name, value]) => `${name}: "${value}"`)
        .join('\n'),
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('✗ deploy  allow');
    expect(result.stdout).toContain('    ✗ event_name: ["push","workflow_dispatch"]  — token has "pull_request_target"');
    expect(result.stdout).toContain('✓ guard  deny');
    expect(result.stdout).toContain('deny guardrails fired: guard\ndecision: DENIED (denied_by_policy): denied by guard\n');
  });

  it('--token JWT: decoded without verification, and it says so', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const jwt = await new SignJWT({ ...CLAIMS, environment: 'staging' }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
    const result = await keyway(['policy', 'explain', join(dir, 'p'), '--token', jwt]);
    expect(result.code).toBe(0);
    expect(result.stdout.split('\n')[0]).toBe(
      'note: the token was decoded WITHOUT verifying its signature, issuer keys or lifetime: this shows what the policies decide for its claims, not whether it is genuine',
    );
    expect(result.stdout).toContain('    ✗ environment: "production"  — token has "staging"');
    expect(result.stdout).toContain('decision: DENIED (no_policy_matched)');
    const fromStdin = await keyway(['policy', 'explain', join(dir, 'p'), '--token', '-', '--format', 'json'], { stdin: `${jwt}\n` });
    const json = JSON.parse(fromStdin.stdout) as { notes: string[]; decision: { reason: string }; policies: { id: string }[] };
    expect(json.notes[0]).toContain('WITHOUT verifying');
    expect(json.decision.reason).toBe('no_policy_matched');
    expect(json.policies.map((policy) => policy.id)).toEqual(['deploy', 'guard']);
  });

  it("--issuer sets iss, and claims without aud take the broker's own issuer URL, saying so", async () => {
    const { iss: _iss, aud: _aud, ...rest } = CLAIMS;
    const result = await keyway(['policy', 'explain', join(dir, 'p'), '--claims', '-', '--issuer', 'github'], { stdin: JSON.stringify(rest) });
    expect(result.stdout).toContain("note: the claims carry no aud; taking the broker's own issuer URL http://127.0.0.1:8787");
    expect(result.stdout).toContain('issuer: https://token.actions.githubusercontent.com (github)');
    expect(result.stdout).toContain('decision: GRANTED by deploy');
  });

  it('--issuer takes a GitHub Enterprise Server URL, which a policy names with its kind: the flag looks the policies up', async () => {
    const ghes = 'https://ghes.acme.dev/_services/token';
    const enterprise = writeTree({ 'p/deploy.yaml': DEPLOY.replace('issuer: github', `issuer: { kind: github, url: "${ghes}" }`) });
    const { iss: _iss, ...rest } = CLAIMS;
    const result = await keyway(['policy', 'explain', join(enterprise, 'p'), '--claims', '-', '--issuer', ghes], { stdin: JSON.stringify(rest) });
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain(`issuer: ${ghes} (github)`);
    expect(result.stdout).toContain('decision: GRANTED by deploy');
  });

  it('exits 2 without exactly one of --claims and --token, or with a token that is not a JWT', async () => {
    expect(await keyway(['policy', 'explain', join(dir, 'p')])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('exactly one of --claims FILE and --token JWT'),
    });
    expect(await keyway(['policy', 'explain', join(dir, 'p'), '--token', 'nope'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--token is not a JWT'),
    });
  });

  it('exits 1 when the policies do not load', async () => {
    const broken = writeTree({ 'p/d.yaml': DEPLOY.replace('scopes:', 'scope:') });
    const result = await keyway(['policy', 'explain', join(broken, 'p'), '--claims', '-'], { stdin: JSON.stringify(CLAIMS) });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('d.yaml:14:3 unknown field grant.scope');
  });
});

describe('keyway policy test', () => {
  const TESTS = `version: 1
issuer: github
fixtures:
  deploy: ${JSON.stringify(CLAIMS)}
cases:
  - name: deploys
    fixture: deploy
    expect: { decision: granted, policy: deploy, scopes: [deploy:write, artifacts:read] }
  - name: guardrail
    fixture: deploy
    claims: { event_name: workflow_run }
    expect: { decision: denied, denied_by: [guard] }
`;

  it.each([
    ['the development policies', 'policies', 6],
    ['the examples', 'examples/policies', 40],
  ])("runs %s' own tests: all pass", async (_name, dir, atLeast) => {
    const result = await keyway(['policy', 'test', dir]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^(\d+) passed, 0 failed\n$/);
    expect(Number(/^(\d+) passed/.exec(result.stdout)?.[1])).toBeGreaterThanOrEqual(atLeast);
  });

  it('passes, and lists passes with --verbose', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/guard.yaml': GUARD, 'p/deploy.test.yaml': TESTS });
    expect(await keyway(['policy', 'test', join(dir, 'p')])).toMatchObject({ code: 0, stdout: '2 passed, 0 failed\n' });
    const verbose = await keyway(['policy', 'test', 'p', '-v'], { cwd: dir });
    expect(verbose.stdout).toBe('PASS p/deploy.test.yaml:6:5 deploys\nPASS p/deploy.test.yaml:9:5 guardrail\n2 passed, 0 failed\n');
  });

  it('fails with file:line and what it got, exit 1 (here: without the guardrail, nothing denies workflow_run by policy)', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/deploy.test.yaml': TESTS });
    const result = await keyway(['policy', 'test', 'p'], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('FAIL p/deploy.test.yaml:9:5 guardrail\n     expected denied_by ["guard"], got []\n1 passed, 1 failed\n');
  });

  it('exits 1 on an invalid test file, and when there is nothing to test', async () => {
    const invalid = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/deploy.test.yaml': TESTS.replace('expect: { decision: granted', 'expect: { decison: granted') });
    const result = await keyway(['policy', 'test', 'p'], { cwd: invalid });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('p/deploy.test.yaml:8:15 error unknown field cases.0.expect.decison');
    const empty = await keyway(['policy', 'test', 'p'], { cwd: writeTree({ 'p/deploy.yaml': DEPLOY }) });
    expect(empty).toMatchObject({ code: 1, stdout: '0 passed, 0 failed\n', stderr: expect.stringContaining('no *.test.yaml cases') });
  });
});

describe('keyway policy diff', () => {
  const before = writeTree({
    'old/deploy.yaml': DEPLOY,
    'old/guard.yaml': GUARD,
    'old/gone.yaml': DEPLOY.replace('repository_id: "734201"', 'repository_id: "5"'),
  });
  const after = writeTree({
    'new/deploy.yaml': DEPLOY.replace('  environment: production\n', '').replace('ttl: 10m', 'ttl: 5m'),
    'new/guard.yaml': GUARD.replace('[pull_request_target, workflow_run]', '[pull_request_target, workflow_run, schedule]'),
    'new/added.yaml': GUARD.replace('[pull_request_target, workflow_run]', 'merge_group'),
  });

  it('says per policy what the change does to access, then the lint of the new state', async () => {
    const result = await keyway(['policy', 'diff', join(before, 'old'), join(after, 'new')]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      [
        'added: added (narrows access)',
        '  deny, enforced [narrowed]',
        'deploy: widened and narrowed',
        '  match.environment: line "production" removed [widened]',
        '  grant.ttl: 600s → 300s [narrowed]',
        'gone: removed (narrows access)',
        '  was allow, enforced [narrowed]',
        'guard: narrowed',
        '  match.event_name: ["pull_request_target","workflow_run"] → ["pull_request_target","workflow_run","schedule"] [narrowed]',
        '',
        `lint of ${join(after, 'new')}: 0 errors, 0 warnings, 1 notice`,
        `${join(after, 'new')}/deploy.yaml:15:3 notice grant.subject reads {environment}, which github tokens need not carry and no match line requires: tokens without it get no grant from this policy [template-claim-optional]`,
        '',
      ].join('\n'),
    );
  });

  it('--format markdown gives a table for a pull request comment, and exits 1 when the new state has errors', async () => {
    const broken = writeTree({ 'new/deploy.yaml': DEPLOY.replace('  repository_owner_id: "1200934"\n  repository_id: "734201"\n', '') });
    const result = await keyway(['policy', 'diff', join(before, 'old'), join(broken, 'new'), '--format', 'markdown']);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('### keyway policy diff\n\n**2 policies widen access.**\n\n| policy | change | details |\n|---|---|---|\n');
    expect(result.stdout).toContain(
      '| `deploy` | **widened** | `match.repository_owner_id: line "1200934" removed` widened<br>`match.repository_id: line "734201" removed` widened |',
    );
    expect(result.stdout).toContain('| `guard` | **removed (widens access)** | `was deny, enforced` widened |');
    expect(result.stdout).toMatch(/\| `.*\/new\/deploy.yaml:4:1` \| error \| `unpinned-tenant` \|/);
  });

  it('exits 2 without two directories', async () => {
    expect(await keyway(['policy', 'diff', join(before, 'old')])).toMatchObject({ code: 2, stderr: expect.stringContaining('OLD_DIR and NEW_DIR') });
  });
});

describe('keyway policy who-can', () => {
  const dir = writeTree({
    'p/deploy.yaml': DEPLOY,
    'p/guard.yaml': GUARD,
    'p/preview.yaml': DEPLOY.replace('  ref_protected: "true"\n', '')
      .replace('  event_name: [push, workflow_dispatch]\n', '')
      .replace('repository_id: "734201"', 'repository_id: "9"'),
  });

  it('lists the policies that grant a scope, with their lines, guardrails and untrusted contexts', async () => {
    const result = await keyway(['policy', 'who-can', 'p', '--scope', 'deploy:write'], { cwd: dir });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('who can get scope deploy:write: deploy, preview\n');
    expect(result.stdout).toContain('    environment: "production"\n');
    expect(result.stdout).toContain('deny guardrails: none cut into it');
    expect(result.stdout).toContain('deny guardrails that may refuse some of these tokens: guard');
    expect(result.stdout).toContain('! reachable from unprotected refs (anyone with write access can push them) (ref_protected: "false")');
    const json = JSON.parse((await keyway(['policy', 'who-can', 'p', '--scope', 'artifacts:read', '--format', 'json'], { cwd: dir })).stdout);
    expect(json.allow.map((policy: { id: string }) => policy.id)).toEqual(['deploy', 'preview']);
  });

  it('exits 2 on a scope no policy grants or a malformed permission, 1 when the policies do not load', async () => {
    const unknown = await keyway(['policy', 'who-can', 'p', '--scope', 'deploy:wirte'], { cwd: dir });
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toContain('no policy grants scope "deploy:wirte"; the policies grant artifacts:read deploy:write');
    const permission = await keyway(['policy', 'who-can', 'p', '--github-permission', 'contents'], { cwd: dir });
    expect(permission.code).toBe(2);
    expect(permission.stderr).toContain('is not a GitHub repository permission and level');
    const broken = writeTree({ 'p/d.yaml': DEPLOY.replace('scopes:', 'scope:') });
    const failed = await keyway(['policy', 'who-can', 'p', '--scope', 'deploy:write'], { cwd: broken });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('the policies do not load');
  });
});

describe("keyway policy who-can, test and check hold a GitHub grant that pins no owner_id to the App's deployment", () => {
  // A GitHub Enterprise Server's jobs of its acme, which may hold the number acme's account has on github.com.
  const SERVER = 'https://ghes.acme.dev/_services/token';
  const unpinned = (issuer: string) =>
    `version: 1\nissuer: ${issuer}\nmatch: { repository_owner_id: "1200934", ref: refs/heads/main }\ngrant:\n  github: { owner: acme, repositories: [api], permissions: { contents: read } }\n`;
  const dir = writeTree({ 'p/cloud.yaml': unpinned('github'), 'p/server.yaml': unpinned(`{ kind: github, url: "${SERVER}" }`) });
  const listed = async (env: Record<string, string>) => {
    const result = await keyway(['policy', 'who-can', 'p', '--github-permission', 'contents:read', '--format', 'json'], { cwd: dir, env });
    expect(result.stderr).toBe('');
    return (JSON.parse(result.stdout) as { allow: { id: string }[] }).allow.map((policy) => policy.id);
  };

  it('who-can lists the jobs of the deployment KEYWAY_GITHUB_API_URL names (api.github.com without it), as the broker grants', async () => {
    expect(await listed({})).toEqual(['cloud']);
    expect(await listed({ KEYWAY_GITHUB_API_URL: 'https://ghes.acme.dev/api/v3' })).toEqual(['server']);
  });

  it("check warns of the server's policy where the App is on github.com, and of github.com's where the App is on that server", async () => {
    const check = (env: Record<string, string>) => keyway(['policy', 'check', 'p'], { cwd: dir, env });
    const onGitHubCom = await check({});
    expect(onGitHubCom.code).toBe(0);
    expect(onGitHubCom.stdout).toContain(
      `p/server.yaml:5:3 warning grant.github pins no owner_id, so it goes to the caller's own account, which only a job of the App's GitHub deployment (github.com, KEYWAY_GITHUB_API_URL's) names; ${SERVER} is a GitHub issuer of ghes.acme.dev`,
    );
    expect(onGitHubCom.stdout).not.toContain('p/cloud.yaml');
    const onServer = await check({ KEYWAY_GITHUB_API_URL: 'https://ghes.acme.dev/api/v3' });
    expect(onServer.stdout).toContain('p/cloud.yaml:5:3 warning grant.github pins no owner_id');
    expect(onServer.stdout).not.toContain('p/server.yaml');
  });

  it("test refuses the server's job of its acme where the App is on github.com, and grants it where the App is on that server", async () => {
    const job = { ...CLAIMS, iss: SERVER, repository_owner: 'acme' };
    const cases = (decision: string) =>
      `version: 1\nfixtures:\n  job: ${JSON.stringify(job)}\ncases:\n  - name: the server's job\n    fixture: job\n    request: { github: { repositories: [acme/api] } }\n    expect: ${decision}\n`;
    const tests = writeTree({
      'p/server.yaml': unpinned(`{ kind: github, url: "${SERVER}" }`),
      'p/refused.test.yaml': cases('{ decision: denied, reason: github_repository_not_granted }'),
    });
    expect(await keyway(['policy', 'test', 'p'], { cwd: tests })).toMatchObject({ code: 0, stdout: '1 passed, 0 failed\n' });
    const granted = writeTree({
      'p/server.yaml': unpinned(`{ kind: github, url: "${SERVER}" }`),
      'p/granted.test.yaml': cases('{ decision: granted, policy: server }'),
    });
    const env = { KEYWAY_GITHUB_API_URL: 'https://ghes.acme.dev/api/v3' };
    expect(await keyway(['policy', 'test', 'p'], { cwd: granted, env })).toMatchObject({ code: 0, stdout: '1 passed, 0 failed\n' });
  });
});

describe('what keyway policy diff and who-can print of a proposed policy', () => {
  // A pull request's author writes these: an erase-line sequence in the description, a bidi override and an 8-bit CSI in a ref.
  const proposed = DEPLOY.replace('description: deploy acme/api', 'description: "deploy\\e[1A\\e[2K\\u202e"').replace(
    'ref: refs/heads/main',
    'ref: "refs/heads/*\\u202e\\x9b2K"',
  );
  const dir = writeTree({ 'old/deploy.yaml': DEPLOY, 'new/deploy.yaml': proposed });
  /** What a terminal acts on rather than shows: C0 controls but newline, DEL and C1, the bidi overrides and isolates. */
  const controls = (text: string) => [...text].filter((char) => /[\p{Cc}\p{Bidi_Control}]/u.test(char) && char !== '\n');

  it('keyway policy diff shows a proposed value without the control characters in it', async () => {
    const result = await keyway(['policy', 'diff', join(dir, 'old'), join(dir, 'new')]);
    expect(result.stdout).toContain('match.ref');
    expect(controls(result.stdout)).toEqual([]);
  });

  it("keyway policy who-can shows a policy's description and lines without the control characters in them", async () => {
    const result = await keyway(['policy', 'who-can', join(dir, 'new'), '--scope', 'deploy:write']);
    expect(result.stdout).toContain('who can get scope deploy:write: deploy');
    expect(controls(result.stdout)).toEqual([]);
  });
});

describe('what keyway policy check, test, diff and explain print of a proposed policy, in a CI log', () => {
  // A pull request's author writes these. A line of a job's log that starts with `::` is a workflow command GitHub Actions
  // runs (an annotation that says all is well, `::add-mask::`, `::stop-commands::`): no value may start a line of its own.
  const COMMAND = '\\n::warning title=keyway::all policies pass\\n::stop-commands::x';
  const workflowCommands = (text: string) => text.split('\n').filter((line) => line.startsWith('::'));

  it('keyway policy check quotes a proposed issuer on the line of its finding', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY.replace('issuer: github', `issuer: "https://evil.example/${COMMAND}"`) });
    const result = await keyway(['policy', 'check', join(dir, 'p')]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('https://evil.example/\\u000a::warning title=keyway::all policies pass');
    expect(workflowCommands(result.stdout)).toEqual([]);
  });

  it("keyway policy test names a proposed case on its result's line, a failing one or a passing one (--verbose)", async () => {
    const tests = `version: 1\nissuer: github\ncases:\n  - name: "deploys${COMMAND}"\n    claims: ${JSON.stringify(CLAIMS)}\n    expect: { decision: denied }\n`;
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/deploy.test.yaml': tests });
    const result = await keyway(['policy', 'test', join(dir, 'p')]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('deploys\\u000a::warning title=keyway::all policies pass');
    expect(workflowCommands(result.stdout)).toEqual([]);
    // A case that passes, as --verbose lists it.
    const passing = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/deploy.test.yaml': tests.replace('decision: denied', 'decision: granted') });
    const verbose = await keyway(['policy', 'test', '--verbose', join(passing, 'p')]);
    expect(verbose.code).toBe(0);
    expect(verbose.stdout).toContain('deploys\\u000a::warning title=keyway::all policies pass');
    expect(workflowCommands(verbose.stdout)).toEqual([]);
  });

  it("keyway policy test quotes a proposed test file's issuer on the line of its problem", async () => {
    const tests = `version: 1\nissuer: "https://evil.example/${COMMAND}"\ncases:\n  - name: deploys\n    claims: ${JSON.stringify(CLAIMS)}\n    expect: { decision: denied }\n`;
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY, 'p/deploy.test.yaml': tests });
    const result = await keyway(['policy', 'test', join(dir, 'p')]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('https://evil.example/\\u000a::warning title=keyway::all policies pass');
    expect(workflowCommands(result.stdout)).toEqual([]);
  });

  it('keyway policy explain quotes a proposed issuer on the line of its load problem', async () => {
    const dir = writeTree({ 'p/deploy.yaml': DEPLOY.replace('issuer: github', `issuer: "https://evil.example/${COMMAND}"`) });
    const claims = join(writeTree({ 'claims.json': JSON.stringify(CLAIMS) }), 'claims.json');
    const result = await keyway(['policy', 'explain', join(dir, 'p'), '--claims', claims]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('https://evil.example/\\u000a::warning title=keyway::all policies pass');
    expect(workflowCommands(result.stderr)).toEqual([]);
  });

  it("keyway policy diff names a proposed policy file whose name holds a line break on its change's line", async () => {
    const dir = writeTree({ 'old/deploy.yaml': DEPLOY, 'new/deploy.yaml': DEPLOY, 'new/x\n::warning::forged.yaml': DEPLOY });
    const result = await keyway(['policy', 'diff', join(dir, 'old'), join(dir, 'new')]);
    expect(result.stdout).toContain('x\\u000a::warning::forged: added (widens access)');
    expect(workflowCommands(result.stdout)).toEqual([]);
  });

  it('keyway policy diff quotes a proposed issuer on the line of its lint finding', async () => {
    const dir = writeTree({ 'old/deploy.yaml': DEPLOY, 'new/deploy.yaml': DEPLOY.replace('issuer: github', `issuer: "https://evil.example/${COMMAND}"`) });
    const result = await keyway(['policy', 'diff', join(dir, 'old'), join(dir, 'new')]);
    expect(result.stdout).toContain('https://evil.example/\\u000a::warning title=keyway::all policies pass');
    expect(workflowCommands(result.stdout)).toEqual([]);
  });
});
