import { describe, expect, it } from 'vitest';
import { AUDIT_INDEX_COLUMNS, auditIndex } from '../../src/core/audit/audit-index.ts';
import { auditEvent } from '../support/audit-event.ts';

describe('auditIndex issued_jti', () => {
  it('is the jti of the token /token issued, else of the keyway JWT a proxied call carried (its outcome record): both found by ?jti=', () => {
    expect(auditIndex(auditEvent({ issued: { jti: 'issued-1', sub: 's', aud: ['a'], scope: [], exp: 1 } })).issued_jti).toBe('issued-1');
    const outcome = auditEvent({ proxy: { upstream: 'svc', method: 'GET', path: '/x', decision_id: 'd', credential: { jti: 'proxy-jwt-1' } } });
    expect(auditIndex(outcome).issued_jti).toBe('proxy-jwt-1');
    const github = auditEvent({
      proxy: { upstream: 'github', method: 'GET', path: '/x', credential: { repository: 'acme/api', token_sha256: 'ab'.repeat(32) } },
    });
    expect(auditIndex(github).issued_jti).toBeNull();
  });
});

describe('the index columns', () => {
  it('are every column auditIndex derives, each once: each is stored, and verify holds each to the event', () => {
    expect([...AUDIT_INDEX_COLUMNS].sort()).toEqual(Object.keys(auditIndex(auditEvent())).sort());
  });

  it('name a GitLab project by its project_path, as a GitHub repository by its repository', () => {
    expect(auditIndex(auditEvent({ claims: { project_path: 'acme/app' } })).repository).toBe('acme/app');
    expect(auditIndex(auditEvent({ claims: { repository: 'acme/api', project_path: 'other/x' } })).repository).toBe('acme/api');
  });

  it('name the first denying policy of a denial, as its record lists them', () => {
    const denied = auditEvent({ policy: { candidates: ['guard', 'org'], matched: [], denied_by: ['guard', 'org'], audit_mode: [] } });
    expect(auditIndex(denied).policy_id).toBe('guard');
  });

  it("keep the record's time to the millisecond, so that a window's bounds are exact", () => {
    expect(auditIndex(auditEvent({ time: '2026-11-20T10:00:00.999Z' })).time).toBe(Date.parse('2026-11-20T10:00:00.999Z'));
  });
});
