import { parseArgs } from 'node:util';
import { CloudTrustError, renderTrust } from '../features/cloud/trust-configuration.ts';
import { CLOUD_PROVIDERS, type CloudProvider } from '../core/policy/cloud-profile.ts';
import { loadPolicies } from '../core/policy/load-policies.ts';
import { readPolicyDirectory } from '../storage/read-policy-directory.ts';
import { CliError, type Command } from './command.ts';
import { policyDirectory, policyLoadOptions } from './policy-directory.ts';

const USAGE = `usage: keyway cloud trust aws|gcp|azure [DIR] [--issuer URL]

Prints the exact trust to create in the cloud for the policies under DIR (default:
$KEYWAY_POLICIES, else policies/) that grant it a token (grant.cloud): the OIDC provider with
keyway's issuer and the cloud's audience, and the narrow condition on sub and aud for each role,
service account or application, as Terraform and as the cloud's CLI commands. A sub that one of
them cannot carry exactly is refused, naming its policy (exit 1), and nothing is printed.

options:
  --issuer URL   keyway's issuer, exactly as the cloud will be configured with it; default $KEYWAY_ISSUER`;

export const cloudTrust: Command = {
  summary: 'print the trust configuration AWS, Google Cloud or Azure needs for the cloud grants',
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseArgs({ args: [...args], options: { issuer: { type: 'string' } }, allowPositionals: true, strict: true });
    const [provider, dir] = positionals;
    if (provider === undefined || !(CLOUD_PROVIDERS as readonly string[]).includes(provider))
      throw new CliError(`name the cloud: ${CLOUD_PROVIDERS.join(', ')}`);
    const options = policyLoadOptions();
    const issuer = values.issuer ?? options.brokerIssuer;
    if (!URL.canParse(issuer) || new URL(issuer).protocol !== 'https:') throw new CliError(`the issuer ${issuer} must be an https URL: the clouds fetch it`);
    const set = loadPolicies(readPolicyDirectory(policyDirectory(dir)), { ...options, brokerIssuer: issuer });
    let trust: string;
    try {
      trust = renderTrust(provider as CloudProvider, issuer, set.policies);
    } catch (error) {
      if (error instanceof CloudTrustError) throw new CliError(error.message, 1);
      throw error;
    }
    process.stdout.write(trust);
    return 0;
  },
};
