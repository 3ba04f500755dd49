// The crypto floor: how many units of "verify one RS256 CI token + sign one ES256 access token"
// this process does per second, with jose as the broker uses it (WebCrypto keys, jwtVerify,
// SignJWT). bench/bench.ts runs it pinned to the broker's CPU, so it is one core's figure.
// Usage: node bench/crypto-floor.ts SECONDS → prints {"unitsPerSecond": …, "unitsPerCpuSecond": …, "byConcurrency": {…}}:
// per second of wall time, and per second of CPU time the process got (steadier on a shared machine).
import { generateKeyPair, jwtVerify, SignJWT } from 'jose';

const seconds = Number(process.argv[2] ?? 6);
// Jobs in flight at once: WebCrypto runs on libuv's threadpool, so a few in flight keep the core busy.
const CONCURRENCY = [1, 4, 16];

const issuer = await generateKeyPair('RS256');
const broker = await generateKeyPair('ES256');
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
  .setIssuer('https://token.actions.githubusercontent.com')
  .setAudience('https://keyway.example.com')
  .setSubject('repo:acme/api:environment:production')
  .setIssuedAt(now)
  .setExpirationTime(now + 3600)
  .sign(issuer.privateKey);

async function unit(): Promise<void> {
  const { payload } = await jwtVerify(ciToken, issuer.publicKey, { algorithms: ['RS256'], issuer: 'https://token.actions.githubusercontent.com', audience: 'https://keyway.example.com' });
  await new SignJWT({ scope: 'deploy:write', client_id: 'keyway', src_iss: payload.iss, src_sub: payload.sub, repository: payload['repository'] })
    .setProtectedHeader({ alg: 'ES256', kid: 'broker', typ: 'at+jwt' })
    .setIssuer('https://keyway.example.com')
    .setAudience('https://deploy.acme.dev')
    .setSubject('github:acme/api:production')
    .setIssuedAt()
    .setExpirationTime('10m')
    .setJti(crypto.randomUUID())
    .sign(broker.privateKey);
}

async function measure(concurrency: number, ms: number): Promise<{ wall: number; cpu: number }> {
  let units = 0;
  const cpuBefore = process.cpuUsage();
  const until = performance.now() + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        await unit();
        units += 1;
      }
    }),
  );
  const cpu = process.cpuUsage(cpuBefore);
  return { wall: units / (ms / 1000), cpu: units / ((cpu.user + cpu.system) / 1e6) };
}

await measure(4, 500);
const byConcurrency: Record<string, number> = {};
let unitsPerCpuSecond = 0;
for (const concurrency of CONCURRENCY) {
  const { wall, cpu } = await measure(concurrency, (seconds * 1000) / CONCURRENCY.length);
  byConcurrency[concurrency] = Math.round(wall);
  unitsPerCpuSecond = Math.max(unitsPerCpuSecond, Math.round(cpu));
}
process.stdout.write(`${JSON.stringify({ unitsPerSecond: Math.max(...Object.values(byConcurrency)), unitsPerCpuSecond, byConcurrency })}\n`);
