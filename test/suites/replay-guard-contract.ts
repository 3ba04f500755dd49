import { describe, expect, it } from 'vitest';
import type { ReplayClaim, ReplayGuard } from '../../src/core/replay/replay-guard.ts';
import { sha256Hex } from '../../src/core/mint/sha256-hex.ts';

const NOW = Date.parse('2026-11-23T10:00:00Z');
const inAnHour = Math.floor(NOW / 1000) + 3600;

async function claimOf(label: string, overrides: Partial<ReplayClaim> = {}): Promise<ReplayClaim> {
  return { key: sha256Hex(`${label}-${crypto.randomUUID()}`), expiresAt: inAnHour, auditEventId: `01AUDIT${label}`, now: NOW, ...overrides };
}

/**
 * What every ReplayGuard adapter must do. `open` gives a guard; `openTwin`, when the runtime
 * has one, a second guard over the same storage by another path (another connection).
 */
export function replayGuardContract(runtime: string, open: () => Promise<ReplayGuard>, openTwin?: (guard: ReplayGuard) => Promise<ReplayGuard>): void {
  describe(`replay guard on ${runtime}`, { shuffle: true }, () => {
    it('lets the first claim of a key in and names it to every later one', async () => {
      const guard = await open();
      const claim = await claimOf('first');
      expect(await guard.claim(claim)).toEqual({ claimed: true });
      expect(await guard.claim({ ...claim, auditEventId: '01AUDITSECOND', now: NOW + 1000 })).toEqual({
        claimed: false,
        heldBy: { auditEventId: '01AUDITfirst', claimedAt: NOW },
      });
    });

    it('claims keys together (claimAll), answering each as a claim of it alone is answered, in their order', async () => {
      const guard = await open();
      const held = await claimOf('held');
      await guard.claim(held);
      const claims = [await claimOf('one'), { ...held, auditEventId: '01AUDITLATER' }, await claimOf('two'), await claimOf('three')];
      expect(await guard.claimAll(claims)).toEqual([
        { claimed: true },
        { claimed: false, heldBy: { auditEventId: '01AUDITheld', claimedAt: NOW } },
        { claimed: true },
        { claimed: true },
      ]);
      expect((await guard.claim(claims[2] as ReplayClaim)).claimed).toBe(false);
    });

    it('keeps keys apart', async () => {
      const guard = await open();
      expect(await guard.claim(await claimOf('a'))).toEqual({ claimed: true });
      expect(await guard.claim(await claimOf('b'))).toEqual({ claimed: true });
    });

    it('lets exactly one of many concurrent claims of one key in', async () => {
      const guard = await open();
      const claim = await claimOf('race');
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => guard.claim({ ...claim, auditEventId: `01RACE${i}` })));
      expect(results.filter((result) => result.claimed)).toHaveLength(1);
      const winners = new Set(results.flatMap((result) => (result.claimed ? [] : [result.heldBy.auditEventId])));
      expect(winners.size).toBe(1);
    });

    it('prunes a claim once its token has expired, and keeps it until then', async () => {
      const guard = await open();
      const claim = await claimOf('expiring', { expiresAt: Math.floor(NOW / 1000) + 60 });
      expect((await guard.claim(claim)).claimed).toBe(true);
      expect((await guard.claim({ ...claim, now: NOW + 60_000 })).claimed).toBe(false);
      // A minute and a second later the token itself is refused as expired; its claim is gone.
      expect((await guard.claim({ ...claim, now: NOW + 61_000, expiresAt: Math.floor(NOW / 1000) + 3600 })).claimed).toBe(true);
    });

    if (openTwin !== undefined) {
      it('lets exactly one claim in across two connections to the same storage', async () => {
        const guard = await open();
        const twin = await openTwin(guard);
        const claim = await claimOf('twins');
        const results = await Promise.all([guard.claim(claim), twin.claim(claim), guard.claim(claim), twin.claim(claim)]);
        expect(results.filter((result) => result.claimed)).toHaveLength(1);
      });
    }
  });
}
