import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { accessTokenHash } from '../core/dpop/dpop-proof.ts';
import { CliError, type Command } from './command.ts';
import { DPOP_HELPER_ENV, DpopHelperError, requestDpopProof } from './pipeline/dpop-signing-helper.ts';

const USAGE = `usage: keyway dpop proof --method METHOD --url URL [--token-file PATH | --ath HASH] [--nonce NONCE]

Prints a DPoP proof (RFC 9449) for one request, signed with the job's key by the signing helper of
\`keyway exchange --dpop --exec\`: it works only inside that command (${DPOP_HELPER_ENV.socket} and
${DPOP_HELPER_ENV.secret} name the helper). The key never leaves the keyway exchange process.
A proof is good for one request, within 60 seconds: make a fresh one for each.

  curl -H "Authorization: DPoP $KEYWAY_TOKEN" -H "DPoP: $(keyway dpop proof --method POST --url https://deploy.acme.dev/deploy)" …

options:
  --method METHOD   the request's HTTP method (htm)
  --url URL         the request's URL (htu; its query and fragment are left out)
  --token-file PATH the proof is for the token in PATH (its ath); default: the token keyway exchange issued
  --ath HASH        the same, given the token's base64url SHA-256
  --nonce NONCE     the server's DPoP-Nonce, when it asked for one (use_dpop_nonce)

exit codes: 0 printed, 2 bad usage, 1 no helper (outside keyway exchange --dpop --exec, or after it ended) or refused`;

export const dpopProof: Command = {
  summary: 'sign a DPoP proof with the job key, inside keyway exchange --dpop --exec',
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({
      args: [...argv],
      options: {
        method: { type: 'string' },
        url: { type: 'string' },
        'token-file': { type: 'string' },
        ath: { type: 'string' },
        nonce: { type: 'string' },
      },
      strict: true,
    });
    if (values.method === undefined || values.url === undefined) throw new CliError('--method and --url are required: the request the proof is for');
    if (!/^[A-Za-z]{1,16}$/.test(values.method)) throw new CliError(`--method ${values.method} is not an HTTP method`);
    if (!URL.canParse(values.url) || !['https:', 'http:'].includes(new URL(values.url).protocol))
      throw new CliError(`--url ${values.url} is not an http(s) URL`);
    if (values['token-file'] !== undefined && values.ath !== undefined) throw new CliError('--token-file and --ath name the same thing: give one');
    const ath = values['token-file'] === undefined ? values.ath : accessTokenHash(readFileSync(values['token-file'], 'utf8').trim());
    try {
      const proof = await requestDpopProof(process.env, { htm: values.method.toUpperCase(), htu: values.url, ath, nonce: values.nonce });
      process.stdout.write(`${proof}\n`);
      return 0;
    } catch (error) {
      if (!(error instanceof DpopHelperError)) throw error;
      process.stderr.write(`keyway: ${error.message}\n`);
      return 1;
    }
  },
};
