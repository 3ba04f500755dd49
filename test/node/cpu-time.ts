/**
 * This process's CPU time in ms since `started` (a `process.cpuUsage()`): what a neighbour that takes the CPU away mid-run
 * does not lengthen, as it lengthens wall time, so a timing test's ratio holds on a loaded machine.
 */
export function cpuMsSince(started: NodeJS.CpuUsage): number {
  const { user, system } = process.cpuUsage(started);
  return (user + system) / 1000;
}
