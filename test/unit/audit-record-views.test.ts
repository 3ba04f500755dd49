import { describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/core/audit/audit-event.ts';
import { CSV_HEADER, csvRow } from '../../src/core/audit/csv.ts';
import { EventDetail } from '../../src/http/audit-page/event-detail.tsx';

// The outcome record of a call through a keyway-jwt upstream: what keyway minted for it is named by the JWT's jti,
// which the issued_jti index column holds, so every view of the record names it as `?jti=` finds it.
const proxied: AuditRecord = {
  event: {
    id: '01PROXIEDOUTCOME0000000000',
    time: '2026-12-04T17:00:00.000Z',
    decision: 'granted',
    reason: 'proxy_completed',
    request: { id: 'req-proxied' },
    proxy: {
      upstream: 'svc',
      method: 'GET',
      path: '/x/report',
      credential: { jti: '019aee00-0000-7000-8000-00000000beef' },
      decision_id: '01PROXIEDDECISION000000000',
      status: 200,
    },
  },
  chain: { seq: 7, prev_hash: '0'.repeat(64), hash: 'f'.repeat(64) },
};

describe('the views of a proxied call’s outcome record', () => {
  it('exports the keyway JWT minted for the call in the CSV’s issued_jti column', () => {
    const header = CSV_HEADER.trimEnd().split(',');
    const row = csvRow(proxied).trimEnd().split(',');
    expect(row[header.indexOf('issued_jti')]).toBe('019aee00-0000-7000-8000-00000000beef');
  });

  it('shows the keyway JWT and the decision it completes on the /audit page', () => {
    const html = String(EventDetail({ record: proxied }));
    const field = (name: string) => new RegExp(`<dd data-field="${name}">([^<]*)</dd>`).exec(html)?.[1];
    expect(field('issued jti')).toBe('019aee00-0000-7000-8000-00000000beef');
    expect(field('proxy upstream / request')).toBe('svc GET /x/report');
    expect(field('proxy credential scope')).toBe('—');
    expect(field('proxy decision / status')).toBe('01PROXIEDDECISION000000000 / 200');
  });

  it('shows a GitHub App call’s credential: its scope, the owner and repository ids it was held to, the token’s SHA-256', () => {
    const github: AuditRecord = {
      ...proxied,
      event: {
        ...proxied.event,
        proxy: {
          upstream: 'github',
          method: 'GET',
          path: '/repos/umbrella/config/contents/settings.yaml',
          credential: {
            repository: 'umbrella/config',
            permissions: { contents: 'read' },
            owner_id: '4343',
            repository_id: 71020,
            token_sha256: 'a'.repeat(64),
          },
          decision_id: '01PROXIEDDECISION000000000',
          status: 200,
        },
      },
    };
    const html = String(EventDetail({ record: github }));
    const field = (name: string) => new RegExp(`<dd data-field="${name}">([^<]*)</dd>`).exec(html)?.[1];
    expect(field('proxy credential scope')).toBe('umbrella/config contents:read');
    expect(field('proxy owner id / repository id')).toBe('4343 / 71020');
    expect(field('proxy token sha256')).toBe('a'.repeat(64));
    expect(field('issued jti')).toBe('—');
  });
});
