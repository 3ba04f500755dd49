/**
 * The header of a `POST /revoke` answer that names the issued token types, beyond keyway's own, whose holders may hand
 * them back there (comma-separated; a GitHub installation token's with a GitHub App). A client hands a GitHub token back
 * only to a broker that says so: an older one answers 200 and revokes nothing (RFC 7009), and the client revokes the token
 * where it did before.
 */
export const HANDED_BACK_HEADER = 'Keyway-Revokes';
