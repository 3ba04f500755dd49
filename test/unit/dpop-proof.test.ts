import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { DpopNonces, readDpopNonces } from '../../src/core/dpop/dpop-nonce.ts';
import { DPOP_PROOF_LIMITS, verifyDpopProof, type DpopProofExpectation } from '../../src/core/dpop/dpop-proof.ts';
import { MemoryDpopReplayStore } from '../../src/core/dpop/dpop-replay.ts';
import { DpopKey } from '../support/dpop-key.ts';

const TOKEN_ENDPOINT = 'https://keyway.test/token';
/** An ES256 signature, r and s of 32 bytes each, in base64url. */
const ES256_SIGNATURE_CHARS = 86;

/** RFC 9449 proofs at their limits, on a clock the test holds: what the broker and every service behind keywayAuth take. */
describe('verifyDpopProof at its limits', () => {
  let key: DpopKey;
  // Early in a second, so the seconds before and after it are whole ones either way.
  const now = Math.floor(Date.now() / 1000) * 1000 + 100;
  const seconds = Math.floor(now / 1000);
  const expectation: DpopProofExpectation = { method: 'POST', url: TOKEN_ENDPOINT, now };
  const verify = (proof: string) => verifyDpopProof(proof, expectation);
  const refused = (why: RegExp) => expect.objectContaining({ code: 'invalid_dpop_proof', message: expect.stringMatching(why) });

  beforeAll(async () => {
    key = await DpopKey.generate();
  });

  it('takes a proof up to 65 s old and 5 s ahead of the clock (the age limit and the skew), and none older or further ahead', async () => {
    for (const iat of [seconds - 65, seconds + 5])
      await expect(verify(await key.proof('POST', TOKEN_ENDPOINT, { iat }))).resolves.toMatchObject({ jkt: key.jkt });
    await expect(verify(await key.proof('POST', TOKEN_ENDPOINT, { iat: seconds - 66 }))).rejects.toEqual(refused(/too far in the past/));
    await expect(verify(await key.proof('POST', TOKEN_ENDPOINT, { iat: seconds + 6 }))).rejects.toEqual(refused(/iat/));
  });

  it(`takes a jti of 1 to ${DPOP_PROOF_LIMITS.jtiChars} characters, and refuses an empty or a longer one`, async () => {
    for (const jti of ['j', 'j'.repeat(DPOP_PROOF_LIMITS.jtiChars)])
      await expect(verify(await key.proof('POST', TOKEN_ENDPOINT, { jti }))).resolves.toMatchObject({ jti });
    for (const jti of ['', 'j'.repeat(DPOP_PROOF_LIMITS.jtiChars + 1)]) {
      await expect(verify(await key.proof('POST', TOKEN_ENDPOINT, { jti }))).rejects.toEqual(refused(/jti must be a short string/));
    }
  });

  it(`takes a proof of exactly ${DPOP_PROOF_LIMITS.bytes} bytes, and refuses one a byte longer`, async () => {
    const raw = await rawSigner();
    // The padding claim's length steps the payload's base64url by one or two characters; the kid's steps the header's.
    const sized = async (length: number): Promise<string> => {
      for (let pad = 5_000; pad < 7_000; pad += 1) {
        for (const kid of ['', 'k']) {
          const input = raw.input({ htm: 'POST', htu: TOKEN_ENDPOINT, iat: seconds, jti: 'j', pad: 'x'.repeat(pad) }, kid);
          if (input.length + 1 + ES256_SIGNATURE_CHARS === length) return raw.sign(input);
        }
      }
      throw new Error(`no proof of ${length} characters`);
    };
    await expect(verify(await sized(DPOP_PROOF_LIMITS.bytes))).resolves.toMatchObject({ jkt: raw.jkt });
    await expect(verify(await sized(DPOP_PROOF_LIMITS.bytes + 1))).rejects.toEqual(refused(/too large/));
  });

  it('refuses a proof with a space inside it, signed as sent: base64url decoders that skip whitespace would read the one inside', async () => {
    const raw = await rawSigner();
    const proof = await raw.sign(
      raw.input({ htm: 'POST', htu: TOKEN_ENDPOINT, iat: seconds, jti: 'j' }, '', (header) => `${header.slice(0, 8)} ${header.slice(8)}`),
    );
    await expect(verify(proof)).rejects.toEqual(refused(/exactly one compact JWS/));
  });

  it('refuses an htu that is not a string, even one that reads as the URL when made one (an array of it)', async () => {
    await expect(verify(await key.proof('POST', TOKEN_ENDPOINT, { claims: { htu: [TOKEN_ENDPOINT] } }))).rejects.toEqual(refused(/htu must be/));
  });

  it("says what is wrong with a proof's jwk before any signature is checked: private members, members not strings, a kty not a string", async () => {
    await expect(verify(await key.proof('POST', TOKEN_ENDPOINT, { jwk: key.privateJwk }))).rejects.toEqual(refused(/private key material \(d\)/));
    // Any member only a private or secret key has, alone: an RSA key's primes and CRT values, a symmetric key's k.
    for (const member of ['p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']) {
      await expect(verify(await key.proof('POST', TOKEN_ENDPOINT, { jwk: { ...key.publicJwk, [member]: 'AQAB' } }))).rejects.toEqual(
        refused(new RegExp(`private key material \\(${member}\\)`)),
      );
    }
    const arrays = { kty: 'EC', crv: 'P-256', x: [key.publicJwk.x], y: [key.publicJwk.y] } as never;
    await expect(verify(await key.proof('POST', TOKEN_ENDPOINT, { jwk: arrays }))).rejects.toEqual(refused(/EC jwk must carry x, y as non-empty strings/));
    await expect(verify(await key.proof('POST', TOKEN_ENDPOINT, { jwk: { ...key.publicJwk, kty: ['EC'] } as never }))).rejects.toEqual(
      refused(/kty as a string/),
    );
  });

  it('takes an RSA key of 4096 bits, the limit, its modulus with or without a leading zero octet (RFC 7518 §6.3.1.1)', { timeout: 60_000 }, async () => {
    const pair = (await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 4096, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair;
    const { n, e } = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as { n: string; e: string };
    for (const modulus of [n, base64url.encode(new Uint8Array([0, ...base64url.decode(n)]))]) {
      const proof = await new SignJWT({ htm: 'POST', htu: TOKEN_ENDPOINT, iat: seconds, jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: 'RS256', typ: 'dpop+jwt', jwk: { kty: 'RSA', n: modulus, e } })
        .sign(pair.privateKey);
      await expect(verify(proof)).resolves.toMatchObject({ jkt: expect.any(String) });
    }
  });
});

describe('DPoP server nonces', () => {
  const period = 300_000;
  const start = 1_000 * period;
  const nonces = new DpopNonces(new Uint8Array(32).fill(1));

  it('takes a nonce through the period after its own, not later, and not before its period began', () => {
    const handedOut = nonces.current(start + period - 1);
    expect(nonces.isCurrent(handedOut, start)).toBe(true);
    expect(nonces.isCurrent(handedOut, start + period)).toBe(true);
    expect(nonces.isCurrent(handedOut, start + 2 * period - 1)).toBe(true);
    expect(nonces.isCurrent(handedOut, start + 2 * period)).toBe(false);
    expect(nonces.isCurrent(handedOut, start - 1)).toBe(false);
    expect(nonces.current(start + period)).not.toBe(handedOut);
  });

  it('makes nonces no one without the key can make: another key makes others, and takes none of these', () => {
    const other = new DpopNonces(new Uint8Array(32).fill(2));
    expect(other.current(start)).not.toBe(nonces.current(start));
    expect(other.isCurrent(nonces.current(start), start)).toBe(false);
  });

  it('reads an empty KEYWAY_DPOP_NONCE_KEY as unset', () => {
    expect(readDpopNonces({ KEYWAY_DPOP_NONCE_KEY: '' })).toBeUndefined();
    expect(readDpopNonces({ KEYWAY_DPOP_NONCE_KEY: base64url.encode(new Uint8Array(32)) })).toBeInstanceOf(DpopNonces);
  });
});

describe('the in-memory DPoP replay store', () => {
  it('refuses a key until it expires, then takes it again, once, until its new expiry', async () => {
    const store = new MemoryDpopReplayStore();
    expect(await store.claim('a', 100, 50_000)).toBe(true);
    expect(await store.claim('a', 100, 99_999)).toBe(false);
    expect(await store.claim('a', 200, 100_001)).toBe(true);
    expect(await store.claim('a', 200, 100_002)).toBe(false);
  });

  it('keeps every live key through the sweep of expired ones', async () => {
    const store = new MemoryDpopReplayStore();
    for (let index = 0; index < 5_000; index += 1) await store.claim(`expired-${index}`, 10, 0);
    for (let index = 0; index < 5_000; index += 1) await store.claim(`live-${index}`, 1_000, 20_000);
    // The next claim sweeps: the expired keys go, the live ones stay.
    expect(await store.claim('trigger', 1_000, 20_000)).toBe(true);
    expect(await store.claim('live-0', 1_000, 20_000)).toBe(false);
    expect(await store.claim('live-4999', 1_000, 20_000)).toBe(false);
    expect(await store.claim('expired-0', 1_000, 20_000)).toBe(true);
  });
});

interface RawSigner {
  readonly jkt: string;
  /** What is signed: `kid`, an empty one left out; `shape`, what is done to the encoded header before it is signed and sent. */
  input(claims: Record<string, unknown>, kid: string, shape?: (header: string) => string): string;
  sign(input: string): Promise<string>;
}

/** An ES256 key that signs whatever compact serialization it is given, as an attacker's client would. */
async function rawSigner(): Promise<RawSigner> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  return {
    jkt: await calculateJwkThumbprint(jwk, 'sha256'),
    input: (claims, kid, shape = (header) => header) => {
      const header = shape(base64url.encode(JSON.stringify({ alg: 'ES256', typ: 'dpop+jwt', jwk, ...(kid === '' ? {} : { kid }) })));
      return `${header}.${base64url.encode(JSON.stringify(claims))}`;
    },
    sign: async (input) => {
      const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, new TextEncoder().encode(input));
      return `${input}.${base64url.encode(new Uint8Array(signature))}`;
    },
  };
}
