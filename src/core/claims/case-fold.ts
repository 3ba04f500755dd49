/**
 * How a claim's text compares with what a policy writes: byte for byte (`exact`), without case
 * (`whole`: names the CI system itself treats so), or without case only before the first `@`
 * (`before-@`: a name joined to a git ref, `owner/repo/path@refs/heads/main`). Git refs are
 * case-sensitive: `refs/heads/MAIN` is another branch, which anyone who can push may create
 * without the protection `main` has, so the ref after the `@` always compares exactly.
 * `split-@` is byte for byte, but split at the first `@` as `before-@` is: for a `match_actor`
 * line on such a claim, whose actor may come from any issuer, so no preset's case applies, while a
 * pattern's first `@` still stands for the value's first one (a branch may be named `x@refs/heads/main`).
 * Owner, repository and path names cannot contain `@`; a value whose path does keeps the rest
 * exact, which is stricter, never looser. A value without `@` is not of that shape: it compares
 * exactly. Exact values, the policy index, globs and regexes all fold through here.
 *
 * Only ASCII letters fold. The names CI systems compare without case are ASCII; folding more
 * would equate what no CI system does (the Kelvin sign `K` with `k`) and make the matchers
 * disagree (`toLowerCase` turns `İ` into two characters and `Σ` by context, a case-insensitive
 * regex folds `ſ` to `s`).
 */
export type CaseFold = 'exact' | 'whole' | 'before-@' | 'split-@';

/** How many UTF-16 units at the start of `text` compare without case. */
export function foldedLength(text: string, fold: CaseFold): number {
  if (fold === 'exact' || fold === 'split-@') return 0;
  if (fold === 'whole') return text.length;
  const at = text.indexOf('@');
  return at === -1 ? 0 : at;
}

/** Whether a pattern's first `@` stands for the value's first `@`, where the names end and the ref begins. */
export function splitsAtFirstAt(fold: CaseFold): boolean {
  return fold === 'before-@' || fold === 'split-@';
}

/** The text as the comparison sees it: the folded part with its ASCII letters in lower case, the rest untouched. */
export function foldCase(text: string, fold: CaseFold): string {
  const end = foldedLength(text, fold);
  if (end === 0) return text;
  return end === text.length ? asciiLowerCase(text) : asciiLowerCase(text.slice(0, end)) + text.slice(end);
}

/** ASCII letters in lower case; every other character as it is. */
export function asciiLowerCase(text: string): string {
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

/**
 * True for claims that carry a git ref, alone or inside a longer value: `ref`, `base_ref`,
 * `head_ref`, `target_ref`, `workflow_ref`, `job_workflow_ref`, `rpo_ref`, CircleCI's
 * `vcs-ref`, `ref_path`, `ci_config_ref_uri`, `job_policy_ref_uri`, and `sub` (GitHub, CircleCI
 * and Buildkite write the ref into it). Nested claims are judged by their last segment.
 */
export function carriesGitRef(key: string): boolean {
  const name = key.split('/').at(-1) ?? key;
  return name === 'sub' || /(?:^|[_-])ref(?:_path|_uri)?$/.test(name);
}
