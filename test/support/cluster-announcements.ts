// KEYWAY_PROCESSES=2's supervisor (runBrokerProcesses) over two stand-in brokers, so that a test decides when each
// finishes starting and when the leader announces: the supervisor, its processes and their IPC are the real ones.
// The follower finishes starting once the file `follower-serves` is in DIR; the leader announces a switched policy
// set once `announce` is. Each prints one JSON line per step: `starting`, `announced`, and `heard` with the event.
// Run as: node test/support/cluster-announcements.ts DIR
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runBrokerProcesses, type ServingBroker } from '../../src/runtimes/node/broker-processes.ts';
import { silentLogger } from '../../src/core/log.ts';

const dir = process.argv[2] as string;
const say = (fields: Record<string, unknown>): void => console.log(JSON.stringify({ pid: process.pid, ...fields }));
const until = async (file: string): Promise<void> => {
  while (!existsSync(join(dir, file))) await sleep(20);
};

await runBrokerProcesses(
  2,
  async (part): Promise<ServingBroker> => {
    const leader = part?.leader === true;
    say({ leader, starting: true });
    if (leader) {
      void until('announce').then(() => {
        part?.announce('policies-switched');
        say({ leader, announced: true });
      });
    } else await until('follower-serves');
    return {
      url: 'http://127.0.0.1:0',
      dataDirIdentity: 'stand-in',
      reloadPolicies: () => undefined,
      heard: (event) => say({ leader, heard: event }),
      close: async () => undefined,
      closing: () => ({}),
      auditWriterWaitingSeconds: () => 0,
    };
  },
  silentLogger,
);
