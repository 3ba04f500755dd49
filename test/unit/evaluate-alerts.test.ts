import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/settings/read-settings.ts';
import type { AlertObservation } from '../../src/features/alerts/alert-store.ts';
import { readAlertSettings } from '../../src/features/alerts/alert-settings.ts';
import { evaluateAlerts } from '../../src/features/alerts/evaluate-alerts.ts';
import { PolicySet } from '../../src/core/policy/policy-set.ts';
import { auditEvent } from '../support/audit-event.ts';

const settings = readAlertSettings({ KEYWAY_ALERT_BURST_THRESHOLD: '3' }, false);
const quiet: AlertObservation = {
  identityDenials: 1,
  addressDenials: 1,
  earlierPresentations: 0,
  earlierGrant: false,
  firstForPolicies: [],
  newNetwork: false,
};
const noPolicies = new PolicySet([]);
const token = (sha: string) => ({ sha256: sha.repeat(64), claimed_iss: 'https://ci.example', claimed_sub: 'repo:acme/api' });

describe('the alert rules on one event', () => {
  it('raise a replayed subject token when it is granted now after a refusal, or refused now after a grant: not on its first presentation, nor between refusals', () => {
    const replayed = (decision: 'granted' | 'denied', earlierGrant: boolean, earlierPresentations = 1) =>
      evaluateAlerts(auditEvent({ decision, subject_token: token('a') }), { ...quiet, earlierPresentations, earlierGrant }, noPolicies, settings).map(
        (draft) => draft.rule,
      );
    expect(replayed('granted', false)).toEqual(['subject_token_replayed']);
    expect(replayed('denied', true)).toEqual(['subject_token_replayed']);
    expect(replayed('denied', false)).toEqual([]);
    expect(replayed('granted', false, 0)).toEqual([]);
  });

  it('keep one replayed-token alert per token: another token replayed is raised too', () => {
    const dedupe = (sha: string) =>
      evaluateAlerts(auditEvent({ decision: 'granted', subject_token: token(sha) }), { ...quiet, earlierPresentations: 1 }, noPolicies, settings)[0]?.dedupe;
    expect([dedupe('a'), dedupe('a'), dedupe('b')]).toEqual([
      `subject_token_replayed:${'a'.repeat(64)}`,
      `subject_token_replayed:${'a'.repeat(64)}`,
      `subject_token_replayed:${'b'.repeat(64)}`,
    ]);
  });

  it('name an identity a token only claimed as claimed, and a verified one as it is', () => {
    const burst = (overrides: Parameters<typeof auditEvent>[0]) =>
      evaluateAlerts(auditEvent(overrides), { ...quiet, identityDenials: 3 }, noPolicies, settings)[0]?.details['identity'];
    expect(burst({ subject_token: token('c') })).toBe('repo:acme/api (claimed, from https://ci.example)');
    expect(burst({ issuer: 'https://gh.example', subject: 'repo:acme/web' })).toBe('repo:acme/web (https://gh.example)');
  });

  it("keep one retired-policy alert per account of a subject, and name the account: another account's use of the same sub is raised too", () => {
    const retired = (owner: string) =>
      evaluateAlerts(
        auditEvent({
          issuer: 'https://token.actions.githubusercontent.com',
          issuer_kind: 'github',
          subject: 'repo:acme/workflows/.github/workflows/deploy.yml@refs/heads/main',
          claims: { repository_owner_id: owner },
        }),
        { ...quiet, lastGrantedPolicy: 'deploy' },
        noPolicies,
        settings,
      ).find((draft) => draft.rule === 'retired_policy');
    expect(retired('1')?.details['account']).toBe('tenant 1');
    expect(retired('2')?.details['account']).toBe('tenant 2');
    expect(retired('1')?.dedupe).toBe(retired('1')?.dedupe);
    expect(retired('1')?.dedupe).not.toBe(retired('2')?.dedupe);
  });
});

describe('KEYWAY_ALERT_RULES', () => {
  it('refuses a blank list rather than running no rule, which only none asks for', () => {
    expect(readAlertSettings({ KEYWAY_ALERT_RULES: '' }, false).rules.size).toBeGreaterThan(1);
    expect(readAlertSettings({ KEYWAY_ALERT_RULES: 'none' }, false).rules.size).toBe(0);
    for (const value of [' ', '\n', ',', ' , ']) {
      expect(() => readAlertSettings({ KEYWAY_ALERT_RULES: value }, false), JSON.stringify(value)).toThrow(
        new ConfigError('KEYWAY_ALERT_RULES names no rule: write all, none, or rule names'),
      );
    }
  });
});
