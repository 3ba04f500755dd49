// The package entry point (`import … from 'keyway'`): what a service downstream of the broker needs.
export { AccessTokenError, verifyAccessToken } from './core/mint/verify-access-token.ts';
export type { AccessTokenErrorCode, KeywayAccessToken, VerifyAccessTokenOptions } from './core/mint/verify-access-token.ts';
export { keywayAuth } from './http/middleware/keyway-auth.ts';
export type { KeywayAuthVariables } from './http/middleware/keyway-auth.ts';
