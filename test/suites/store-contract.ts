import { createLocalJWKSet } from 'jose';
import { describe, expect, it } from 'vitest';
import type { AlertDraft } from '../../src/features/alerts/alert.ts';
import type { AlertStore } from '../../src/features/alerts/alert-store.ts';
import { allRecords } from '../../src/core/audit/all-records.ts';
import type { AuditEvent, AuditRecord, AuditStore } from '../../src/core/audit/audit-event.ts';
import { AUDIT_INDEX_COLUMNS, auditIndex } from '../../src/core/audit/audit-index.ts';
import { canonicalEvent, chainHash, GENESIS_HASH } from '../../src/core/audit/chain-hash.ts';
import { buildInventory } from '../../src/core/audit/inventory.ts';
import { maintainAuditLog } from '../../src/core/audit/maintain-audit-log.ts';
import { auditStatementSigner, checkpointSigner, checkpointVerifier } from '../../src/core/audit/sign-checkpoint.ts';
import { CHECKPOINT_TYPE, type ChainHead, type Checkpoint } from '../../src/core/audit/checkpoint.ts';
import { verifyAuditLog } from '../../src/core/audit/verify-chain.ts';
import { generateSigningKey } from '../../src/core/mint/generate-signing-key.ts';
import { KeyRing } from '../../src/core/mint/key-ring.ts';
import { JWKS_MAX_AGE_SECONDS, KEY_CLOCK_SKEW_SECONDS, KEY_RING_REFRESH_SECONDS, keyLifeCycle, type KeyRingPlan } from '../../src/core/mint/key-life-cycle.ts';
import type { KeyStore } from '../../src/core/mint/key-store.ts';
import { mintAccessToken } from '../../src/core/mint/mint-access-token.ts';
import { verifyAccessToken } from '../../src/core/mint/verify-access-token.ts';
import type { IssuedGrant } from '../../src/core/policy/decide.ts';
import type { Policy } from '../../src/core/policy/policy.ts';
import type { SqlValue } from '../../src/storage/sql-database.ts';
import { examinationRecord } from '../../src/core/revocation/examine-token.ts';
import { auditEvent } from '../support/audit-event.ts';

export interface Stores {
  readonly audit: AuditStore;
  readonly keys: KeyStore;
  readonly alerts: AlertStore;
  /** Runs one statement on the stores' database behind their back, as whoever holds the file (Node) or the storage (Workers) could. */
  tamper(sql: string, params: readonly SqlValue[]): Promise<void>;
}

const ISSUER = 'https://keyway.test';
const HOUR = 3_600_000;
/** Shaped as a signed JWT, so a record that names it keeps its SHA-256 (presented-token.ts). */
const OPERATOR_TOKEN = `eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.${'s'.repeat(86)}`;
export { auditEvent };

async function everything(audit: AuditStore): Promise<AuditRecord[]> {
  const records: AuditRecord[] = [];
  for await (const record of allRecords(audit, { order: 'asc', limit: 3 })) records.push(record);
  return records;
}

async function signer() {
  const ring = await KeyRing.from([await generateSigningKey(Date.now())]);
  const statement = auditStatementSigner(ISSUER, () => ring, Date.now);
  /** A checkpoint as keyway signed them before it named their role: pruning anchors too. */
  const unmarked = async (head: ChainHead): Promise<Checkpoint> => {
    const { jws, iat } = await statement({ seq: head.seq, hash: head.hash }, CHECKPOINT_TYPE);
    return { ...head, time: new Date(iat * 1000).toISOString(), jws };
  };
  return { sign: checkpointSigner(ISSUER, () => ring, Date.now), check: checkpointVerifier(() => ring), unmarked, keys: createLocalJWKSet(ring.jwks), ring };
}

/**
 * Rewrites the records `change` returns an edit of (the others as they are) and re-hashes the whole chain from the
 * genesis, as whoever can write the store but holds no key can: the chain needs none.
 */
async function rehash(audit: AuditStore, tamper: Stores['tamper'], change: (event: AuditEvent, seq: number) => AuditEvent | undefined): Promise<void> {
  let prev = GENESIS_HASH;
  for (const record of await everything(audit)) {
    const rewritten = change(record.event, record.chain.seq) ?? record.event;
    const hash = chainHash(prev, rewritten);
    await tamper('UPDATE audit_events SET event = ?, prev_hash = ?, hash = ?, time = ? WHERE seq = ?', [
      canonicalEvent(rewritten).text,
      prev,
      hash,
      Date.parse(rewritten.time),
      record.chain.seq,
    ]);
    prev = hash;
  }
}

/** `chain`: the log read as that chain of a log of several (a Workers shard). */
async function verify(audit: AuditStore, keys: ReturnType<typeof createLocalJWKSet>, kept?: readonly Checkpoint[], chain?: string) {
  return verifyAuditLog({
    records: allRecords(audit, { order: 'asc', limit: 500 }),
    checkpoints: await audit.checkpoints(0, 500),
    keys,
    ...(kept === undefined ? {} : { kept }),
    ...(chain === undefined ? {} : { chain }),
  });
}

