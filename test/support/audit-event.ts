import type { AuditEvent } from '../../src/core/audit/audit-event.ts';

let counter = 0;

/** A denied audit event with a fresh id, for tests of the stores; plain data, so a script outside vitest may use it too. */
export function auditEvent(overrides: Partial<AuditEvent> = {}): AuditEvent {
  counter += 1;
  const id = `01TEST${String(counter).padStart(6, '0')}${crypto.randomUUID().replaceAll('-', '').slice(0, 14).toUpperCase()}`;
  return {
    id,
    time: new Date().toISOString(),
    decision: 'denied',
    reason: 'no_policy_matched',
    request: { id: `req-${id}`, client_ip: '127.0.0.1' },
    subject_token: { sha256: crypto.randomUUID().replaceAll('-', '').repeat(2), claimed_iss: 'https://ci.example' },
    policy: { candidates: ['a'], matched: [], denied_by: [], audit_mode: [] },
    ...overrides,
  };
}
