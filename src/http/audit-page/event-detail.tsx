import { toRecordJson } from '../../core/audit/record-json.ts';
import type { AuditRecord } from '../../core/audit/audit-event.ts';
import { auditIndex } from '../../core/audit/audit-index.ts';
import { inert } from '../../core/inert-text.ts';
import { Decision } from './events-table.tsx';

const list = (values: readonly string[] | undefined) => (values === undefined || values.length === 0 ? '—' : values.join(', '));
const pairs = (map: Readonly<Record<string, string>> | undefined, joiner: string) =>
  list(
    Object.entries(map ?? {})
      .map((pair) => pair.join(joiner))
      .sort(),
  );

/** The rows of what a proxied call, or a GitHub or cloud grant, issued beside the keyway token's own fields, present only when it did. */
function issuedElsewhere(event: AuditRecord['event']): [string, unknown][] {
  const { github, cloud, proxy } = event;
  return [
    ...(proxy === undefined
      ? []
      : ([
          ['proxy upstream / request', `${proxy.upstream} ${proxy.method} ${proxy.path}`],
          ['proxy rule', proxy.rule ?? '—'],
          [
            'proxy credential scope',
            proxy.credential?.repository === undefined ? '—' : `${proxy.credential.repository} ${pairs(proxy.credential.permissions, ':')}`,
          ],
          ['proxy owner id / repository id', `${proxy.credential?.owner_id ?? '—'} / ${proxy.credential?.repository_id ?? '—'}`],
          ['proxy token sha256', proxy.credential?.token_sha256 ?? '—'],
          ['proxy token revoked at', proxy.credential?.expires_at ?? '—'],
          ['proxy decision / status', `${proxy.decision_id ?? '—'} / ${proxy.status ?? '—'}`],
        ] satisfies [string, unknown][])),
    ...(github === undefined
      ? []
      : ([
          ['GitHub owner / installation', `${github.owner} / ${github.installation_id}${github.app_id === undefined ? '' : ` (App ${github.app_id})`}`],
          ['GitHub repositories', list(github.repositories)],
          ['GitHub permissions', pairs(github.permissions, ':')],
          ['GitHub organization permissions', pairs(github.organization_permissions, ':')],
          ['GitHub token revoked at', github.expires_at],
        ] satisfies [string, unknown][])),
    ...(cloud === undefined
      ? []
      : ([
          ['cloud', cloud.provider],
          ['cloud identity', cloud.identity ?? '— (the federated identity itself)'],
          ['cloud session tags', pairs(cloud.session_tags, '=')],
        ] satisfies [string, unknown][])),
  ];
}

/** Everything one record holds, field by field, then the record itself as JSON. */
export function EventDetail(props: { record: AuditRecord }) {
  const { event, chain } = props.record;
  const length = event.subject_token?.length;
  const rows: [string, unknown][] = [
    ['id', event.id],
    ['time', event.time],
    ['decision', <Decision decision={event.decision} />],
    ['reason', event.reason],
    ['detail', event.detail ?? '—'],
    ['issuer (verified)', event.issuer ?? '—'],
    ['subject (verified)', event.subject ?? '—'],
    ['claimed iss / sub', `${event.subject_token?.claimed_iss ?? '—'} / ${event.subject_token?.claimed_sub ?? '—'}`],
    ['subject token sha256', event.subject_token?.sha256 ?? (length === undefined ? '—' : '— (kept by its length)')],
    // A token not shaped as a JWT is kept by its length, never its hash (presented-token.ts).
    ...(length === undefined
      ? []
      : ([['subject token length', `${length} characters: not shaped as a JWT, so kept without a hash`]] satisfies [string, unknown][])),
    ['subject token jti', event.subject_token?.jti ?? '—'],
    ['granted by', event.policy?.granted_by ?? '—'],
    ['matched', list(event.policy?.matched)],
    ['denied by', list(event.policy?.denied_by)],
    ['candidates', list(event.policy?.candidates)],
    // As the index column has it: a proxied call's keyway JWT (its outcome record) too.
    ['issued jti', auditIndex(event).issued_jti ?? '—'],
    ['issued sub', event.issued?.sub ?? '—'],
    ['issued aud', list(event.issued?.aud)],
    ['issued scope', list(event.issued?.scope)],
    ['issued exp', event.issued === undefined ? '—' : new Date(event.issued.exp * 1000).toISOString()],
    ['DPoP key (cnf.jkt)', event.issued?.cnf_jkt ?? '—'],
    ...issuedElsewhere(event),
    ['requested aud / scope', `${list(event.request.audience)} / ${list(event.request.scope)}`],
    ['client ip', event.request.client_ip ?? '—'],
    ['user agent', event.request.user_agent ?? '—'],
    ['request id', event.request.id],
    ['chain seq', chain.seq],
    ['prev hash', chain.prev_hash],
    ['hash', chain.hash],
  ];
  return (
    <section data-testid="event-detail">
      <h2>Event {event.id}</h2>
      <dl>
        {rows.map(([name, value]) => (
          <>
            <dt>{name}</dt>
            <dd data-field={name}>{typeof value === 'string' ? inert(value) : (value as string)}</dd>
          </>
        ))}
      </dl>
      <h2>Claims</h2>
      <dl>
        {Object.entries(event.claims ?? {}).map(([name, value]) => (
          <>
            <dt>{inert(name)}</dt>
            <dd data-claim={inert(name)}>{inert(typeof value === 'string' ? value : JSON.stringify(value))}</dd>
          </>
        ))}
      </dl>
      <h2>Record</h2>
      {/* Line by line, so only the layout's own line feeds stay; inert's `\uXXXX` is JSON's own escape, so this is still the record's JSON. */}
      <pre>{JSON.stringify(toRecordJson(props.record), null, 2).split('\n').map(inert).join('\n')}</pre>
    </section>
  );
}
