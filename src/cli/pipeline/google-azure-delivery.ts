import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_ENTRA_URL, entraAccess, googleAccess, googleStsAudience } from './cloud-token-exchanges.ts';
import { handOverEnvironment, maskInActions } from './hand-over-environment.ts';
import type { FetchLike } from './retrying-fetch.ts';

interface Io {
  readonly env: NodeJS.ProcessEnv;
  readonly fetch: FetchLike;
  readonly log: (line: string) => void;
}

export interface GoogleDelivery {
  readonly serviceAccount: string | undefined;
  readonly stsUrl: string;
  readonly iamCredentialsUrl: string;
  /** Where the credential files go: a new private directory under it. */
  readonly directory: string | undefined;
  readonly command: readonly string[];
}

export interface AzureDelivery {
  readonly clientId: string;
  readonly tenantId: string;
  readonly authorityUrl: string;
  readonly scope: string;
  readonly directory: string | undefined;
  readonly command: readonly string[];
}

/** A directory only this user reads, under --credentials-dir, $RUNNER_TEMP (GitHub Actions deletes it after the job) or the temp dir. */
function privateDirectory(directory: string | undefined, env: NodeJS.ProcessEnv, prefix: string): string {
  const parent = directory ?? env['RUNNER_TEMP'] ?? tmpdir();
  mkdirSync(parent, { recursive: true });
  const made = mkdtempSync(join(parent, prefix));
  chmodSync(made, 0o700);
  return made;
}

function writePrivate(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/**
 * Writes the credential files into a new private directory under `parent`, and hands the variables naming them to whoever
 * runs next (handOverEnvironment). The keyway token in the directory stays good at the cloud until it expires, and a process
 * run after (a later step, anything of the same user) would find it, so the directory goes whenever no one is to read it:
 * with --exec when the command ends, and when a file could not be written or the variables could not be handed over.
 */
async function handOverFiles(
  parent: string | undefined,
  prefix: string,
  write: (directory: string) => readonly (readonly [string, string])[],
  command: readonly string[],
  io: Io,
): Promise<number> {
  const directory = privateDirectory(parent, io.env, prefix);
  let kept = false;
  try {
    const status = await handOverEnvironment(write(directory), command, io);
    kept = command.length === 0;
    return status;
  } finally {
    if (!kept) rmSync(directory, { recursive: true, force: true });
  }
}

/**
 * Google's half of `keyway exchange --cloud gcp`: the keyway token is exchanged at Google STS
 * (and the service account impersonated) once, so a refusal shows now with Google's message;
 * then an external-account credential file (as google-github-actions/auth writes) points
 * Google's libraries and gcloud at the token file, via GOOGLE_APPLICATION_CREDENTIALS.
 */
export async function deliverGoogleCredentials(delivery: GoogleDelivery, keywayToken: string, io: Io): Promise<number> {
  const access = await googleAccess({ keywayToken, ...delivery, fetch: io.fetch });
  maskInActions([access.accessToken], io.env);
  io.log(
    `Google accepted the token${access.serviceAccount === undefined ? '' : ` and ${access.serviceAccount} was impersonated`} (access until ${access.expiresAt})`,
  );
  return handOverFiles(
    delivery.directory,
    'keyway-gcp-',
    (directory) => {
      const tokenFile = join(directory, 'keyway-token.jwt');
      const credentialFile = join(directory, 'credentials.json');
      writePrivate(tokenFile, keywayToken);
      const credential = {
        type: 'external_account',
        audience: googleStsAudience(keywayToken),
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        token_url: delivery.stsUrl,
        credential_source: { file: tokenFile },
        ...(access.serviceAccount === undefined
          ? {}
          : {
              service_account_impersonation_url: `${delivery.iamCredentialsUrl}/v1/projects/-/serviceAccounts/${encodeURIComponent(access.serviceAccount)}:generateAccessToken`,
            }),
      };
      writePrivate(credentialFile, `${JSON.stringify(credential, null, 2)}\n`);
      io.log(`external-account credential file ${credentialFile}`);
      return [
        ['GOOGLE_APPLICATION_CREDENTIALS', credentialFile],
        ['CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE', credentialFile],
      ];
    },
    delivery.command,
    io,
  );
}

/**
 * Azure's half of `keyway exchange --cloud azure`: the keyway token goes to Entra once as a
 * client assertion, so a refusal (AADSTS…) shows now; then the variables azure-identity's
 * WorkloadIdentityCredential and `az login --federated-token` read: AZURE_CLIENT_ID,
 * AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE (and AZURE_AUTHORITY_HOST when not the public cloud).
 */
export async function deliverAzureCredentials(delivery: AzureDelivery, keywayToken: string, io: Io): Promise<number> {
  const access = await entraAccess({ keywayToken, ...delivery, fetch: io.fetch });
  maskInActions([access.accessToken], io.env);
  io.log(`Entra ID accepted the token for ${delivery.clientId} (${delivery.scope}, ${access.expiresIn} s)`);
  return handOverFiles(
    delivery.directory,
    'keyway-azure-',
    (directory) => {
      const tokenFile = join(directory, 'keyway-token.jwt');
      writePrivate(tokenFile, keywayToken);
      return [
        ['AZURE_CLIENT_ID', delivery.clientId],
        ['AZURE_TENANT_ID', delivery.tenantId],
        ['AZURE_FEDERATED_TOKEN_FILE', tokenFile],
        ...(delivery.authorityUrl === DEFAULT_ENTRA_URL ? [] : ([['AZURE_AUTHORITY_HOST', delivery.authorityUrl]] as [string, string][])),
      ];
    },
    delivery.command,
    io,
  );
}