/** What every AuditStore, AlertStore and KeyStore adapter must do, whichever runtime holds it. */
export function storeContract(runtime: string, open: () => Promise<Stores>): void {
  describe(`stores on ${runtime}`, { shuffle: true }, () => {
    it('appends an audit event and reads it back exactly', async () => {
      const { audit } = await open();
      const written = auditEvent({ claims: { repository_id: '1', aud: ['a', 'b'] }, issued: { jti: 'j', sub: 's', aud: ['x'], scope: ['r'], exp: 1 } });
      const link = await audit.append(written);
      expect(await audit.get(written.id)).toEqual(written);
      // The text stored is the event's JCS text, the one the chain hashes.
      expect(await audit.record(written.id)).toEqual({ event: written, chain: link, index: auditIndex(written), text: canonicalEvent(written).text });
      expect(await audit.get('missing')).toBeUndefined();
    });

    it('chains every record to the one before: seq 1, 2, 3 … from the genesis hash', async () => {
      const { audit } = await open();
      expect(await audit.head()).toEqual({ seq: 0, hash: GENESIS_HASH });
      const links = [];
      for (let index = 0; index < 4; index += 1) links.push(await audit.append(auditEvent()));
      const records = await everything(audit);
      expect(records.map((record) => record.chain)).toEqual(links);
      let prev = GENESIS_HASH;
      records.forEach((record, index) => {
        expect(record.chain.seq).toBe(index + 1);
        expect(record.chain.prev_hash).toBe(prev);
        expect(record.chain.hash).toBe(chainHash(prev, record.event));
        prev = record.chain.hash;
      });
      expect(await audit.head()).toEqual({ seq: 4, hash: prev });
    });

    it('keeps the chain a line under concurrent appends', async () => {
      const { audit } = await open();
      const links = await Promise.all(Array.from({ length: 30 }, () => audit.append(auditEvent())));
      expect(new Set(links.map((link) => link.seq)).size).toBe(30);
      const { keys } = await signer();
      expect(await verify(audit, keys)).toMatchObject({ ok: true, records: 30, first_seq: 1, last_seq: 30 });
    });

    it('appends events together (appendAll) in their order, each chained as one appended alone is', async () => {
      const { audit } = await open();
      const first = auditEvent();
      const before = await audit.append(first);
      const events = Array.from({ length: 5 }, () => auditEvent());
      const links = await audit.appendAll(events);
      expect(links.map((link) => link.seq)).toEqual([2, 3, 4, 5, 6]);
      expect(links[0]?.prev_hash).toBe(before.hash);
      expect((await everything(audit)).map((record) => record.event.id)).toEqual([first.id, ...events.map((event) => event.id)]);
      const { keys } = await signer();
      expect(await verify(audit, keys)).toMatchObject({ ok: true, records: 6 });
    });

    it("indexes a grant to a CI run with its record, by the run's ids, while its token verifies, and drops the rows of expired ones", async () => {
      const { audit } = await open();
      const now = Date.now();
      const seconds = Math.floor(now / 1000);
      const grant = (jti: string, exp: number, claims: Record<string, unknown>, time = now) =>
        auditEvent({
          time: new Date(time).toISOString(),
          decision: 'granted',
          reason: 'granted',
          issuer: 'https://token.actions.githubusercontent.com',
          issuer_kind: 'github',
          claims: { repository: 'acme/indexed', repository_id: '611', run_id: '7', ...claims },
          issued: { jti, sub: 's', aud: ['x'], scope: [], exp },
        });
      // Expired before the next grant's record: its row is dropped with that append.
      await audit.append(grant('expired', seconds - 3_600, {}, now - 3_700_000));
      await audit.append(grant('job', seconds + 600, { check_run_id: '8', run_attempt: '2' }));
      await audit.append(grant('other-run', seconds + 600, { run_id: '9' }));
      await audit.append(auditEvent({ claims: { repository_id: '611', run_id: '7' } }));
      expect(await audit.grantsOfRun('611', '7', now)).toEqual([
        {
          auditEventId: expect.any(String),
          role: 'subject',
          issuer: 'https://token.actions.githubusercontent.com',
          issuerKind: 'github',
          repositoryId: '611',
          runId: '7',
          checkRunId: '8',
          runAttempt: '2',
          jti: 'job',
          exp: seconds + 600,
        },
      ]);
      // Past its exp and the 30 s of skew verifiers tolerate, a token is no longer the run's to revoke.
      expect(await audit.grantsOfRun('611', '7', (seconds + 631) * 1000)).toEqual([]);
      // Asked as of when the expired one still verified: its row is gone, dropped with the next grant's append.
      expect((await audit.grantsOfRun('611', '7', now - 3_650_000)).map((found) => found.jti)).toEqual(['job']);
    });

    it("indexes a delegated grant under its actor's run too, with the actor's issuer, once for an actor of the subject's own issuer and run, apart for another issuer's", async () => {
      const { audit } = await open();
      const now = Date.now();
      const exp = Math.floor(now / 1000) + 600;
      const github = 'https://token.actions.githubusercontent.com';
      const forgejo = 'https://forgejo.acme.dev/api/actions';
      /** The kind of issuer the exchange records beside each issuer URL (anything, as another process may send it). */
      const kindOf = (issuer: unknown) => ({ [github]: 'github', [forgejo]: 'forgejo', 'https://oidc.acme.dev': 'oidc' })[String(issuer)] ?? issuer;
      const delegated = (jti: string, actor: Record<string, unknown>, subject: Record<string, unknown> = {}, issuer = github) =>
        auditEvent({
          decision: 'granted',
          reason: 'granted',
          issuer,
          issuer_kind: kindOf(issuer) as string,
          claims: { repository_id: '611', run_id: '70', check_run_id: '8', run_attempt: '1', ...subject },
          // As another process may send it: anything where the actor's members belong.
          actor: { sha256: 'ab'.repeat(32), subject: 'orchestrator', issuer_kind: kindOf(actor['issuer']), ...actor } as AuditEvent['actor'],
          issued: { jti, sub: 's', aud: ['x'], scope: [], exp },
        });
      const run = (repositoryId: string, runId: string, checkRunId: string | null, runAttempt: string | null) => ({
        repositoryId,
        runId,
        checkRunId,
        runAttempt,
      });
      await audit.appendAll([
        delegated('other-run', { issuer: github, run: { repository_id: '612', run_id: '71', check_run_id: '9', run_attempt: '2' } }),
        // The subject's own job: one row, the subject's.
        delegated('same-job', { issuer: github, run: { repository_id: '611', run_id: '70', check_run_id: '8', run_attempt: '1' } }),
        // Another job of the subject's run, of a later attempt: one row, which the end of either job ends.
        delegated('sibling-job', { issuer: github, run: { repository_id: '611', run_id: '70', check_run_id: '10', run_attempt: '2' } }),
        // Another issuer naming the subject's run: the subject's row stands, and the actor's is beside it (only one of the two
        // can be a GitHub Actions job, and the end of that job ends the token).
        delegated('lookalike', { issuer: 'https://oidc.acme.dev', run: { repository_id: '611', run_id: '70', check_run_id: '10' } }),
        // The subject another issuer's, naming a GitHub Actions actor's run: a row for each.
        delegated('lookalike-subject', { issuer: github, run: { repository_id: '611', run_id: '70', check_run_id: '8', run_attempt: '1' } }, {}, forgejo),
        delegated('odd-types', { issuer: 7, run: { repository_id: '612', run_id: 71, check_run_id: ['9'] } }),
        delegated('not-a-run', { issuer: github, run: ['612', '71'] }),
        // The subject's run id in another repository: another run, with a row of its own.
        delegated('other-repository', { issuer: github, run: { repository_id: '612', run_id: '70', check_run_id: '9', run_attempt: '1' } }),
        // Another job of the subject's run, of the earlier attempt: the one row ends from that attempt on.
        delegated('earlier-actor', { issuer: github, run: { repository_id: '611', run_id: '70', check_run_id: '10', run_attempt: '1' } }, { run_attempt: '2' }),
        // Another job of the subject's run whose attempt is not known: the one row ends with any job of the run.
        delegated('attempt-unknown', { issuer: github, run: { repository_id: '611', run_id: '70', check_run_id: '10' } }),
      ]);
      const rows = async (repositoryId: string, runId: string) =>
        (await audit.grantsOfRun(repositoryId, runId, now)).map(({ jti, role, issuer, issuerKind, repositoryId, runId, checkRunId, runAttempt }) => ({
          jti,
          role,
          issuer,
          issuerKind,
          ...run(repositoryId, runId, checkRunId, runAttempt),
        }));
      const [subject, actor] = ['subject', 'actor'] as const;
      expect(await rows('612', '71')).toEqual([
        { jti: 'other-run', role: actor, issuer: github, issuerKind: 'github', ...run('612', '71', '9', '2') },
        { jti: 'odd-types', role: actor, issuer: null, issuerKind: null, ...run('612', '71', null, null) },
      ]);
      expect(await rows('612', '70')).toEqual([{ jti: 'other-repository', role: actor, issuer: github, issuerKind: 'github', ...run('612', '70', '9', '1') }]);
      expect(await rows('611', '70')).toEqual([
        { jti: 'other-run', role: subject, issuer: github, issuerKind: 'github', ...run('611', '70', '8', '1') },
        { jti: 'same-job', role: subject, issuer: github, issuerKind: 'github', ...run('611', '70', '8', '1') },
        { jti: 'sibling-job', role: subject, issuer: github, issuerKind: 'github', ...run('611', '70', null, '1') },
        { jti: 'lookalike', role: subject, issuer: github, issuerKind: 'github', ...run('611', '70', '8', '1') },
        { jti: 'lookalike', role: actor, issuer: 'https://oidc.acme.dev', issuerKind: 'oidc', ...run('611', '70', '10', null) },
        { jti: 'lookalike-subject', role: subject, issuer: forgejo, issuerKind: 'forgejo', ...run('611', '70', '8', '1') },
        { jti: 'lookalike-subject', role: actor, issuer: github, issuerKind: 'github', ...run('611', '70', '8', '1') },
        { jti: 'odd-types', role: subject, issuer: github, issuerKind: 'github', ...run('611', '70', '8', '1') },
        { jti: 'not-a-run', role: subject, issuer: github, issuerKind: 'github', ...run('611', '70', '8', '1') },
        { jti: 'other-repository', role: subject, issuer: github, issuerKind: 'github', ...run('611', '70', '8', '1') },
        { jti: 'earlier-actor', role: subject, issuer: github, issuerKind: 'github', ...run('611', '70', null, '1') },
        { jti: 'attempt-unknown', role: subject, issuer: github, issuerKind: 'github', ...run('611', '70', null, null) },
      ]);
    });

    it('refuses a second event with the same id, and the chain goes on unbroken', async () => {
      const { audit } = await open();
      const first = auditEvent();
      await audit.append(first);
      await expect(audit.append({ ...first })).rejects.toThrow();
      await audit.append(auditEvent());
      const { keys } = await signer();
      expect(await verify(audit, keys)).toMatchObject({ ok: true, records: 2 });
    });

    it('verify holds every index column queries read to the hashed event: an edited one is tampering, named by its record', async () => {
      const { audit, tamper } = await open();
      const { keys } = await signer();
      const target = auditEvent({
        decision: 'granted',
        reason: 'granted',
        issuer: 'https://gh.example',
        subject: 'repo:acme/api:environment:prod',
        claims: { repository: 'acme/api' },
        policy: { granted_by: 'deploy/prod', candidates: ['deploy/prod'], matched: ['deploy/prod'], denied_by: [], audit_mode: [] },
        issued: { jti: 'issued-1', sub: 's', aud: ['x'], scope: ['r'], exp: 1 },
        subject_token: { sha256: 'cd'.repeat(32), jti: 'ci-jti-1' },
      });
      await audit.append(auditEvent());
      const { seq } = await audit.append(target);
      await audit.append(auditEvent());
      expect(await verify(audit, keys)).toMatchObject({ ok: true, records: 3 });

      const stored = auditIndex(target);
      // The edit an insider would make: a grant shown as a denial, hidden from its policy, repository, jti, time…
      const edits: Record<string, SqlValue> = {
        decision: 'denied',
        reason: 'no_policy_matched',
        time: stored.time - HOUR,
        id: `${target.id}X`,
        policy_id: null,
      };
      for (const column of AUDIT_INDEX_COLUMNS) {
        const edited = Object.hasOwn(edits, column) ? (edits[column] as SqlValue) : `not-${String(stored[column])}`;
        await tamper(`UPDATE audit_events SET ${column} = ? WHERE seq = ?`, [edited, seq]);
        expect(await verify(audit, keys), column).toMatchObject({
          ok: false,
          problem: { kind: 'index_mismatch', seq, id: target.id, message: expect.stringContaining(`its ${column} column holds ${JSON.stringify(edited)}`) },
        });
        await tamper(`UPDATE audit_events SET ${column} = ? WHERE seq = ?`, [stored[column], seq]);
      }
      expect(await verify(audit, keys)).toMatchObject({ ok: true, records: 3 });
    });

    it("records strings a hostile token can carry (a lone surrogate, in a value or a claim's name) as well-formed text", async () => {
      const { audit } = await open();
      const written = auditEvent({ subject_token: { sha256: 'ab'.repeat(32), claimed_sub: 'x\ud800y' } });
      await audit.append(written);
      expect((await audit.get(written.id))?.subject_token?.claimed_sub).toBe('x\ufffdy');
      // In a claim's name too: JCS refuses a lone surrogate in a member's name as in its value.
      const named = auditEvent({ claims: { 'k\ud800': 'v' } });
      await audit.append(named);
      expect((await audit.get(named.id))?.claims).toEqual({ 'k\ufffd': 'v' });
    });

    it('records a claim JSON has no number for (1e400 parses to Infinity) as null, and the chain verifies', async () => {
      const { audit } = await open();
      const written = auditEvent({ claims: { run_id: Number.POSITIVE_INFINITY, repository: 'acme/api' } });
      const link = await audit.append(written);
      const record = await audit.record(written.id);
      expect(record?.event.claims).toEqual({ run_id: null, repository: 'acme/api' });
      expect(link.hash).toBe(chainHash(link.prev_hash, record?.event as AuditEvent));
    });

    it('filters by time, decision, reason, issuer, subject, repository, policy and jti, and pages by cursor', async () => {
      const { audit } = await open();
      const base = Date.parse('2026-03-10T12:00:00Z');
      const at = (hours: number) => new Date(base + hours * HOUR).toISOString();
      const granted = auditEvent({
        time: at(0),
        decision: 'granted',
        reason: 'granted',
        issuer: 'https://gh.example',
        subject: 'repo:acme/api',
        claims: { repository: 'acme/api' },
        policy: { granted_by: 'deploy/prod', candidates: ['deploy/prod'], matched: ['deploy/prod'], denied_by: [], audit_mode: [] },
        issued: { jti: 'issued-1', sub: 's', aud: ['x'], scope: ['r'], exp: 1 },
        subject_token: { sha256: 'cd'.repeat(32), jti: 'ci-jti-1' },
      });
      const denied = auditEvent({
        time: at(1),
        issuer: 'https://gh.example',
        subject: 'repo:evil/x',
        claims: { repository: 'evil/x' },
        reason: 'denied_by_policy',
        policy: { candidates: ['guard'], matched: [], denied_by: ['guard'], audit_mode: [] },
      });
      const forged = auditEvent({
        time: at(2),
        reason: 'signature_invalid',
        subject_token: { sha256: 'ef'.repeat(32), claimed_iss: 'https://gh.example', claimed_sub: 'repo:acme/api' },
      });
      const malformed = auditEvent({ time: at(3), decision: 'malformed', reason: 'malformed_request' });
      for (const event of [granted, denied, forged, malformed]) await audit.append(event);

      const ids = async (filter: Record<string, unknown>) =>
        (await audit.query({ order: 'asc', limit: 50, ...filter })).records.map((record) => record.event.id);
      const window = { since: base - HOUR, until: base + 4 * HOUR };
      expect(await ids(window)).toEqual([granted.id, denied.id, forged.id, malformed.id]);
      expect(await ids({ since: base + HOUR, until: base + 3 * HOUR })).toEqual([denied.id, forged.id]);
      expect(await ids({ ...window, decisions: ['denied'] })).toEqual([denied.id, forged.id]);
      expect(await ids({ ...window, decisions: ['granted', 'malformed'] })).toEqual([granted.id, malformed.id]);
      expect(await ids({ ...window, reasons: ['signature_invalid', 'denied_by_policy'] })).toEqual([denied.id, forged.id]);
      // A token that did not verify is found by the iss and sub it claimed.
      expect(await ids({ ...window, issuer: 'https://gh.example' })).toEqual([granted.id, denied.id, forged.id]);
      expect(await ids({ ...window, subject: 'repo:acme/api' })).toEqual([granted.id, forged.id]);
      expect(await ids({ ...window, repository: 'evil/x' })).toEqual([denied.id]);
      expect(await ids({ ...window, policy: 'deploy/prod' })).toEqual([granted.id]);
      expect(await ids({ ...window, policy: 'guard' })).toEqual([denied.id]);
      expect(await ids({ ...window, jti: 'issued-1' })).toEqual([granted.id]);
      expect(await ids({ ...window, jti: 'ci-jti-1' })).toEqual([granted.id]);
      expect(await ids({ ...window, subject: 'nobody' })).toEqual([]);

      const first = await audit.query({ ...window, order: 'desc', limit: 3 });
      expect(first.records.map((record) => record.event.id)).toEqual([malformed.id, forged.id, denied.id]);
      expect(first.next).toMatch(/^\d+$/);
      const second = await audit.query({ ...window, order: 'desc', limit: 3, after: first.next as string });
      expect(second.records.map((record) => record.event.id)).toEqual([granted.id]);
      expect(second.next).toBeUndefined();
      // A last page that is exactly full is the last: no cursor to a page of nothing.
      expect(await audit.query({ ...window, order: 'desc', limit: 4 })).not.toHaveProperty('next');
    });

    it('filters proxied requests by their upstream, decision and outcome records alike', async () => {
      const { audit } = await open();
      const proxied = (upstream: string, path: string) => auditEvent({ decision: 'granted', reason: 'granted', proxy: { upstream, method: 'GET', path } });
      const github = proxied('github', '/repos/acme/api/issues');
      const vendor = proxied('vendor', '/v1/things');
      const outcome = auditEvent({
        decision: 'granted',
        reason: 'proxy_completed',
        proxy: { upstream: 'github', method: 'GET', path: '/repos/acme/api/issues', decision_id: github.id, status: 200 },
      });
      const exchange = auditEvent({ decision: 'granted', reason: 'granted' });
      for (const event of [github, vendor, outcome, exchange]) await audit.append(event);
      const ids = async (upstream: string) => (await audit.query({ order: 'asc', limit: 50, upstream })).records.map((record) => record.event.id);
      expect(await ids('github')).toEqual([github.id, outcome.id]);
      expect(await ids('vendor')).toEqual([vendor.id]);
      expect(await ids('nowhere')).toEqual([]);
      expect((await audit.stats({ since: Date.now() - HOUR, until: Date.now() + HOUR, bucket: 'hour', upstream: 'vendor' })).totals.granted).toBe(1);
    });

    it('finds every record of a time window, in order and page by page, though time runs back against seq (a slow request, a clock stepped back)', async () => {
      const { audit } = await open();
      const base = Date.parse('2026-03-10T00:00:00Z');
      const hours = [0, 1, 2, 3, 4, 5, 6, 7, 2.5, 1.5, 8, 0.5, 9];
      const events = hours.map((hour, index) =>
        auditEvent({
          // Ids out of seq order too, as several writers' ULIDs reach one chain.
          id: `01WINDOW${String((index * 7) % hours.length).padStart(18, '0')}`,
          time: new Date(base + hour * HOUR).toISOString(),
          decision: index % 3 === 0 ? 'granted' : 'denied',
        }),
      );
      for (const event of events) await audit.append(event);
      const windows = [
        { since: base + 2 * HOUR, until: base + 3 * HOUR },
        { since: base + HOUR, until: base + 2 * HOUR },
        { since: base + 7.5 * HOUR },
        { until: base + 1.75 * HOUR },
        { since: base + 2 * HOUR, decisions: ['denied' as const] },
        { since: base - HOUR, until: base + 10 * HOUR },
        { since: base + 3.25 * HOUR, until: base + 3.75 * HOUR },
        { since: base + 20 * HOUR },
      ];
      for (const window of windows) {
        const inWindow = events
          .map((event, index) => ({ event, seq: index + 1 }))
          .filter(({ event }) => {
            const time = Date.parse(event.time);
            return (
              (window.since === undefined || time >= window.since) &&
              (window.until === undefined || time < window.until) &&
              (window.decisions === undefined || window.decisions.includes(event.decision as 'denied'))
            );
          });
        for (const by of ['seq', 'id'] as const) {
          const ascending = [...inWindow].sort((a, b) => (by === 'seq' ? a.seq - b.seq : a.event.id < b.event.id ? -1 : 1)).map(({ event }) => event.id);
          for (const order of ['asc', 'desc'] as const) {
            const read: string[] = [];
            let after: string | undefined;
            do {
              const page = await audit.query({ ...window, by, order, limit: 2, ...(after === undefined ? {} : { after }) });
              read.push(...page.records.map((record) => record.event.id));
              after = page.next;
            } while (after !== undefined);
            expect(read, JSON.stringify({ window, by, order })).toEqual(order === 'asc' ? ascending : [...ascending].reverse());
          }
        }
      }
    });

    it('counts by decision per time bucket, and by policy and repository', async () => {
      const { audit } = await open();
      const base = Date.parse('2026-04-01T00:00:00Z');
      const at = (minutes: number) => new Date(base + minutes * 60_000).toISOString();
      const grant = (minutes: number, repository: string) =>
        auditEvent({
          time: at(minutes),
          decision: 'granted',
          reason: 'granted',
          claims: { repository },
          policy: { granted_by: 'deploy/prod', candidates: [], matched: [], denied_by: [], audit_mode: [] },
        });
      for (const event of [
        grant(5, 'acme/api'),
        grant(10, 'acme/api'),
        grant(70, 'acme/web'),
        auditEvent({ time: at(75) }),
        auditEvent({ time: at(200), decision: 'error', reason: 'issuer_unavailable' }),
      ]) {
        await audit.append(event);
      }
      const stats = await audit.stats({ since: base, until: base + 4 * HOUR, bucket: 'hour' });
      expect(stats.totals).toEqual({ granted: 3, denied: 1, malformed: 0, error: 1 });
      expect(stats.series.map((bucket) => [bucket.start, bucket.counts])).toEqual([
        ['2026-04-01T00:00:00.000Z', { granted: 2, denied: 0, malformed: 0, error: 0 }],
        ['2026-04-01T01:00:00.000Z', { granted: 1, denied: 1, malformed: 0, error: 0 }],
        ['2026-04-01T02:00:00.000Z', { granted: 0, denied: 0, malformed: 0, error: 0 }],
        ['2026-04-01T03:00:00.000Z', { granted: 0, denied: 0, malformed: 0, error: 1 }],
      ]);
      expect(stats.by_policy[0]).toEqual({ policy: 'deploy/prod', counts: { granted: 3, denied: 0, malformed: 0, error: 0 } });
      expect(stats.by_repository).toContainEqual({ repository: 'acme/api', counts: { granted: 2, denied: 0, malformed: 0, error: 0 } });
      expect(stats.by_repository).toContainEqual({ repository: 'acme/web', counts: { granted: 1, denied: 0, malformed: 0, error: 0 } });
      const denied = await audit.stats({ since: base, until: base + 4 * HOUR, bucket: 'hour', decisions: ['denied'] });
      expect(denied.totals).toEqual({ granted: 0, denied: 1, malformed: 0, error: 0 });
    });

    it('groups usage by identity, policy and grant: whole days from the roll-up, partial days and new records raw, each counted once', async () => {
      const { audit } = await open();
      const day = Date.parse('2026-05-01T00:00:00Z');
      const at = (hours: number) => new Date(day + hours * HOUR).toISOString();
      const owner = { repository_owner_id: '42' };
      const grant = (hours: number, repository: string, scope: string[], policy = 'deploy/prod') =>
        auditEvent({
          time: at(hours),
          decision: 'granted',
          reason: 'granted',
          issuer: 'https://ci.example',
          subject: `repo:${repository}`,
          claims: { repository, ...owner, environment: 'production' },
          policy: { granted_by: policy, candidates: [], matched: [policy], denied_by: [], audit_mode: [] },
          issued: { jti: crypto.randomUUID(), sub: 's', aud: ['https://deploy.example'], scope, exp: 1 },
        });
      const bot = auditEvent({
        time: at(30),
        decision: 'granted',
        reason: 'granted',
        issuer: 'https://ci.example',
        claims: { repository: 'acme/api', ...owner },
        policy: { granted_by: 'bot', candidates: [], matched: ['bot'], denied_by: [], audit_mode: [] },
        github: {
          installation_id: 1,
          owner: 'acme',
          repositories: ['api'],
          permissions: { contents: 'write' },
          expires_at: at(31),
          github_expires_at: at(31),
          token_sha256: 'f'.repeat(64),
        },
      });
      const refused = auditEvent({ time: at(34), issuer: 'https://ci.example', subject: 'svc-x', reason: 'no_policy_matched' });
      for (const event of [
        grant(10, 'acme/api', ['deploy:write']),
        grant(26, 'acme/api', ['deploy:write', 'artifacts:read']),
        bot,
        refused,
        grant(50, 'acme/web', ['artifacts:read']),
      ]) {
        await audit.append(event);
      }
      const inventory = async (since: number, until: number) =>
        buildInventory(await audit.usage({ since, until }), { since, until, sort: 'identity', order: 'asc' }).identities;

      const all = await inventory(day, day + 3 * 24 * HOUR);
      // Sorted by issuer, tenant, then repository or subject: no tenant sorts first.
      expect(all.map((identity) => [identity.repository ?? identity.subject, identity.tenant, identity.grants, identity.denials])).toEqual([
        ['svc-x', null, 0, 1],
        ['acme/api', '42', 3, 0],
        ['acme/web', '42', 1, 0],
      ]);
      expect(all[1]).toMatchObject({
        issuer: 'https://ci.example',
        first_seen: at(10),
        last_seen: at(30),
        policies: [
          { value: 'deploy/prod', count: 2 },
          { value: 'bot', count: 1 },
        ],
        scopes: [
          { value: 'deploy:write', count: 2 },
          { value: 'artifacts:read', count: 1 },
        ],
        audiences: [{ value: 'https://deploy.example', count: 2 }],
        github_permissions: [{ value: 'contents:write', count: 1 }],
        github_repositories: [{ value: 'api', count: 1 }],
      });
      expect(all[0]?.denial_reasons).toEqual([{ value: 'no_policy_matched', count: 1 }]);
      expect(JSON.stringify(all)).not.toMatch(/sha256|jti|f{64}/);

      // A record appended after the roll-up, into a day it already holds, is counted once more.
      await audit.append(grant(27, 'acme/api', ['deploy:write']));
      // Partial first and last days (from 12:00 on day 0, to 09:00 on day 2) around one whole day.
      const partial = await inventory(day + 12 * HOUR, day + 57 * HOUR);
      expect(partial.map((identity) => [identity.repository ?? identity.subject, identity.grants, identity.denials])).toEqual([
        ['svc-x', 0, 1],
        ['acme/api', 3, 0],
        ['acme/web', 1, 0],
      ]);
      expect(partial[1]?.scopes).toEqual([
        { value: 'deploy:write', count: 2 },
        { value: 'artifacts:read', count: 1 },
      ]);
      expect(partial[1]?.first_seen).toBe(at(26));
      expect((await inventory(day, day + 3 * 24 * HOUR))[1]?.grants).toBe(4);
      expect(await audit.usage({ since: day + 60 * HOUR, until: day + 70 * HOUR })).toEqual([]);
      const denials = await audit.usage({ since: day, until: day + 3 * 24 * HOUR, decisions: ['denied'] });
      expect(denials.map((row) => [row.subject, row.count])).toEqual([['svc-x', 1]]);

      // The claims of each policy's grants: least and greatest value, and how many grants carried one, rolled up or raw alike.
      const spread = async (since: number, until: number) => {
        const merged = new Map<string, [string, string, number]>();
        for (const row of await audit.claimUsage({ since, until })) {
          const key = `${row.policy_id} ${row.claim}`;
          const seen = merged.get(key);
          merged.set(
            key,
            seen === undefined
              ? [row.least, row.greatest, row.count]
              : [[row.least, seen[0]].sort()[0] as string, [row.greatest, seen[1]].sort()[1] as string, seen[2] + row.count],
          );
        }
        return Object.fromEntries(merged);
      };
      expect(await spread(day, day + 3 * 24 * HOUR)).toEqual({
        'deploy/prod environment': ['production', 'production', 4],
        'deploy/prod repository': ['acme/api', 'acme/web', 4],
        'deploy/prod repository_owner_id': ['42', '42', 4],
        'bot repository': ['acme/api', 'acme/api', 1],
        'bot repository_owner_id': ['42', '42', 1],
      });
      expect((await spread(day + 12 * HOUR, day + 49 * HOUR))['deploy/prod repository']).toEqual(['acme/api', 'acme/api', 2]);
    });

    it("counts a proxied request once, by its decision record: its outcome and a late-minted token's record are neither a grant nor a refusal again", async () => {
      const { audit } = await open();
      const day = Date.parse('2026-06-01T00:00:00Z');
      const at = (hours: number) => new Date(day + hours * HOUR).toISOString();
      const caller = {
        issuer: 'https://ci.example',
        subject: 'repo:acme/api:ref:refs/heads/main',
        claims: { repository: 'acme/api', repository_owner_id: '42' },
      };
      const proxy = { upstream: 'github', method: 'GET', path: '/repos/acme/api/issues' };
      const credential = { repository: 'acme/api', permissions: { issues: 'read' }, owner_id: '42' };
      const decided = (hours: number) =>
        auditEvent({
          ...caller,
          time: at(hours),
          decision: 'granted',
          reason: 'granted',
          policy: { granted_by: 'proxy/github', candidates: [], matched: ['proxy/github'], denied_by: [], audit_mode: [] },
          proxy: { ...proxy, rule: 'GET /repos/{repository}/issues', credential },
        });
      // As proxy-request.ts appends them: the caller repeated, the policy trace not, the decision record named.
      const following = (decision: AuditEvent, reason: 'proxy_completed' | 'proxy_upstream_timeout' | 'proxy_credential_late', facts: object) => {
        const { policy: _trace, ...event } = auditEvent({
          ...caller,
          time: decision.time,
          decision: reason === 'proxy_upstream_timeout' ? 'error' : 'granted',
          reason,
          request: decision.request,
          proxy: { ...proxy, ...facts, decision_id: decision.id },
        });
        return event;
      };
      const answered = decided(10);
      const timedOut = decided(26);
      for (const event of [
        answered,
        following(answered, 'proxy_completed', { status: 200, request_bytes: 0, response_bytes: 12, duration_ms: 40 }),
        timedOut,
        following(timedOut, 'proxy_upstream_timeout', { request_bytes: 0, response_bytes: 0, duration_ms: 1000 }),
        following(timedOut, 'proxy_credential_late', {
          credential: { ...credential, repository_id: 7, token_sha256: 'e'.repeat(64), expires_at: at(26.2) },
        }),
      ]) {
        await audit.append(event);
      }
      const inventory = async (since: number, until: number) =>
        buildInventory(await audit.usage({ since, until }), { since, until, sort: 'identity', order: 'asc' }).identities;
      // The log's first day is read raw, the next one from the roll-up; then a window of partial days, all raw.
      for (const [since, until, grants] of [
        [day, day + 3 * 24 * HOUR, 2],
        [day + 12 * HOUR, day + 30 * HOUR, 1],
      ] as const) {
        const identities = await inventory(since, until);
        expect(identities).toHaveLength(1);
        expect(identities[0]).toMatchObject({
          repository: 'acme/api',
          grants,
          denials: 0,
          policies: [{ value: 'proxy/github', count: grants }],
          denial_reasons: [],
        });
      }
    });

    it("counts no housekeeping as anyone's grant: an /audit sign-in and sign-out, an operator's or a job's revocation, an introspection, a signing key's withdrawal or rotation", async () => {
      const { audit } = await open();
      const day = Date.parse('2026-07-01T00:00:00Z');
      const at = (hours: number) => day + hours * HOUR;
      const context = { requestId: 'r', clientIp: '127.0.0.1', userAgent: undefined };
      // Built as page-session.ts, rfc7009-revoke.ts, rfc7662-introspect.ts, a job's end and signing-key-operations.ts build them.
      const housekeeping = (hours: number) => {
        const facts = { token: OPERATOR_TOKEN, context, now: at(hours) };
        const signedIn = examinationRecord(
          { issuer: ISSUER },
          { ...facts, caller: { operator: 'alice' }, reason: 'audit_page_signed_in', detail: 'signed in' },
        );
        signedIn.issued = { jti: crypto.randomUUID(), sub: 'alice', aud: [`${ISSUER}/audit`], scope: ['audit:read'], exp: 1 };
        return [
          signedIn,
          examinationRecord({ issuer: ISSUER }, { ...facts, caller: { operator: 'alice' }, reason: 'token_revoked', detail: 'signed out of /audit' }),
          examinationRecord({ issuer: ISSUER }, { ...facts, caller: { operator: 'alice' }, reason: 'token_introspected', detail: 'active' }),
          examinationRecord({ issuer: ISSUER }, { caller: { webhook: 'workflow_job' }, reason: 'token_revoked', detail: 'job ended', context, now: at(hours) }),
          // An operator's work on the signing keys, as signing-key-operations.ts records it: no token, the operator named.
          ...(['signing_key_withdrawn', 'signing_key_rotation_requested'] as const).map((reason) =>
            examinationRecord({ issuer: ISSUER }, { caller: { operator: 'alice' }, reason, detail: reason, context, now: at(hours) }),
          ),
        ];
      };
      const grant = (hours: number) =>
        auditEvent({
          time: new Date(at(hours)).toISOString(),
          decision: 'granted',
          reason: 'granted',
          issuer: 'https://ci.example',
          subject: 'repo:acme/api',
          claims: { repository: 'acme/api' },
          policy: { granted_by: 'deploy', candidates: [], matched: ['deploy'], denied_by: [], audit_mode: [] },
        });
      for (const event of [...housekeeping(10), grant(11), ...housekeeping(26), grant(27)]) await audit.append(event);
      // The log's first day is read raw, the next one from the roll-up; then a window of partial days, all raw.
      for (const [since, until, grants] of [
        [day, day + 3 * 24 * HOUR, 2],
        [day + 12 * HOUR, day + 30 * HOUR, 1],
      ] as const) {
        const usage = await audit.usage({ since, until });
        expect(usage.filter((row) => row.reason !== 'granted')).toEqual([]);
        expect(buildInventory(usage, { since, until, sort: 'identity', order: 'asc' }).identities).toEqual([
          expect.objectContaining({ issuer: 'https://ci.example', repository: 'acme/api', grants, denials: 0 }),
        ]);
      }
    });

    it('stores signed checkpoints only where they match the chain', async () => {
      const { audit } = await open();
      const { sign, keys } = await signer();
      await audit.append(auditEvent());
      const head = await audit.append(auditEvent());
      const checkpoint = await sign(head);
      await audit.addCheckpoint(checkpoint);
      await audit.addCheckpoint(checkpoint);
      await expect(audit.addCheckpoint(await sign({ seq: 1, hash: 'f'.repeat(64) }))).rejects.toThrow();
      expect(await audit.checkpoints(0, 10)).toEqual([checkpoint]);
      expect(await audit.latestCheckpoint()).toEqual(checkpoint);
      expect(await verify(audit, keys)).toMatchObject({ ok: true, records: 2, checkpoints: 1 });
    });

    it('prunes what left the retention window and stays verifiable from the anchor', async () => {
      const { audit } = await open();
      const { sign, check, keys } = await signer();
      const now = Date.now();
      const old = (days: number) => new Date(now - days * 24 * HOUR).toISOString();
      for (const days of [40, 35, 31]) await audit.append(auditEvent({ time: old(days) }));
      const kept = [await audit.append(auditEvent({ time: old(2) })), await audit.append(auditEvent({ time: old(1) }))];

      const round = await maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check });
      expect(round.pruned).toBe(3);
      expect(round.checkpoint?.seq).toBe(5);
      const records = await everything(audit);
      expect(records.map((record) => record.chain)).toEqual(kept);
      expect(await verify(audit, keys)).toMatchObject({ ok: true, records: 2, first_seq: 4, last_seq: 5, anchor: 3 });

      // The chain goes on from the head, and survives pruning every record.
      await audit.append(auditEvent());
      expect((await maintainAuditLog(audit, sign, { now: now + 60 * 24 * HOUR, retentionDays: 30, verify: check })).pruned).toBe(3);
      expect((await everything(audit)).length).toBe(0);
      const after = await audit.append(auditEvent());
      expect(after.seq).toBe(7);
      expect(await verify(audit, keys)).toMatchObject({ ok: true, records: 1, first_seq: 7, anchor: 6 });
    });

    it('finds what to prune among at most maxRecords of the oldest kept records, from the genesis or the anchor, with the key withdrawals they record', async () => {
      const { audit } = await open();
      const { sign } = await signer();
      const now = Date.now();
      const time = new Date(now - 40 * 24 * HOUR).toISOString();
      // The second record withdraws a key: the anchor over it must name the withdrawal, which the key store may no longer.
      const withdrawn = auditEvent({
        time,
        decision: 'granted',
        reason: 'signing_key_withdrawn',
        signing_key: { kid: 'leaked', alg: 'ES256', withdrawn_at: new Date(Date.parse(time) - 1000).toISOString() },
      });
      const links = [];
      for (let i = 0; i < 5; i += 1) links.push(await audit.append(i === 1 ? withdrawn : auditEvent({ time })));
      const window = now - 30 * 24 * HOUR;
      const withdrawals = [{ kid: 'leaked', withdrawnAt: Date.parse(time) - 1000 }];
      expect(await audit.pruneCandidate(window, 1)).toEqual({ seq: 1, hash: links[0]?.hash, withdrawals: [] });
      expect(await audit.pruneCandidate(window, 2)).toEqual({ seq: 2, hash: links[1]?.hash, withdrawals });
      expect(await audit.pruneCandidate(window, 5000)).toEqual({ seq: 5, hash: links[4]?.hash, withdrawals });
      expect(await audit.pruneCandidate(now - 50 * 24 * HOUR, 5000)).toBeUndefined();
      expect(await audit.prune(await sign({ seq: 2, hash: links[1]?.hash as string }, 'anchor'))).toBe(2);
      expect(await audit.pruneCandidate(window, 2)).toEqual({ seq: 4, hash: links[3]?.hash, withdrawals: [] });
    });

    it('prunes no further past an anchor the broker did not sign: the withdrawals it named would not be carried over', async () => {
      const { sign, check } = await signer();
      const stranger = await signer();
      const now = Date.now();
      const old = () => auditEvent({ time: new Date(now - 40 * 24 * HOUR).toISOString() });
      // Whoever can write the store (no key) puts in place of the anchor pruning left a checkpoint of the same record signed
      // as a head, or by a key of their own.
      for (const forge of [(head: ChainHead) => sign(head, 'head'), (head: ChainHead) => stranger.sign(head, 'anchor')]) {
        const { audit, tamper } = await open();
        for (let i = 0; i < 3; i += 1) await audit.append(old());
        expect((await maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check })).pruned).toBe(3);
        for (let i = 0; i < 2; i += 1) await audit.append(old());
        expect((await maintainAuditLog(audit, sign, { now, retentionDays: 0, verify: check })).checkpoint?.seq).toBe(5);
        const [anchor] = await audit.checkpoints(0, 1);
        const forged = await forge({ seq: 3, hash: anchor?.hash ?? '' });
        await tamper('UPDATE audit_checkpoints SET jws = ? WHERE seq = 3', [forged.jws]);
        await expect(maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check })).rejects.toMatchObject({
          name: 'ChainConflictError',
          message: 'the records start after seq 3, but no anchor the broker signed stands there: pruning past it would drop the withdrawals it named',
        });
        expect((await audit.checkpoints(0, 1))[0]?.jws).toBe(forged.jws);
      }
    });

    it('prunes no further past an anchor the broker signed for another place: an earlier one would drop the withdrawals named since', async () => {
      const { audit, tamper } = await open();
      const { sign, check } = await signer();
      const now = Date.now();
      const time = new Date(now - 40 * 24 * HOUR).toISOString();
      const prune = () => maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check });
      await audit.append(auditEvent({ time }));
      expect((await prune()).pruned).toBe(1);
      const [earlier] = await audit.checkpoints(0, 1);
      const withdrawn_at = new Date(Date.parse(time) - 1000).toISOString();
      await audit.append(
        auditEvent({ time, decision: 'granted', reason: 'signing_key_withdrawn', signing_key: { kid: 'leaked', alg: 'ES256', withdrawn_at } }),
      );
      await audit.append(auditEvent({ time }));
      expect((await prune()).pruned).toBe(2);
      const [anchor] = await audit.checkpoints(0, 1);
      expect(anchor?.seq).toBe(3);
      expect((await check(anchor as Checkpoint)).withdrawals).toEqual([{ kid: 'leaked', time: withdrawn_at }]);
      for (let i = 0; i < 2; i += 1) await audit.append(auditEvent({ time }));
      expect((await maintainAuditLog(audit, sign, { now, retentionDays: 0, verify: check })).checkpoint?.seq).toBe(5);
      // Whoever can write the store (no key) puts the broker's own anchor of the first round, which names no withdrawal, in
      // the row of the second's: its seq and hash columns stay, so the records still start there as stored.
      await tamper('UPDATE audit_checkpoints SET jws = ? WHERE seq = 3', [earlier?.jws ?? '']);
      await expect(prune()).rejects.toMatchObject({
        name: 'ChainConflictError',
        message: 'the records start after seq 3, but no anchor the broker signed stands there: pruning past it would drop the withdrawals it named',
      });
      expect((await audit.checkpoints(0, 1))[0]?.jws).toBe(earlier?.jws);
    });

    it('signs the head only when it moved since the latest checkpoint', async () => {
      const { audit } = await open();
      const { sign, check } = await signer();
      const upkeep = () => maintainAuditLog(audit, sign, { now: Date.now(), retentionDays: 0, verify: check });
      expect(await upkeep()).toEqual({ pruned: 0 });
      for (let i = 0; i < 2; i += 1) await audit.append(auditEvent());
      expect((await upkeep()).checkpoint?.seq).toBe(2);
      expect(await upkeep()).toEqual({ pruned: 0 });
      expect(await audit.checkpoints(0, 10)).toHaveLength(1);
    });

    it('prunes by the hashed records, and signs nothing over records re-hashed since its last signature', async () => {
      const { audit, tamper } = await open();
      const { sign, check, keys } = await signer();
      const now = Date.now();
      const dated = (hours: number) => new Date(now - hours * HOUR).toISOString();
      const recent = [];
      for (let i = 0; i < 3; i += 1) recent.push(await audit.append(auditEvent({ time: dated(3 - i) })));
      // Whoever can write the store, without the key, dates record 2 back in the column queries read: pruning goes by
      // the hashed records, so nothing is pruned, and the round signs the head as always.
      await tamper('UPDATE audit_events SET time = 0 WHERE seq = 2', []);
      expect(await maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check })).toMatchObject({ pruned: 0, checkpoint: { seq: 3 } });
      expect((await everything(audit)).map((record) => record.chain)).toEqual(recent);

      // …or rewrites every record as 90 days old and chains them anew, up to the head: the last signature (the head's, at
      // 3) no longer reaches the records, so neither a checkpoint of the next record nor an anchor is signed over them.
      await audit.append(auditEvent({ time: dated(0) }));
      await rehash(audit, tamper, (event, seq) => (seq === 4 ? undefined : { ...event, time: dated(90 * 24) }));
      await expect(maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check })).rejects.toThrow(
        /^record 3 differs from the checkpoint signed over it$/,
      );
      expect((await everything(audit)).length).toBe(4);
      expect((await audit.latestCheckpoint())?.seq).toBe(3);
      expect(await verify(audit, keys)).toMatchObject({ ok: false, problem: { kind: 'checkpoint_mismatch', seq: 3 } });
    });

    /** Three records 40 to 38 days old, the head checkpointed by upkeep (no retention), then every one rewritten and re-hashed. */
    const oldThreeRewritten = async (now: number) => {
      const stores = await open();
      const keyed = await signer();
      for (let i = 0; i < 3; i += 1) await stores.audit.append(auditEvent({ time: new Date(now - (40 - i) * 24 * HOUR).toISOString() }));
      expect((await maintainAuditLog(stores.audit, keyed.sign, { now, retentionDays: 0, verify: keyed.check })).checkpoint?.seq).toBe(3);
      await rehash(stores.audit, stores.tamper, (event) => ({ ...event, detail: 'rewritten' }));
      return { ...stores, ...keyed };
    };

    it('signs no anchor over old records re-hashed since the checkpoint that covers them, though the head did not move', async () => {
      const now = Date.now();
      const { audit, sign, check } = await oldThreeRewritten(now);
      await expect(maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check })).rejects.toThrow(
        /^record 3 differs from the checkpoint signed over it$/,
      );
      expect((await everything(audit)).length).toBe(3);
      expect(await audit.checkpoints(0, 10)).toHaveLength(1);
    });

    it('signs no anchor over a span with a record rewritten and re-hashed, the next one linked to it anew: the pin keeps its hash', async () => {
      const { audit, tamper } = await open();
      const { sign, check, keys } = await signer();
      const now = Date.now();
      const dated = (hours: number) => new Date(now - hours * HOUR).toISOString();
      for (const hours of [40 * 24, 35 * 24, 3, 2, 1]) await audit.append(auditEvent({ time: dated(hours) }));
      expect((await maintainAuditLog(audit, sign, { now, retentionDays: 0, verify: check })).checkpoint?.seq).toBe(5);
      // Whoever can write the store (no key) rewrites record 3, between the candidate (2) and the pin (the head's checkpoint
      // at 5), gives it the hash of its new content and links record 4 to that: every link holds, and so does record 5's hash.
      const [, second, third] = await everything(audit);
      const forged = { ...third!.event, detail: 'rewritten' };
      const forgedHash = chainHash(second!.chain.hash, forged);
      await tamper('UPDATE audit_events SET event = ?, hash = ? WHERE seq = 3', [canonicalEvent(forged).text, forgedHash]);
      await tamper('UPDATE audit_events SET prev_hash = ? WHERE seq = 4', [forgedHash]);
      for (let round = 0; round < 2; round += 1) {
        await expect(maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check })).rejects.toMatchObject({
          name: 'ChainConflictError',
          code: 'audit_chain_conflict',
          message: 'record 4 no longer matches its hash',
        });
      }
      expect((await everything(audit)).map((record) => record.chain.seq)).toEqual([1, 2, 3, 4, 5]);
      expect((await audit.checkpoints(0, 10)).map((checkpoint) => checkpoint.seq)).toEqual([5]);
      expect(await verify(audit, keys)).toMatchObject({ ok: false, problem: { kind: 'edited', seq: 4 } });
    });

    it('holds what it prunes to what the checkpoint after it signs, not its row: old records re-hashed, the row edited to match', async () => {
      const now = Date.now();
      // Every record rewritten and re-hashed, and the checkpoint row's hash column set to the new head's (its JWS unchanged).
      const { audit, tamper, sign, check } = await oldThreeRewritten(now);
      await tamper('UPDATE audit_checkpoints SET hash = ? WHERE seq = 3', [(await audit.head()).hash]);
      await expect(maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check })).rejects.toThrow(
        /^record 3 differs from the checkpoint signed over it$/,
      );
      expect((await everything(audit)).length).toBe(3);
    });

    it('prunes nothing over a record deleted and the ones after it renumbered: the next one commits to a record that is gone', async () => {
      const { audit, tamper } = await open();
      const { sign, check, keys } = await signer();
      const now = Date.now();
      for (let i = 0; i < 5; i += 1) await audit.append(auditEvent({ time: new Date(now - 40 * 24 * HOUR).toISOString() }));
      await audit.append(auditEvent({ time: new Date(now - HOUR).toISOString() }));
      await tamper('DELETE FROM audit_events WHERE seq = 3', []);
      for (const seq of [4, 5, 6]) await tamper('UPDATE audit_events SET seq = ? WHERE seq = ?', [seq - 1, seq]);
      // Renumbered, record 3 no longer carries the MAC of its seq: the head is not signed over it, and nothing is pruned.
      await expect(maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check })).rejects.toThrow(
        /^record 3 carries a MAC the master key did not make: the broker did not append it$/,
      );
      expect((await everything(audit)).map((record) => record.chain.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(await verify(audit, keys)).toMatchObject({ ok: false, problem: { seq: 3 } });
    });

    it("prunes nothing on the word of another chain's checkpoint: a shard's upkeep passes over one signed for another shard", async () => {
      const { audit, tamper } = await open();
      const { ring } = await signer();
      const now = Date.now();
      for (let i = 0; i < 3; i += 1) await audit.append(auditEvent({ time: new Date(now - 40 * 24 * HOUR).toISOString() }));
      // Shard 1's checkpoint over the same head, copied in with its records (the copy as shard 0's store holds it).
      const copied = await checkpointSigner(ISSUER, () => ring, Date.now, '1')(await audit.head());
      await tamper('INSERT INTO audit_checkpoints (seq, hash, time, jws) VALUES (?, ?, ?, ?)', [copied.seq, copied.hash, Date.parse(copied.time), copied.jws]);
      const round = await maintainAuditLog(
        audit,
        checkpointSigner(ISSUER, () => ring, Date.now, '0'),
        {
          now,
          retentionDays: 30,
          verify: checkpointVerifier(() => ring, '0'),
        },
      );
      expect(round).toEqual({ pruned: 0 });
      expect((await everything(audit)).length).toBe(3);
    });

    it('prunes nothing over a renumbered record, though its links and hash hold: the gap in seq stays for verify to name', async () => {
      const { audit, tamper } = await open();
      const { sign, check, keys } = await signer();
      const now = Date.now();
      for (let i = 0; i < 4; i += 1) await audit.append(auditEvent({ time: new Date(now - 40 * 24 * HOUR).toISOString() }));
      // Records 3 and 4 moved to seq 7 and 9, their events, links and hashes untouched.
      await tamper('UPDATE audit_events SET seq = 9 WHERE seq = 4', []);
      await tamper('UPDATE audit_events SET seq = 7 WHERE seq = 3', []);
      // Moved, record 7 no longer carries the MAC of its seq: the head is not signed over it, and nothing is pruned.
      await expect(maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check })).rejects.toThrow(
        /^record 7 carries a MAC the master key did not make: the broker did not append it$/,
      );
      expect((await everything(audit)).map((record) => record.chain.seq)).toEqual([1, 2, 7, 9]);
      expect(await verify(audit, keys)).toMatchObject({ ok: false, problem: { kind: 'edited', seq: 7 } });
    });

    it('finds checkpoints deleted behind the back of the broker that signed them: no head, no anchor after it', async () => {
      const { audit, tamper } = await open();
      const { sign, check } = await signer();
      const now = Date.now();
      const signedSoFar = {};
      const upkeep = (retentionDays = 30) => maintainAuditLog(audit, sign, { now, retentionDays, verify: check, signedSoFar });
      for (let i = 0; i < 3; i += 1) await audit.append(auditEvent({ time: new Date(now - (40 - i) * 24 * HOUR).toISOString() }));
      expect((await upkeep(0)).checkpoint?.seq).toBe(3);
      await audit.append(auditEvent({ time: new Date(now - HOUR).toISOString() }));
      expect((await upkeep(0)).checkpoint?.seq).toBe(4);
      // Whoever can write the store deletes the newest checkpoint, leaving the one at 3 the latest.
      await tamper('DELETE FROM audit_checkpoints WHERE seq > 3', []);
      await expect(upkeep()).rejects.toThrow(
        /^the newest checkpoint stored is at seq 3, but this broker signed one at seq 4: checkpoints were deleted from the store$/,
      );
      expect((await everything(audit)).length).toBe(4);
    });

    it('finds every checkpoint deleted behind the back of the broker that signed them, or none left that verifies', async () => {
      const { audit, tamper } = await open();
      const { sign, check } = await signer();
      const signedSoFar = {};
      const upkeep = () => maintainAuditLog(audit, sign, { now: Date.now(), retentionDays: 0, verify: check, signedSoFar });
      for (let i = 0; i < 3; i += 1) await audit.append(auditEvent());
      expect((await upkeep()).checkpoint?.seq).toBe(3);
      const rolledBack = /^the newest checkpoint stored is at seq 0, but this broker signed one at seq 3: checkpoints were deleted from the store$/;
      await tamper('UPDATE audit_checkpoints SET jws = ?', ['forged.forged.forged']);
      await expect(upkeep()).rejects.toThrow(rolledBack);
      await tamper('DELETE FROM audit_checkpoints', []);
      await expect(upkeep()).rejects.toThrow(rolledBack);
      expect(await audit.checkpoints(0, 10)).toEqual([]);
    });

    it('holds a round that signs nothing to its memory too: checkpoints deleted with the records after them fail it before it prunes', async () => {
      const { audit, tamper } = await open();
      const { sign, check } = await signer();
      const now = Date.now();
      const signedSoFar = {};
      const upkeep = (retentionDays: number) => maintainAuditLog(audit, sign, { now, retentionDays, verify: check, signedSoFar });
      for (let i = 0; i < 3; i += 1) await audit.append(auditEvent({ time: new Date(now - (40 - i) * 24 * HOUR).toISOString() }));
      expect((await upkeep(0)).checkpoint?.seq).toBe(3);
      await audit.append(auditEvent({ time: new Date(now - 35 * 24 * HOUR).toISOString() }));
      expect((await upkeep(0)).checkpoint?.seq).toBe(4);
      // The end of the log is cut off with its checkpoint: the head is back at the checkpoint at 3, so nothing is to sign.
      await tamper('DELETE FROM audit_checkpoints WHERE seq > 3', []);
      await tamper('DELETE FROM audit_events WHERE seq > 3', []);
      await expect(upkeep(30)).rejects.toThrow(
        /^the newest checkpoint stored is at seq 3, but this broker signed one at seq 4: checkpoints were deleted from the store$/,
      );
      expect((await everything(audit)).length).toBe(3);
      expect(await audit.checkpoints(0, 10)).toHaveLength(1);
    });

    it('holds a round that signs nothing to the hash its memory signed, not only its seq: a log copied in with a checkpoint as new is refused before anything is pruned', async () => {
      const { audit, tamper } = await open();
      const { sign, check, unmarked } = await signer();
      const now = Date.now();
      const signedSoFar = {};
      const upkeep = (retentionDays: number) => maintainAuditLog(audit, sign, { now, retentionDays, verify: check, signedSoFar });
      for (let i = 0; i < 3; i += 1) await audit.append(auditEvent({ time: new Date(now - (40 - i) * 24 * HOUR).toISOString() }));
      const signed = (await upkeep(0)).checkpoint;
      expect(signed?.seq).toBe(3);
      // Whoever can write the store puts another chain's records in place of these, with the checkpoint the broker signed
      // over them there (one of a Workers shard from before checkpoints named their chain; on Node, a copy of the log
      // restored elsewhere): as new as the one remembered, and the head at it, so the round has nothing to sign.
      await rehash(audit, tamper, (event) => ({ ...event, detail: 'another chain' }));
      await tamper('DELETE FROM audit_checkpoints', []);
      const copied = await unmarked(await audit.head());
      await tamper('INSERT INTO audit_checkpoints (seq, hash, time, jws) VALUES (?, ?, ?, ?)', [copied.seq, copied.hash, Date.parse(copied.time), copied.jws]);
      await expect(upkeep(30)).rejects.toThrow(/^record 3 differs from the checkpoint signed over it$/);
      expect((await everything(audit)).map((record) => record.chain.seq)).toEqual([1, 2, 3]);
      expect(await audit.checkpoints(0, 10)).toEqual([copied]);
      expect(signedSoFar).toEqual({ last: { seq: 3, hash: signed?.hash } });
    });

    it('remembers no checkpoint past the head: one copied in beyond it fails the round, and once taken out leaves upkeep as it was', async () => {
      const { audit, tamper } = await open();
      const { sign, check, unmarked } = await signer();
      const signedSoFar = {};
      const upkeep = () => maintainAuditLog(audit, sign, { now: Date.now(), retentionDays: 0, verify: check, signedSoFar });
      for (let i = 0; i < 3; i += 1) await audit.append(auditEvent());
      expect((await upkeep()).checkpoint?.seq).toBe(3);
      // A checkpoint the broker signed at seq 1000 of another chain (before checkpoints named their chain), copied into a row.
      const far = await unmarked({ seq: 1000, hash: 'a'.repeat(64) });
      await tamper('INSERT INTO audit_checkpoints (seq, hash, time, jws) VALUES (?, ?, ?, ?)', [far.seq, far.hash, Date.parse(far.time), far.jws]);
      await expect(upkeep()).rejects.toMatchObject({ name: 'ChainConflictError' });
      expect(signedSoFar).toMatchObject({ last: { seq: 3 } });
      // Taken out again, the store is as upkeep left it: the next round signs the head that moved.
      await tamper('DELETE FROM audit_checkpoints WHERE seq = 1000', []);
      await audit.append(auditEvent());
      expect((await upkeep()).checkpoint?.seq).toBe(4);
    });

    it('goes by what a checkpoint signs, not its row: a signature copied under a newer seq, or a forged newest row, hides nothing', async () => {
      const { audit, tamper } = await open();
      const { sign, check } = await signer();
      const signedSoFar = {};
      const upkeep = (memory?: object) =>
        maintainAuditLog(audit, sign, { now: Date.now(), retentionDays: 0, verify: check, ...(memory === undefined ? {} : { signedSoFar: memory }) });
      for (let i = 0; i < 3; i += 1) await audit.append(auditEvent());
      const third = (await upkeep(signedSoFar)).checkpoint as Checkpoint;
      await audit.append(auditEvent());
      expect((await upkeep(signedSoFar)).checkpoint?.seq).toBe(4);
      // The row at 4 now carries the signature of the one at 3.
      await tamper('UPDATE audit_checkpoints SET jws = ? WHERE seq = 4', [third.jws]);
      await audit.append(auditEvent());
      await expect(upkeep(signedSoFar)).rejects.toThrow(
        /^the newest checkpoint stored is at seq 3, but this broker signed one at seq 4: checkpoints were deleted from the store$/,
      );
      // A broker with no memory of its own (restarted, or a Workers cron round) passes over a forged newest row, and holds
      // the records to the newest checkpoint that verifies: record 3, re-hashed, is found.
      await tamper('UPDATE audit_checkpoints SET jws = ? WHERE seq = 4', ['forged.forged.forged']);
      await rehash(audit, tamper, (event) => ({ ...event, detail: 'rewritten' }));
      await audit.append(auditEvent());
      await expect(upkeep()).rejects.toThrow(/^record 3 differs from the checkpoint signed over it$/);
    });

    it('passes over a checkpoint no key of the broker verifies (a removed key an older keyway kept no attestation of), or one signed as another issuer', async () => {
      const { audit } = await open();
      const { sign, check } = await signer();
      const gone = await KeyRing.from([await generateSigningKey(Date.now())]);
      const now = Date.now();
      for (let i = 0; i < 3; i += 1) await audit.append(auditEvent({ time: new Date(now - (40 - i) * 24 * HOUR).toISOString() }));
      await audit.addCheckpoint(await checkpointSigner(ISSUER, () => gone, Date.now)(await audit.head()));
      await audit.append(auditEvent({ time: new Date(now - HOUR).toISOString() }));
      // The head is signed, and the old records pruned up to a checkpoint the broker can verify (the head's).
      expect(await maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check })).toMatchObject({ pruned: 3, checkpoint: { seq: 4 } });

      // A checkpoint signed under an earlier KEYWAY_ISSUER is the broker's all the same: records re-hashed under it are found.
      const moved = await open();
      for (let i = 0; i < 2; i += 1) await moved.audit.append(auditEvent());
      await moved.audit.addCheckpoint(await checkpointSigner('https://keyway.before.example', () => gone, Date.now)(await moved.audit.head()));
      await rehash(moved.audit, moved.tamper, (event) => ({ ...event, detail: 'rewritten' }));
      await moved.audit.append(auditEvent());
      const upkeep = maintainAuditLog(
        moved.audit,
        checkpointSigner(ISSUER, () => gone, Date.now),
        { now, retentionDays: 0, verify: checkpointVerifier(() => gone) },
      );
      await expect(upkeep).rejects.toThrow(/^record 2 differs from the checkpoint signed over it$/);
    });

    it('holds an anchor to a kept checkpoint at its seq: records re-hashed and then pruned by a broker that signed over them', async () => {
      const { audit, tamper } = await open();
      const { sign, keys } = await signer();
      for (let i = 0; i < 3; i += 1) await audit.append(auditEvent());
      const kept = await sign(await audit.head());
      await audit.append(auditEvent());
      // Records 1…3 re-hashed and 4 chained to them, then an anchor signed over the new record 3 (a keyway before upkeep
      // checked, or another copy of the log with the same keys) and everything up to it pruned.
      await rehash(audit, tamper, (event, seq) => (seq === 4 ? undefined : { ...event, detail: 'rewritten' }));
      const third = (await everything(audit))[2]!.chain;
      await audit.prune(await sign(third, 'anchor'));
      expect(await verify(audit, keys)).toMatchObject({ ok: true, anchor: 3 });
      expect(await verify(audit, keys, [kept])).toMatchObject({ ok: false, problem: { kind: 'kept_checkpoint_mismatch', seq: 3 } });
      // Pruned of every record, the same.
      await audit.prune(await sign(await audit.head(), 'anchor'));
      const fourth = await sign({ seq: 4, hash: 'f'.repeat(64) });
      expect(await verify(audit, keys, [fourth])).toMatchObject({ ok: false, problem: { kind: 'kept_checkpoint_mismatch', seq: 4 } });
    });

    it('prunes a log whose records are out of time order (a slow request is appended after a faster later one): no false alarm', async () => {
      const { audit } = await open();
      const { sign, check, keys } = await signer();
      const now = Date.now();
      const day = 24 * HOUR;
      // Record 2 began just after the cutoff but was appended before record 3, which began just before it.
      for (const age of [40 * day, 30 * day - HOUR, 30 * day + HOUR, HOUR]) await audit.append(auditEvent({ time: new Date(now - age).toISOString() }));
      const round = await maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check });
      expect(round.pruned).toBe(1);
      expect(await verify(audit, keys)).toMatchObject({ ok: true, first_seq: 2, anchor: 1 });
      // Record 3, older than the window, goes once record 2 does.
      expect((await maintainAuditLog(audit, sign, { now: now + 2 * HOUR, retentionDays: 30, verify: check })).pruned).toBe(2);
    });

    /** A store of three records, its head (seq 3) checkpointed by a round of upkeep, and the keys that signed it. */
    const checkpointedAtThree = async () => {
      const stores = await open();
      const keyed = await signer();
      for (let i = 0; i < 3; i += 1) await stores.audit.append(auditEvent());
      expect((await maintainAuditLog(stores.audit, keyed.sign, { now: Date.now(), retentionDays: 0, verify: keyed.check })).checkpoint?.seq).toBe(3);
      return { ...stores, ...keyed };
    };

    it('names a record renumbered past the checkpoint signed over it: its links and hash hold, its seq does not', async () => {
      const { audit, tamper, keys } = await checkpointedAtThree();
      // Whoever can write the store moves the head from seq 3 to 5 (its event, links and hash untouched): no record is left at
      // the checkpoint's seq for it to be held to, and none is missing between the links.
      await tamper('UPDATE audit_events SET seq = 5 WHERE seq = 3', []);
      expect(await verify(audit, keys)).toMatchObject({
        ok: false,
        problem: { kind: 'edited', seq: 5, message: expect.stringMatching(/^record 5 \(.+\) was renumbered: it follows record 2 in the chain$/) },
      });
    });

    it("holds the log to a checkpoint the broker's keys signed under an earlier KEYWAY_ISSUER, stored or kept, as upkeep does", async () => {
      const { audit, tamper } = await open();
      const { keys, ring } = await signer();
      const before = checkpointSigner('https://keyway.before.example', () => ring, Date.now);
      for (let i = 0; i < 2; i += 1) await audit.append(auditEvent());
      const signed = await before(await audit.head());
      expect(await verify(audit, keys, [signed])).toMatchObject({ ok: true, kept_checkpoints: 1 });
      await audit.addCheckpoint(signed);
      expect(await verify(audit, keys)).toMatchObject({ ok: true, checkpoints: 1 });
      // Its name gives it no standing of its own: the log rewritten after it differs from it.
      await rehash(audit, tamper, (event) => ({ ...event, detail: 'rewritten' }));
      expect(await verify(audit, keys)).toMatchObject({ ok: false, checkpoints: 1, problem: { kind: 'checkpoint_mismatch', seq: 2 } });
      expect(await verify(audit, keys, [signed])).toMatchObject({ ok: false, problem: { kind: 'checkpoint_mismatch', seq: 2 } });
    });

    it('holds the log to what a checkpoint signs, not to the seq and hash stored beside it: a rewrite with the row edited to match is found', async () => {
      const { audit, tamper, keys } = await checkpointedAtThree();
      await rehash(audit, tamper, (event) => ({ ...event, detail: 'rewritten' }));
      await tamper('UPDATE audit_checkpoints SET hash = ? WHERE seq = 3', [(await audit.head()).hash]);
      expect(await verify(audit, keys)).toMatchObject({ ok: false, checkpoints: 1, problem: { kind: 'checkpoint_mismatch', seq: 3 } });
    });

    it('names a log cut short by the one record its newest checkpoint signs', async () => {
      const { audit, tamper, keys } = await checkpointedAtThree();
      await tamper('DELETE FROM audit_events WHERE seq = 3', []);
      expect(await verify(audit, keys)).toMatchObject({
        ok: false,
        problem: { kind: 'truncated', seq: 3, message: expect.stringMatching(/^records after seq 2 were deleted: a checkpoint signed at .+ covers seq 3$/) },
      });
    });

    it('names a log cut back to its first record, past which its checkpoint signs', async () => {
      const { audit, tamper } = await open();
      const { sign, keys } = await signer();
      for (let i = 0; i < 2; i += 1) await audit.append(auditEvent());
      await audit.addCheckpoint(await sign(await audit.head()));
      await tamper('DELETE FROM audit_events WHERE seq = 2', []);
      expect(await verify(audit, keys)).toMatchObject({
        ok: false,
        records: 1,
        problem: { kind: 'truncated', seq: 2, message: expect.stringMatching(/^records after seq 1 were deleted: a checkpoint signed at .+ covers seq 2$/) },
      });
    });

    it("refuses another chain's anchor put in place of a chain's emptied records: a checkpoint signed for one chain is none of another's", async () => {
      const { audit, tamper } = await open();
      const { ring, keys } = await signer();
      const signFor = (chain: string) => checkpointSigner(ISSUER, () => ring, Date.now, chain);
      for (let i = 0; i < 2; i += 1) await audit.append(auditEvent());
      await audit.addCheckpoint(await signFor('1')(await audit.head()));
      expect(await verify(audit, keys, undefined, '1')).toMatchObject({ ok: true, checkpoints: 1 });
      // Whoever can write shard 1's store empties it, and puts an anchor the same keys signed for shard 0 (pruned there) in
      // place of its checkpoint: read as shard 0's, an empty chain pruned to its anchor would pass.
      const foreign = await signFor('0')({ seq: 5, hash: 'e'.repeat(64) }, 'anchor');
      await tamper('DELETE FROM audit_events', []);
      await tamper('DELETE FROM audit_checkpoints', []);
      await tamper('INSERT INTO audit_checkpoints (seq, hash, time, jws) VALUES (?, ?, ?, ?)', [
        foreign.seq,
        foreign.hash,
        Date.parse(foreign.time),
        foreign.jws,
      ]);
      expect(await verify(audit, keys, undefined, '0')).toMatchObject({ ok: true, anchor: 5 });
      expect(await verify(audit, keys, undefined, '1')).toMatchObject({
        ok: false,
        checkpoints: 0,
        problem: { kind: 'checkpoint_invalid', seq: 5, message: expect.stringContaining('signed for chain 0, but this is chain 1') },
      });
    });

    it('names the first problem by seq: a checkpoint row no key signed before an edited record after it', async () => {
      const { audit, tamper, keys } = await checkpointedAtThree();
      const [, second] = await everything(audit);
      await tamper('INSERT INTO audit_checkpoints (seq, hash, time, jws) VALUES (?, ?, ?, ?)', [2, second!.chain.hash, Date.now(), 'e30.e30.forged']);
      await tamper('UPDATE audit_events SET event = replace(event, ?, ?) WHERE seq = 3', ['"decision":"', '"decision":"x']);
      expect(await verify(audit, keys)).toMatchObject({ ok: false, problem: { kind: 'checkpoint_invalid', seq: 2 } });
    });

    it('names a log whose oldest record was deleted and the rest renumbered from 1: the new first one commits to a record, not to the genesis', async () => {
      const { audit, tamper } = await open();
      const { keys } = await signer();
      for (let i = 0; i < 3; i += 1) await audit.append(auditEvent());
      // No checkpoint yet (no upkeep round since the log began): only the genesis tells that seq 1 was not always this record.
      await tamper('DELETE FROM audit_events WHERE seq = 1', []);
      await tamper('UPDATE audit_events SET seq = seq - 1', []);
      expect(await verify(audit, keys)).toMatchObject({
        ok: false,
        records: 2,
        problem: { kind: 'deleted', seq: 1, message: expect.stringMatching(/^the chain breaks before record 1 \(.+\): the record it commits to is gone/) },
      });
    });

    it('refuses a log cut back to a head checkpoint: only the anchor pruning signs stands for the records before the first', async () => {
      const { audit, tamper, sign, check, keys } = await checkpointedAtThree();
      for (let i = 0; i < 2; i += 1) await audit.append(auditEvent());
      await maintainAuditLog(audit, sign, { now: Date.now(), retentionDays: 0, verify: check });
      expect(await verify(audit, keys)).toMatchObject({ ok: true, records: 5 });
      // Someone who can write the store (no key) deletes the oldest records, as pruning would, up to a head checkpoint.
      await tamper('DELETE FROM audit_events WHERE seq <= ?', [3]);
      await tamper('DELETE FROM audit_checkpoints WHERE seq < ?', [3]);
      expect(await verify(audit, keys)).toMatchObject({
        ok: false,
        problem: {
          kind: 'deleted',
          seq: 4,
          message: "records before seq 4 were deleted: the checkpoint at seq 3 was signed as the log's head, not as the anchor pruning leaves",
        },
      });
    });

    it('signs no head over a checkpointed record deleted behind its back: only pruning, which leaves its anchor, takes one', async () => {
      const gone = /^record 3 is gone, and no anchor pruning signed stands for it: it was deleted$/;
      // Whoever can write the store (no key) deletes the record the newest checkpoint signs, or every record up to it
      // (as pruning would, but with no anchor), the head having moved since: a round with or without a memory signs
      // nothing after it. Or deletes every record: a round with a memory fails (one without has nothing to sign).
      const cases = [
        { deletion: 'DELETE FROM audit_events WHERE seq = 3', appended: 2, rounds: [false, true] },
        { deletion: 'DELETE FROM audit_events WHERE seq <= 3', appended: 2, rounds: [false, true] },
        { deletion: 'DELETE FROM audit_events', appended: 0, rounds: [true] },
      ];
      for (const { deletion, appended, rounds } of cases) {
        const { audit, tamper, sign, check, keys } = await checkpointedAtThree();
        const signedSoFar = { last: await audit.head() };
        for (let i = 0; i < appended; i += 1) await audit.append(auditEvent());
        await tamper(deletion, []);
        for (const memory of rounds.map((remembers) => (remembers ? { signedSoFar } : {}))) {
          await expect(maintainAuditLog(audit, sign, { now: Date.now(), retentionDays: 0, verify: check, ...memory }), deletion).rejects.toMatchObject({
            name: 'ChainConflictError',
            message: expect.stringMatching(gone),
          });
        }
        expect((await audit.checkpoints(0, 10)).map((checkpoint) => checkpoint.seq)).toEqual([3]);
        expect(await verify(audit, keys)).toMatchObject({ ok: false, problem: { kind: 'deleted' } });
      }
      // …or deletes every record and puts in place of the head checkpoint an anchor the same keys signed over another copy
      // of the log (restored elsewhere, and pruned there): an anchor, but not over the record remembered.
      const { audit, tamper, sign, check } = await checkpointedAtThree();
      const signedSoFar = { last: await audit.head() };
      const elsewhere = await sign({ seq: 3, hash: 'e'.repeat(64) }, 'anchor');
      await tamper('DELETE FROM audit_events', []);
      await tamper('UPDATE audit_checkpoints SET hash = ?, jws = ? WHERE seq = 3', [elsewhere.hash, elsewhere.jws]);
      await expect(maintainAuditLog(audit, sign, { now: Date.now(), retentionDays: 0, verify: check, signedSoFar })).rejects.toThrow(gone);
    });

    it('signs no head over records deleted up to a row holding an anchor the broker signed for an earlier record', async () => {
      // Whoever can write the store (no key) deletes the records up to 4 and puts in the row before the first left an anchor
      // the broker signed when it pruned up to record 1 (an earlier round's): an anchor, but of another place. The newest
      // checkpoint is then that one, whose record is gone; a round with no memory (a restarted broker) holds it to it.
      const { audit, tamper, sign, check, keys } = await checkpointedAtThree();
      const [first] = (await audit.query({ order: 'asc', limit: 1 })).records;
      const earlier = await sign({ seq: 1, hash: first?.chain.hash ?? '' }, 'anchor');
      for (let i = 0; i < 2; i += 1) await audit.append(auditEvent());
      const [fourth] = (await audit.query({ order: 'asc', limit: 1, after: '3' })).records;
      await tamper('DELETE FROM audit_events WHERE seq <= 4', []);
      await tamper('DELETE FROM audit_checkpoints', []);
      await tamper('INSERT INTO audit_checkpoints (seq, hash, time, jws) VALUES (?, ?, ?, ?)', [4, fourth?.chain.hash ?? '', Date.now(), earlier.jws]);
      await expect(maintainAuditLog(audit, sign, { now: Date.now(), retentionDays: 0, verify: check })).rejects.toThrow(
        /^record 1 is gone, and no anchor pruning signed stands for it: it was deleted$/,
      );
      expect((await audit.checkpoints(0, 10)).map((checkpoint) => checkpoint.jws)).toEqual([earlier.jws]);
      expect(await verify(audit, keys)).toMatchObject({ ok: false, problem: { kind: 'deleted', seq: 5 } });
    });

    it('holds a log pruned of every record to its anchor, round after round: the checkpointed record pruning took is no deletion', async () => {
      const { audit } = await open();
      const { sign, check, keys } = await signer();
      const now = Date.now();
      const signedSoFar = {};
      const upkeep = () => maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check, signedSoFar });
      for (const days of [40, 35]) await audit.append(auditEvent({ time: new Date(now - days * 24 * HOUR).toISOString() }));
      expect(await upkeep()).toMatchObject({ pruned: 2, checkpoint: { seq: 2 } });
      for (let round = 0; round < 2; round += 1) expect(await upkeep()).toEqual({ pruned: 0, macsAfter: 0 });
      expect(signedSoFar).toMatchObject({ last: { seq: 2 } });
      // Restarted (no memory), the same.
      expect(await maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check, signedSoFar: {} })).toEqual({ pruned: 0, macsAfter: 0 });
      await audit.append(auditEvent());
      expect((await upkeep()).checkpoint?.seq).toBe(3);
      expect(await verify(audit, keys)).toMatchObject({ ok: true, records: 1, first_seq: 3, anchor: 2 });
    });

    it('prunes up to a record a head checkpoint signed: the anchor takes its place, and the log stays verifiable', async () => {
      const { audit } = await open();
      const { sign, check, keys } = await signer();
      const now = Date.now();
      for (const days of [40, 35]) await audit.append(auditEvent({ time: new Date(now - days * 24 * HOUR).toISOString() }));
      // An earlier round, before the records left the window, signed the head: seq 2.
      expect((await maintainAuditLog(audit, sign, { now: now - 20 * 24 * HOUR, retentionDays: 30, verify: check })).checkpoint?.seq).toBe(2);
      expect((await maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check })).pruned).toBe(2);
      await audit.append(auditEvent());
      expect(await verify(audit, keys)).toMatchObject({ ok: true, records: 1, first_seq: 3, anchor: 2 });
      expect(await verify(audit, keys)).not.toHaveProperty('anchor_unmarked');
    });

    it('refuses a log whose every record was deleted, its head checkpoint left: an empty log holds the anchor pruning leaves, or nothing', async () => {
      const { audit, tamper } = await open();
      const { sign, check, keys } = await signer();
      for (let i = 0; i < 3; i += 1) await audit.append(auditEvent());
      await maintainAuditLog(audit, sign, { now: Date.now(), retentionDays: 0, verify: check });
      await tamper('DELETE FROM audit_events', []);
      expect(await verify(audit, keys)).toMatchObject({
        ok: false,
        records: 0,
        problem: {
          kind: 'deleted',
          seq: 3,
          message: 'records up to seq 3 were deleted: the log holds none, and the checkpoint at seq 3 was signed as its head, not as the anchor pruning leaves',
        },
      });
    });

    it('verifies a log pruned of every record, against a witness that kept a head checkpoint of what was pruned', async () => {
      const { audit } = await open();
      const { sign, check, keys } = await signer();
      const now = Date.now();
      for (const days of [40, 35]) await audit.append(auditEvent({ time: new Date(now - days * 24 * HOUR).toISOString() }));
      const kept = (await maintainAuditLog(audit, sign, { now: now - 20 * 24 * HOUR, retentionDays: 30, verify: check })).checkpoint;
      expect(kept?.seq).toBe(2);
      expect((await maintainAuditLog(audit, sign, { now, retentionDays: 30, verify: check })).pruned).toBe(2);
      expect(await verify(audit, keys, [kept as Checkpoint])).toMatchObject({ ok: true, records: 0, anchor: 2, kept_checkpoints: 1 });
    });

    it('verifies a log an older keyway pruned, whose anchor names no role, and says that anchor cannot tell pruning from deletion', async () => {
      const { audit } = await open();
      const { unmarked, keys } = await signer();
      for (let i = 0; i < 3; i += 1) await audit.append(auditEvent());
      const head = await audit.head();
      expect(await audit.prune(await unmarked({ seq: 2, hash: (await everything(audit))[1]!.chain.hash }))).toBe(2);
      expect(await verify(audit, keys)).toMatchObject({ ok: true, records: 1, first_seq: 3, last_seq: head.seq, anchor: 2, anchor_unmarked: true });
    });

    it('observes what alert rules need: bursts in a window, repeated tokens, first policy use, new networks', async () => {
      const { audit, alerts } = await open();
      const now = Date.now();
      const observe = async (event: AuditEvent, network?: string) =>
        alerts.observe(event, await audit.append(event), { windowStart: now - 60_000, ...(network === undefined ? {} : { network }) });
      await audit.append(auditEvent({ time: new Date(now - 120_000).toISOString(), issuer: 'https://i', subject: 'alice' }));
      const denial = () => auditEvent({ issuer: 'https://i', subject: 'alice', request: { id: 'r', client_ip: '203.0.113.7' } });
      expect((await observe(denial())).identityDenials).toBe(1);
      const second = await observe(denial());
      expect(second).toMatchObject({ identityDenials: 2, addressDenials: 2 });

      const grant = (ip: string, sha256: string) =>
        auditEvent({
          decision: 'granted',
          reason: 'granted',
          issuer: 'https://i',
          subject: 'alice',
          request: { id: 'r', client_ip: ip },
          subject_token: { sha256 },
          policy: { granted_by: 'p', candidates: [], matched: [], denied_by: [], audit_mode: [] },
        });
      expect(await observe(grant('198.51.100.1', '01'.repeat(32)), '198.51.100.0/24')).toMatchObject({
        firstForPolicies: ['p'],
        newNetwork: false,
        earlierPresentations: 0,
      });
      expect(await observe(grant('198.51.100.2', '02'.repeat(32)), '198.51.100.0/24')).toMatchObject({ firstForPolicies: [], newNetwork: false });
      // A GitHub token map (issue 19) is granted by each owner's policy: the first use of each is seen, whichever owner it is.
      const token = (owner: string, grantedBy: string) => ({
        installation_id: 1,
        owner,
        repositories: ['r'],
        permissions: { contents: 'read' },
        expires_at: new Date(now).toISOString(),
        github_expires_at: new Date(now).toISOString(),
        token_sha256: '03'.repeat(32),
        granted_by: grantedBy,
      });
      const map = { ...grant('198.51.100.3', '04'.repeat(32)), github_tokens: [token('acme', 'p'), token('octo-org', 'q')] };
      expect(await observe(map, '198.51.100.0/24')).toMatchObject({ firstForPolicies: ['q'] });
      expect(await observe(grant('192.0.2.1', '02'.repeat(32)), '192.0.2.0/24')).toMatchObject({
        newNetwork: true,
        earlierPresentations: 1,
        earlierGrant: true,
      });
      const refused = await observe(auditEvent({ issuer: 'https://i', subject: 'alice' }));
      expect(refused.lastGrantedPolicy).toBe('p');
    });

    it("keeps each account's history apart under one subject (a shared reusable workflow's sub): its networks, its refusals, the policy that last granted it", async () => {
      const { audit, alerts } = await open();
      const now = Date.now();
      const observe = async (event: AuditEvent, network?: string) =>
        alerts.observe(event, await audit.append(event), { windowStart: now - 60_000, ...(network === undefined ? {} : { network }) });
      const sub = 'repo:acme/workflows/.github/workflows/deploy.yml@refs/heads/main';
      const of = (owner: string) => ({
        issuer: 'https://token.actions.githubusercontent.com',
        issuer_kind: 'github',
        subject: sub,
        claims: { repository_owner_id: owner },
      });
      const grant = (owner: string, ip: string, policy: string) =>
        auditEvent({
          ...of(owner),
          decision: 'granted',
          reason: 'granted',
          request: { id: 'r', client_ip: ip },
          policy: { granted_by: policy, candidates: [], matched: [], denied_by: [], audit_mode: [] },
        });
      const denial = (owner: string) => auditEvent({ ...of(owner), request: { id: 'r', client_ip: '203.0.113.9' } });

      expect(await observe(grant('1', '198.51.100.1', 'a'), '198.51.100.0/24')).toMatchObject({ newNetwork: false });
      expect(await observe(grant('2', '192.0.2.1', 'b'), '192.0.2.0/24')).toMatchObject({ newNetwork: false });
      // Each account's second network is new to it, though the other account was granted from it.
      expect(await observe(grant('1', '192.0.2.2', 'a'), '192.0.2.0/24')).toMatchObject({ newNetwork: true });
      expect(await observe(grant('2', '198.51.100.2', 'b'), '198.51.100.0/24')).toMatchObject({ newNetwork: true });

      expect(await observe(denial('1'))).toMatchObject({ identityDenials: 1, lastGrantedPolicy: 'a' });
      expect(await observe(denial('1'))).toMatchObject({ identityDenials: 2, lastGrantedPolicy: 'a' });
      expect(await observe(denial('2'))).toMatchObject({ identityDenials: 1, lastGrantedPolicy: 'b' });
      // An account never granted has no policy that last granted it, though another account of its subject has one.
      expect((await observe(denial('3'))).lastGrantedPolicy).toBeUndefined();
    });

    it('sees no earlier use of a token in housekeeping that names it: an /audit sign-in with it, its introspection, its revocation', async () => {
      const { audit, alerts } = await open();
      const now = Date.now();
      const token = OPERATOR_TOKEN;
      const named = (reason: 'audit_page_signed_in' | 'token_introspected' | 'token_revoked') =>
        examinationRecord(
          { issuer: ISSUER },
          { token, caller: { operator: 'alice' }, reason, detail: reason, context: { requestId: 'r', clientIp: undefined, userAgent: undefined }, now },
        );
      for (const reason of ['audit_page_signed_in', 'token_introspected', 'token_revoked'] as const) await audit.append(named(reason));
      const sha256 = named('token_revoked').subject_token?.sha256 ?? '';
      expect(sha256).toMatch(/^[0-9a-f]{64}$/);
      const exchanged = auditEvent({
        decision: 'granted',
        reason: 'granted',
        issuer: ISSUER,
        subject: 'alice',
        subject_token: { sha256 },
        policy: { granted_by: 'p', candidates: [], matched: ['p'], denied_by: [], audit_mode: [] },
      });
      const observe = async (event: AuditEvent) => alerts.observe(event, await audit.append(event), { windowStart: now - 60_000 });
      expect(await observe(exchanged)).toMatchObject({ earlierPresentations: 0, earlierGrant: false });
      // Its exchange is a use: presented again, it is.
      expect(await observe({ ...exchanged, id: auditEvent().id })).toMatchObject({ earlierPresentations: 1, earlierGrant: true });
    });

    it('stores alerts once per dedupe key and records their delivery', async () => {
      const { alerts } = await open();
      const draft = (id: string, dedupe?: string): AlertDraft => ({
        id,
        time: new Date().toISOString(),
        rule: 'subject_token_replayed',
        summary: 's',
        event_id: 'e',
        details: { n: 1 },
        ...(dedupe === undefined ? {} : { dedupe }),
      });
      expect(await alerts.addAlerts([draft('01A', 'k'), draft('01B', 'k'), draft('01C')], 'pending')).toHaveLength(2);
      await alerts.setDelivery('01A', 'delivered', 2);
      const stored = await alerts.alerts(10);
      expect(stored.map((alert) => alert.id).sort()).toEqual(['01A', '01C']);
      expect(stored.find((alert) => alert.id === '01A')).toMatchObject({ delivery: 'delivered', attempts: 2, details: { n: 1 } });
    });

    it('initialises the key ring once: concurrent first starts agree on one current key', async () => {
      const { keys } = await open();
      const [a, b] = await Promise.all([generateSigningKey(Date.now()), generateSigningKey(Date.now())]);
      const [first, second] = await Promise.all([keys.initializeKeys(a), keys.initializeKeys(b)]);
      const current = (ring: typeof first) => ring.filter((key) => key.state === 'current').map((key) => key.kid);
      expect(current(first)).toHaveLength(1);
      expect(current(second)).toEqual(current(first));
      expect(current(await keys.listKeys())).toEqual(current(first));
      const stored = (await keys.listKeys()).find((key) => key.state === 'current');
      expect(stored?.privateJwk?.d).toBeTypeOf('string');
      expect(stored?.publicJwk).not.toHaveProperty('d');
    });

    it("lists no published key the master key does not vouch for: a planted public key, or a current key's public part swapped, is refused", async () => {
      const { keys, tamper } = await open();
      const now = Date.now();
      const ring = await KeyRing.open(keys, now);
      const current = ring.signing.kid;
      const rsa = ring.signingFor('RS256').kid;
      // Whoever could write the database, without the master key: their own key, to be published in the broker's JWKS.
      const planted = await generateSigningKey(now);
      const plantedRsa = await generateSigningKey(now, 'RS256');
      const edits: [string, string, readonly SqlValue[], string, readonly SqlValue[]][] = [
        [
          'a retired key with no private part',
          "INSERT INTO signing_keys (kid, alg, state, created_at, retired_at, public_jwk, private_jwk) VALUES (?, 'ES256', 'retired', ?, ?, ?, NULL)",
          [planted.kid, now, now, JSON.stringify(planted.publicJwk)],
          'DELETE FROM signing_keys WHERE kid = ?',
          [planted.kid],
        ],
        [
          'the current key with another public part',
          'UPDATE signing_keys SET public_jwk = ? WHERE kid = ?',
          [JSON.stringify({ ...planted.publicJwk, kid: current }), current],
          'UPDATE signing_keys SET public_jwk = ? WHERE kid = ?',
          [JSON.stringify((await keys.describeKeys()).find((key) => key.kid === current)?.publicJwk), current],
        ],
        [
          'the current RS256 key with another RSA public part',
          'UPDATE signing_keys SET public_jwk = ? WHERE kid = ?',
          [JSON.stringify({ ...plantedRsa.publicJwk, kid: rsa }), rsa],
          'UPDATE signing_keys SET public_jwk = ? WHERE kid = ?',
          [JSON.stringify((await keys.describeKeys()).find((key) => key.kid === rsa)?.publicJwk), rsa],
        ],
      ];
      // The current key's own public part, with a member that is not its key's: what a verifier of the JWKS would be told of it.
      const stored = JSON.stringify((await keys.describeKeys()).find((key) => key.kid === current)?.publicJwk);
      const edited = (what: string, edit: Record<string, unknown>) =>
        edits.push([
          what,
          'UPDATE signing_keys SET public_jwk = ? WHERE kid = ?',
          [JSON.stringify({ ...(JSON.parse(stored) as object), ...edit }), current],
          'UPDATE signing_keys SET public_jwk = ? WHERE kid = ?',
          [stored, current],
        ]);
      edited('the current key with a certificate URL added', { x5u: 'https://attacker.example/cert.pem' });
      edited('the current key with a certificate chain added', { x5c: ['MIIB'] });
      edited('the current key for another algorithm', { alg: 'ES384' });
      edited('the current key for encryption', { use: 'enc' });
      edited('the current key with its operations widened', { key_ops: ['sign', 'verify', 'encrypt'] });
      for (const [what, plant, params, undo, undoParams] of edits) {
        await tamper(plant, params);
        await expect(keys.listKeys(), what).rejects.toThrow('the master key does not vouch for');
        await tamper(undo, undoParams);
      }
      const listed = await keys.listKeys();
      expect(listed.map((key) => key.kid).sort()).toEqual([current, rsa].sort());
      expect((await KeyRing.from(listed)).jwks).toEqual(ring.jwks);
    });

    it('publishes no removed key the master key has not attested: a planted one is left out of the checkpoint keys, a forged attestation refused', async () => {
      const { keys, tamper } = await open();
      const now = Date.now();
      const ring = await KeyRing.open(keys, now);
      const current = ring.signing.kid;
      // A removed key has no private part to show its public part is its own: only its attestation vouches for it.
      const planted = await generateSigningKey(now);
      const plant = "INSERT INTO signing_keys (kid, alg, state, created_at, removed_at, public_jwk, private_jwk) VALUES (?, 'ES256', 'removed', ?, ?, ?, NULL)";
      await tamper(plant, [planted.kid, now, now, JSON.stringify(planted.publicJwk)]);
      const listed = await keys.listKeys();
      const currents = [current, ring.signingFor('RS256').kid].sort();
      expect(listed.map((key) => key.kid).sort()).toEqual(currents);
      expect((await KeyRing.from(listed)).checkpointKeys.keys.map((key) => key.kid).sort()).toEqual(currents);

      // The current key's attestation, copied to the planted row: it covers another kid and public key.
      await tamper('UPDATE signing_keys SET attestation = (SELECT attestation FROM signing_keys WHERE kid = ?) WHERE kid = ?', [current, planted.kid]);
      await expect(keys.listKeys()).rejects.toThrow(`signing key ${planted.kid} is not vouched for: its attestation was not made by the master key`);
      await tamper('DELETE FROM signing_keys WHERE kid = ?', [planted.kid]);

      // A key from before attestations is attested when the broker opens it with its private part, and stays vouched for once removed.
      await tamper('UPDATE signing_keys SET attestation = NULL WHERE kid = ?', [current]);
      await keys.listKeys();
      await tamper("UPDATE signing_keys SET state = 'removed', removed_at = ?, private_jwk = NULL WHERE kid = ?", [now, current]);
      expect((await keys.listKeys()).map((key) => key.kid).sort()).toEqual(currents);
    });

    it('walks the key life cycle: the JWKS never drops a key with live tokens, and a key is published a cache lifetime before it signs', async () => {
      const { keys } = await open();
      const MINUTE = 60_000;
      const maxTtlSeconds = 3600;
      const cycle = keyLifeCycle({ rotationDays: 1 }, maxTtlSeconds);
      const start = Date.UTC(2026, 0, 1);
      await keys.initializeKeys(await generateSigningKey(start));
      const plan = (now: number): KeyRingPlan => ({ now, cycle, rotate: false, upkeep: true });
      // The view at each step, as the store says it: the published kids and the signing kid.
      const history: { at: number; published: Set<string>; signing: string }[] = [];
      const asOf = (at: number) => history.findLast((view) => view.at <= at);
      const seen = new Set<string>();
      const tokens: { kid: string; exp: number }[] = [];
      // Hourly while nothing is due, then minute by minute through a whole rotation: next, switch, removal.
      const due = start + 86_400_000;
      const steps = [
        ...Array.from({ length: 23 }, (_, hour) => start + hour * 60 * MINUTE),
        ...Array.from({ length: (cycle.leadMs + cycle.retainMs) / MINUTE + 90 }, (_, minute) => due - cycle.leadMs - 30 * MINUTE + minute * MINUTE),
      ];
      for (const now of steps) {
        await keys.advanceKeys(plan(now));
        const ring = await keys.describeKeys();
        expect(ring.filter((key) => key.state === 'current')).toHaveLength(1);
        expect(ring.filter((key) => key.state === 'next').length).toBeLessThanOrEqual(1);
        const published = new Set(ring.filter((key) => key.state !== 'removed').map((key) => key.kid));
        const signing = ring.find((key) => key.state === 'current')?.kid ?? '';
        history.push({ at: now, published, signing });
        for (const key of ring) seen.add(`${key.kid}:${key.state}`);
        // The fresh process and one that has not reloaded for a refresh period both sign now.
        const stale = asOf(now - KEY_RING_REFRESH_SECONDS * 1000)?.signing ?? signing;
        tokens.push({ kid: signing, exp: now + maxTtlSeconds * 1000 }, { kid: stale, exp: now + maxTtlSeconds * 1000 });
        for (const token of tokens)
          if (token.exp + KEY_CLOCK_SKEW_SECONDS * 1000 >= now) expect(published, `${new Date(now).toISOString()}: a live token's key`).toContain(token.kid);
        // A relying party that fetched the JWKS (from a process a refresh behind) one max-age ago knows the signing key.
        const cached = asOf(now - (JWKS_MAX_AGE_SECONDS + KEY_RING_REFRESH_SECONDS) * 1000);
        if (cached !== undefined && signing !== history[0]?.signing)
          expect(cached.published, `${new Date(now).toISOString()}: the signing key in a cached JWKS`).toContain(signing);
      }
      // A whole rotation: every state was reached, removed keys keep only their public part.
      const ring = await keys.listKeys();
      expect(new Set(history.map((view) => view.signing)).size).toBe(2);
      for (const state of ['next', 'current', 'retired', 'removed'])
        expect(
          [...seen].some((entry) => entry.endsWith(`:${state}`)),
          state,
        ).toBe(true);
      const removed = ring.filter((key) => key.state === 'removed');
      expect(removed.length).toBeGreaterThanOrEqual(1);
      for (const key of removed) expect(key).not.toHaveProperty('privateJwk');
      // The key ring publishes what is not removed; checkpoint keys are all of them.
      const opened = await KeyRing.from(ring);
      expect(opened.jwks.keys.map((key) => key.kid).sort()).toEqual(
        ring
          .filter((key) => key.state !== 'removed')
          .map((key) => key.kid)
          .sort(),
      );
      expect(opened.checkpointKeys.keys).toHaveLength(ring.length);
    });

    it('rotates on demand once, however many ask at once, and the new key signs only after the lead time', async () => {
      const { keys } = await open();
      const cycle = keyLifeCycle({ rotationDays: 0 }, 3600);
      const start = Date.UTC(2026, 0, 1);
      await keys.initializeKeys(await generateSigningKey(start));
      const rotate = (now: number, upkeep = true): KeyRingPlan => ({ now, cycle, rotate: true, upkeep });
      const rounds = await Promise.all(Array.from({ length: 6 }, () => keys.advanceKeys(rotate(start + 1000))));
      expect(rounds.flat().filter((transition) => transition.kind === 'publish')).toHaveLength(1);
      let ring = await keys.describeKeys();
      const next = ring.find((key) => key.state === 'next');
      // Seven minutes (docs/operations/keys.md): the JWKS max-age, one reload of every process's ring, one minute of clock skew.
      expect(cycle.leadMs).toBe(7 * 60_000);
      expect(next?.activatesAt).toBe(start + 1000 + cycle.leadMs);
      // Asking again does not bring it forward past the lead time.
      await keys.advanceKeys(rotate(start + 2000));
      expect((await keys.describeKeys()).find((key) => key.state === 'next')?.activatesAt).toBe(start + 1000 + cycle.leadMs);
      await Promise.all(Array.from({ length: 6 }, () => keys.advanceKeys(rotate(start + 1000 + cycle.leadMs - 1))));
      expect((await keys.describeKeys()).find((key) => key.state === 'current')?.kid).not.toBe(next?.kid);
      const switched = await Promise.all(
        Array.from({ length: 6 }, () => keys.advanceKeys({ now: start + 1000 + cycle.leadMs, cycle, rotate: false, upkeep: true })),
      );
      expect(switched.flat().filter((transition) => transition.kind === 'activate')).toEqual([{ kind: 'activate', kid: next?.kid }]);
      ring = await keys.describeKeys();
      expect(ring.filter((key) => key.state === 'current').map((key) => key.kid)).toEqual([next?.kid]);
      expect(ring.filter((key) => key.state === 'retired')).toHaveLength(1);
      expect(ring.filter((key) => key.state === 'next')).toHaveLength(0);
      // Without the schedule (rotation days 0), nothing else happens until asked.
      expect(await keys.advanceKeys({ now: start + 10 * 86_400_000, cycle, rotate: false, upkeep: true })).toEqual([
        { kind: 'remove', kid: ring.find((key) => key.state === 'retired')?.kid },
      ]);
    });

    it('withdraws a key at once, whatever its state: unpublished, its private part gone, a current one replaced by its next key with no lead time', async () => {
      const { keys } = await open();
      const cycle = keyLifeCycle({ rotationDays: 0 }, 3600);
      const start = Date.now() - HOUR;
      // A ring with a key in each published state: K0 retired, K1 current, K2 next.
      const first = await KeyRing.open(keys, start);
      const k0 = first.signing.kid;
      await keys.advanceKeys({ now: start + 1000, cycle, rotate: true, upkeep: false });
      await keys.advanceKeys({ now: start + 1000 + cycle.leadMs, cycle, rotate: false, upkeep: true });
      const beforeK2 = Date.now() - 60_000;
      await keys.advanceKeys({ now: beforeK2, cycle, rotate: true, upkeep: false });
      const es256 = async () => (await keys.describeKeys()).filter((key) => key.alg === 'ES256');
      const k1 = (await es256()).find((key) => key.state === 'current')?.kid ?? '';
      const k2 = (await es256()).find((key) => key.state === 'next')?.kid ?? '';
      expect((await es256()).map((key) => [key.kid, key.state])).toEqual([
        [k0, 'retired'],
        [k1, 'current'],
        [k2, 'next'],
      ]);
      // A token K1 signed, taken by the ring as it was.
      const before = await KeyRing.from(await keys.listKeys());
      const grant = {
        policy: { id: 'ops' } as Policy,
        audiences: [ISSUER],
        scopes: ['keys:read'],
        ttlSeconds: 600,
        subject: 'olga',
        claims: {},
      } satisfies IssuedGrant;
      const { token } = await mintAccessToken({ issuer: ISSUER, key: before.signing, grant, source: { iss: ISSUER, sub: 'olga' }, now: Date.now() });
      const verifyWith = (ring: KeyRing) => verifyAccessToken(token, { issuer: ISSUER, audience: ISSUER, keys: createLocalJWKSet(ring.jwks) });
      await expect(verifyWith(before)).resolves.toMatchObject({ sub: 'olga' });

      const at = Date.now();
      expect(await keys.withdrawKey(k0, at)).toMatchObject({ status: 'withdrawn', transitions: [{ kind: 'withdraw', kid: k0 }] });
      const withdrawn = await keys.withdrawKey(k1, at + 1);
      expect(withdrawn).toEqual({
        status: 'withdrawn',
        key: expect.objectContaining({ kid: k1, state: 'removed', removedAt: at + 1, withdrawnAt: at + 1 }),
        transitions: [
          { kind: 'withdraw', kid: k1 },
          { kind: 'activate', kid: k2 },
        ],
      });
      // K2 signs at once, though it was published less than a lead time ago.
      expect((await es256()).find((key) => key.kid === k2)).toMatchObject({ state: 'current', activatedAt: at + 1 });
      expect(beforeK2 + cycle.leadMs).toBeGreaterThan(at + 1);
      const after = await KeyRing.from(await keys.listKeys());
      expect(after.signing.kid).toBe(k2);
      expect(after.jwks.keys.map((key) => key.kid)).not.toContain(k0);
      expect(after.jwks.keys.map((key) => key.kid)).not.toContain(k1);
      // Kept for the audit checkpoints they signed, with no private part.
      expect(after.checkpointKeys.keys.map((key) => key.kid)).toEqual(expect.arrayContaining([k0, k1]));
      for (const key of (await keys.listKeys()).filter((each) => each.kid === k0 || each.kid === k1)) expect(key).not.toHaveProperty('privateJwk');
      // What the broker's own checks take it with from now on: K1's token is refused.
      await expect(verifyWith(after)).rejects.toThrow('no applicable key found in the JSON Web Key Set');

      // Again: nothing changes, and it says so; a kid the store never held is unknown.
      expect(await keys.withdrawKey(k1, at + 2)).toEqual({ status: 'already_removed', key: expect.objectContaining({ kid: k1, withdrawnAt: at + 1 }) });
      expect(await keys.withdrawKey('no-such-kid', at + 2)).toEqual({ status: 'unknown' });
      // A key upkeep removed is told apart from a withdrawn one.
      expect(
        (await keys.describeKeys())
          .filter((key) => key.withdrawnAt !== undefined)
          .map((key) => key.kid)
          .sort(),
      ).toEqual([k0, k1].sort());
    });

    it("withdraws the RS256 ring's current key as the ES256 one's: with no next key, a fresh one signs in its place, once however many ask at once", async () => {
      const { keys } = await open();
      const now = Date.now();
      const ring = await KeyRing.open(keys, now);
      const rsa = ring.signingFor('RS256').kid;
      const outcomes = await Promise.all(Array.from({ length: 4 }, () => keys.withdrawKey(rsa, now + 1000)));
      const made = outcomes.filter((outcome) => outcome.status === 'withdrawn');
      expect(made).toHaveLength(1);
      expect(outcomes.filter((outcome) => outcome.status === 'already_removed')).toHaveLength(3);
      const fresh = made[0]?.status === 'withdrawn' ? made[0].transitions.find((transition) => transition.kind === 'activate')?.kid : undefined;
      expect(made[0]).toMatchObject({
        transitions: [
          { kind: 'withdraw', kid: rsa },
          { kind: 'publish', kid: fresh, activatesAt: now + 1000 },
          { kind: 'activate', kid: fresh },
        ],
      });
      const rsaKeys = (await keys.describeKeys()).filter((key) => key.alg === 'RS256');
      expect(rsaKeys.map((key) => [key.kid, key.state])).toEqual(
        expect.arrayContaining([
          [rsa, 'removed'],
          [fresh, 'current'],
        ]),
      );
      expect(rsaKeys).toHaveLength(2);
      const after = await KeyRing.from(await keys.listKeys());
      expect(after.signingFor('RS256').kid).toBe(fresh);
      // The ES256 ring is untouched.
      expect(after.signing.kid).toBe(ring.signing.kid);
      expect(after.jwks.keys.map((key) => key.kid)).not.toContain(rsa);
    });
  });
}
