import { base64url, compactDecrypt, CompactEncrypt, decodeProtectedHeader, type CryptoKey } from 'jose';
import { masterKeyId, type MasterKeys } from './master-keys.ts';
import { KeywayError } from '../errors/keyway-error.ts';

export type SecretBoxErrorCode = 'malformed' | 'unknown_key' | 'wrong_purpose' | 'tampered';

/** A sealed secret that cannot be opened: never a reason to fall back to anything. */
export class SecretBoxError extends KeywayError {
  override readonly name = 'SecretBoxError';
  readonly code: SecretBoxErrorCode;

  constructor(code: SecretBoxErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

interface BoxKey {
  readonly kid: string;
  readonly key: CryptoKey;
  /** The master key as HKDF input: attestation keys are derived from it, one per purpose. */
  readonly hkdf: CryptoKey;
}

/** What `checkAttestation` finds: made under the current master key, under a previous one (attest again), or not by any. */
export type AttestationCheck = { readonly ok: true; readonly stale: boolean } | { readonly ok: false; readonly why: string };

/**
 * Seals secrets at rest (signing keys, tokens awaiting revocation) under the master key, and
 * attests values kept in the clear (signing keys' public parts). A sealed secret is a
 * compact JWE (`alg: dir`, `enc: A256GCM`, RFC 7516) whose protected header, authenticated with
 * the ciphertext, names the master key (`kid`) and what the secret is for (`purpose`), so a
 * sealed value copied into another column or row does not open there.
 */
export class SecretBox {
  readonly #current: BoxKey;
  readonly #byKid: ReadonlyMap<string, BoxKey>;
  readonly #macKeys = new Map<string, Promise<CryptoKey>>();

  private constructor(keys: readonly BoxKey[]) {
    this.#current = keys[0]!;
    this.#byKid = new Map(keys.map((key) => [key.kid, key]));
  }

  static async fromMasterKeys(master: MasterKeys): Promise<SecretBox> {
    return new SecretBox(await Promise.all([master.current, ...master.previous].map(boxKey)));
  }

  /** The id of the master key new secrets are sealed under. */
  get kid(): string {
    return this.#current.kid;
  }

  /** `context` binds the sealed value to where it is kept (a key id, a row id): it must be given again to open it. */
  async seal(plaintext: string, purpose: string, context = ''): Promise<string> {
    return new CompactEncrypt(new TextEncoder().encode(plaintext))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: this.#current.kid, purpose, ctx: context })
      .encrypt(this.#current.key);
  }

  async open(sealed: string, purpose: string, context = ''): Promise<string> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(sealed);
    } catch (cause) {
      throw new SecretBoxError('malformed', 'not a sealed secret', { cause });
    }
    if (header.alg !== 'dir' || header.enc !== 'A256GCM') throw new SecretBoxError('malformed', 'not a sealed secret');
    const key = typeof header.kid === 'string' ? this.#byKid.get(header.kid) : undefined;
    if (key === undefined)
      throw new SecretBoxError(
        'unknown_key',
        `sealed under master key ${String(header.kid)}, which is not configured (KEYWAY_MASTER_KEY, KEYWAY_MASTER_KEY_PREVIOUS)`,
      );
    let opened: Awaited<ReturnType<typeof compactDecrypt>>;
    try {
      opened = await compactDecrypt(sealed, key.key, { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] });
    } catch (cause) {
      throw new SecretBoxError('tampered', 'the sealed secret does not decrypt under its master key', { cause });
    }
    // Checked after decryption: only then is the header known to be authentic.
    if (opened.protectedHeader['purpose'] !== purpose || opened.protectedHeader['ctx'] !== context) {
      throw new SecretBoxError('wrong_purpose', `sealed for ${String(opened.protectedHeader['purpose'])}, not ${purpose}`);
    }
    return new TextDecoder().decode(opened.plaintext);
  }

  /** True when `sealed` was sealed under an older master key and should be sealed again. */
  isStale(sealed: string): boolean {
    return decodeProtectedHeader(sealed).kid !== this.#current.kid;
  }

  /**
   * Vouches for a value kept in the clear (a public key): an HMAC-SHA-256 over `text` under a key
   * HKDF derives from the current master key for `purpose` alone, as `<master key id>.<mac>`.
   * Whoever can write where it is kept, but has no master key, can neither make one nor move one
   * to another value or purpose.
   */
  async attest(text: string, purpose: string): Promise<string> {
    const mac = await crypto.subtle.sign('HMAC', await this.#macKey(this.#current, purpose), new TextEncoder().encode(text));
    return `${this.#current.kid}.${base64url.encode(new Uint8Array(mac))}`;
  }

  async checkAttestation(attestation: string, text: string, purpose: string): Promise<AttestationCheck> {
    const [kid = '', mac = '', ...rest] = attestation.split('.');
    const key = this.#byKid.get(kid);
    if (key === undefined || rest.length > 0) {
      return {
        ok: false,
        why: `its attestation names master key ${JSON.stringify(kid)}, which is not configured (KEYWAY_MASTER_KEY, KEYWAY_MASTER_KEY_PREVIOUS)`,
      };
    }
    let bytes: Uint8Array;
    try {
      bytes = base64url.decode(mac);
    } catch {
      return { ok: false, why: 'its attestation is not one' };
    }
    const valid = await crypto.subtle.verify('HMAC', await this.#macKey(key, purpose), new Uint8Array(bytes), new TextEncoder().encode(text));
    if (!valid) return { ok: false, why: 'its attestation was not made by the master key for what the row holds' };
    return { ok: true, stale: key !== this.#current };
  }

  #macKey(key: BoxKey, purpose: string): Promise<CryptoKey> {
    const id = `${key.kid}\0${purpose}`;
    let derived = this.#macKeys.get(id);
    if (derived === undefined) {
      const info = new TextEncoder().encode(`keyway attestation\0${purpose}`);
      derived = crypto.subtle.deriveKey(
        { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(), info },
        key.hkdf,
        { name: 'HMAC', hash: 'SHA-256', length: 256 },
        false,
        ['sign', 'verify'],
      );
      this.#macKeys.set(id, derived);
    }
    return derived;
  }
}

async function boxKey(raw: Uint8Array): Promise<BoxKey> {
  const key = await crypto.subtle.importKey('raw', new Uint8Array(raw), 'AES-GCM', false, ['encrypt', 'decrypt']);
  const hkdf = await crypto.subtle.importKey('raw', new Uint8Array(raw), 'HKDF', false, ['deriveKey']);
  return { kid: masterKeyId(raw), key, hkdf };
}
