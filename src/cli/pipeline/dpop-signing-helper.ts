import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDpopProof, type DpopKeyPair } from '../../core/dpop/dpop-fetch.ts';
import { accessTokenHash } from '../../core/dpop/dpop-proof.ts';
import { KeywayError } from '../../core/errors/keyway-error.ts';

/** The variables `keyway exchange --dpop --exec` gives the command, for `keyway dpop proof`. */
export const DPOP_HELPER_ENV = { socket: 'KEYWAY_DPOP_SOCKET', secret: 'KEYWAY_DPOP_SECRET' } as const;

/** What `keyway dpop proof` asks for: the request the proof is for, and optionally another token's `ath` or a server nonce. */
export interface ProofRequest {
  readonly htm: string;
  readonly htu: string;
  readonly ath?: string | undefined;
  readonly nonce?: string | undefined;
}

/** A request is a few short strings; anything near this is not one. */
const MAX_REQUEST_BYTES = 8 * 1024;
const SECRET_HEADER = 'x-keyway-dpop-secret';
const METHOD = /^[A-Z]{1,16}$/;
const BASE64URL = /^[A-Za-z0-9_-]{1,512}$/;
/** sun_path is 108 bytes on Linux, 104 on macOS. */
const MAX_SOCKET_PATH = 100;

export interface DpopSigningHelper {
  /** The variables to give the command: the socket's path and the per-run secret. Never the key. */
  readonly env: Readonly<Record<(typeof DPOP_HELPER_ENV)[keyof typeof DPOP_HELPER_ENV], string>>;
  /** Stops answering, closes every connection and removes the socket's directory. */
  close(): Promise<void>;
}

/** The signing helper is not available here, refused the request, or could not be reached. */
export class DpopHelperError extends KeywayError {
  override readonly name = 'DpopHelperError';
  readonly code = 'dpop_helper';
}

/**
 * Signs DPoP proofs for the `--exec` command with the job's key, which stays in this process's
 * memory (non-extractable WebCrypto): the command gets proofs, never the key. It listens on a
 * Unix domain socket in a fresh 0700 directory, so no other user of the machine can connect, and
 * answers only a request that presents the per-run secret the command got in its environment, so
 * a process of the same user that did not inherit that environment gets nothing either. Proofs
 * carry `ath` of `accessToken` unless the command asks for another token's.
 */
export async function startDpopSigningHelper(key: DpopKeyPair, accessToken: string): Promise<DpopSigningHelper> {
  const directory = mkdtempSync(join(tmpdir(), 'keyway-dpop-'));
  chmodSync(directory, 0o700);
  const socket = join(directory, 'helper.sock');
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    rmSync(directory, { recursive: true, force: true });
    throw new DpopHelperError(`the socket path ${socket} is too long for a Unix domain socket: set TMPDIR to a shorter directory`);
  }
  const secret = randomBytes(32).toString('base64url');
  const secretDigest = digest(secret);
  const ath = accessTokenHash(accessToken);

  const server = createServer((incoming, response) => {
    answer(incoming, response).catch(() => reply(response, 500, { error: 'the helper could not sign' }));
  });
  async function answer(incoming: IncomingMessage, response: ServerResponse): Promise<void> {
    const presented = incoming.headers[SECRET_HEADER];
    if (typeof presented !== 'string' || !timingSafeEqual(digest(presented), secretDigest)) return reply(response, 403, { error: 'wrong or missing secret' });
    if (incoming.method !== 'POST' || incoming.url !== '/proof') return reply(response, 404, { error: 'POST /proof only' });
    const wanted = readProofRequest(await readBody(incoming));
    if (wanted === undefined) return reply(response, 400, { error: 'the request must be JSON {htm, htu, ath?, nonce?}' });
    const proof = await createDpopProof(key, {
      method: wanted.htm,
      url: wanted.htu,
      ath: wanted.ath ?? ath,
      ...(wanted.nonce === undefined ? {} : { nonce: wanted.nonce }),
    });
    return reply(response, 200, { proof });
  }

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, () => resolve());
    });
  } catch (error) {
    rmSync(directory, { recursive: true, force: true });
    throw new DpopHelperError(`the signing helper cannot listen on ${socket}: ${(error as Error).message}`, { cause: error });
  }
  return {
    env: { [DPOP_HELPER_ENV.socket]: socket, [DPOP_HELPER_ENV.secret]: secret },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          rmSync(directory, { recursive: true, force: true });
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}

/** `keyway dpop proof`'s side: asks the helper named by the environment for a proof. */
export function requestDpopProof(env: Readonly<Record<string, string | undefined>>, wanted: ProofRequest): Promise<string> {
  const socketPath = env[DPOP_HELPER_ENV.socket];
  const secret = env[DPOP_HELPER_ENV.secret];
  if (!socketPath || !secret) {
    return Promise.reject(
      new DpopHelperError(`no signing helper: ${DPOP_HELPER_ENV.socket} and ${DPOP_HELPER_ENV.secret} are set only inside keyway exchange --dpop --exec`),
    );
  }
  const body = JSON.stringify(wanted);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      {
        socketPath,
        path: '/proof',
        method: 'POST',
        headers: { [SECRET_HEADER]: secret, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        readBody(response).then((text) => {
          const answer = (text === undefined ? undefined : parseJson(text)) as { proof?: unknown; error?: unknown } | undefined;
          if (response.statusCode === 200 && typeof answer?.proof === 'string') return resolve(answer.proof);
          reject(new DpopHelperError(`the signing helper refused: ${typeof answer?.error === 'string' ? answer.error : `status ${response.statusCode}`}`));
        }, reject);
      },
    );
    outgoing.once('error', (error: NodeJS.ErrnoException) =>
      reject(new DpopHelperError(`cannot reach the signing helper (${error.code ?? error.message}): it ends with the command`)),
    );
    outgoing.end(body);
  });
}

function readProofRequest(text: string | undefined): ProofRequest | undefined {
  const value = text === undefined ? undefined : parseJson(text);
  if (typeof value !== 'object' || value === null) return undefined;
  const { htm, htu, ath, nonce } = value as Record<string, unknown>;
  if (typeof htm !== 'string' || !METHOD.test(htm) || typeof htu !== 'string' || !isHttpUrl(htu)) return undefined;
  for (const optional of [ath, nonce]) if (optional !== undefined && (typeof optional !== 'string' || !BASE64URL.test(optional))) return undefined;
  return { htm, htu, ath: ath as string | undefined, nonce: nonce as string | undefined };
}

function isHttpUrl(url: string): boolean {
  return URL.canParse(url) && ['https:', 'http:'].includes(new URL(url).protocol);
}

function readBody(stream: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BYTES) chunks.push(chunk);
    });
    stream.once('end', () => resolve(size > MAX_REQUEST_BYTES ? undefined : Buffer.concat(chunks).toString('utf8')));
    stream.once('error', reject);
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function reply(response: ServerResponse, status: number, body: Readonly<Record<string, string>>): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const digest = (text: string) => createHash('sha256').update(text).digest();
