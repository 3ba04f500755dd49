import { parseArgs } from 'node:util';
import { devIssuerUrl, loadDevIssuerKey, signDevToken } from '../features/dev-issuer/dev-issuer.ts';
import { nodeConfigFromEnv } from '../config/node-config.ts';
import { DURATION_PATTERN } from '../core/policy/schema.ts';
import { parseDuration } from '../core/policy/load-policies.ts';
import { CliError, type Command } from './command.ts';

const USAGE = `usage: keyway dev token [options]

Mints a GitHub Actions-shaped OIDC token from the development issuer, for trying keyway
without a CI runner. Only a broker started with KEYWAY_DEV=1 trusts it. Reads the same
KEYWAY_ISSUER, PORT and KEYWAY_DATA_DIR settings as the broker; prints the token.

options:
  --repository OWNER/NAME   (default acme/api)
  --repository-id ID        (default 100001)
  --owner-id ID             (default 200001)
  --ref REF                 (default refs/heads/main)
  --environment NAME        deployment environment, if any
  --event NAME              (default push)
  --workflow PATH           workflow file (default .github/workflows/deploy.yml)
  --audience AUD            (default: the broker's KEYWAY_ISSUER)
  --claim NAME=VALUE        set or override any claim (repeatable)
  --ttl DURATION            (default 5m)`;

export const devToken: Command = {
  summary: 'mint a CI-shaped token from the development issuer',
  usage: USAGE,
  async run(args) {
    const { values } = parseArgs({
      args: [...args],
      options: {
        repository: { type: 'string', default: 'acme/api' },
        'repository-id': { type: 'string', default: '100001' },
        'owner-id': { type: 'string', default: '200001' },
        ref: { type: 'string', default: 'refs/heads/main' },
        environment: { type: 'string' },
        event: { type: 'string', default: 'push' },
        workflow: { type: 'string', default: '.github/workflows/deploy.yml' },
        audience: { type: 'string' },
        claim: { type: 'string', multiple: true, default: [] },
        ttl: { type: 'string', default: '5m' },
      },
      strict: true,
    });
    const config = nodeConfigFromEnv(process.env);
    if (!DURATION_PATTERN.test(values.ttl)) throw new CliError('--ttl is a duration like 90s, 5m or 1h');

    const repository = values.repository;
    const [owner, name] = repository.split('/');
    if (owner === undefined || name === undefined || name === '') throw new CliError('--repository is OWNER/NAME');
    const { ref, environment } = values;
    const workflowRef = `${repository}/${values.workflow}@${ref}`;
    const claims: Record<string, unknown> = {
      iss: devIssuerUrl(config.issuer),
      aud: values.audience ?? config.issuer,
      sub: `repo:${repository}:${environment === undefined ? `ref:${ref}` : `environment:${environment}`}`,
      repository,
      repository_id: values['repository-id'],
      repository_owner: owner,
      repository_owner_id: values['owner-id'],
      repository_visibility: 'private',
      ref,
      ref_type: ref.startsWith('refs/tags/') ? 'tag' : 'branch',
      ref_protected: 'true',
      event_name: values.event,
      actor: 'dev',
      actor_id: '1',
      workflow: 'dev',
      workflow_ref: workflowRef,
      job_workflow_ref: workflowRef,
      sha: '0000000000000000000000000000000000000000',
      run_id: String(Date.now()),
      run_number: '1',
      run_attempt: '1',
      runner_environment: 'github-hosted',
      ...(environment === undefined ? {} : { environment }),
    };
    for (const pair of values.claim) {
      const at = pair.indexOf('=');
      if (at < 1) throw new CliError(`--claim ${pair} is not NAME=VALUE`);
      claims[pair.slice(0, at)] = pair.slice(at + 1);
    }
    const key = await loadDevIssuerKey(config.dataDir);
    process.stdout.write(`${await signDevToken(key, claims, parseDuration(values.ttl))}\n`);
    return 0;
  },
};
