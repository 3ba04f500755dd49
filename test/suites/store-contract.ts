import { describe, expect, it } from 'vitest';
import type { AuditEvent, AuditStore } from '../../src/audit/audit-event.ts';
import { generateSigningKey } from '../../src/tokens/generate-signing-key.ts';
import type { KeyStore } from '../../src/tokens/key-store.ts';

export interface Stores {
  readonly audit: AuditStore;
  readonly keys: KeyStore;
}

function event(id: string, overrides: Partial<AuditEvent> = {}): AuditEvent {
  return {
    id,
    time: new Date().toISOString(),
    decision: 'denied',
    reason: 'no_policy_matched',
    request: { id: `req-${id}`, client_ip: '127.0.0.1' },
    subject_token: { sha256: 'ab'.repeat(32), claimed_iss: 'https://ci.example' },
    policy: { candidates: ['a'], matched: [], denied_by: [], audit_mode: [] },
    ...overrides,
  };
}

/** What every AuditStore and KeyStore adapter must do, whichever runtime holds it. */
export function storeContract(runtime: string, open: () => Promise<Stores>): void {
  describe(`stores on ${runtime}`, () => {
    it('appends an audit event and reads it back exactly', async () => {
      const { audit } = await open();
      const id = `01TEST${crypto.randomUUID().replaceAll('-', '').slice(0, 20).toUpperCase()}`;
      const written = event(id, { claims: { repository_id: '1', aud: ['a', 'b'] }, issued: { jti: 'j', sub: 's', aud: ['x'], scope: ['r'], exp: 1 } });
      await audit.append(written);
      expect(await audit.get(id)).toEqual(written);
      expect(await audit.get('missing')).toBeUndefined();
    });

    it('refuses a second event with the same id', async () => {
      const { audit } = await open();
      const id = `01DUP${crypto.randomUUID().slice(0, 8)}`;
      await audit.append(event(id));
      await expect(audit.append(event(id))).rejects.toThrow();
    });

    it('initialises the key ring once: concurrent first starts agree on one current key', async () => {
      const { keys } = await open();
      const [a, b] = await Promise.all([generateSigningKey(Date.now()), generateSigningKey(Date.now())]);
      const [first, second] = await Promise.all([keys.initializeKeys(a), keys.initializeKeys(b)]);
      const current = (ring: typeof first) => ring.filter((key) => key.state === 'current').map((key) => key.kid);
      expect(current(first)).toHaveLength(1);
      expect(current(second)).toEqual(current(first));
      expect(current(await keys.listKeys())).toEqual(current(first));
      const stored = (await keys.listKeys()).find((key) => key.state === 'current');
      expect(stored?.privateJwk.d).toBeTypeOf('string');
      expect(stored?.publicJwk).not.toHaveProperty('d');
    });
  });
}
