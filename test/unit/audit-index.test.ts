import { describe, expect, it } from 'vitest';
import { auditIndex } from '../../src/core/audit/audit-index.ts';
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
