import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/core/audit/audit-event.ts';
import { AUDIT_BOUNDS, boundAuditEvent, boundJson, boundText, jsonShowsCut, textShowsCut } from '../../src/core/audit/bound-audit-event.ts';

const serializedLength = (value: unknown): number => JSON.stringify(value).length;

describe('bounding what a caller chose', () => {
  it('keeps short text as it is and cuts long text to its bound, marked with …', () => {
    expect(boundText('repo:acme/api')).toBe('repo:acme/api');
    expect(boundText('x'.repeat(AUDIT_BOUNDS.text))).toBe('x'.repeat(AUDIT_BOUNDS.text));
    expect(boundText('x'.repeat(10_000))).toBe(`${'x'.repeat(AUDIT_BOUNDS.text - 1)}…`);
    expect(boundText('y'.repeat(5000), AUDIT_BOUNDS.detail)).toHaveLength(AUDIT_BOUNDS.detail);
  });

  it('counts text as JSON serializes it, so escapes cannot multiply a record', () => {
    const controls = boundText('\u0001'.repeat(10_000));
    expect(serializedLength(controls) - 2).toBeLessThanOrEqual(AUDIT_BOUNDS.text);
    expect(controls.length).toBe(Math.floor((AUDIT_BOUNDS.text - 1) / 6) + 1);
    expect(serializedLength(boundText('"\\'.repeat(10_000))) - 2).toBeLessThanOrEqual(AUDIT_BOUNDS.text);
    expect(serializedLength(boundText('\ud800'.repeat(10_000))) - 2).toBeLessThanOrEqual(AUDIT_BOUNDS.text);
  });

  it('never splits a surrogate pair', () => {
    const cut = boundText(`x${'😀'.repeat(1000)}`);
    expect(cut.endsWith('😀…')).toBe(true);
    expect(cut.isWellFormed()).toBe(true);
  });

  it('cuts lists to their entry bound and to their budget, saying how many were left out', () => {
    const many = Array.from({ length: 400 }, (_, index) => `s${index}`);
    const bounded = boundJson(many, AUDIT_BOUNDS.value) as string[];
    expect(bounded).toHaveLength(AUDIT_BOUNDS.entries + 1);
    expect(bounded.slice(0, 2)).toEqual(['s0', 's1']);
    expect(bounded.at(-1)).toBe(`…${400 - AUDIT_BOUNDS.entries} more`);

    const long = Array.from({ length: 10 }, (_, index) => `${index}${'a'.repeat(2047)}`);
    const cut = boundJson(long, AUDIT_BOUNDS.value) as string[];
    expect(serializedLength(cut)).toBeLessThanOrEqual(AUDIT_BOUNDS.value);
    expect(cut[0]).toHaveLength(AUDIT_BOUNDS.text);
    expect(cut.at(-1)).toMatch(/^…\d+ more$/);
    expect(boundJson(['a', 'b'], AUDIT_BOUNDS.value)).toEqual(['a', 'b']);
  });

  it('keeps a nested value within one budget, keys included', () => {
    const groups = Array.from({ length: 50 }, () => ({ name: 'n'.repeat(3000), ids: Array.from({ length: 50 }, (_, index) => index) }));
    const nested = { [`k${'e'.repeat(5000)}`]: 'v', groups };
    const bounded = boundJson(nested, AUDIT_BOUNDS.value) as Record<string, unknown>;
    expect(serializedLength(bounded)).toBeLessThanOrEqual(AUDIT_BOUNDS.value);
    expect(Object.keys(bounded)[0]).toHaveLength(AUDIT_BOUNDS.text);
    expect(boundJson({ namespace: 'ci', uid: 7, ok: true, none: null }, AUDIT_BOUNDS.value)).toEqual({ namespace: 'ci', uid: 7, ok: true, none: null });
  });

  it('bounds every caller-chosen field of a record and leaves what configuration decides', () => {
    const huge = 'h'.repeat(20_000);
    const event: AuditEvent = {
      id: '01JCUT',
      time: '2026-12-03T07:00:00.000Z',
      decision: 'denied',
      reason: 'no_policy_matched',
      detail: huge,
      request: { id: huge, client_ip: huge, user_agent: huge, audience: [huge, huge], scope: Array.from({ length: 100 }, (_, index) => `s${index}`) },
      subject_token: { sha256: 'ab'.repeat(32), jti: huge, claimed_iss: huge, claimed_sub: huge },
      issuer: `https://ci.example/${'p'.repeat(300)}`,
      subject: huge,
      claims: { aud: [huge, huge, huge], sub: huge, repository_id: '734201' },
      policy: { candidates: ['a/b'], matched: [], denied_by: [], audit_mode: [] },
      issued: { jti: 'j', sub: huge, aud: [huge], scope: ['deploy:write'], exp: 1 },
    };
    const bounded = boundAuditEvent(event);
    expect(serializedLength(bounded)).toBeLessThan(16 * 1024);
    expect(bounded.detail).toHaveLength(AUDIT_BOUNDS.detail);
    const { request, subject_token: token } = bounded;
    const texts = [request.id, request.client_ip, request.user_agent, token?.jti, token?.claimed_iss, token?.claimed_sub, bounded.subject, bounded.issued?.sub];
    for (const text of texts) {
      expect(text).toHaveLength(AUDIT_BOUNDS.text);
    }
    expect(bounded.request.scope).toHaveLength(AUDIT_BOUNDS.entries + 1);
    expect(bounded.claims?.['repository_id']).toBe('734201');
    expect(bounded.issuer).toBe(event.issuer);
    expect(bounded.policy).toEqual(event.policy);
    expect(bounded.issued?.scope).toEqual(['deploy:write']);
    expect(bounded.subject_token?.sha256).toBe(event.subject_token?.sha256);
    const plain = boundAuditEvent({ id: 'x', time: 't', decision: 'malformed', reason: 'malformed_request', request: { id: 'r' } });
    // Only the fields the event has, in the order of the record's JCS text (what lets jcs() encode it by JSON.stringify).
    expect(Object.keys(plain)).toEqual(['decision', 'id', 'reason', 'request', 'time']);
  });

  it("bounds a delegated exchange's actor as the subject: its subject and the run ids its token named", () => {
    const huge = 'h'.repeat(20_000);
    const bounded = boundAuditEvent({
      id: '01JCUT',
      time: '2026-12-03T07:00:00.000Z',
      decision: 'granted',
      reason: 'granted',
      request: { id: 'r' },
      actor: {
        sha256: 'cd'.repeat(32),
        issuer: 'https://token.actions.githubusercontent.com',
        subject: huge,
        run: { run_id: huge, repository_id: '734201', run_attempt: '1' },
      },
    });
    expect(bounded.actor?.subject).toHaveLength(AUDIT_BOUNDS.text);
    expect(bounded.actor?.run?.run_id).toHaveLength(AUDIT_BOUNDS.text);
    expect(bounded.actor?.run?.repository_id).toBe('734201');
    expect(bounded.actor?.issuer).toBe('https://token.actions.githubusercontent.com');
    // In the order of the record's JCS text.
    expect(Object.keys(bounded.actor ?? {})).toEqual(['issuer', 'run', 'sha256', 'subject']);
    expect(Object.keys(bounded.actor?.run ?? {})).toEqual(['repository_id', 'run_attempt', 'run_id']);
  });
});

