import { readdirSync, readlinkSync } from 'node:fs';

/** How many connections this process has open on `file`: its descriptors naming it (one per SQLite connection that opened it). */
export function connectionsTo(file: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false; // A descriptor closed between listing and reading.
    }
  }).length;
}
