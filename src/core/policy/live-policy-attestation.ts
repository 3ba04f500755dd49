import type { PolicyFile } from './load-policies.ts';

/** The SecretBox purpose the live policy set's attestations are made for. */
export const LIVE_POLICY_ATTESTATION_PURPOSE = 'live-policy-set-attestation';

/**
 * What the live policy set's attestation covers: its version and every file's path and text, in
 * the order served, as one JSON text whatever order the stored row keeps their members in.
 */
export function livePolicyAttestationText(version: number, files: readonly PolicyFile[]): string {
  return JSON.stringify({ version, files: files.map((file) => ({ path: file.path, text: file.text })) });
}

/** Where a refusal of the stored live set says it came from, in the log and `GET /v1/health`. */
export const STORED_LIVE_SET = 'stored live policy set';
