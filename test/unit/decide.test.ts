import { describe, expect, it } from 'vitest';
import type { VerifiedSubjectToken } from '../../src/core/verify/verify-subject-token.ts';
import { decide, knownToAnAllowPolicy, type AccessRequest } from '../../src/core/policy/decide.ts';
import { loadPolicies } from '../../src/core/policy/load-policies.ts';
import type { PolicySet } from '../../src/core/policy/policy-set.ts';

const ISSUER = 'https://token.actions.githubusercontent.com';
const BROKER = 'https://keyway.test';

function load(files: Record<string, string>): PolicySet {
  return loadPolicies(
    Object.entries(files).map(([path, text]) => ({ path, text })),
    { brokerIssuer: BROKER, maxTtlSeconds: 3600, allowHttpLoopback: false },
  );
}

function token(set: PolicySet, claims: Record<string, unknown>): VerifiedSubjectToken {
  const issuer = set.issuer(ISSUER);
  if (issuer === undefined) throw new Error('issuer not loaded');
  return { issuer, header: { alg: 'RS256' }, claims: { iss: ISSUER, aud: BROKER, sub: 'repo:acme/api:ref:refs/heads/main', ...claims } };
}

const ANY: AccessRequest = { audiences: [], scopes: undefined };

const allow = (match: string, grant = 'audience: https://a.example\n  scopes: [read, write]', extra = '') =>
  `version: 1\nissuer: github\n${extra}match:\n${match}\ngrant:\n  ${grant}\n`;

