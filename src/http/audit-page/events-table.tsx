import type { AuditRecord } from '../../core/audit/audit-event.ts';
import { inert } from '../../core/inert-text.ts';

export function Decision(props: { decision: string }) {
  return <span class={`decision decision-${props.decision}`}>{props.decision}</span>;
}

/** One row per record, newest first; each links to its detail view. */
export function EventsTable(props: { records: readonly AuditRecord[]; older?: string }) {
  if (props.records.length === 0) return <p data-testid="no-results">No audit events match.</p>;
  return (
    <>
      <table data-testid="results">
        <thead>
          <tr>
            <th>time (UTC)</th>
            <th>decision</th>
            <th>reason</th>
            <th>subject</th>
            <th>repository</th>
            <th>policy</th>
            <th>client</th>
          </tr>
        </thead>
        <tbody>
          {props.records.map(({ event }) => (
            <tr data-event-id={event.id}>
              <td>
                <a href={`/audit/events/${encodeURIComponent(event.id)}`}>{event.time.replace('T', ' ').replace('Z', '')}</a>
              </td>
              <td>
                <Decision decision={event.decision} />
              </td>
              <td>{event.reason}</td>
              <td>{inert(event.subject ?? (event.subject_token?.claimed_sub === undefined ? '' : `${event.subject_token.claimed_sub} (claimed)`))}</td>
              <td>{inert(String(event.claims?.['repository'] ?? event.claims?.['project_path'] ?? ''))}</td>
              <td>{inert(event.policy?.granted_by ?? event.policy?.denied_by[0] ?? '')}</td>
              <td>{inert(event.request.client_ip ?? '')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.older === undefined ? null : (
        <p class="pager">
          <a href={props.older} rel="next">
            older events →
          </a>
        </p>
      )}
    </>
  );
}
