import { inert } from '../../core/inert-text.ts';
import type { StoredAlert } from '../../features/alerts/alert.ts';

export function AlertsList(props: { alerts: readonly StoredAlert[] }) {
  if (props.alerts.length === 0) return <p data-testid="no-alerts">No alerts.</p>;
  return (
    <table data-testid="alerts">
      <thead>
        <tr>
          <th>time (UTC)</th>
          <th>rule</th>
          <th>what happened</th>
          <th>webhook</th>
        </tr>
      </thead>
      <tbody>
        {props.alerts.map((alert) => (
          <tr data-rule={alert.rule}>
            <td>
              <a href={`/audit/events/${encodeURIComponent(alert.event_id)}`}>{alert.time.replace('T', ' ').replace('Z', '')}</a>
            </td>
            <td>{alert.rule}</td>
            <td>{inert(alert.summary)}</td>
            <td>{alert.delivery === 'none' ? '—' : `${alert.delivery} (${alert.attempts})`}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
