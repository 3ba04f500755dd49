import type { PolicyFile } from '../../core/policy/load-policies.ts';
import type { SecretBox } from '../../core/secrets/secret-box.ts';
import type { AttestedPolicySet, SqliteLivePolicyStore } from '../../storage/sqlite-live-policy-store.ts';

/**
 * The live policy set this process serves, as the master key vouches for it. Checking the
 * attestation is asynchronous (WebCrypto) while the policy loader is not, so the stored set is
 * read and checked here (at start, and when another process announces a switch) and the files
 * kept in memory for the loader; a push saves its set here too. A stored set the master key does
 * not vouch for is not served: `files` is undefined and `refused` says why.
 *
 * Reads and saves overlap (a process hears another's switch while its own push is attested), so
 * each takes a turn when it starts, and a read whose turn came before the last one applied is
 * dropped: it never puts back a set a save, or a read that started later, replaced. By the order
 * of turns, not by version, as the Workers isolates do (WorkerLivePolicies): a read's row is
 * read when its turn is taken, so the later turn has the newer row; and a restore (a lower
 * version) is a new process start, not a read in a running one.
 */
export class VouchedLiveSet {
  readonly store: SqliteLivePolicyStore | undefined;
  readonly #box: SecretBox;
  #files: readonly PolicyFile[] | undefined;
  #refused: string | undefined;
  /** Turns taken by reads and saves, and the latest of them whose outcome this holds. */
  #turns = 0;
  #applied = 0;

  constructor(store: SqliteLivePolicyStore | undefined, box: SecretBox) {
    this.store = store;
    this.#box = box;
  }

  get files(): readonly PolicyFile[] | undefined {
    return this.#files;
  }

  get refused(): string | undefined {
    return this.#refused;
  }

  /**
   * Reads the stored set and checks it; true when its outcome is now held, false when a save or a later read
   * overtook it (what is held is newer: nothing to reload).
   */
  async read(): Promise<boolean> {
    const turn = ++this.#turns;
    // `vouched` reads the row before its first await, so in this turn.
    const check = await this.store?.vouched(this.#box);
    if (turn < this.#applied) return false;
    this.#applied = turn;
    this.#files = check?.ok === true ? check.set.files : undefined;
    this.#refused =
      check?.ok === false
        ? `${check.why}. It is not served: the policies configured locally (KEYWAY_POLICIES) serve until the next push to the policy repository replaces it`
        : undefined;
    return true;
  }

  /** `files` attested for `save`; undefined without a policy repository, where nothing is saved. */
  async attest(files: readonly PolicyFile[]): Promise<AttestedPolicySet | undefined> {
    return this.store?.attest(files, this.#box);
  }

  save(files: readonly PolicyFile[], source: string, now: number, attested: AttestedPolicySet | undefined): void {
    if (attested !== undefined) this.store?.save(files, source, now, attested);
    this.#applied = ++this.#turns;
    this.#files = files;
    this.#refused = undefined;
  }
}
