import { parseArgs } from 'node:util';
import { ANSWER_BYTES, answerJson, brokerError } from './bounded-answer.ts';
import { brokerOrigin, fetchBroker, REMOTE_DEADLINES_MS } from './broker-fetch.ts';
import { CliError, type Command } from './command.ts';
import { inert } from '../core/inert-text.ts';

const USAGE = `usage: keyway tokens revoke --url URL [--token TOKEN] [--json] JTI

Ends a keyway token known only by its jti: an audit record's issued.jti (a token that leaked, a job
that went wrong, an /audit page session), through the broker's POST /v1/tokens/revoke. A token
already revoked or expired is said so (exit 0); a jti no grant record issued, or a cloud token's,
is refused (exit 1).

  --url URL        the broker (https unless on loopback)
  --token TOKEN    a keyway access token for that broker with scope tokens:revoke; or set KEYWAY_TOKEN
  --json           the broker's answer as JSON`;

const PATH = '/v1/tokens/revoke';
/** The latest time a Date holds (ECMA-262: 8.64e15 ms). */
const MAX_DATE_SECONDS = 8.64e12;

interface JtiRevocationJson {
  readonly jti: string;
  readonly status: 'revoked' | 'already_revoked' | 'expired';
  readonly exp: number;
  readonly granted_in: string;
  readonly audit_event_id?: string;
}

export const tokensRevoke: Command = {
  summary: 'end a keyway token by its jti (from the audit log)',
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { url: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean', default: false } },
      strict: true,
      allowPositionals: true,
    });
    if (values.url === undefined) throw new CliError('--url is required: the broker whose token to revoke');
    if (positionals.length !== 1 || positionals[0] === '') throw new CliError("give one jti: the issued.jti of the token's grant record");
    const token = values.token ?? process.env['KEYWAY_TOKEN'];
    if (token === undefined || token === '') throw new CliError('--url needs --token (or KEYWAY_TOKEN): an access token with scope tokens:revoke');
    const url = new URL(PATH, brokerOrigin(values.url));
    const response = await fetchBroker(
      url,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ jti: positionals[0] }),
      },
      { whole: REMOTE_DEADLINES_MS.whole },
    );
    if (!response.ok) throw await brokerError('POST', PATH, response);
    const answer = await answerJson<JtiRevocationJson>(response, ANSWER_BYTES.small, `POST ${PATH}`);
    // Whatever answers at --url chose it: a line is made of it only when it is a revocation's answer.
    if (!['revoked', 'already_revoked', 'expired'].includes(answer.status) || !Number.isSafeInteger(answer.exp) || Math.abs(answer.exp) > MAX_DATE_SECONDS) {
      throw new CliError(`the answer to POST ${PATH} is not a revocation's`, 1);
    }
    process.stdout.write(values.json === true ? `${JSON.stringify(answer)}\n` : `${said(answer)}\n`);
    return 0;
  },
};

/** The answer in a line; the jti and ids are the broker's, made inert as every text it chose. */
function said(answer: JtiRevocationJson): string {
  const jti = inert(String(answer.jti));
  const expires = new Date(answer.exp * 1000).toISOString();
  if (answer.status === 'revoked') {
    return `revoked keyway token ${jti} (granted in ${inert(String(answer.granted_in))}, it would have expired at ${expires}); recorded as ${inert(String(answer.audit_event_id))}`;
  }
  return answer.status === 'already_revoked' ? `keyway token ${jti} was already revoked` : `keyway token ${jti} expired at ${expires}: nothing to revoke`;
}
