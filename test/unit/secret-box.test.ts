import { CompactEncrypt } from 'jose';
import { describe, expect, it } from 'vitest';
import { generateMasterKey, parseMasterKey, readMasterKeys } from '../../src/core/secrets/master-keys.ts';
import { SecretBox, SecretBoxError } from '../../src/core/secrets/secret-box.ts';
import { ConfigError } from '../../src/core/settings/read-settings.ts';

const box = (current: string, ...previous: string[]) =>
  SecretBox.fromMasterKeys({ current: parseMasterKey(current, 'k'), previous: previous.map((key) => parseMasterKey(key, 'k')) });

async function refusal(promise: Promise<unknown>): Promise<SecretBoxError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(SecretBoxError);
  return error as SecretBoxError;
}

describe('SecretBox: secrets sealed at rest under the master key', () => {
  it('opens what it sealed, and the sealed text does not contain the secret', async () => {
    const secrets = await box(generateMasterKey());
    const sealed = await secrets.seal('{"d":"private-part"}', 'signing-key', 'kid-1');
    expect(sealed.split('.')).toHaveLength(5);
    expect(sealed).not.toContain('private-part');
    expect(await secrets.open(sealed, 'signing-key', 'kid-1')).toBe('{"d":"private-part"}');
  });

  it('seals the same secret differently every time (a fresh nonce)', async () => {
    const secrets = await box(generateMasterKey());
    expect(await secrets.seal('same', 'p')).not.toBe(await secrets.seal('same', 'p'));
  });

  it('refuses a sealed value moved to another purpose or another row', async () => {
    const secrets = await box(generateMasterKey());
    const sealed = await secrets.seal('secret', 'signing-key', 'kid-1');
    expect((await refusal(secrets.open(sealed, 'github-token', 'kid-1'))).code).toBe('wrong_purpose');
    expect((await refusal(secrets.open(sealed, 'signing-key', 'kid-2'))).code).toBe('wrong_purpose');
  });

  it('refuses a changed header, ciphertext or tag', async () => {
    const secrets = await box(generateMasterKey());
    const sealed = await secrets.seal('secret', 'signing-key', 'kid-1');
    const parts = sealed.split('.');
    const flip = (text: string) => (text.startsWith('A') ? 'B' : 'A') + text.slice(1);
    // A header naming another purpose: the header is authenticated, so decryption fails outright.
    const header = JSON.parse(atob(parts[0]!.replaceAll('-', '+').replaceAll('_', '/'))) as Record<string, unknown>;
    const forgedHeader = btoa(JSON.stringify({ ...header, purpose: 'github-token' }))
      .replaceAll('+', '-')
      .replaceAll('/', '_')
      .replace(/=+$/, '');
    expect((await refusal(secrets.open([forgedHeader, ...parts.slice(1)].join('.'), 'github-token', 'kid-1'))).code).toBe('tampered');
    expect((await refusal(secrets.open([...parts.slice(0, 3), flip(parts[3]!), parts[4]].join('.'), 'signing-key', 'kid-1'))).code).toBe('tampered');
    expect((await refusal(secrets.open([...parts.slice(0, 4), flip(parts[4]!)].join('.'), 'signing-key', 'kid-1'))).code).toBe('tampered');
    expect((await refusal(secrets.open('not.a.jwe', 'signing-key'))).code).toBe('malformed');
  });

  it('opens with a previous master key, seals with the current one, and knows what is stale', async () => {
    const old = generateMasterKey();
    const sealedBefore = await (await box(old)).seal('secret', 'p');
    const rotated = await box(generateMasterKey(), old);
    expect(await rotated.open(sealedBefore, 'p')).toBe('secret');
    expect(rotated.isStale(sealedBefore)).toBe(true);
    const sealedAfter = await rotated.seal('secret', 'p');
    expect(rotated.isStale(sealedAfter)).toBe(false);
    // Without the old key configured, what it sealed cannot be opened.
    expect((await refusal((await box(generateMasterKey())).open(sealedBefore, 'p'))).code).toBe('unknown_key');
  });

  it('refuses a JWE of another kind, or one that names no master key, even one the current key would open', async () => {
    const key = generateMasterKey();
    const secrets = await box(key);
    const wrapped = await new CompactEncrypt(new TextEncoder().encode('secret'))
      .setProtectedHeader({ alg: 'A256KW', enc: 'A256GCM', kid: secrets.kid, purpose: 'p', ctx: '' })
      .encrypt(parseMasterKey(key, 'k'));
    expect((await refusal(secrets.open(wrapped, 'p'))).code).toBe('malformed');
    // Sealed as keyway seals, under its current key, but naming no master key: not opened with whichever key is current.
    const nameless = await new CompactEncrypt(new TextEncoder().encode('secret'))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', purpose: 'p', ctx: '' })
      .encrypt(parseMasterKey(key, 'k'));
    expect((await refusal(secrets.open(nameless, 'p'))).code).toBe('unknown_key');
  });

  it('attests a value for one purpose under the current master key: not another value, another purpose, or with more after it', async () => {
    const old = generateMasterKey();
    const before = await box(old);
    const attestation = await before.attest('{"kid":"k1"}', 'signing-key');
    expect(attestation.startsWith(`${before.kid}.`)).toBe(true);
    expect(await before.checkAttestation(attestation, '{"kid":"k1"}', 'signing-key')).toEqual({ ok: true, stale: false });
    // Checked for another purpose after this one: each purpose has a key of its own, whatever was derived first.
    expect((await before.checkAttestation(attestation, '{"kid":"k1"}', 'record-mac')).ok).toBe(false);
    expect((await before.checkAttestation(attestation, '{"kid":"k2"}', 'signing-key')).ok).toBe(false);
    expect((await before.checkAttestation(`${attestation}.x`, '{"kid":"k1"}', 'signing-key')).ok).toBe(false);
    // Made under a master key that is now the previous one: still good, and stale (attest again).
    expect(await (await box(generateMasterKey(), old)).checkAttestation(attestation, '{"kid":"k1"}', 'signing-key')).toEqual({ ok: true, stale: true });
  });

  it('reads master keys from settings, in base64 or base64url, and refuses anything but 32 bytes', () => {
    expect(readMasterKeys({})).toBeUndefined();
    const key = generateMasterKey();
    const base64 = btoa(atob(key.replaceAll('-', '+').replaceAll('_', '/')));
    const keys = readMasterKeys({ KEYWAY_MASTER_KEY: base64, KEYWAY_MASTER_KEY_PREVIOUS: `${generateMasterKey()},${generateMasterKey()}` });
    expect(keys?.current).toEqual(parseMasterKey(key, 'k'));
    expect(keys?.previous).toHaveLength(2);
    expect(() => readMasterKeys({ KEYWAY_MASTER_KEY: 'c2hvcnQ' })).toThrow(ConfigError);
    expect(() => readMasterKeys({ KEYWAY_MASTER_KEY: 'not base64!' })).toThrow(ConfigError);
    expect(() => readMasterKeys({ KEYWAY_MASTER_KEY_PREVIOUS: key })).toThrow(/without KEYWAY_MASTER_KEY/);
    // Set but empty is not set: no master key, and no previous one without it.
    expect(readMasterKeys({ KEYWAY_MASTER_KEY: '' })).toBeUndefined();
    expect(() => readMasterKeys({ KEYWAY_MASTER_KEY: '', KEYWAY_MASTER_KEY_PREVIOUS: key })).toThrow(/without KEYWAY_MASTER_KEY/);
    // 48 bytes is no AES-256 key either, and a key read with its line's end (a file, a heredoc) is the key.
    expect(() => readMasterKeys({ KEYWAY_MASTER_KEY: btoa('k'.repeat(48)) })).toThrow(/must be 32 random bytes, not 48/);
    expect(readMasterKeys({ KEYWAY_MASTER_KEY: `${key}\n` })?.current).toEqual(parseMasterKey(key, 'k'));
  });
});
