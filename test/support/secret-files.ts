/**
 * Files of secrets a policy file may be a link to (`policies/x.yaml -> /home/runner/.env`), each with the secret values
 * it holds: whatever keyway says of such a file, in output, logs or a check run, must hold no part of them.
 */
export interface SecretFile {
  readonly text: string;
  readonly secrets: readonly string[];
}

const ENV_TOKEN = 'sk_live_4fQx7Zr2Lm8WpNa3';
const ENV_PASSWORD = 'hunter2-Vb9Kd0Tq';
const PEM_BODY = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj';
const JSON_KEY = 'MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun';
const JSON_KEY_ID = '9d1c4e7f0a2b3c5d6e8f';
const BLOCK_HEADER = 'Zx81mQ0pLr4Tq';
const UNCLOSED = 'Yw72nP3kJs5Hd';
const ALIAS = 'Vq58tR1mXc6Bn';

export const SECRET_FILES = {
  '.env': { text: `SECRET_TOKEN=${ENV_TOKEN}\nDB_PASSWORD=${ENV_PASSWORD}\n`, secrets: [ENV_TOKEN, ENV_PASSWORD] },
  'key.pem': { text: `-----BEGIN PRIVATE KEY-----\n${PEM_BODY}\n-----END PRIVATE KEY-----\n`, secrets: [PEM_BODY] },
  'credentials.json': {
    text: `${JSON.stringify({ type: 'service_account', private_key_id: JSON_KEY_ID, private_key: `-----BEGIN RSA PRIVATE KEY-----\n${JSON_KEY}\n-----END RSA PRIVATE KEY-----\n` })}\n`,
    secrets: [JSON_KEY, JSON_KEY_ID],
  },
  // YAML syntax errors on the secret's line: a password that starts with | (a block scalar's header), one with an unclosed
  // quote, one that starts with * (an alias).
  'secrets.yaml': { text: `user: ci\npassword: |${BLOCK_HEADER}\n`, secrets: [BLOCK_HEADER] },
  'vault.yaml': { text: `user: ci\ntoken: "${UNCLOSED}\n`, secrets: [UNCLOSED] },
  'login.yaml': { text: `user: ci\npassword: *${ALIAS}\n`, secrets: [ALIAS] },
} as const satisfies Record<string, SecretFile>;

export const ALL_SECRETS: readonly string[] = Object.values(SECRET_FILES).flatMap((file: SecretFile) => file.secrets);

/** Every run of 6 characters of any of `secrets` that `output` holds: none, when nothing of them leaked. */
export function leaked(output: string, secrets: readonly string[]): string[] {
  return secrets.flatMap((secret) => Array.from({ length: secret.length - 5 }, (_, i) => secret.slice(i, i + 6)).filter((run) => output.includes(run)));
}
