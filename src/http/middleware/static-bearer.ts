/**
 * A check of `Authorization: Bearer <secret>` against a secret from the configuration, in constant
 * time: both sides are hashed first (so the lengths leak nothing) and every byte of the digests is
 * compared. Web Crypto, so Node and Workers share it. Undefined when no secret is set.
 */
export function staticBearer(secret: string | undefined): ((authorization: string | undefined) => Promise<boolean>) | undefined {
  if (secret === undefined) return undefined;
  const expected = digest(secret);
  return async (authorization) => {
    const presented = /^Bearer ([^\s]+)$/i.exec(authorization ?? '')?.[1];
    if (presented === undefined) return false;
    const [a, b] = await Promise.all([digest(presented), expected]);
    let difference = 0;
    for (let index = 0; index < a.length; index += 1) difference |= (a[index] ?? 0) ^ (b[index] ?? 0);
    return difference === 0;
  };
}

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
}
