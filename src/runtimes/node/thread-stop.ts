import type { Worker } from 'node:worker_threads';

/** What asks one of the broker's SQLite threads to stop: it finishes the message it is on, closes its connection and ends. */
export interface StopRequest {
  readonly stop: true;
}

export const STOP_REQUEST: StopRequest = { stop: true };

export function isStopRequest(message: unknown): message is StopRequest {
  return typeof message === 'object' && message !== null && (message as Partial<StopRequest>).stop === true;
}

/**
 * Stops `thread` by asking it (STOP_REQUEST), and terminates it only if it has not ended `withinMs` later. A thread is
 * not terminated outright because one terminated while it loads better-sqlite3's addon aborts the whole process
 * (node-addon-api's module registration fails fatally in an environment being torn down); asked, it stops between
 * messages, after its start-up (the request waits for the thread's handler) and so after any load.
 */
export async function stopThread(thread: Worker, withinMs: number): Promise<void> {
  // An ended thread has no id and sends no second 'exit'.
  if (thread.threadId === -1) return;
  // Not events.once: that rejects on the thread's 'error', which an 'exit' follows.
  const ended = new Promise<'ended'>((resolve) => thread.once('exit', () => resolve('ended')));
  thread.postMessage(STOP_REQUEST);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), withinMs);
  });
  try {
    if ((await Promise.race([ended, late])) === 'late') await thread.terminate();
  } finally {
    clearTimeout(timer);
  }
}
