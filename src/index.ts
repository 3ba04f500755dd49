// The package entry point (`import … from 'keyway'`): what a service downstream of the broker needs.
export { AccessTokenError, verifyAccessToken } from './core/mint/verify-access-token.ts';
export type { AccessTokenErrorCode, DpopPresentation, KeywayAccessToken, RevocationCheck, VerifyAccessTokenOptions } from './core/mint/verify-access-token.ts';
export { DpopReplayUnavailableError, MemoryDpopReplayStore } from './core/dpop/dpop-replay.ts';
export type { DpopReplayStore } from './core/dpop/dpop-replay.ts';
export { keywayAuth } from './http/middleware/keyway-auth.ts';
export type { KeywayAuthOptions, KeywayAuthVariables } from './http/middleware/keyway-auth.ts';
export { createDpopProof, dpopFetch, generateDpopKey } from './core/dpop/dpop-fetch.ts';
export type { DpopKeyPair } from './core/dpop/dpop-fetch.ts';
