import { describe, expect, it } from 'vitest';
import { publicReasonName, REASONS, type Reason, type Refusal } from '../../src/core/errors/reasons.ts';
import { OAUTH_ERRORS } from '../../src/http/oauth-errors.ts';
import { documentedReasonCodes } from '../support/reason-code-docs.ts';

/**
 * What the HTTP layer answers for a reason: a granted exchange (or a revocation or introspection made) is a 200 with no
 * error; a sign-in to the /audit page is its form's 303 to the page (test/suites/audit-api-suite.ts holds it to that).
 */
const answered = (reason: Reason): { readonly status: string; readonly error: string } => {
  const spec = REASONS[reason];
  return spec.decision === 'granted'
    ? { status: reason === 'audit_page_signed_in' ? '303' : '200', error: '' }
    : { status: String(OAUTH_ERRORS[reason as Refusal].status), error: OAUTH_ERRORS[reason as Refusal].error };
};

describe('the documented reason codes', () => {
  const { file, columns, rows } = documentedReasonCodes();

  it('are exactly the codes the broker records, each once', () => {
    const documented = rows.map((row) => row['reason']);
    expect(new Set(documented).size, `${file} lists a reason twice`).toBe(documented.length);
    expect([...documented].sort(), file).toEqual(Object.keys(REASONS).sort());
  });

  it('each name the decision the audit record holds', () => {
    const decisions = Object.fromEntries(rows.map((row) => [row['reason'], row['decision']]));
    expect(decisions, file).toEqual(Object.fromEntries(Object.entries(REASONS).map(([reason, spec]) => [reason, spec.decision])));
  });

  it('give the status and RFC 6749 error http/oauth-errors.ts answers, in the columns that name them', () => {
    const shown = columns.filter((column) => column === 'status' || column === 'error');
    const documented = Object.fromEntries(
      rows.map((row) => [row['reason'], Object.fromEntries(shown.map((column) => [column, row[column]?.replace(/^—$/, '') ?? '']))]),
    );
    const expected = Object.fromEntries(
      Object.keys(REASONS).map((reason) => [
        reason,
        Object.fromEntries(shown.map((column) => [column, answered(reason as Reason)[column as 'status' | 'error']])),
      ]),
    );
    expect(documented, file).toEqual(expected);
  });
});

describe("the names a caller sees for reasons (the proxy's Keyway-Error)", () => {
  it('are one for reasons whose descriptions are one on purpose, and the reason itself for every other', () => {
    const reasons = Object.keys(REASONS) as Reason[];
    for (const reason of reasons) {
      const alike = reasons.filter((other) => REASONS[other].description === REASONS[reason].description);
      expect(new Set(alike.map(publicReasonName)), `${reason} shares its description with ${alike.join(', ')}`).toEqual(new Set([publicReasonName(reason)]));
      if (alike.length === 1) expect(publicReasonName(reason)).toBe(reason);
    }
    expect(publicReasonName('signature_invalid')).toBe('subject_token_unverified');
    expect(publicReasonName('denied_by_policy')).toBe('no_policy_matched');
  });
});
