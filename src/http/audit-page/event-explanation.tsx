import { inert } from '../../core/inert-text.ts';
import type { AuditEventExplanation } from '../../core/policy/explain-audit-event.ts';

const show = (value: unknown): string => inert(typeof value === 'string' ? value : JSON.stringify(value));

/** The policy explanation of one recorded decision: which set it ran against, then every policy of the issuer line by line. */
export function EventExplanation(props: { explanation: AuditEventExplanation }) {
  const { explanation } = props;
  if (!explanation.evaluated) {
    return (
      <section data-testid="event-explanation">
        <h2>Explanation</h2>
        <p class="notice">{inert(explanation.note)}</p>
      </section>
    );
  }
  const { decision, closest, cut } = explanation;
  const faithful = explanation.policy_set.same && cut.claims.length === 0 && cut.request.length === 0;
  return (
    <section data-testid="event-explanation">
      <h2>Explanation</h2>
      <p class={faithful ? '' : 'notice'} data-field="policy set">
        {inert(explanation.note)}
      </p>
      <dl>
        <dt>decision now</dt>
        <dd data-field="decision now">{inert(decision.granted ? `granted by ${decision.policy}` : `denied (${decision.reason}): ${decision.detail}`)}</dd>
        <dt>closest allow policy</dt>
        <dd data-field="closest">
          {inert(closest === null ? '—' : `${closest.policy}${closest.failed_claims.length === 0 ? '' : ` (failed: ${closest.failed_claims.join(', ')})`}`)}
        </dd>
        <dt>deny guardrails fired</dt>
        <dd data-field="guardrails">{inert(explanation.denied_by.length === 0 ? '—' : explanation.denied_by.join(', '))}</dd>
      </dl>
      <table>
        <thead>
          <tr>
            <th>policy</th>
            <th>line</th>
            <th>matcher</th>
            <th>recorded value</th>
          </tr>
        </thead>
        <tbody>
          {explanation.policies.flatMap((policy) =>
            policy.lines.map((line) => (
              <tr data-policy={policy.id} data-claim={line.claim} data-held={String(line.held)}>
                <td>{inert(`${policy.matched ? '✓' : '✗'} ${policy.id} (${policy.effect}${policy.mode === 'audit' ? ', audit' : ''})`)}</td>
                <td>{inert(`${line.held ? '✓' : '✗'} ${line.claim}`)}</td>
                <td>{show(line.matcher)}</td>
                <td>{'actual' in line ? show(line.actual) : '(absent)'}</td>
              </tr>
            )),
          )}
        </tbody>
      </table>
    </section>
  );
}
