import { describe, expect, it } from 'vitest';
import {
  AuditQueryError,
  parseAuditFilter,
  parseAuditQuery,
  parseAuditStatsQuery,
  QUERY_LIMITS,
  rankCounts,
  zeroCounts,
  type DecisionCounts,
} from '../../src/core/audit/audit-query.ts';

const NOW = Date.parse('2026-11-20T10:00:00Z');
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const params = (query: string) => new URLSearchParams(query);

describe('the filters auditors send', () => {
  it('narrows by every decision named, repeated or comma-separated: none of them is dropped', () => {
    expect(parseAuditFilter(params('decision=denied&decision=malformed,error'), NOW).decisions).toEqual(['denied', 'malformed', 'error']);
    expect(parseAuditFilter(params('reason=replayed&reason=signature_invalid'), NOW).reasons).toEqual(['replayed', 'signature_invalid']);
  });

  it('reads every text filter it documents: none is left out to widen the search to everything', () => {
    const query = 'issuer=https://gh.example&subject=repo:acme/api&repository=acme/api&policy=deploy/prod&jti=j-1&upstream=github';
    expect(parseAuditFilter(params(query), NOW)).toEqual({
      issuer: 'https://gh.example',
      subject: 'repo:acme/api',
      repository: 'acme/api',
      policy: 'deploy/prod',
      jti: 'j-1',
      upstream: 'github',
    });
  });

  it('takes a span back from now in minutes, hours or days, and a date as UTC midnight', () => {
    expect(parseAuditFilter(params('since=90m&until=24h'), NOW)).toEqual({ since: NOW - 90 * MINUTE, until: NOW - 24 * HOUR });
    expect(parseAuditFilter(params('since=7d'), NOW).since).toBe(NOW - 7 * DAY);
    expect(parseAuditFilter(params('since=2026-11-19'), NOW).since).toBe(Date.UTC(2026, 10, 19));
  });

  it('takes a value of up to QUERY_LIMITS.valueChars characters, and refuses a longer one', () => {
    const at = 'x'.repeat(QUERY_LIMITS.valueChars);
    expect(parseAuditFilter(params(`subject=${at}`), NOW).subject).toBe(at);
    expect(() => parseAuditFilter(params(`subject=${at}x`), NOW)).toThrow(AuditQueryError);
  });

  it('takes a page of 1 to QUERY_LIMITS.maxPage records', () => {
    expect(parseAuditQuery(params('limit=1'), NOW).limit).toBe(1);
    expect(parseAuditQuery(params(`limit=${QUERY_LIMITS.maxPage}`), NOW).limit).toBe(QUERY_LIMITS.maxPage);
    expect(() => parseAuditQuery(params(`limit=${QUERY_LIMITS.maxPage + 1}`), NOW)).toThrow(AuditQueryError);
  });
});

describe('the window of the stats', () => {
  it('defaults to the last 24 hours, or with daily buckets the last 30 days, up to now', () => {
    expect(parseAuditStatsQuery(params(''), NOW)).toMatchObject({ since: NOW - DAY, until: NOW, bucket: 'hour' });
    expect(parseAuditStatsQuery(params('bucket=day'), NOW)).toMatchObject({ since: NOW - 30 * DAY, until: NOW, bucket: 'day' });
  });

  it('refuses an empty window: since must be before until', () => {
    expect(() => parseAuditStatsQuery(params('since=2026-11-19T00:00:00Z&until=2026-11-19T00:00:00Z'), NOW)).toThrow(/since must be before until/);
  });

  it('holds up to QUERY_LIMITS.maxBuckets buckets, and refuses one more', () => {
    const until = '2026-11-20T00:00:00Z';
    const since = (buckets: number) => new Date(Date.parse(until) - buckets * MINUTE).toISOString();
    expect(parseAuditStatsQuery(params(`bucket=minute&since=${since(QUERY_LIMITS.maxBuckets)}&until=${until}`), NOW).since).toBe(
      Date.parse(until) - QUERY_LIMITS.maxBuckets * MINUTE,
    );
    expect(() => parseAuditStatsQuery(params(`bucket=minute&since=${since(QUERY_LIMITS.maxBuckets + 1)}&until=${until}`), NOW)).toThrow(
      /more than 1000 minute buckets/,
    );
  });
});

describe('the busiest policies and repositories', () => {
  const counts = (granted: number, denied = 0): DecisionCounts => ({ ...zeroCounts(), granted, denied });

  it('ranks by all their counts, busiest first, ties by name, at most `top` of them', () => {
    const byKey = new Map<string | null, DecisionCounts>([
      ['b/tied', counts(2)],
      ['quiet', counts(1)],
      ['busy', counts(1, 4)],
      ['a/tied', counts(1, 1)],
    ]);
    expect(rankCounts(byKey, 3).map(([key]) => key)).toEqual(['busy', 'a/tied', 'b/tied']);
    expect(rankCounts(byKey, 4).map(([key]) => key)).toEqual(['busy', 'a/tied', 'b/tied', 'quiet']);
  });
});
