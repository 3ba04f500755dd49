/**
 * Waits, when fewer than `needMs` are left of the clock-aligned window of `windowMs` that now falls in, for the next
 * window to begin. Rules that dedupe by such a window (`Math.floor(time / windowMs)`: an alert's burst window, the
 * stale_grant period) raise again in the next one, so a test whose steps must fall in one window calls this first.
 * The clock is read again after each wait: a timer does not promise that the wall clock moved as far.
 */
export async function roomInClockWindow(windowMs: number, needMs: number): Promise<void> {
  const left = () => windowMs - (Date.now() % windowMs);
  while (left() < needMs) await new Promise((resolve) => setTimeout(resolve, left() + 100));
}