describe('decide', () => {
  it('grants by the first matching policy in id order and traces every candidate', () => {
    const set = load({
      'b.yaml': allow('  repository_id: "1"', 'audience: https://b.example'),
      'a.yaml': allow('  repository_id: "1"', 'audience: https://a.example'),
    });
    const decision = decide(set, token(set, { repository_id: '1' }), ANY);
    expect(decision.granted && decision.grant.policy.id).toBe('a');
    expect(decision.trace).toMatchObject({ candidates: ['a', 'b'], matched: ['a', 'b'], deniedBy: [] });
  });

  it('lets a deny policy beat every allow policy', () => {
    const set = load({
      'allow.yaml': allow('  repository_id: "1"'),
      'guard.yaml': 'version: 1\neffect: deny\nissuer: github\nmatch:\n  event_name: pull_request_target\n',
    });
    expect(decide(set, token(set, { repository_id: '1', event_name: 'push' }), ANY).granted).toBe(true);
    const denied = decide(set, token(set, { repository_id: '1', event_name: 'pull_request_target' }), ANY);
    expect(denied).toMatchObject({ granted: false, reason: 'denied_by_policy', trace: { deniedBy: ['guard'] } });
  });

  it("holds a deny policy's match_actor regex on an actor's claim too long for it to read, as on the subject's", () => {
    const set = load({
      'allow.yaml': allow('  repository_id: "1"', undefined, 'match_actor: { iss: https://ci.example, sub: orchestrator }\n'),
      'guard.yaml':
        'version: 1\neffect: deny\nissuer: github\nmatch_actor: { iss: https://ci.example, ref: { regex: "refs/heads/feature/.*" } }\nmatch:\n  repository_id: "1"\n',
    });
    const acting = (ref: string): AccessRequest => ({ ...ANY, actor: { via: 'actor_token', claims: { iss: 'https://ci.example', sub: 'orchestrator', ref } } });
    const subject = token(set, { repository_id: '1' });
    expect(decide(set, subject, acting('refs/heads/main')).granted).toBe(true);
    expect(decide(set, subject, acting('refs/heads/feature/x'))).toMatchObject({ granted: false, reason: 'denied_by_policy' });
    // Past the 1,024 characters a regex reads: held by the deny's regex, whatever the value holds.
    for (const ref of [`refs/heads/feature/${'x'.repeat(1024)}`, `refs/heads/${'x'.repeat(1024)}`]) {
      expect(decide(set, subject, acting(ref))).toMatchObject({ granted: false, reason: 'denied_by_policy', trace: { deniedBy: ['guard'] } });
    }
  });

  it('denies when nothing matches, and when a claim a line needs is missing', () => {
    const set = load({ 'p.yaml': allow('  repository_id: "1"\n  environment: production') });
    expect(decide(set, token(set, { repository_id: '2', environment: 'production' }), ANY)).toMatchObject({ granted: false, reason: 'no_policy_matched' });
    expect(decide(set, token(set, { repository_id: '1' }), ANY)).toMatchObject({ granted: false, reason: 'no_policy_matched' });
  });

  it('looks a pinned workflow ref up in the index folded as it matches: names without case, the ref exactly', () => {
    const set = load({ 'p.yaml': allow('  repository_id: "1"\n  job_workflow_ref: ACME/Workflows/.github/workflows/deploy.yml@refs/heads/main') });
    const pinned = (ref: string) => token(set, { repository_id: '1', job_workflow_ref: `acme/workflows/.github/workflows/deploy.yml@${ref}` });
    expect(decide(set, pinned('refs/heads/main'), ANY)).toMatchObject({ granted: true, trace: { candidates: ['p'] } });
    expect(decide(set, pinned('refs/heads/MAIN'), ANY)).toMatchObject({ granted: false, reason: 'no_policy_matched', trace: { candidates: [] } });
    expect(decide(set, pinned('refs/heads/MAIN'), ANY, { everyPolicyOfIssuer: true })).toMatchObject({ granted: false, reason: 'no_policy_matched' });
  });

  it('folds only ASCII letters, in the index lookup and in every matcher alike', () => {
    const set = load({
      'exact.yaml': allow('  repository_owner_id: "1"\n  repository: Acme/Kube-Sec'),
      'glob.yaml': allow('  repository_owner_id: "1"\n  repository: { glob: "acme/kube-se?" }'),
      'regex.yaml': allow('  repository_owner_id: "1"\n  repository: { regex: "acme/kube-se[c]" }'),
    });
    const named = (repository: string) => token(set, { repository_owner_id: '1', repository });
    const all = ['exact', 'glob', 'regex'];
    expect(decide(set, named('ACME/kube-SEC'), ANY)).toMatchObject({ granted: true, trace: { candidates: all, matched: all } });
    // The Kelvin sign and the long s fold to k and s under Unicode rules, never under a CI system's.
    for (const lookalike of ['acme/\u212Aube-sec', 'acme/kube-\u017Fec']) {
      expect(decide(set, named(lookalike), ANY)).toMatchObject({ granted: false, reason: 'no_policy_matched', trace: { matched: [] } });
      expect(decide(set, named(lookalike), ANY, { everyPolicyOfIssuer: true })).toMatchObject({ granted: false, trace: { matched: [] } });
    }
  });

  it('finds a deny policy pinned to any element of an array claim, not only the first', () => {
    const set = load({
      'allow.yaml': allow('  repository_id: "1"'),
      'guard.yaml': 'version: 1\neffect: deny\nissuer: github\nmatch:\n  teams: frozen\n',
    });
    const decision = decide(set, token(set, { repository_id: '1', teams: ['release', 'frozen'] }), ANY);
    expect(decision).toMatchObject({ granted: false, reason: 'denied_by_policy', trace: { candidates: ['allow', 'guard'], deniedBy: ['guard'] } });
  });

  it('requires the subject token to carry the policy’s subject_audience', () => {
    const set = load({ 'p.yaml': allow('  repository_id: "1"', 'audience: https://a.example', 'subject_audience: https://special.example\n') });
    expect(decide(set, token(set, { repository_id: '1' }), ANY).granted).toBe(false);
    expect(decide(set, token(set, { repository_id: '1', aud: ['x', 'https://special.example'] }), ANY).granted).toBe(true);
  });

  it('takes a subject_audience only as a whole entry of aud: an entry it merely begins is another audience', () => {
    const set = load({ 'p.yaml': allow('  repository_id: "1"', 'audience: https://a.example', 'subject_audience: https://special.example\n') });
    const withAud = (aud: unknown) => decide(set, token(set, { repository_id: '1', aud }), ANY);
    expect(withAud(['https://special.example.evil', 'https://special.example/x'])).toMatchObject({ granted: false, reason: 'no_policy_matched' });
    expect(withAud('https://special.example.evil')).toMatchObject({ granted: false, reason: 'no_policy_matched' });
    expect(withAud(['https://special.example.evil', 'https://special.example'])).toMatchObject({ granted: true });
  });

  it('holds a deny policy that names no subject_audience for every audience, and one that names it for that audience alone', () => {
    const special = allow('  repository_id: "1"', 'audience: https://a.example', 'subject_audience: https://special.example\n');
    const deny = (extra = '') => `version: 1\neffect: deny\nissuer: github\n${extra}match:\n  event_name: pull_request_target\n`;
    const claims = { repository_id: '1', aud: 'https://special.example', event_name: 'pull_request_target' };
    const everywhere = load({ 'p.yaml': special, 'guard.yaml': deny() });
    expect(decide(everywhere, token(everywhere, claims), ANY)).toMatchObject({ granted: false, reason: 'denied_by_policy', trace: { deniedBy: ['guard'] } });
    const scoped = load({ 'p.yaml': special, 'guard.yaml': deny(`subject_audience: ${BROKER}\n`) });
    expect(decide(scoped, token(scoped, claims), ANY)).toMatchObject({ granted: true, trace: { deniedBy: [] } });
  });

  it('grants only the requested audience and scope when the policy covers them', () => {
    const set = load({ 'p.yaml': allow('  repository_id: "1"', 'audience: [https://a.example, https://b.example]\n  scopes: [read, write]') });
    const claims = { repository_id: '1' };
    expect(decide(set, token(set, claims), { audiences: ['https://b.example'], scopes: ['read'] })).toMatchObject({
      granted: true,
      grant: { audiences: ['https://b.example'], scopes: ['read'] },
    });
    expect(decide(set, token(set, claims), { audiences: ['https://c.example'], scopes: undefined })).toMatchObject({
      granted: false,
      reason: 'audience_not_granted',
    });
    expect(decide(set, token(set, claims), { audiences: [], scopes: ['admin'] })).toMatchObject({ granted: false, reason: 'scope_not_granted' });
    // Every audience and every scope asked for must be granted, not merely one of them.
    expect(decide(set, token(set, claims), { audiences: ['https://b.example', 'https://c.example'], scopes: undefined })).toMatchObject({
      granted: false,
      reason: 'audience_not_granted',
    });
    expect(decide(set, token(set, claims), { audiences: [], scopes: ['read', 'admin'] })).toMatchObject({ granted: false, reason: 'scope_not_granted' });
    expect(decide(set, token(set, claims), ANY)).toMatchObject({ granted: true, grant: { audiences: ['https://a.example'], scopes: ['read', 'write'] } });
  });

  it('passes over a policy whose grant template names a missing claim', () => {
    const set = load({
      'a.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  subject: "{environment}"'),
      'b.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  claims: { repo: "{repository}" }'),
    });
    expect(decide(set, token(set, { repository_id: '1', repository: 'acme/api' }), ANY)).toMatchObject({
      granted: true,
      grant: { policy: { id: 'b' }, claims: { repo: 'acme/api' } },
    });
    expect(decide(set, token(set, { repository_id: '1' }), ANY)).toMatchObject({ granted: false, reason: 'template_claim_missing' });
  });

  it('renders the subject template, or keeps issuers apart by default', () => {
    const set = load({
      'a.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  subject: "{repository}@{{literal}}"'),
      'b.yaml': allow('  repository_id: "2"'),
    });
    expect(decide(set, token(set, { repository_id: '1', repository: 'acme/api' }), ANY)).toMatchObject({ grant: { subject: 'acme/api@{literal}' } });
    expect(decide(set, token(set, { repository_id: '2' }), ANY)).toMatchObject({ grant: { subject: `${ISSUER}#repo:acme/api:ref:refs/heads/main` } });
  });

  describe('template values cannot carry the delimiters of the template they are placed in', () => {
    const set = load({
      'a.yaml': allow(
        '  repository_id: "1"',
        'audience: https://a.example\n  subject: "repo:{repository}:environment:{environment}"\n  claims: { env: "{environment}" }',
      ),
    });
    const subjectFor = (environment: string) => decide(set, token(set, { repository_id: '1', repository: 'acme/api', environment }), ANY);

    it('refuses an environment that would forge another-looking subject, naming the claim and the character', () => {
      const forged = subjectFor('x:ref:refs/heads/main');
      expect(forged).toMatchObject({ granted: false, reason: 'template_value_forbidden' });
      expect(forged.granted === false && forged.detail).toBe('a grant.subject: {environment} holds ":", a delimiter of the template');
    });

    it('refuses control and invisible characters in any template, and checks grant.claims too', () => {
      expect(subjectFor('prod\nref:main')).toMatchObject({
        granted: false,
        reason: 'template_value_forbidden',
        detail: expect.stringContaining('U+000A, a control or invisible character'),
      });
      // DEL, and a tab, border the printable ASCII that is only checked for delimiters.
      for (const [value, code] of [
        ['prod\u007F', 'U+007F'],
        ['prod\tmain', 'U+0009'],
      ]) {
        expect(subjectFor(value as string)).toMatchObject({
          granted: false,
          reason: 'template_value_forbidden',
          detail: expect.stringContaining(code as string),
        });
      }
      expect(subjectFor('prod\u202Enoitcudorp')).toMatchObject({
        granted: false,
        reason: 'template_value_forbidden',
        detail: expect.stringContaining('U+202E'),
      });
      const claimsOnly = load({ 'c.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  claims: { env: "{environment}" }') });
      const decision = decide(claimsOnly, token(claimsOnly, { repository_id: '1', environment: 'prod\u0000' }), ANY);
      expect(decision).toMatchObject({
        granted: false,
        reason: 'template_value_forbidden',
        detail: 'c grant.claims.env: {environment} holds U+0000, a control or invisible character',
      });
    });

    it('places values holding only letters, digits and characters the template does not use as delimiters', () => {
      expect(subjectFor('prod-eu.1/ü')).toMatchObject({
        granted: true,
        grant: { subject: 'repo:acme/api:environment:prod-eu.1/ü', claims: { env: 'prod-eu.1/ü' } },
      });
      // A template without literal text has no delimiters: any value without control characters is placed as it is.
      const bare = load({ 'b.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  subject: "{environment}"') });
      expect(decide(bare, token(bare, { repository_id: '1', environment: 'x:ref:main' }), ANY)).toMatchObject({
        granted: true,
        grant: { subject: 'x:ref:main' },
      });
      const slashed = load({ 'd.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  subject: "deploy/{environment}"') });
      expect(decide(slashed, token(slashed, { repository_id: '1', environment: 'prod/../admin' }), ANY)).toMatchObject({
        granted: false,
        reason: 'template_value_forbidden',
      });
    });

    it('refuses a value that Unicode normalization turns into a delimiter, or that joins the delimiter before it', () => {
      const keyed = load({ 'k.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  subject: "repo:{repository}:env={environment}"') });
      const keyedFor = (environment: string) => decide(keyed, token(keyed, { repository_id: '1', repository: 'acme/api', environment }), ANY);
      // A full-width colon reads as ":" under NFKC; "≠" holds "=" under NFD; U+0338 after "=" composes "≠" under NFC, hiding the "=".
      const refused = (detail: unknown) => ({ granted: false, reason: 'template_value_forbidden', detail });
      expect(keyedFor('prod\uFF1Aref')).toMatchObject(refused('k grant.subject: {environment} holds ":" once normalized (NFKC), a delimiter of the template'));
      expect(keyedFor('x\u2260y')).toMatchObject(refused(expect.stringContaining('holds "=" once normalized (NFD)')));
      expect(keyedFor('\u0338prod')).toMatchObject(refused('k grant.subject: {environment} begins with U+0338, a mark that joins the character before it'));
      // Normalization works on the template's own delimiters too: under NFKC a full-width colon in the template is ":".
      const wide = load({ 'w.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  subject: "env\uFF1A{environment}"') });
      const colon = refused('w grant.subject: {environment} holds ":", a delimiter of the template');
      expect(decide(wide, token(wide, { repository_id: '1', environment: 'a:b' }), ANY)).toMatchObject(colon);
      // A decomposed letter is still a letter, and its mark follows it.
      expect(keyedFor('pre\u0301prod')).toMatchObject({ granted: true, grant: { subject: 'repo:acme/api:env=pre\u0301prod' } });
    });

    it('refuses invisible fillers, variation selectors and unpaired surrogates, and places a whole emoji', () => {
      for (const [environment, code] of [
        ['prod\uFE0F', 'U+FE0F'],
        ['prod\u034F', 'U+034F'],
        ['prod\u3164', 'U+3164'],
        ['prod\u115F', 'U+115F'],
      ]) {
        const detail = `a grant.subject: {environment} holds ${code}, a control or invisible character`;
        expect(subjectFor(environment as string)).toMatchObject({ granted: false, reason: 'template_value_forbidden', detail });
      }
      const unpaired = 'a grant.subject: {environment} holds U+D800, half of a surrogate pair';
      expect(subjectFor('prod\uD800')).toMatchObject({ granted: false, reason: 'template_value_forbidden', detail: unpaired });
      expect(subjectFor('prod\uDE00x')).toMatchObject({ granted: false, detail: expect.stringContaining('U+DE00, half of a surrogate pair') });
      expect(subjectFor('prod\u{1F680}')).toMatchObject({ granted: true, grant: { subject: 'repo:acme/api:environment:prod\u{1F680}' } });
    });

    it('lets another matching policy grant when one cannot place a value', () => {
      const two = load({
        'a.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  subject: "env:{environment}"'),
        'b.yaml': allow('  repository_id: "1"', 'audience: https://a.example'),
      });
      expect(decide(two, token(two, { repository_id: '1', environment: 'a:b' }), ANY)).toMatchObject({ granted: true, grant: { policy: { id: 'b' } } });
    });
  });

  it('evaluates mode: audit policies without enforcing them', () => {
    const set = load({
      'allow.yaml': allow('  repository_id: "1"'),
      'watch-deny.yaml': 'version: 1\neffect: deny\nmode: audit\nissuer: github\nmatch:\n  ref: refs/heads/main\n',
      'watch-allow.yaml': allow('  repository_id: "2"', 'audience: https://a.example', 'mode: audit\n'),
    });
    const granted = decide(set, token(set, { repository_id: '1', ref: 'refs/heads/main' }), ANY);
    expect(granted).toMatchObject({ granted: true, trace: { audit: [{ policy: 'watch-deny', would: 'deny' }] } });
    const notGranted = decide(set, token(set, { repository_id: '2', ref: 'refs/heads/dev' }), ANY);
    expect(notGranted).toMatchObject({ granted: false, reason: 'no_policy_matched', trace: { audit: [{ policy: 'watch-allow', would: 'grant' }] } });
    // Matching is not granting: an audit allow policy that does not cover the request would have refused it.
    const uncovered = decide(set, token(set, { repository_id: '2', ref: 'refs/heads/dev' }), { audiences: ['https://z.example'], scopes: undefined });
    expect(uncovered).toMatchObject({ granted: false, trace: { audit: [{ policy: 'watch-allow', would: 'deny' }] } });
  });

  it('finds candidates by index: 10,000 policies, a handful examined', () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 10_000; i++) files[`repo-${String(i).padStart(5, '0')}.yaml`] = allow(`  repository_owner_id: "42"\n  repository_id: "${i}"`);
    files['guard.yaml'] = 'version: 1\neffect: deny\nissuer: github\nmatch:\n  event_name: [pull_request_target, workflow_run]\n';
    files['wide.yaml'] = allow('  repository_owner_id: "42"\n  ref: { glob: "refs/tags/*" }');
    const set = load(files);
    const decision = decide(set, token(set, { repository_owner_id: '42', repository_id: '7777', event_name: 'push', ref: 'refs/heads/main' }), ANY);
    expect(decision.granted && decision.grant.policy.id).toBe('repo-07777');
    expect(decision.trace.candidates).toEqual(['repo-07777', 'wide']);
    const guarded = decide(set, token(set, { repository_owner_id: '42', repository_id: '7777', event_name: 'workflow_run', ref: 'refs/heads/main' }), ANY);
    expect(guarded).toMatchObject({ granted: false, reason: 'denied_by_policy', trace: { candidates: ['guard', 'repo-07777', 'wide'] } });
  });

  it('reports every line of every policy it looked at, with the actual value and whether it held', () => {
    const set = load({ 'p.yaml': allow('  repository_id: "1"\n  environment: production\n  ref: { glob: "refs/heads/*" }') });
    const subject = token(set, { repository_id: '1', ref: 'refs/tags/v1' });
    // The index shelves the policy by environment, which the token lacks: it need not look at it.
    expect(decide(set, subject, ANY).evaluations).toEqual([]);
    const decision = decide(set, subject, ANY, { everyPolicyOfIssuer: true });
    expect(decision.granted).toBe(false);
    expect(decision.evaluations).toHaveLength(1);
    expect(decision.evaluations[0]).toMatchObject({
      matched: false,
      lines: [
        { key: 'subject_audience', written: BROKER, actual: BROKER, held: true },
        { key: 'repository_id', written: '1', actual: '1', held: true },
        { key: 'environment', written: 'production', actual: undefined, held: false },
        { key: 'ref', written: { glob: 'refs/heads/*' }, actual: 'refs/tags/v1', held: false },
      ],
    });
    expect(decision.evaluations[0]).not.toHaveProperty('grant');
  });

  it('gives each matching allow policy its grant outcome, and names the missing template claim', () => {
    const set = load({
      'a.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  subject: "{environment}"'),
      'b.yaml': allow('  repository_id: "1"', 'audience: https://b.example'),
    });
    const decision = decide(set, token(set, { repository_id: '1' }), { audiences: ['https://a.example'], scopes: undefined });
    expect(decision).toMatchObject({ granted: false, reason: 'template_claim_missing' });
    expect(decision.evaluations.map((evaluation) => evaluation.grant)).toEqual([
      { ok: false, reason: 'template_claim_missing', detail: expect.stringContaining('a grant.subject reads {environment}') },
      { ok: false, reason: 'audience_not_granted', detail: 'b does not grant audience https://a.example' },
    ]);
  });

  it('refuses with the reason of the policy that came closest: a template it could not render over a scope another does not grant', () => {
    const set = load({
      'a.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  scopes: [read, write]\n  subject: "{environment}"'),
      'b.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  scopes: [read]'),
    });
    const decision = decide(set, token(set, { repository_id: '1' }), { audiences: [], scopes: ['write'] });
    expect(decision).toMatchObject({ granted: false, reason: 'template_claim_missing' });
    expect(decision.evaluations.map((evaluation) => evaluation.grant?.ok === false && evaluation.grant.reason)).toEqual([
      'template_claim_missing',
      'scope_not_granted',
    ]);
    // Whichever comes first by id: the reason weighs every matching policy's refusal.
    const swapped = load({
      'a.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  scopes: [read]'),
      'b.yaml': allow('  repository_id: "1"', 'audience: https://a.example\n  scopes: [read, write]\n  subject: "{environment}"'),
    });
    expect(decide(swapped, token(swapped, { repository_id: '1' }), { audiences: [], scopes: ['write'] })).toMatchObject({
      granted: false,
      reason: 'template_claim_missing',
      detail: expect.stringMatching(/^a does not grant scope write; b grant\.subject reads \{environment\}/),
    });
  });

  it('takes a cloud sub of exactly the cloud\u2019s limit in bytes, and refuses one a byte longer rather than cut it', () => {
    const gcp = 'cloud:\n    provider: gcp\n    workload_identity_provider: projects/123456789/locations/global/workloadIdentityPools/keyway/providers/keyway';
    const set = load({ 'g.yaml': allow('  repository_id: "1"', `subject: "gcp:{environment}"\n  ${gcp}`) });
    const cloudFor = (environment: string) => decide(set, token(set, { repository_id: '1', environment }), { audiences: [], scopes: undefined, cloud: true });
    // Google takes a sub of at most 127 bytes: "gcp:" and 123 more, two of them to each é.
    expect(cloudFor(`${'\u00e9'.repeat(61)}a`)).toMatchObject({ granted: true, grant: { subject: `gcp:${'\u00e9'.repeat(61)}a` } });
    expect(cloudFor('\u00e9'.repeat(62))).toMatchObject({
      granted: false,
      reason: 'cloud_limit_exceeded',
      detail: 'g: the sub is 128 bytes; gcp takes at most 127',
    });
  });

  it('refuses a cloud token whose session tag reads a claim the token lacks, rather than leave the tag out', () => {
    const aws =
      'cloud:\n    provider: aws\n    roles: [arn:aws:iam::123456789012:role/deploy]\n    session_tags: { Repository: "{repository}", Environment: "{environment}" }';
    const set = load({ 't.yaml': allow('  repository_id: "1"', aws) });
    const cloudFor = (claims: Record<string, unknown>) =>
      decide(set, token(set, { repository_id: '1', ...claims }), { audiences: [], scopes: undefined, cloud: true });
    expect(cloudFor({ repository: 'acme/api', environment: 'prod' })).toMatchObject({
      granted: true,
      grant: { cloud: { sessionTags: { Repository: 'acme/api', Environment: 'prod' } } },
    });
    expect(cloudFor({ repository: 'acme/api' })).toMatchObject({
      granted: false,
      reason: 'template_claim_missing',
      detail: expect.stringContaining('t grant.cloud.session_tags.Environment reads {environment}'),
    });
    expect(cloudFor({ repository: 'acme/api?x', environment: 'prod' })).toMatchObject({
      granted: false,
      reason: 'cloud_limit_exceeded',
      detail: expect.stringContaining('t: session tag Repository holds a character AWS does not allow'),
    });
  });

  it('gives a cloud token for one identity the grant names, an Azure application id in any case, and no keyway access token', () => {
    const aws = 'cloud:\n    provider: aws\n    roles: [arn:aws:iam::123456789012:role/deploy, arn:aws:iam::123456789012:role/read]';
    const azure = 'cloud:\n    provider: azure\n    tenant_id: 8d9f2c6e-1b3a-4c5d-9e7f-0a1b2c3d4e5f\n    client_ids: [3f2504e0-4f89-41d3-9a0c-0305e82c3301]';
    const set = load({ 'aws.yaml': allow('  repository_id: "1"', aws), 'azure.yaml': allow('  repository_id: "2"', azure) });
    const cloudFor = (repository: string, audiences: string[]) =>
      decide(set, token(set, { repository_id: repository }), { audiences, scopes: undefined, cloud: true });
    expect(cloudFor('1', ['arn:aws:iam::123456789012:role/read'])).toMatchObject({
      granted: true,
      grant: { cloud: { identity: 'arn:aws:iam::123456789012:role/read' } },
    });
    expect(cloudFor('1', ['arn:aws:iam::123456789012:role/deploy', 'arn:aws:iam::123456789012:role/read'])).toMatchObject({
      granted: false,
      reason: 'cloud_role_not_granted',
      detail: 'aws: a cloud token is for one role, service account or application',
    });
    expect(cloudFor('2', ['3F2504E0-4F89-41D3-9A0C-0305E82C3301'])).toMatchObject({
      granted: true,
      grant: { cloud: { identity: '3f2504e0-4f89-41d3-9a0c-0305e82c3301' } },
    });
    expect(decide(set, token(set, { repository_id: '2' }), ANY)).toMatchObject({
      granted: false,
      reason: 'audience_not_granted',
      detail: 'azure grants no keyway access token',
    });
  });

  it('reaches the same decision whether it looks at the index candidates or every policy of the issuer', () => {
    const files: Record<string, string> = {
      'guard.yaml': 'version: 1\neffect: deny\nissuer: github\nmatch:\n  event_name: [pull_request_target, workflow_run]\n',
      'audit.yaml': 'version: 1\neffect: deny\nmode: audit\nissuer: github\nmatch:\n  ref: { glob: "refs/heads/**" }\n',
      'wide.yaml': allow('  repository_owner_id: "42"\n  ref: { glob: "refs/tags/*" }', 'audience: https://w.example\n  scopes: [read]'),
      'env.yaml': allow('  repository_owner_id: "42"\n  environment: [production, staging]', 'audience: https://e.example\n  subject: "{environment}"'),
    };
    for (let i = 0; i < 30; i++) files[`repo-${i}.yaml`] = allow(`  repository_owner_id: "42"\n  repository_id: "${i}"\n  event_name: { not: schedule }`);
    const set = load(files);
    const values = {
      repository_owner_id: ['42', '43'],
      repository_id: ['0', '7', '29', '30'],
      event_name: ['push', 'schedule', 'workflow_run'],
      ref: ['refs/heads/main', 'refs/tags/v1'],
      environment: [undefined, 'production', 'dev'],
    };
    const requests: AccessRequest[] = [ANY, { audiences: ['https://e.example'], scopes: undefined }, { audiences: [], scopes: ['write'] }];
    let compared = 0;
    for (const owner of values.repository_owner_id)
      for (const repo of values.repository_id)
        for (const event of values.event_name)
          for (const ref of values.ref)
            for (const environment of values.environment)
              for (const request of requests) {
                const subject = token(set, {
                  repository_owner_id: owner,
                  repository_id: repo,
                  event_name: event,
                  ref,
                  ...(environment === undefined ? {} : { environment }),
                });
                const indexed = decide(set, subject, request);
                const everything = decide(set, subject, request, { everyPolicyOfIssuer: true });
                const summary = (d: typeof indexed) => (d.granted ? { policy: d.grant.policy.id, grant: d.grant } : { reason: d.reason, detail: d.detail });
                expect(summary(everything)).toEqual(summary(indexed));
                expect(everything.trace).toEqual(indexed.trace);
                expect(everything.evaluations.length).toBe(set.forIssuer(ISSUER).length);
                compared += 1;
              }
    expect(compared).toBe(2 * 4 * 3 * 2 * 3 * 3);
  });

  it("reads a GitLab policy file's ref (job_policy_ref_uri) after its first @, as ci_config_ref_uri's: a branch named x@refs/heads/main is not main", () => {
    const gitlab = 'https://gitlab.com';
    const set = load({
      'policy-jobs.yaml':
        'version: 1\nissuer: gitlab\nmatch:\n  project_id: "20"\n  job_policy_ref_uri: { glob: "gitlab.com/acme/policies/**@refs/heads/main" }\ngrant:\n  audience: https://a.example\n',
    });
    const issuer = set.issuer(gitlab);
    if (issuer === undefined) throw new Error('issuer not loaded');
    const asked = (uri: string) =>
      decide(
        set,
        {
          issuer,
          claims: { iss: gitlab, aud: BROKER, sub: 'project_path:acme/api:ref_type:branch:ref:main', project_id: '20', job_policy_ref_uri: uri },
        },
        ANY,
      ).granted;
    // Git allows @ in a branch name, and any developer of the policy project may push this one, without main's protection.
    expect(asked('gitlab.com/acme/policies//policy.yml@refs/heads/evil@refs/heads/main')).toBe(false);
    expect(asked('gitlab.com/acme/policies//policy.yml@refs/heads/main')).toBe(true);
    // The paths fold, as ci_config_ref_uri's do; the ref does not.
    expect(asked('gitlab.com/Acme/Policies//policy.yml@refs/heads/main')).toBe(true);
    expect(asked('gitlab.com/acme/policies//policy.yml@refs/heads/MAIN')).toBe(false);
  });
});