describe('reading a cut in what a record kept', () => {
  /** Characters of every JSON width: one, an escape of two, a surrogate pair, a control and a lone surrogate (six each). */
  const widths = ['x', '"', '\n', '😀', '\u0001', '\ud800', 'é'];

  it('reads every cut boundText makes as cut, whatever the width of the character it stopped before', () => {
    for (const max of [AUDIT_BOUNDS.text, 40, 7, 1]) {
      for (const head of widths) {
        for (const tail of widths) {
          for (let pad = 0; pad < 8; pad += 1) {
            const cut = boundText(`${'a'.repeat(pad)}${head.repeat(max)}${tail.repeat(max)}`, max);
            expect(textShowsCut(cut, max), JSON.stringify({ max, head, tail, pad, cut })).toBe(true);
          }
        }
      }
    }
  });

  it('does not read a value ending in … as cut unless it ends where a cut would', () => {
    expect(textShowsCut('refs/heads/wait…')).toBe(false);
    expect(textShowsCut(`${'x'.repeat(AUDIT_BOUNDS.text - 7)}…`)).toBe(false);
    expect(textShowsCut('x'.repeat(AUDIT_BOUNDS.text))).toBe(false);
    // A whole value of exactly a cut's shape: the record cannot tell it from a cut one, so it counts as cut.
    expect(textShowsCut(`${'x'.repeat(AUDIT_BOUNDS.text - 1)}…`)).toBe(true);
  });

  it('reads a cut list by its marker and by the budget each entry had, short of the text bound', () => {
    expect(
      jsonShowsCut(
        boundJson(
          Array.from({ length: 40 }, (_, index) => `s${index}`),
          AUDIT_BOUNDS.value,
        ),
        AUDIT_BOUNDS.value,
      ),
    ).toBe(true);
    expect(jsonShowsCut(['https://deploy.example', 'wait…'], AUDIT_BOUNDS.value)).toBe(false);
    // Seven whole entries of 256 leave the eighth 216 characters: it is cut to 214, and no entry is left out (no marker).
    const full = [...Array.from({ length: 7 }, () => 'a'.repeat(AUDIT_BOUNDS.text)), 'b'.repeat(AUDIT_BOUNDS.text)];
    const bounded = boundJson(full, AUDIT_BOUNDS.value) as string[];
    expect(bounded).toHaveLength(8);
    expect(bounded[7]).toMatch(/^b{100,250}…$/);
    expect(jsonShowsCut(bounded, AUDIT_BOUNDS.value)).toBe(true);
    expect(jsonShowsCut(bounded.slice(0, 7), AUDIT_BOUNDS.value)).toBe(false);
    // Cut before a character of the widest JSON size, the eighth keeps the least a cut to 214 can: 208 characters and ….
    const wide = boundJson([...full.slice(0, 7), `${'b'.repeat(208)}\u0001${'b'.repeat(100)}`], AUDIT_BOUNDS.value) as string[];
    expect(wide[7]).toBe(`${'b'.repeat(208)}…`);
    expect(jsonShowsCut(wide, AUDIT_BOUNDS.value)).toBe(true);
    // A cut inside an object or a list the list holds.
    expect(jsonShowsCut(boundJson([{ team: 'x'.repeat(300) }], AUDIT_BOUNDS.value), AUDIT_BOUNDS.value)).toBe(true);
    expect(jsonShowsCut(boundJson([['x'.repeat(300)]], AUDIT_BOUNDS.value), AUDIT_BOUNDS.value)).toBe(true);
    expect(jsonShowsCut([{ team: 'ops' }, ['a']], AUDIT_BOUNDS.value)).toBe(false);
  });

  it('reads a cut object by its … key, a cut key, or any member ending in …', () => {
    expect(
      jsonShowsCut(boundJson(Object.fromEntries(Array.from({ length: 20 }, (_, index) => [`k${index}`, index])), AUDIT_BOUNDS.value), AUDIT_BOUNDS.value),
    ).toBe(true);
    expect(jsonShowsCut(boundJson({ [`k${'e'.repeat(300)}`]: 1 }, AUDIT_BOUNDS.value), AUDIT_BOUNDS.value)).toBe(true);
    // The record keeps an object's members in JCS order, not the order they were cut in: their budgets are not known.
    expect(jsonShowsCut({ team: 'ops…' }, AUDIT_BOUNDS.value)).toBe(true);
    expect(jsonShowsCut({ namespace: 'ci', uid: 7, groups: ['a', 'b'] }, AUDIT_BOUNDS.value)).toBe(false);
    expect(jsonShowsCut(7, AUDIT_BOUNDS.value)).toBe(false);
    expect(jsonShowsCut(undefined, AUDIT_BOUNDS.value)).toBe(false);
  });
});
