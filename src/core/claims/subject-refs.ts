/**
 * Where a `sub` that joins `key:value` fields (GitHub's customised sub, `include_claim_keys`) ends the names of a value that
 * joins names to a git ref: the first `@` after each of `keys` written as a field
 * (`repo:acme/app:job_workflow_ref:acme/w/.github/workflows/d.yml@refs/heads/main`), as UTF-16 offsets. Git allows `@` in a ref,
 * so a branch named `x@refs/heads/main` writes more `@`s after it, and so may a free-text field (a workflow's name).
 */
export function subjectRefAts(text: string, keys: readonly string[]): number[] {
  const ats: number[] = [];
  for (const key of keys) {
    for (let found = text.indexOf(`${key}:`); found !== -1; found = text.indexOf(`${key}:`, found + 1)) {
      if (found > 0 && text[found - 1] !== ':') continue;
      const at = text.indexOf('@', found + key.length + 1);
      if (at !== -1 && !ats.includes(at)) ats.push(at);
    }
  }
  return ats;
}

/** True when an `@` follows one of `subjectRefAts`: which `@` a pattern's `@` stands for is then the pattern's to say. */
export function atAfterSubjectRef(text: string, keys: readonly string[]): boolean {
  const ats = subjectRefAts(text, keys);
  return ats.length > 0 && text.indexOf('@', Math.min(...ats) + 1) !== -1;
}
