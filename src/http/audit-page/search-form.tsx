import { DECISIONS } from '../../core/audit/audit-query.ts';
import { REASONS } from '../../core/errors/reasons.ts';

const TEXT_FIELDS = [
  ['since', 'since (2026-11-20, 24h, 7d)'],
  ['until', 'until'],
  ['issuer', 'issuer'],
  ['subject', 'subject'],
  ['repository', 'repository'],
  ['policy', 'policy'],
  ['jti', 'jti (issued or subject token)'],
  ['upstream', 'upstream (proxied requests)'],
] as const;

/** The filters of GET /v1/audit/events, as a form that submits to this page. */
export function SearchForm(props: { params: URLSearchParams }) {
  const value = (name: string) => props.params.get(name) ?? '';
  return (
    // biome-ignore lint/a11y/useSemanticElements: a form with role=search is the search landmark every browser and screen reader knows; <search> is newer
    <form class="search" method="get" action="/audit" role="search">
      <label>
        decision
        <select name="decision">
          <option value="">any</option>
          {DECISIONS.map((decision) => (
            <option value={decision} selected={value('decision') === decision}>
              {decision}
            </option>
          ))}
        </select>
      </label>
      <label>
        reason
        <select name="reason">
          <option value="">any</option>
          {Object.keys(REASONS).map((reason) => (
            <option value={reason} selected={value('reason') === reason}>
              {reason}
            </option>
          ))}
        </select>
      </label>
      {TEXT_FIELDS.map(([name, label]) => (
        <label>
          {label}
          <input type="text" name={name} value={value(name)} />
        </label>
      ))}
      <button type="submit">Search</button>
    </form>
  );
}
