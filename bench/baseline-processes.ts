// The hand-rolled baseline on several cores, as a team would run it there: node:cluster forks
// BASELINE_PROCESSES copies of bench/baseline-broker.ts that share nothing but the listening socket
// (connections handed round robin, as keyway's KEYWAY_PROCESSES has them), the signing key and the
// decision log. Prints the URL once every copy listens; SIGTERM stops them all. What the bench
// compares keyway's scaling with: how far a server whose processes never talk scales on these CPUs.
import cluster from 'node:cluster';
import { setting, signingKeyPem } from './one-rule-settings.ts';

const processes = Number(setting('BASELINE_PROCESSES'));
cluster.setupPrimary({ exec: new URL('./baseline-broker.ts', import.meta.url).pathname });
const key = signingKeyPem();
for (let copy = 0; copy < processes; copy += 1) cluster.fork({ BASELINE_SIGNING_KEY: key });
let listening = 0;
cluster.on('listening', (_worker, address) => {
  listening += 1;
  if (listening === processes) process.stdout.write(`http://127.0.0.1:${address.port}\n`);
});
let exited = 0;
cluster.on('exit', () => {
  exited += 1;
  if (exited === processes) process.exit(0);
});
process.once('SIGTERM', () => {
  for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
});
