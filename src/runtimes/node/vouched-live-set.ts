import type { PolicyFile } from '../../core/policy/load-policies.ts';
import type { SecretBox } from '../../core/secrets/secret-box.ts';
import type { AttestedPolicySet, SqliteLivePolicyStore } from '../../storage/sqlite-live-policy-store.ts';

/**
 * The live policy set this process serves, as the master key vouches for it. Checking the
 * attestation is asynchronous (WebCrypto) while the policy loader is not, so the stored set is
 * read and checked here (at start, and when another process announces a switch) and the files
 * kept in memory for the loader; a push saves its set here too. A stored set the master key does
 * not vouch for is not served: `files` is undefined and `refused` says why.
 */
export class VouchedLiveSet {
  readonly store: SqliteLivePolicyStore | undefined;
  readonly #box: SecretBox;
  #files: readonly PolicyFile[] | undefined;
  #refused: string | undefined;

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

  async read(): Promise<void> {
    const check = await this.store?.vouched(this.#box);
    this.#files = check?.ok === true ? check.set.files : undefined;
    this.#refused =
      check?.ok === false
        ? `${check.why}. It is not served: the policies configured locally (KEYWAY_POLICIES) serve until the next push to the policy repository replaces it`
        : undefined;
  }

  /** `files` attested for `save`; undefined without a policy repository, where nothing is saved. */
  async attest(files: readonly PolicyFile[]): Promise<AttestedPolicySet | undefined> {
    return this.store?.attest(files, this.#box);
  }

  save(files: readonly PolicyFile[], source: string, now: number, attested: AttestedPolicySet | undefined): void {
    if (attested !== undefined) this.store?.save(files, source, now, attested);
    this.#files = files;
    this.#refused = undefined;
  }
}
