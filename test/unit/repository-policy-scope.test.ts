import { describe, expect, it } from 'vitest';
import { splitPolicyScope } from '../../src/core/exchange/repository-policy.ts';

/** `scope=policy:NAME` names `.github/keyway/NAME.yaml` in the repository asked for: a file name, never a path. */
describe('the policy:NAME scope entry', () => {
  it('takes a name of up to a hundred characters, and leaves the rest to be GitHub permissions, or none', () => {
    const longest = `a${'.'.repeat(99)}`;
    expect(splitPolicyScope([`policy:${longest}`, 'contents:read'])).toEqual({ policy: longest, rest: ['contents:read'] });
    // No permission beside it: every permission the policy grants, as with no scope at all (not none of them).
    expect(splitPolicyScope(['policy:release'])).toEqual({ policy: 'release', rest: undefined });
    expect(splitPolicyScope(['contents:read'])).toEqual({ policy: undefined, rest: ['contents:read'] });
  });

  it.each([
    ['two policies', ['policy:release', 'policy:deploy'], 'scope names more than one repository policy'],
    ['a name of 101 characters', [`policy:a${'b'.repeat(100)}`], /is not a policy name/],
    ['a hidden file', ['policy:.release'], /is not a policy name/],
    ['a path that climbs out of .github/keyway', ['policy:release/../../../deploy'], /is not a policy name/],
    ['a path under .github/keyway', ['policy:release/prod'], /is not a policy name/],
  ])('refuses %s as a malformed request, and says why to the caller', (_what, scopes, message) => {
    expect(() => splitPolicyScope(scopes)).toThrow(expect.objectContaining({ reason: 'malformed_request', publicDescription: expect.stringMatching(message) }));
  });
});
