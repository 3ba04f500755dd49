import type { Count, Inventory, InventorySort } from '../../core/audit/inventory.ts';
import { inert } from '../../core/inert-text.ts';

const counts = (list: readonly Count[]) => inert(list.map((entry) => `${entry.value} ×${entry.count}`).join(', '));

/** The identity inventory for people: one row per identity; each sortable column header links to the page sorted by it. */
export function InventoryTable(props: { inventory: Inventory; params: URLSearchParams }) {
  const sortBy = (sort: InventorySort) => {
    const next = new URLSearchParams(props.params);
    next.set('sort', sort);
    next.delete('order');
    return `/audit/inventory?${next}`;
  };
  const { inventory } = props;
  return (
    <>
      <form class="search" method="get" action="/audit/inventory">
        <label>
          since <input name="since" value={props.params.get('since') ?? ''} placeholder="30d" />
        </label>{' '}
        <label>
          repository <input name="repository" value={props.params.get('repository') ?? ''} />
        </label>{' '}
        <label>
          policy <input name="policy" value={props.params.get('policy') ?? ''} />
        </label>{' '}
        <button type="submit">filter</button>
      </form>
      <p data-testid="inventory-window">
        {inventory.identities.length} identit{inventory.identities.length === 1 ? 'y' : 'ies'} from {inventory.since} to {inventory.until}
      </p>
      {inventory.identities.length === 0 ? (
        <p data-testid="no-identities">No identity was seen in this window.</p>
      ) : (
        <table data-testid="inventory">
          <thead>
            <tr>
              <th>
                <a href={sortBy('identity')}>identity</a>
              </th>
              <th>tenant</th>
              <th>
                <a href={sortBy('grants')}>grants</a>
              </th>
              <th>
                <a href={sortBy('denials')}>denials</a>
              </th>
              <th>
                <a href={sortBy('first_seen')}>first seen</a>
              </th>
              <th>
                <a href={sortBy('last_seen')}>last seen</a>
              </th>
              <th>policies</th>
              <th>granted</th>
              <th>refused for</th>
            </tr>
          </thead>
          <tbody>
            {inventory.identities.map((identity) => (
              <tr data-identity={inert(identity.repository ?? identity.subject ?? '')}>
                <td title={inert(identity.issuer ?? '')}>{inert(identity.repository ?? identity.subject ?? '(none)')}</td>
                <td>{inert(identity.tenant ?? '')}</td>
                <td data-field="grants">{identity.grants}</td>
                <td data-field="denials">{identity.denials}</td>
                <td>{identity.first_seen.replace('T', ' ').replace('Z', '')}</td>
                <td>{identity.last_seen.replace('T', ' ').replace('Z', '')}</td>
                <td>{counts(identity.policies)}</td>
                <td data-field="granted">{counts([...identity.scopes, ...identity.audiences, ...identity.github_permissions])}</td>
                <td>{counts(identity.denial_reasons)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p>
        Export as CSV or NDJSON with <code>keyway inventory --format csv</code> or <code>GET /v1/inventory?format=csv</code> (an audit:read token).
      </p>
    </>
  );
}
