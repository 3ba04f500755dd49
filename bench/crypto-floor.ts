// The crypto floors: how many units of "verify one RS256 CI token + sign one ES256 access token"
// this process does per second. bench/bench.ts runs each pinned to the broker's CPU, so it is one
// core's figure. Two engines, on the same keys and the same CI token:
// - jose: as the broker uses it (WebCrypto keys, jwtVerify, SignJWT); WebCrypto runs on libuv's
//   threadpool, so 1, 4 and 16 units in flight, the best counting;
// - node-crypto: what one core allows at all: node:crypto KeyObjects, synchronous crypto.verify
//   and crypto.sign on the one JavaScript thread, no jose (the claims checks are the few lines
//   any verifier has).
// Usage: node bench/crypto-floor.ts jose|node-crypto SECONDS → prints {"unitsPerSecond": …, "unitsPerCpuSecond": …, "byConcurrency": {…}}:
// per second of wall time, and per second of CPU time the process got (steadier on a shared machine).
import { KeyObject, randomUUID, sign, verify, type webcrypto } from 'node:crypto';
import { generateKeyPair, jwtVerify, SignJWT } from 'jose';

const engine = process.argv[2];
const seconds = Number(process.argv[3] ?? 6);
const ISSUER = 'https://token.actions.githubusercontent.com';
const AUDIENCE = 'https://keyway.example.com';

const issuer = await generateKeyPair('RS256', { extractable: true });
const broker = await generateKeyPair('ES256', { extractable: true });
const now = Math.floor(Date.now() / 1000);
const ciToken = await new SignJWT({
  repository: 'acme/api',
  repository_id: '734201',
  repository_owner: 'acme',
  repository_owner_id: '1200934',
  ref: 'refs/heads/main',
  environment: 'production',
  event_name: 'push',
  run_id: '9001',
  job_workflow_ref: 'acme/workflows/.github/workflows/deploy.yml@refs/tags/v1.4.0',
})
  .setProtectedHeader({ alg: 'RS256', kid: 'ci', typ: 'JWT' })
  .setIssuer(ISSUER)
  .setAudience(AUDIENCE)
  .setSubject('repo:acme/api:environment:production')
  .setIssuedAt(now)
  .setExpirationTime(now + 3600)
  .sign(issuer.privateKey);

async function joseUnit(): Promise<void> {
  const { payload } = await jwtVerify(ciToken, issuer.publicKey, { algorithms: ['RS256'], issuer: ISSUER, audience: AUDIENCE });
  await new SignJWT({ scope: 'deploy:write', client_id: 'keyway', src_iss: payload.iss, src_sub: payload.sub, repository: payload['repository'] })
    .setProtectedHeader({ alg: 'ES256', kid: 'broker', typ: 'at+jwt' })
    .setIssuer(AUDIENCE)
    .setAudience('https://deploy.acme.dev')
    .setSubject('github:acme/api:production')
    .setIssuedAt()
    .setExpirationTime('10m')
    .setJti(crypto.randomUUID())
    .sign(broker.privateKey);
}

// jose types its keys structurally; on Node they are WebCrypto CryptoKeys.
const rsaPublic = KeyObject.from(issuer.publicKey as webcrypto.CryptoKey);
const ecPrivate = KeyObject.from(broker.privateKey as webcrypto.CryptoKey);
const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function nodeCryptoUnit(): void {
  const [header = '', payload = '', signature = ''] = ciToken.split('.');
  if ((JSON.parse(Buffer.from(header, 'base64url').toString()) as { alg?: string }).alg !== 'RS256') throw new Error('alg');
  if (!verify('sha256', Buffer.from(`${header}.${payload}`), rsaPublic, Buffer.from(signature, 'base64url'))) throw new Error('signature');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
  const time = Math.floor(Date.now() / 1000);
  if (claims['iss'] !== ISSUER || claims['aud'] !== AUDIENCE || typeof claims['exp'] !== 'number' || claims['exp'] <= time) throw new Error('claims');
  const input = `${base64url({ alg: 'ES256', kid: 'broker', typ: 'at+jwt' })}.${base64url({
    scope: 'deploy:write',
    client_id: 'keyway',
    src_iss: claims['iss'],
    src_sub: claims['sub'],
    repository: claims['repository'],
    iss: AUDIENCE,
    aud: 'https://deploy.acme.dev',
    sub: 'github:acme/api:production',
    iat: time,
    exp: time + 600,
    jti: randomUUID(),
  })}`;
  sign('sha256', Buffer.from(input), { key: ecPrivate, dsaEncoding: 'ieee-p1363' }).toString('base64url');
}

/** Each engine's loop: units done until performance.now() reaches `until`, `concurrency` in flight. */
const ENGINES = {
  jose: {
    concurrency: [1, 4, 16],
    loop: async (until: number, concurrency: number) => {
      let units = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (performance.now() < until) {
            await joseUnit();
            units += 1;
          }
        }),
      );
      return units;
    },
  },
  'node-crypto': {
    concurrency: [1],
    loop: async (until: number) => {
      let units = 0;
      while (performance.now() < until) {
        nodeCryptoUnit();
        units += 1;
      }
      return units;
    },
  },
} as const;

/** Units per second of wall time and per second of the CPU time the process got. */
async function measure(loop: (until: number, concurrency: number) => Promise<number>, concurrency: number, ms: number): Promise<{ wall: number; cpu: number }> {
  const cpuBefore = process.cpuUsage();
  const units = await loop(performance.now() + ms, concurrency);
  const cpu = process.cpuUsage(cpuBefore);
  return { wall: units / (ms / 1000), cpu: units / ((cpu.user + cpu.system) / 1e6) };
}

if (engine !== 'jose' && engine !== 'node-crypto') throw new Error('usage: crypto-floor.ts jose|node-crypto SECONDS');
const { loop, concurrency: levels } = ENGINES[engine];
await measure(loop, Math.max(...levels), 500);
const byConcurrency: Record<string, number> = {};
let unitsPerCpuSecond = 0;
for (const concurrency of levels) {
  const { wall, cpu } = await measure(loop, concurrency, (seconds * 1000) / levels.length);
  byConcurrency[concurrency] = Math.round(wall);
  unitsPerCpuSecond = Math.max(unitsPerCpuSecond, Math.round(cpu));
}
process.stdout.write(`${JSON.stringify({ unitsPerSecond: Math.max(...Object.values(byConcurrency)), unitsPerCpuSecond, byConcurrency })}\n`);
