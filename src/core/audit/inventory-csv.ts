import { csvCell } from './csv.ts';
import type { Count, InventoryIdentity } from './inventory.ts';

const counts = (list: readonly Count[]): string => list.map((entry) => `${entry.value}=${entry.count}`).join(' ');

/** One row per identity; lists of counts as `value=count value=count`. */
const COLUMNS: readonly [string, (identity: InventoryIdentity) => unknown][] = [
  ['issuer', (i) => i.issuer],
  ['tenant', (i) => i.tenant],
  ['repository', (i) => i.repository],
  ['subject', (i) => i.subject],
  ['first_seen', (i) => i.first_seen],
  ['last_seen', (i) => i.last_seen],
  ['grants', (i) => i.grants],
  ['denials', (i) => i.denials],
  ['policies', (i) => counts(i.policies)],
  ['scopes', (i) => counts(i.scopes)],
  ['audiences', (i) => counts(i.audiences)],
  ['github_permissions', (i) => counts(i.github_permissions)],
  ['github_repositories', (i) => counts(i.github_repositories)],
  ['denial_reasons', (i) => counts(i.denial_reasons)],
];

export const INVENTORY_CSV_HEADER = `${COLUMNS.map(([name]) => name).join(',')}\r\n`;

export function inventoryCsvRow(identity: InventoryIdentity): string {
  return `${COLUMNS.map(([, read]) => csvCell(read(identity))).join(',')}\r\n`;
}
