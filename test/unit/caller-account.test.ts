import { describe, expect, it } from 'vitest';
import { accountBucketKey, callerAccount, subjectBucketKey, tenantOf } from '../../src/core/claims/caller-account.ts';

describe('callerAccount', () => {
  const issuer = 'https://token.actions.githubusercontent.com';

  it("charges a caller to its issuer's first tenant claim, read by name or JSON Pointer, whatever its subject", () => {
    const claims = { sub: 'repo:acme/api:ref:refs/heads/b1', repository_owner_id: '1200934', repository_id: '734201' };
    expect(callerAccount(issuer, ['repository_owner_id', 'repository_id'], claims)).toEqual({ issuer, account: 'tenant 1200934', tenant: '1200934' });
    expect(callerAccount(issuer, ['repository_owner_id'], { ...claims, sub: 'repo:acme/api:ref:refs/heads/b2' })).toEqual({
      issuer,
      account: 'tenant 1200934',
      tenant: '1200934',
    });
    expect(callerAccount(issuer, ['/kubernetes.io/namespace'], { sub: 'system:serviceaccount:ci:deployer', 'kubernetes.io': { namespace: 'ci' } })).toEqual({
      issuer,
      account: 'tenant ci',
      tenant: 'ci',
    });
  });

  it('charges a caller whose token holds no tenant as a scalar, or whose issuer names none, to its subject, spelled apart from any tenant', () => {
    expect(callerAccount(issuer, [], { sub: '1200934' })).toEqual({ issuer, account: 'subject 1200934' });
    expect(callerAccount(issuer, ['repository_owner_id'], { sub: 'svc-b' })).toEqual({ issuer, account: 'subject svc-b' });
    expect(callerAccount(issuer, ['repository_owner_id'], { sub: 'svc-b', repository_owner_id: { id: 1 } })).toEqual({ issuer, account: 'subject svc-b' });
    expect(callerAccount(issuer, ['repository_owner_id'], { sub: 'x', repository_owner_id: '1' })).not.toEqual(callerAccount(issuer, [], { sub: '1' }));
  });

  it('reads the first tenant claim only: a later one is never the tenant', () => {
    expect(tenantOf(['repository_owner_id', 'repository_id'], { repository_id: '734201' })).toBeUndefined();
    expect(tenantOf([], { repository_owner_id: '1' })).toBeUndefined();
  });

  it("keys no two callers' buckets alike, whatever line feeds their account and subject hold", () => {
    const account = (name: string) => ({ issuer, account: name });
    expect(subjectBucketKey(account('tenant a\nb'), 'c')).not.toBe(subjectBucketKey(account('tenant a'), 'b\nc'));
    expect(accountBucketKey(account('tenant a\nb'))).not.toBe(subjectBucketKey(account('tenant a'), 'b'));
    // A subject's bucket for one audience (request-limits.ts adds it after a line feed) is no other subject's own.
    expect(`${subjectBucketKey(account('tenant a'), 'main')}\n"x"`).not.toBe(subjectBucketKey(account('tenant a'), 'main\n"x"'));
  });
});