describe('knownToAnAllowPolicy: whether a token is of a pipeline the policies know, before they decided', () => {
  const claims = { iss: ISSUER, aud: BROKER, sub: 'repo:acme/api:ref:refs/heads/main', repository_id: '1', event_name: 'push' };
  const known = (files: Record<string, string>) => knownToAnAllowPolicy(load(files), ISSUER, claims);

  it("knows a token an enforcing allow policy's match holds for, and no other", () => {
    expect(known({ 'p.yaml': allow('  repository_id: "1"') })).toBe(true);
    expect(known({ 'p.yaml': allow('  repository_id: "2"') })).toBe(false);
    // One candidate whose match holds is enough: another pinned to the same repository, for an environment it is not in, does not hide it.
    expect(known({ 'a.yaml': allow('  repository_id: "1"\n  environment: production'), 'b.yaml': allow('  repository_id: "1"') })).toBe(true);
  });

  it('knows a token whose pipeline another caller acts for: match_actor says who may act, not whose token it is', () => {
    expect(known({ 'p.yaml': allow('  repository_id: "1"', undefined, 'match_actor: { iss: https://ci.example, sub: orchestrator }\n') })).toBe(true);
  });

  it('knows no token by a deny guardrail, which may cover every tenant, nor by an allow policy in audit mode', () => {
    expect(known({ 'guard.yaml': 'version: 1\neffect: deny\nissuer: github\nmatch:\n  event_name: push\n' })).toBe(false);
    expect(known({ 'p.yaml': allow('  repository_id: "1"', undefined, 'mode: audit\n') })).toBe(false);
  });
});
