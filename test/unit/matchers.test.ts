import { describe, expect, it } from 'vitest';
import { claimReader } from '../../src/core/claims/claim-value.ts';
import { carriesGitRef, type CaseFold } from '../../src/core/claims/case-fold.ts';
import { compileMatcher } from '../../src/core/policy/compile-matcher.ts';
import { compareMatchers, matcherIncludes, type Widening } from '../../src/core/policy/diff/matcher-inclusion.ts';
import { compileGlob, globIncludes } from '../../src/core/policy/glob.ts';
import { compileSafeRegex, REGEX_MAX_INPUT, REGEX_MAX_WIDE_INPUT, UnsafeRegexError } from '../../src/core/policy/safe-regex.ts';
import type { Matcher } from '../../src/core/policy/schema.ts';

const matches = (matcher: Matcher, value: unknown, fold: CaseFold = 'exact') => compileMatcher(matcher, fold, false).test(value);
// 245 characters past U+FFFF, each under a leading surrogate of its own.
const ASTRAL = Array.from({ length: 245 }, (_, n) => String.fromCodePoint(0x10000 + 0x402 * n)).join('');

describe('exact and list matchers', () => {
  it('compares scalars by canonical text, both ways', () => {
    expect(matches(true, 'true')).toBe(true);
    expect(matches('true', true)).toBe(true);
    expect(matches(42, '42')).toBe(true);
    expect(matches('42', 42)).toBe(true);
    expect(matches('true', 'True')).toBe(false);
    expect(matches('42', '042')).toBe(false);
  });

  it('never matches objects, null or a missing claim', () => {
    expect(matches('x', { toString: () => 'x' })).toBe(false);
    expect(matches('null', null)).toBe(false);
    expect(matches('undefined', undefined)).toBe(false);
    expect(matches('NaN', Number.NaN)).toBe(false);
    expect(matches('null', [null])).toBe(false);
    expect(matches('[object Object]', [{}])).toBe(false);
    expect(matches({ glob: '*' }, [null, {}, ['x']])).toBe(false);
  });

  it('a list matches when any entry does, and entries may be matchers', () => {
    expect(matches(['push', 'workflow_dispatch'], 'workflow_dispatch')).toBe(true);
    expect(matches(['push', { glob: 'release*' }], 'released')).toBe(true);
    expect(matches(['push', 'workflow_dispatch'], 'pull_request')).toBe(false);
  });

  it('an array claim matches when any element does', () => {
    expect(matches('https://b', ['https://a', 'https://b'])).toBe(true);
    expect(matches('https://c', ['https://a', 'https://b'])).toBe(false);
    expect(matches({ glob: 'team-*' }, ['ops', 'team-deploy'])).toBe(true);
  });

  it('folds case only for case-insensitive claims', () => {
    expect(matches('acme/api', 'ACME/Api', 'whole')).toBe(true);
    expect(matches('acme/api', 'ACME/Api', 'exact')).toBe(false);
    expect(matches({ regex: 'acme/.+' }, 'ACME/api', 'whole')).toBe(true);
    expect(matches({ glob: 'acme/*' }, 'ACME/api', 'whole')).toBe(true);
  });

  it('folds ASCII letters only, as the CI systems do, alike in exact values, globs, regexes and the index', () => {
    // Kelvin sign, long s, dotted capital I, final sigma, full-width letters: no CI name holds them, and folding them
    // would make keyway's matchers disagree (toLowerCase maps İ to two characters and Σ by context, regexes fold ſ to s).
    const pairs: [string, string][] = [
      ['kube', '\u212Aube'],
      ['sec', '\u017Fec'],
      ['i\u0307', '\u0130'],
      ['\u03B1\u03C2', '\u0391\u03A3'],
      ['\u03B1\u03C3', '\u0391\u03A3'],
      ['acme', '\uFF21\uFF23\uFF2D\uFF25'],
      ['\u00E9', '\u00C9'],
    ];
    for (const [written, sent] of pairs) {
      for (const matcher of [written, { glob: written }, { regex: written }]) expect(matches(matcher, sent, 'whole')).toBe(false);
      expect(matches({ glob: `${written}/**@refs/heads/main` }, `${sent}/x@refs/heads/main`, 'before-@')).toBe(false);
    }
    for (const matcher of ['acme/api', { glob: 'acme/*' }, { regex: 'acme/.+' }]) expect(matches(matcher, 'ACME/Api', 'whole')).toBe(true);
    expect(compileMatcher(['ACME/Api', '\u0391\u03A3'], 'whole', false).exact).toEqual(['acme/api', '\u0391\u03A3']);
  });

  it('offers exact values to the index, folded as the claim is', () => {
    expect(compileMatcher(['Push', 42], 'whole', false).exact).toEqual(['push', '42']);
    expect(compileMatcher(['push', { glob: 'x*' }], 'exact', false).exact).toBeUndefined();
    expect(compileMatcher({ not: 'x' }, 'exact', false).exact).toBeUndefined();
  });
});

describe('names joined to a git ref fold before the first @ only', () => {
  const PINNED = 'acme/workflows/.github/workflows/deploy.yml@refs/heads/main';
  const fold = 'before-@' as const;

  it('an exact value: the names match without case, the ref exactly', () => {
    expect(matches(PINNED, 'ACME/Workflows/.github/workflows/deploy.yml@refs/heads/main', fold)).toBe(true);
    expect(matches('ACME/Workflows/.github/workflows/Deploy.yml@refs/heads/main', PINNED, fold)).toBe(true);
    expect(matches(PINNED, 'acme/workflows/.github/workflows/deploy.yml@refs/heads/MAIN', fold)).toBe(false);
    expect(matches(PINNED, 'acme/workflows/.github/workflows/deploy.yml@refs/heads/Main', fold)).toBe(false);
    const gitlab = 'gitlab.example.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main';
    expect(matches(gitlab, 'gitlab.example.com/My-Group/My-Project//.gitlab-ci.yml@refs/heads/main', fold)).toBe(true);
    expect(matches(gitlab, 'gitlab.example.com/my-group/my-project//.gitlab-ci.yml@refs/heads/MAIN', fold)).toBe(false);
  });

  it.each([
    ['sub', true],
    ['ref', true],
    ['base_ref', true],
    ['job_workflow_ref', true],
    ['vcs-ref', true],
    ['ref_path', true],
    ['ci_config_ref_uri', true],
    ['/claims/ref', true],
    ['ref/owner', false],
    ['reference', false],
    ['refs', false],
    ['preferred', false],
    ['subject', false],
  ])('%s carries a git ref: %s', (key, expected) => {
    expect(carriesGitRef(key)).toBe(expected);
  });

  it('offers the index exact keys folded the same way', () => {
    expect(compileMatcher('ACME/W/x.yml@refs/heads/Main', fold, false).exact).toEqual(['acme/w/x.yml@refs/heads/Main']);
  });

  it('keeps everything after the first @ exact, a path holding an @ included, and a value without @ exact', () => {
    expect(matches('acme/api/.github/workflows/a@b.yml@refs/heads/main', 'ACME/api/.github/workflows/a@B.yml@refs/heads/main', fold)).toBe(false);
    expect(matches('acme/api/.github/workflows/a@b.yml@refs/heads/main', 'ACME/api/.github/workflows/a@b.yml@refs/heads/main', fold)).toBe(true);
    expect(matches('acme/api', 'ACME/api', fold)).toBe(false);
  });

  it('a glob: letters match the names without case and the ref exactly, wherever the wildcards fall', () => {
    const tags = { glob: 'acme/workflows/.github/workflows/deploy.yml@refs/tags/v*' };
    expect(matches(tags, 'ACME/Workflows/.github/workflows/deploy.yml@refs/tags/v1.4.0', fold)).toBe(true);
    expect(matches(tags, 'acme/workflows/.github/workflows/deploy.yml@refs/tags/V1.4.0', fold)).toBe(false);
    expect(matches({ glob: 'acme/**@refs/heads/main' }, 'ACME/api/x.yml@refs/heads/main', fold)).toBe(true);
    expect(matches({ glob: 'acme/**@refs/heads/main' }, 'acme/api/x.yml@refs/heads/MAIN', fold)).toBe(false);
    expect(matches({ glob: '**/main' }, 'acme/api/x.yml@refs/heads/MAIN', fold)).toBe(false);
    expect(matches({ glob: '**/Main' }, 'acme/api/x.yml@refs/heads/main', fold)).toBe(false);
    expect(matches({ glob: 'ACME/**' }, 'acme/api/x.yml@refs/heads/main', fold)).toBe(true);
  });

  // Git allows @ in a ref: refs/heads/evil@refs/heads/main is a branch anyone who can push may create.
  const SMUGGLED = 'acme/api/.github/workflows/d.yml@refs/heads/evil@refs/heads/main';

  it('a glob’s first @ is the value’s first @: wildcards before it never reach into the ref', () => {
    expect(matches({ glob: 'acme/api/**@refs/heads/main' }, SMUGGLED, fold)).toBe(false);
    expect(matches({ glob: '**@refs/heads/main' }, SMUGGLED, fold)).toBe(false);
    expect(matches({ glob: 'acme/api/.github/workflows/d.ym?@refs/heads/main' }, 'acme/api/.github/workflows/d.ym@@refs/heads/main', fold)).toBe(false);
    expect(matches({ glob: 'acme/api/**@refs/heads/main' }, 'ACME/Api/.github/workflows/d.yml@refs/heads/main', fold)).toBe(true);
    expect(matches({ glob: '**/d.yml@refs/heads/main' }, 'ACME/Api/.github/workflows/D.yml@refs/heads/main', fold)).toBe(true);
    // After the first @ the ref is the ref, @ included; a glob that writes no @ pins no ref at all.
    expect(matches({ glob: 'acme/api/**@refs/heads/**' }, SMUGGLED, fold)).toBe(true);
    expect(matches({ glob: 'acme/api/**' }, SMUGGLED, fold)).toBe(true);
    // An @ in a workflow's file name is the value's first @: such a value matches only a pattern that writes it.
    expect(matches({ glob: 'acme/api/**@refs/heads/main' }, 'acme/api/.github/workflows/a@b.yml@refs/heads/main', fold)).toBe(false);
    expect(matches({ glob: 'acme/api/**/a@b.yml@refs/heads/main' }, 'acme/api/.github/workflows/a@b.yml@refs/heads/main', fold)).toBe(true);
    // Only claims that join names to a ref align on @: elsewhere @ is a character like any other.
    expect(matches({ glob: 'a/**@b' }, 'a/x@y@b', 'exact')).toBe(true);
    // A pattern's second @ is part of the ref: wildcards before it may match @, and its letters compare exactly.
    expect(matches({ glob: 'acme/api/**@refs/heads/**@x' }, 'acme/api/d.yml@refs/heads/a@b@x', fold)).toBe(true);
    expect(matches({ glob: 'acme/api/**@refs/heads/Main@x' }, 'acme/api/d.yml@refs/heads/main@x', fold)).toBe(false);
  });

  it('a glob includes another only when the first @ aligns in both', () => {
    expect(globIncludes('acme/api/**@refs/heads/main', 'acme/api/.github/workflows/d.yml@refs/heads/main', fold)).toBe(true);
    expect(globIncludes('acme/**@refs/heads/main', 'acme/api/**@refs/heads/main', fold)).toBe(true);
    expect(globIncludes('acme/api/**', 'acme/api/**@refs/heads/main', fold)).toBe(true);
    expect(globIncludes('acme/api/**@refs/heads/main', 'acme/api/**', fold)).toBe(false);
    expect(globIncludes('acme/api/**@refs/heads/main', SMUGGLED, fold)).toBe(false);
    expect(globIncludes('acme/api/**@refs/heads/main', 'acme/api/**@refs/heads/**@refs/heads/main', fold)).toBe(false);
  });

  it('a regex’s first top-level @ is the value’s first @, in every top-level alternative', () => {
    expect(matches({ regex: 'acme/api/.*@refs/heads/main' }, SMUGGLED, fold)).toBe(false);
    expect(matches({ regex: 'acme/api/[^/]+/.+@refs/heads/main' }, SMUGGLED, fold)).toBe(false);
    expect(matches({ regex: 'acme/web/.*@refs/heads/dev|acme/api/.*@refs/heads/main' }, SMUGGLED, fold)).toBe(false);
    expect(matches({ regex: 'acme/api/.*@refs/heads/main' }, 'ACME/api/.github/workflows/d.yml@refs/heads/main', fold)).toBe(true);
    expect(matches({ regex: 'acme/web/.*@refs/heads/dev|acme/api/.*@refs/heads/main' }, 'acme/api/x.yml@refs/heads/main', fold)).toBe(true);
    expect(matches({ regex: 'acme/api/.*@refs/heads/.*' }, SMUGGLED, fold)).toBe(true);
    // An alternative without @ pins no ref, like a glob without @.
    expect(matches({ regex: 'acme/api/.*' }, SMUGGLED, fold)).toBe(true);
    // Anchors and word boundaries beside the split mean what they meant in the whole regex.
    expect(matches({ regex: 'acme/api/x\\.yml$@refs/heads/main' }, 'acme/api/x.yml@refs/heads/main', fold)).toBe(false);
    expect(matches({ regex: 'acme/api/x\\.yml@^refs/heads/main' }, 'acme/api/x.yml@refs/heads/main', fold)).toBe(false);
    expect(matches({ regex: 'acme/api/x\\.yml\\b@\\brefs/heads/main' }, 'acme/api/x.yml@refs/heads/main', fold)).toBe(true);
    // @ inside a class or a group of the names part never matches there: the names hold no @.
    expect(matches({ regex: 'acme/api/[^@]+@refs/heads/(main|a@b)' }, 'acme/api/x.yml@refs/heads/a@b', fold)).toBe(true);
    expect(matches({ regex: 'acme/api/(x@y)?z@refs/heads/main' }, 'acme/api/x@yz@refs/heads/main', fold)).toBe(false);
    // Each half matches whole: no names before the pattern's, no ref after it, and an alternative without @ the whole value.
    expect(matches({ regex: 'acme/api/.*@refs/heads/main' }, 'acme/api/x.yml@refs/heads/main-evil', fold)).toBe(false);
    expect(matches({ regex: 'acme/api/.*@refs/heads/main' }, 'evil/acme/api/x.yml@refs/heads/main', fold)).toBe(false);
    expect(matches({ regex: 'acme/api' }, 'acme/api/x.yml@refs/heads/main', fold)).toBe(false);
    // Only claims that join names to a ref align on @.
    expect(matches({ regex: 'a/.*@b' }, 'a/x@y@b', 'exact')).toBe(true);
  });

  it.each([
    ['(acme/api/.*@refs/heads/main)', /only inside a group or class/],
    ['acme/api/.*(?:@refs/heads/main)', /only inside a group or class/],
    ['acme/api/x[@]refs/heads/main', /only inside a group or class/],
    ['acme/web/.*@refs/heads/main|(acme/api/.*@refs/heads/main)', /only inside a group or class/],
    ['acme/api/.*\\x40refs/heads/main', /as an escape/],
    ['acme/api/.*\\u0040refs/heads/main', /as an escape/],
    ['acme/api/.*\\u{40}refs/heads/main', /as an escape/],
    ['acme/api/.*@?refs/heads/main', /repeats the @/],
    ['acme/api/.*@+refs/heads/main', /repeats the @/],
    ['acme/api/.*@{1,2}refs/heads/main', /repeats the @/],
  ])('refuses %s on a claim joined to a ref, whose @ could align anywhere', (pattern, why) => {
    expect(() => compileSafeRegex(pattern, fold, false)).toThrow(why);
    expect(() => compileSafeRegex(pattern, 'exact', false)).not.toThrow();
  });

  it('a regex sees the names in lower case and the ref as sent', () => {
    const regex = { regex: 'acme/workflows/[^@]+@refs/(heads/main|tags/v[0-9.]+)' };
    expect(matches(regex, 'ACME/Workflows/.github/workflows/deploy.yml@refs/heads/main', fold)).toBe(true);
    expect(matches(regex, 'acme/workflows/.github/workflows/deploy.yml@refs/heads/MAIN', fold)).toBe(false);
    expect(matches(regex, 'acme/workflows/.github/workflows/deploy.yml@refs/tags/V1.4', fold)).toBe(false);
  });

  it('refuses capitals where a regex meets folded names, which would never match the value in lower case', () => {
    expect(() => compileSafeRegex('ACME/.+@refs/heads/main', fold, false)).toThrow(/regex ACME\/\.\+@refs\/heads\/main .*lower case: A/);
    expect(() => compileSafeRegex('acme/[A-Z]+', 'whole', false)).toThrow(/lower case: A/);
    expect(() => compileSafeRegex('Acme/api', 'whole', false)).toThrow(UnsafeRegexError);
    expect(() => compileSafeRegex('acme/Z', 'whole', false)).toThrow(/lower case: Z/);
    // The ref keeps its case; escapes, properties and group names are not letters of the value.
    expect(compileSafeRegex('acme/.+@refs/heads/Main', fold, false)('ACME/x@refs/heads/Main')).toBe(true);
    expect(compileSafeRegex('acme/.*/Main', fold, false)('acme/x@refs/heads/Main')).toBe(true);
    expect(compileSafeRegex('(?<Owner>acme)/\\S+\\W?\\p{Lu}?\\u00C9?\\cJ?', 'whole', false)('ACME/api')).toBe(true);
    expect(compileSafeRegex('Acme/api', 'exact', false)('Acme/api')).toBe(true);
  });

  it('proves inclusion only where the fold is certain, and never across the ref', () => {
    expect(globIncludes('ACME/api/**', 'acme/api/x.yml@refs/heads/*', fold)).toBe(true);
    expect(globIncludes('acme/api/x.yml@refs/heads/*', 'ACME/api/x.yml@refs/heads/main', fold)).toBe(true);
    expect(globIncludes('acme/api/x.yml@refs/heads/main', 'acme/api/x.yml@refs/heads/MAIN', fold)).toBe(false);
    expect(globIncludes('acme/api/**@refs/heads/main', 'acme/api/**@refs/heads/MAIN', fold)).toBe(false);
    expect(compareMatchers(PINNED, PINNED.replace('main', 'MAIN'), fold)).toBe('changed');
    expect(compareMatchers(PINNED, PINNED.replace('acme', 'ACME'), fold)).toBe('same');
  });
});

describe('a customised sub’s workflow ref splits at its first @', () => {
  // GitHub's include_claim_keys: the repository chooses the sub's fields; job_workflow_ref's names end at its first @.
  const KEYS = ['workflow_ref', 'job_workflow_ref'];
  const onSub = (matcher: Matcher, value: string, overLong = false) => compileMatcher(matcher, 'exact', overLong, KEYS).test(value);
  const MAIN = 'repo:acme/app:job_workflow_ref:acme/w/.github/workflows/d.yml@refs/heads/main';
  const SMUGGLED = 'repo:acme/app:job_workflow_ref:acme/w/.github/workflows/d.yml@refs/heads/x@refs/heads/main';
  // The workflow's name is free text: another field can write an @ and the rest of the pattern after the real ref.
  const NAMED = 'repo:acme/app:job_workflow_ref:acme/w/.github/workflows/d.yml@refs/heads/dev:workflow:x@refs/heads/main';
  const PINNED = { glob: 'repo:acme/app:job_workflow_ref:acme/w/**@refs/heads/main' };

  it('a glob’s @ after its wildcards stands for the workflow ref’s first @', () => {
    expect(onSub(PINNED, MAIN)).toBe(true);
    expect(onSub(PINNED, SMUGGLED)).toBe(false);
    // Every wildcard before the pattern's @ keeps off that @: `?`, and `**` written twice over.
    expect(onSub({ glob: 'repo:acme/app:job_workflow_ref:acme/w/****@refs/heads/main' }, MAIN)).toBe(true);
    expect(onSub({ glob: 'repo:acme/app:job_workflow_ref:acme/w/****@refs/heads/main' }, SMUGGLED)).toBe(false);
    expect(onSub({ glob: 'repo:acme/app:job_workflow_ref:acme/w/.github/workflows/d.yml?refs/heads/x@refs/heads/main' }, SMUGGLED)).toBe(false);
    expect(onSub({ glob: 'repo:acme/app:job_workflow_ref:acme/w/**@refs/heads/main:workflow:**' }, `${NAMED}:workflow:d`)).toBe(false);
    expect(onSub({ glob: 'repo:acme/app:**@refs/heads/main' }, NAMED)).toBe(false);
    // Whatever key the pattern writes for the field, a wildcard among them.
    expect(onSub({ glob: 'repo:acme/app:*:acme/w/**@refs/heads/main' }, SMUGGLED)).toBe(false);
    expect(onSub({ glob: 'repo:acme/app:*:acme/w/**@refs/heads/main' }, MAIN)).toBe(true);
    // The immutable form's @s are no workflow ref's: wildcards take them.
    expect(onSub({ glob: 'repo:acme@65/app@74:job_workflow_ref:acme/w/**@refs/heads/main' }, MAIN.replace('acme/app', 'acme@65/app@74'))).toBe(true);
    expect(onSub({ glob: '**@refs/heads/main' }, MAIN.replace('acme/app', 'acme@65/app@74'))).toBe(true);
    expect(onSub({ glob: '**@refs/heads/main' }, SMUGGLED.replace('acme/app', 'acme@65/app@74'))).toBe(false);
    // A pattern that writes no @ after its wildcards pins no ref; one that pins the ref whole takes the branch by its name.
    expect(onSub({ glob: 'repo:acme/app:**' }, SMUGGLED)).toBe(true);
    expect(onSub({ glob: 'repo:acme/app:job_workflow_ref:acme/w/**@refs/heads/x@refs/heads/main' }, SMUGGLED)).toBe(true);
    // A branch's @s in another field (the context's ref) are that ref's, which a wildcard takes.
    expect(onSub({ glob: 'repo:acme/app:ref:refs/heads/*:job_workflow_ref:acme/w/**@refs/heads/main' }, MAIN.replace(':job', ':ref:refs/heads/a@b:job'))).toBe(
      true,
    );
  });

  it('finds the field wherever the sub writes it: first, after another ref field, after a free-text field that writes its key', () => {
    const FIRST = { glob: 'job_workflow_ref:acme/w/**@refs/heads/main' };
    expect(onSub(FIRST, MAIN.replace('repo:acme/app:', ''))).toBe(true);
    expect(onSub(FIRST, SMUGGLED.replace('repo:acme/app:', ''))).toBe(false);
    // A workflow named `job_workflow_ref:a@b` writes the key before the real field: each time the key is written counts.
    const NAME = 'repo:acme/app:workflow:job_workflow_ref:a@b:';
    const afterName = { glob: `${NAME}job_workflow_ref:acme/w/**@refs/heads/main` };
    expect(onSub(afterName, `${NAME}${MAIN.replace('repo:acme/app:', '')}`)).toBe(true);
    expect(onSub(afterName, `${NAME}${SMUGGLED.replace('repo:acme/app:', '')}`)).toBe(false);
    // A key is a whole field's name: `notjob_workflow_ref:` ends no workflow ref's names, and a wildcard takes its @.
    expect(
      onSub({ glob: 'repo:acme/app:workflow:**:job_workflow_ref:acme/w/**@refs/heads/main' }, MAIN.replace(':job', ':workflow:notjob_workflow_ref:a@b:job')),
    ).toBe(true);
    // A wildcard after the pattern's last @ pins nothing: it takes the workflow ref's @.
    expect(onSub({ glob: 'repo:acme@65/app@74:**' }, MAIN.replace('acme/app', 'acme@65/app@74'))).toBe(true);
    // A regex reads no value with an @ after the first field's: a later ref field ending the sub writes no @ after its own.
    const later = `${SMUGGLED}:workflow_ref:acme/app/.github/workflows/c.yml@refs/heads/main`;
    expect(onSub({ regex: 'repo:acme/app:job_workflow_ref:acme/w/.*@refs/heads/main:workflow_ref:.*' }, later)).toBe(false);
  });

  it('reads every entry of a list as the sub it is', () => {
    expect(onSub([PINNED, 'push'], MAIN)).toBe(true);
    expect(onSub([PINNED, 'push'], SMUGGLED)).toBe(false);
    expect(onSub([{ regex: 'repo:acme/app:job_workflow_ref:acme/w/.*@refs/heads/main' }], SMUGGLED)).toBe(false);
  });

  it('a deny’s glob and an allow’s not read the sub as wide as before, a deny’s not as an allow’s glob: a free-text field can write the key and its @', () => {
    expect(onSub(PINNED, SMUGGLED, true)).toBe(true);
    expect(compileMatcher({ not: PINNED }, 'exact', false, KEYS).test(SMUGGLED)).toBe(false);
    expect(compileMatcher({ not: PINNED }, 'exact', true, KEYS).test(SMUGGLED)).toBe(true);
  });

  it('a regex that writes @ answers as an over-long value for a sub with an @ after the workflow ref’s first', () => {
    const regex = { regex: 'repo:acme/app:job_workflow_ref:acme/w/.*@refs/heads/main' };
    expect(onSub(regex, MAIN)).toBe(true);
    expect(onSub(regex, SMUGGLED)).toBe(false);
    expect(onSub(regex, NAMED)).toBe(false);
    expect(onSub(regex, SMUGGLED, true)).toBe(true);
    expect(onSub({ regex: 'repo:acme@65/app@74:.*@refs/heads/main' }, MAIN.replace('acme/app', 'acme@65/app@74'))).toBe(true);
    // One that writes no @ pins no ref.
    expect(onSub({ regex: 'repo:acme/app:.*' }, SMUGGLED)).toBe(true);
    expect(() => compileSafeRegex('repo:acme/app:job_workflow_ref:acme/w/.*\\x40refs/heads/main', 'exact', false, KEYS)).toThrow(/as an escape/);
  });

  it('reads only the sub it is told is customised', () => {
    expect(compileMatcher(PINNED, 'exact', false).test(SMUGGLED)).toBe(true);
  });

  it('shows no inclusion the two readings disagree on: a glob pinned to main does not hold the smuggled branch', () => {
    expect(compareMatchers(PINNED, SMUGGLED, 'exact', KEYS)).toBe('changed');
    expect(compareMatchers(PINNED, { glob: 'repo:acme/app:job_workflow_ref:acme/w/**@refs/heads/x@refs/heads/main' }, 'exact', KEYS)).toBe('changed');
    expect(compareMatchers(SMUGGLED, SMUGGLED, 'exact', KEYS)).toBe('same');
    expect(compareMatchers(PINNED, PINNED, 'exact', KEYS)).toBe('same');
    expect(compareMatchers(PINNED, MAIN, 'exact', KEYS)).toBe('narrower');
    expect(compareMatchers({ glob: 'repo:acme/**' }, { glob: 'repo:acme/app:**' }, 'exact', KEYS)).toBe('narrower');
  });

  it('reads the sub alike within lists and under not, and pins a glob that writes @ to itself', () => {
    const SMUGGLING = { glob: 'repo:acme/app:job_workflow_ref:acme/w/**@refs/heads/x@refs/heads/main' };
    // Each takes the smuggled branch, which the pinned glob never does: none is narrower.
    expect(compareMatchers(PINNED, [SMUGGLED], 'exact', KEYS)).toBe('changed');
    expect(compareMatchers([PINNED], SMUGGLED, 'exact', KEYS)).toBe('changed');
    expect(compareMatchers([PINNED], SMUGGLING, 'exact', KEYS)).toBe('changed');
    // Under a deny's not the globs read with the keys: not SMUGGLING leaves out the smuggled branch, not PINNED takes it.
    expect(compareMatchers({ not: SMUGGLING }, { not: PINNED }, 'exact', KEYS)).toBe('changed');
    expect(compareMatchers({ glob: `${PINNED.glob}-next` }, PINNED, 'exact', KEYS)).toBe('changed');
    // A list that holds the value itself holds it.
    expect(compareMatchers(SMUGGLED, [SMUGGLED, MAIN], 'exact', KEYS)).toBe('wider');
  });
});

describe('not and exists', () => {
  it('not: the claim exists and the inner matcher does not match', () => {
    expect(matches({ not: 'pull_request' }, 'push')).toBe(true);
    expect(matches({ not: 'pull_request' }, 'pull_request')).toBe(false);
    expect(matches({ not: 'pull_request' }, undefined)).toBe(false);
    expect(matches({ not: 'pull_request' }, null)).toBe(false);
    expect(matches({ not: 'b' }, ['a', 'b'])).toBe(false);
    expect(matches({ not: 'c' }, ['a', 'b'])).toBe(true);
  });

  it('exists: presence only, null counts as absent', () => {
    expect(matches({ exists: true }, '')).toBe(true);
    expect(matches({ exists: true }, undefined)).toBe(false);
    expect(matches({ exists: true }, null)).toBe(false);
    expect(matches({ exists: false }, undefined)).toBe(true);
    expect(matches({ exists: false }, 'x')).toBe(false);
  });
});

describe('glob', () => {
  it('* stays within a segment, ** crosses, ? is one character, the whole value must match', () => {
    const tags = compileGlob('refs/tags/v*', 'exact');
    expect(tags('refs/tags/v1.2.3')).toBe(true);
    expect(tags('refs/tags/v')).toBe(true);
    expect(tags('refs/tags/v1/evil')).toBe(false);
    expect(tags('xrefs/tags/v1')).toBe(false);
    expect(compileGlob('acme/**', 'exact')('acme/a/b/c')).toBe(true);
    expect(compileGlob('acme/**/deploy.yml', 'exact')('acme/x/.github/workflows/deploy.yml')).toBe(true);
    expect(compileGlob('v?', 'exact')('v1')).toBe(true);
    expect(compileGlob('v?', 'exact')('v12')).toBe(false);
    expect(compileGlob('a?b', 'exact')('a/b')).toBe(false);
  });

  it('treats every other character literally', () => {
    const glob = compileGlob('acme/api@refs/heads/release-(1).+[x]', 'exact');
    expect(glob('acme/api@refs/heads/release-(1).+[x]')).toBe(true);
    expect(glob('acme/api@refs/heads/release-(1)a+[x]')).toBe(false);
    // U+FFFF is the last character of one UTF-16 unit: it is one character of the value, not half of a pair.
    expect(compileGlob('\uFFFF/x*', 'exact')('\uFFFF/x')).toBe(true);
  });

  it('runs in bounded time on patterns that would backtrack as regexes', () => {
    const glob = compileGlob('**a**a**a**a**a**a**a**a**b', 'exact');
    const started = performance.now();
    expect(glob('a'.repeat(2000))).toBe(false);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('regex', () => {
  it('matches the whole value', () => {
    const regex = compileSafeRegex('v\\d+', 'exact', false);
    expect(regex('v12')).toBe(true);
    expect(regex('xv12')).toBe(false);
    expect(regex('v12x')).toBe(false);
    expect(compileSafeRegex('a|b', 'exact', false)('ab')).toBe(false);
  });

  // Each refused for its own reason, and saying so: a check that another one happens to cover is still checked.
  it.each([
    ['(a+)+$', 'nested quantifiers', /a repeated group matches in more than one way/],
    ['(a*)*b', 'nested quantifiers', /a repeated group matches in more than one way/],
    ['(x+x+)+y', 'nested quantifiers', /a repeated group matches in more than one way/],
    ['(a+){2,}', 'nested quantifiers, the outer one counted', /a repeated group matches in more than one way/],
    ['(?:a+){3}', 'a repetition repeated three times: three unbounded repetitions', /more ways than two unbounded repetitions/],
    ['(a{1,30}){1,30}', 'bounded repetitions nested', /more ways than two unbounded repetitions/],
    ['x?x?x?\\p{L}*\\p{L}*', 'two repetitions of a Unicode property, whose steps cost 4, and three optional parts', /more ways than two unbounded repetitions/],
    ['x?x?x?[\\p{L}\\d]*[\\p{L}\\d]*', 'two repetitions of a class holding a Unicode property', /more ways than two unbounded repetitions/],
    [`${'a?'.repeat(25)}${'a'.repeat(25)}`, 'optional parts in a row, each doubling the ways', /more ways than two unbounded repetitions/],
    [
      'refs/tags/v[0-9]*(x)?[0-9]*(x)?[0-9]*(x)?.*',
      'optional parts between repetitions that can each begin where the last ends',
      /more ways than two unbounded repetitions/,
    ],
    ['(a|ab)*c', 'a repeated group that matches in more than one way', /a repeated group matches in more than one way/],
    ['refs/heads/(\\w|\\d)+', 'overlapping alternatives repeated', /a repeated group matches in more than one way/],
    ['((a|ab)c)*', 'alternatives that can begin alike in a group inside a repeated one', /a repeated group matches in more than one way/],
    ['(x|xy){2,}', 'alternatives that can begin alike repeated without bound', /a repeated group matches in more than one way/],
    ['(x|xy){40}', 'alternatives that can begin alike repeated many times', /more ways than two unbounded repetitions/],
    [
      'refs/heads/(?:[a-z]|[a-z0-9-]){1,22}',
      'alternatives repeated up to 22 times: 17 million alternatives tried on 22 letters and a `!`, each dearer than a step of a one-character repetition',
      /more ways than two unbounded repetitions/,
    ],
    [
      '(a|a)'.repeat(23),
      'alternatives in sequence, 23 of them: 17 million alternatives tried on 23 `a`s and a `!`',
      /more ways than two unbounded repetitions/,
    ],
    [
      'refs/heads/.*[a-z0-9]{0,126}[a-z0-9-]{0,126}',
      'an unbounded repetition and two long bounded ones: 17 million steps on 990 letters and a newline, each of a bounded repetition dearer than one of an unbounded one',
      /more ways than two unbounded repetitions/,
    ],
    ['refs/heads/.*-.*-.*', 'three unbounded repetitions', /more ways than two unbounded repetitions/],
    ['main|refs/heads/.*-.*-.*', 'three unbounded repetitions in an alternative after a cheap one', /more ways than two unbounded repetitions/],
    [
      'refs/heads/[a-z]*-?[a-z]*-?[a-z]*',
      'three unbounded repetitions over the same letters, each before an optional separator: it can end anywhere',
      /more ways than two unbounded repetitions/,
    ],
    [
      'refs/heads/[a-z]*.[a-z]*.[a-z]*',
      'three unbounded repetitions over the same letters, each before a wildcard, which matches a letter too',
      /more ways than two unbounded repetitions/,
    ],
    [
      'refs/heads/.*.*[0-9a-f]{40}',
      "two unbounded repetitions and a commit's 40 hex digits, which each of their million splits runs up to 40 times: 0.14-0.26 s on 1,012 letters and a `!`",
      /more ways than two unbounded repetitions/,
    ],
    [
      'refs/heads/.*.*(?:ab){400}',
      'two unbounded repetitions and a group repeated 400 times: 0.2-0.3 s on 506 `ab`s and a `!`',
      /more ways than two unbounded repetitions/,
    ],
    [
      '.*.*a{1000}',
      'two unbounded repetitions and a count past what they leave: 1.1-1.5 s on 1,023 `a`s and a `!`',
      /more ways than two unbounded repetitions/,
    ],
    [
      'refs/heads/[a-z]*?[a-z]*?[a-z]*?-',
      'three lazy unbounded repetitions over the same letters: lazy or greedy, a value that does not match is tried at every split',
      /more ways than two unbounded repetitions/,
    ],
    ['x?x?x?x?.*.*', 'two unbounded repetitions and four optional parts, one more than the limit leaves room for', /more ways than two unbounded repetitions/],
    [
      'a?a?a?[acegikmoqsuwy02468]*[acegikmoqsuwy02468]*',
      'two unbounded repetitions of a class of 18 separate characters, which V8 tests by calling a function, each step 5-10 times what one of `.` costs: 40-60 ms on 1,023 `a`s and a `b`',
      /more ways than two unbounded repetitions/,
    ],
    [
      'x?x?x?[a-zA-Z0-9._/-]*[a-zA-Z0-9._/-]*',
      'two unbounded repetitions of a class of four runs, each step 2-3 times what one of `.` costs, and three optional parts',
      /more ways than two unbounded repetitions/,
    ],
    [
      'refs/heads/(?:[a-z]|[a-z0-9-]){1,17}',
      'alternatives repeated up to 17 times, the fewest refused: each tried costs 16 steps, each repetition 4',
      /more ways than two unbounded repetitions/,
    ],
    [
      'refs/heads/.*-.*[0-9]{0,2}[0-9]{0,2}',
      'two unbounded repetitions and two bounded ones of three lengths each, whose steps cost 4',
      /more ways than two unbounded repetitions/,
    ],
    ['(-a)*-(-a)*-.*', 'three unbounded repetitions, each of a group that can begin with the separator', /more ways than two unbounded repetitions/],
    ['.{0,64}.{0,64}.{0,64}.{0,64}', 'long bounded repetitions', /more ways than two unbounded repetitions/],
    [
      '[a-z]+[a-z]?[^-]*[^-]+-b.',
      'three repetitions over the same letters, the last ending at a separator: it tries each of its lengths after every split of the two before',
      /more ways than two unbounded repetitions/,
    ],
    [
      '(?:\u{1F600}*(?:\u{1F600}))+',
      'a repetition of a character past 16 bits before a group that begins with it, repeated: read by units, it seemed to stop before the group',
      /a repeated group matches in more than one way/,
    ],
    [
      '(?:\\uD83D\\uDE00|\u{1F600})*x',
      'a repeated group whose alternatives begin with one character past 16 bits, written once as the escapes of its surrogates: read as two escapes, they seemed to begin apart, and 24 `😀`s and a `!` took 155 ms, twice as long for each more',
      /a repeated group matches in more than one way/,
    ],
    [
      `${'\\uD83D\\uDE00*\u{1F600}'.repeat(5)}x`,
      'repetitions of a character past 16 bits written as the escapes of its surrogates, each before that character: read as two escapes, each seemed to stop before it, and 127 `😀`s and a `!` took 1.2 s',
      /more ways than two unbounded repetitions/,
    ],
    [
      '(?:[a-z]*(?:\u{1F600}?a))+',
      'a group whose first character, past 16 bits, is optional after a repetition, repeated: read by units, the character seemed mandatory',
      /a repeated group matches in more than one way/,
    ],
    [
      'refs/heads/[a-z]*(?:-|a)[a-z]*(?:-|a)[a-z]*',
      'three repetitions over the same letters, each before a group whose first alternative begins with a character they cannot match, its second with a letter',
      /more ways than two unbounded repetitions/,
    ],
    [
      'refs/heads/[a-z]*(?<x>a)[a-z]*(?<y>a)[a-z]*',
      'three repetitions over the same letters, each before a named group that begins with a letter: its name is no character of the value',
      /more ways than two unbounded repetitions/,
    ],
    [
      '(?:[a-z]*(?:-{0,2}a))+',
      'a group whose first character may come no times ({0,2}) after a repetition, repeated: the group can begin where the repetition ends',
      /a repeated group matches in more than one way/,
    ],
    [
      `.*.{0,7}[0-9]*${'abcdefghijklmnopqrst'.replace(/./g, '$&?')}!`,
      'a repetition that stops before twenty optional letters, each tried at every length it gives back: 0.2-0.3 s on 1,023 digits and a `#`',
      /more ways than two unbounded repetitions/,
    ],
    [
      '(0|[0-9.]*)\\.(0|[0-9.]*)\\.(0|[0-9.]*)',
      'groups whose last repetition can match the separator after them: 0.37 s on 1,023 dots and a `!`',
      /more ways than two unbounded repetitions/,
    ],
    [
      '(0|[1-9][0-9]*)\\.?(0|[1-9][0-9]*)\\.?(0|[1-9][0-9]*)',
      'groups whose last repetition ends where another group, which can begin with a digit, may begin: 0.42 s on 1,023 digits and a `!`',
      /more ways than two unbounded repetitions/,
    ],
    [
      '(x|[0-9]*)(y|[0-9]*)(z|[0-9]*)\\.',
      'groups each followed by one of alternatives: 0.38 s on 1,023 digits and a `!`',
      /more ways than two unbounded repetitions/,
    ],
    [
      '([0-9]*a?){3}\\.',
      'a repeated group, whose repetition can end where its next one begins, not only before what follows it: 1.3 s on 1,023 digits and a `!`',
      /more ways than two unbounded repetitions/,
    ],
    ['(a|a)'.repeat(30), 'alternatives in sequence', /more ways than two unbounded repetitions/],
    [
      'x{0,6}.*(?:[^y]+|)?y',
      'an optional group that can match no character, which V8 runs as a loop that checks each turn moved on, each step of the repetition in it three times dearer: 23-29 ms on 1,023 `x`s and a `!`',
      /more ways than two unbounded repetitions/,
    ],
    [
      'x{0,6}.*(?:[^y]*)?y',
      'an optional group of a repetition that can match no character: 24-36 ms on 1,023 `x`s and a `!`',
      /more ways than two unbounded repetitions/,
    ],
    [
      `ꞵ{0,14}.*[^y${ASTRAL}]*y`,
      'a repetition of a class of 245 characters past U+FFFF, each under a leading surrogate of its own, which V8 tests as 245 alternatives a step on a two-byte value, after a repetition of `.`: 39 ms on 255 `ꞵ`s and a `!` where `x?x?x?.*.*` took 6.5 on 1,023 `x`s, 505 UTF-16 units as a policy holds them',
      /more ways than two unbounded repetitions/,
    ],
    [
      `x{0,14}.*[x${ASTRAL}]*y`,
      'a repetition of such a class on a value of Latin-1 characters but one, which V8 keeps in two bytes a character: 22 ms on 254 `x`s and a `ꞵ`',
      /more ways than two unbounded repetitions/,
    ],
    ['(a)\\1', 'backreference', /uses a backreference/],
    ['(?<n>a)\\k<n>', 'backreference', /uses a backreference/],
    ['a(?=b)', 'lookahead', /uses lookaround/],
    ['a(?!b)', 'negative lookahead', /uses lookaround/],
    ['(?<=a)b', 'lookbehind', /uses lookaround/],
    ['(?<!a)b', 'negative lookbehind', /uses lookaround/],
    ['[', 'does not compile', /does not compile/],
    ['main)|(?:.*', 'a ) of its own, which would close the anchoring group and match any value', /does not compile/],
    ['refs/heads/(?i:main)', 'an inline modifier', /inline modifier group/],
    ['(?-i:refs/heads/main)', 'an inline modifier', /inline modifier group/],
  ])('refuses %s (%s) at load time', (pattern, _what, why) => {
    expect(() => compileSafeRegex(pattern, 'exact', false)).toThrow(UnsafeRegexError);
    expect(() => compileSafeRegex(pattern, 'exact', false)).toThrow(why);
  });

  it('takes two unbounded repetitions with optional parts beside them, more that each end at a character they cannot match, a group tried once, and a repeated group of one way', () => {
    for (const pattern of [
      'repo:acme/.*:ref:refs/heads/.*',
      'acme/workflows/[^@]+@refs/(heads/main|tags/v[0-9.]+)',
      'acme/web/.*@refs/heads/dev|acme/api/.*@refs/heads/main',
      'acme/(api|web)/.github/workflows/.*\\.ya?ml@refs/heads/.*',
      '(a|b)?c*d*',
      '[^-]*-[^-]*-.*',
      '\\w+\\.\\w+\\.\\w+',
      'repo:[^:]*:ref:[^:]*:[^:]*:.*',
      '(x|y){2,3}',
      '[0-9]{1,5}\\.[0-9]{1,5}\\.[0-9]{1,5}',
      '(?:main|dev)',
      '(ab)+',
      '[\\]|(]*x',
      '\\u{1F600}+a*',
      // Each repetition ends where a character past 16 bits it cannot match begins, read as one character, as the u flag reads it.
      '[^\u{1F600}]*\u{1F600}[^\u{1F600}]*\u{1F600}.*',
      // The most the limit takes of each kind: three optional parts beside two unbounded repetitions, one bounded
      // repetition of three lengths after them, a group of two alternatives repeated up to 16 times.
      'x?x?x?.*.*',
      // A class of one run of characters, and the escapes V8 tests as it tests `.`, cost what `.` does; one of up to 16 runs 3.
      'x?x?x?[a-z]*[^/]*',
      'x?x?x?\\w*\\s*',
      'x?[a-z0-9-]*[a-zA-Z0-9._/-]*',
      'refs/heads/[a-z0-9._/-]+/[\\w.-]+',
      'refs/heads/(?:[a-z]|[a-z0-9-]){1,16}',
      'refs/heads/.*-.*[0-9]{0,2}',
      'refs/heads/.*[0-9a-f]{40}',
      // A group tried at most once is entered once: it costs what its repetition does written bare (`x{0,13}.*[^y]*y`).
      'x{0,13}.*(?:[^y]+)?y',
      // Alternatives that each begin with a character the others cannot begin with: at most one gets past its first.
      '((0|[1-9][0-9]*)\\.)+',
      '(x|y){2,}',
      '((a|b)c)*',
      '(\\d|[a-z]|\u{1F600})+',
      // A character past 16 bits written as the escapes of its surrogates is one character, as the u flag reads it.
      '(?:\\uD83D\\uDE00|\\uD83D\\uDE01)+',
    ]) {
      expect(() => compileSafeRegex(pattern, 'exact', false), pattern).not.toThrow();
    }
    // What the two repetitions cost on the longest value a regex reads, the pipeline's to craft.
    const started = performance.now();
    expect(compileSafeRegex('.*-.*', 'exact', false)(`${'-'.repeat(REGEX_MAX_INPUT - 1)}\n`)).toBe(false);
    expect(performance.now() - started).toBeLessThan(250);
  });

  it('estimates a before-@ regex as it runs, each side of its @ on its own, so repetitions in the names do not multiply the ref', () => {
    const pattern = 'acme/.*@refs/heads/.*-[0-9a-f]{40}';
    expect(() => compileSafeRegex(pattern, 'exact', false)).toThrow(/more ways than two unbounded repetitions/);
    const test = compileSafeRegex(pattern, 'before-@', false);
    expect(test(`acme/api/.github/workflows/ci.yml@refs/heads/fix-${'a'.repeat(40)}`)).toBe(true);
    // Each side still answers for its own repetitions, and an alternative for its own.
    expect(() => compileSafeRegex('acme/.*@refs/heads/.*.*[0-9a-f]{40}', 'before-@', false)).toThrow(/more ways than two unbounded repetitions/);
    expect(() => compileSafeRegex('acme/x@main|.*.*a{1000}', 'before-@', false)).toThrow(/more ways than two unbounded repetitions/);
    // The longest value the ref's side can be crafted into, with a dash before every run of 39 hex digits.
    const started = performance.now();
    expect(test(`acme/x@refs/heads/${`-${'a'.repeat(39)}`.repeat(25)}!`)).toBe(false);
    expect(performance.now() - started).toBeLessThan(50);
  });

  // The estimate reads a group within a group by recursion. A policy's regex is at most 512 characters: 255 levels.
  it('estimates groups nested as deep as a policy holds them, and refuses deeper ones as a load error, not a crash', () => {
    expect(compileSafeRegex(`${'('.repeat(255)}a${')'.repeat(255)}`, 'exact', false)('a')).toBe(true);
    const deep = `${'('.repeat(20_000)}a${')'.repeat(20_000)}`;
    expect(() => new RegExp(deep, 'u')).not.toThrow();
    expect(() => compileSafeRegex(deep, 'exact', false)).toThrow(UnsafeRegexError);
    expect(() => compileSafeRegex(deep, 'exact', false)).toThrow(/nests groups too deeply/);
  });

  it('takes many repetitions in one pattern when they are cheap: the estimate bounds them, not a count', () => {
    expect(compileSafeRegex('a?'.repeat(12), 'exact', false)('aaaaa')).toBe(true);
  });

  // A group repeated at most once is no nesting: it cannot split a value in many ways. And a repetition that can end only
  // where an optional part or the value's end begins (`[0-9]+(-rc)?$`) adds no ways to what follows, nor one that ends a
  // group where what follows the group begins (`(0|[1-9][0-9]*)\.`, semver.org's form).
  it('takes release tag patterns with optional parts, and answers a crafted tag at once', () => {
    const patterns = [
      'refs/tags/v[0-9]+\\.[0-9]+\\.[0-9]+(-rc\\.[0-9]+)?',
      'refs/tags/v[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9a-z.-]+)?(\\+[0-9a-z.-]+)?',
      'refs/tags/v[0-9]+(\\.[0-9]+)?(\\.[0-9]+)?',
      'refs/tags/v[0-9]+(?:\\.[0-9]+){0,2}',
      'refs/tags/v(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)',
      'refs/tags/v((0|[1-9][0-9]*)\\.){2}(0|[1-9][0-9]*)(-rc\\.[0-9]+)?',
      'refs/tags/v((0|[1-9][0-9]*)\\.)+(0|[1-9][0-9]*)',
    ];
    for (const pattern of patterns) {
      const test = compileSafeRegex(pattern, 'exact', false);
      const started = performance.now();
      expect(test(`refs/tags/v1.2.${'3'.repeat(REGEX_MAX_INPUT - 20)}!`), pattern).toBe(false);
      expect(test(`refs/tags/v1${'.1'.repeat(400)}-${'1.'.repeat(100)}x!`), pattern).toBe(false);
      expect(test(`refs/tags/v${'1'.repeat(REGEX_MAX_INPUT - 12)}!`), pattern).toBe(false);
      expect(test(`refs/tags/v${Array(3).fill('1'.repeat(330)).join('.')}!`), pattern).toBe(false);
      expect(performance.now() - started, pattern).toBeLessThan(50);
    }
    const tag = compileSafeRegex(patterns[0] ?? '', 'exact', false);
    expect(tag('refs/tags/v1.2.3')).toBe(true);
    expect(tag('refs/tags/v1.2.3-rc.4')).toBe(true);
    expect(tag('refs/tags/v1.2.3-rc.')).toBe(false);
    expect(tag('refs/tags/v1.2.3-beta.4')).toBe(false);
    expect(compileSafeRegex(patterns[1] ?? '', 'exact', false)('refs/tags/v1.2.3-beta.1+build.7')).toBe(true);
    expect(compileSafeRegex(patterns[2] ?? '', 'exact', false)('refs/tags/v1.2')).toBe(true);
    expect(compileSafeRegex(patterns[3] ?? '', 'exact', false)('refs/tags/v1.2.3.4')).toBe(false);
    for (const semver of [patterns[4] ?? '', patterns[5] ?? '']) {
      expect(compileSafeRegex(semver, 'exact', false)('refs/tags/v10.0.3'), semver).toBe(true);
      expect(compileSafeRegex(semver, 'exact', false)('refs/tags/v1.02.3'), semver).toBe(false);
      expect(compileSafeRegex(semver, 'exact', false)('refs/tags/v1.2'), semver).toBe(false);
    }
  });

  // V8 saves a capturing group's positions each time a repetition around it runs, which the estimate does not count:
  // 200 empty groups in a repetition after `.*` took 1 s on this value. Nothing reads a capture, so none is made.
  it('compiles its groups without capturing, so a crafted value costs what the estimate counts, and groups still group', () => {
    const crafted = `${'a'.repeat(REGEX_MAX_INPUT - 1)}#`;
    const empty = compileSafeRegex(`.*(?:a${'()'.repeat(200)})*!`, 'exact', false);
    const nested = compileSafeRegex(`.*(a(?<n>)${'(())'.repeat(90)})*!`, 'whole', false);
    const named = compileSafeRegex(`.*(?:a${Array.from({ length: 200 }, (_, n) => `(?<g${n}>)`).join('')})*!`, 'exact', false);
    const aligned = compileSafeRegex(`acme/x@.*(?:a${'()'.repeat(200)})*!`, 'before-@', false);
    const started = performance.now();
    expect(empty(crafted)).toBe(false);
    expect(nested(crafted)).toBe(false);
    expect(named(crafted)).toBe(false);
    expect(aligned(`acme/x@${crafted.slice(7)}`)).toBe(false);
    expect(performance.now() - started).toBeLessThan(250);
    expect(compileSafeRegex('refs/tags/v(?<major>[0-9]+)(\\.[0-9]+)?', 'exact', false)('refs/tags/v1.2')).toBe(true);
    expect(compileSafeRegex('(ab)+', 'exact', false)('abab')).toBe(true);
    expect(compileSafeRegex('(ab)+', 'exact', false)('aba')).toBe(false);
    // A parenthesis in a class or escaped is no group.
    expect(compileSafeRegex('[(]a\\(b\\)', 'exact', false)('(a(b)')).toBe(true);
    expect(compileSafeRegex('[(]a', 'exact', false)('?a')).toBe(false);
    expect(compileSafeRegex('acme/(api|web)@refs/heads/(main|dev)', 'before-@', false)('ACME/Web@refs/heads/dev')).toBe(true);
  });

  it('refuses inline modifier groups by name: the claim folds case, never the pattern', () => {
    expect(() => compileSafeRegex('refs/heads/(?i:main)', 'exact', false)).toThrow(/inline modifier group/);
    expect(() => compileSafeRegex('(?ims-s:x)', 'exact', false)).toThrow(/inline modifier group/);
    expect(compileSafeRegex('(?:main|dev)', 'exact', false)('dev')).toBe(true);
    expect(compileSafeRegex('(?<branch>main)', 'exact', false)('main')).toBe(true);
  });

  it('reads no value longer than the input cap: it answers what its caller says for one (overLong), match or not', () => {
    for (const overLong of [false, true]) {
      expect(compileSafeRegex('a*', 'exact', overLong)('a'.repeat(REGEX_MAX_INPUT))).toBe(true);
      expect(compileSafeRegex('a*', 'exact', overLong)('a'.repeat(REGEX_MAX_INPUT + 1))).toBe(overLong);
      expect(compileSafeRegex('b', 'exact', overLong)('a'.repeat(REGEX_MAX_INPUT + 1))).toBe(overLong);
      // Under every fold: the cap bounds the cost of the regex, whatever the claim.
      const long = `${'a'.repeat(REGEX_MAX_INPUT - 16)}@refs/heads/main`;
      expect(compileSafeRegex('a*@refs/heads/main', 'before-@', overLong)(long)).toBe(true);
      expect(compileSafeRegex('b@refs/heads/main', 'before-@', overLong)(`a${long}`)).toBe(overLong);
      expect(compileSafeRegex('a*', 'whole', overLong)('A'.repeat(REGEX_MAX_INPUT))).toBe(true);
      expect(compileSafeRegex('b', 'whole', overLong)('A'.repeat(REGEX_MAX_INPUT + 1))).toBe(overLong);
    }
    // The cap the docs name: 1,024 characters are read, 1,025 are not.
    expect(compileSafeRegex('a*', 'exact', false)('a'.repeat(1024))).toBe(true);
    expect(compileSafeRegex('b', 'exact', true)('a'.repeat(1025))).toBe(true);
  });

  // V8 matches a string holding a character beyond Latin-1 on a slower path, 4 to 20 times as slow: such a value is read
  // to a quarter of the length, whatever the fold.
  it('reads a value holding a character beyond Latin-1 only to REGEX_MAX_WIDE_INPUT characters', () => {
    expect(REGEX_MAX_WIDE_INPUT).toBe(256);
    for (const overLong of [false, true]) {
      const wide = `${'a'.repeat(REGEX_MAX_WIDE_INPUT - 1)}ꞵ`;
      expect(compileSafeRegex('a*ꞵ', 'exact', overLong)(wide)).toBe(true);
      expect(compileSafeRegex('a*ꞵ', 'exact', overLong)(`a${wide}`)).toBe(overLong);
      expect(compileSafeRegex('b', 'exact', overLong)(`a${wide}`)).toBe(overLong);
      // The first character past Latin-1, which V8 keeps in two bytes.
      expect(compileSafeRegex('b', 'exact', overLong)(`${'a'.repeat(REGEX_MAX_WIDE_INPUT)}\u{100}`)).toBe(overLong);
      expect(compileSafeRegex('a*😀', 'exact', overLong)(`${'a'.repeat(REGEX_MAX_WIDE_INPUT - 1)}😀`)).toBe(overLong);
      // Counted in UTF-16 units, as the docs say: a character past U+FFFF counts 2.
      expect(compileSafeRegex('😀*', 'exact', overLong)('😀'.repeat(REGEX_MAX_WIDE_INPUT / 2))).toBe(true);
      expect(compileSafeRegex('😀*', 'exact', overLong)('😀'.repeat(REGEX_MAX_WIDE_INPUT / 2 + 1))).toBe(overLong);
      expect(compileSafeRegex('a*ꞵ', 'whole', overLong)(`A${wide}`)).toBe(overLong);
      expect(compileSafeRegex('a*@refs/heads/ꞵ', 'before-@', overLong)(`${'a'.repeat(REGEX_MAX_WIDE_INPUT)}@refs/heads/ꞵ`)).toBe(overLong);
      expect(compileSafeRegex('b@refs/heads/ꞵ', 'before-@', overLong)(`${'a'.repeat(REGEX_MAX_WIDE_INPUT)}@refs/heads/ꞵ`)).toBe(overLong);
      // Latin-1 is kept in one byte a character: read to the whole cap.
      expect(compileSafeRegex('é*', 'exact', overLong)('é'.repeat(REGEX_MAX_INPUT))).toBe(true);
      expect(compileSafeRegex('b', 'exact', overLong)('ÿ'.repeat(REGEX_MAX_INPUT))).toBe(false);
    }
    // The two unbounded repetitions the limit is measured on, on the longest wide value read and on one past it.
    const test = compileSafeRegex('x?x?x?.*.*', 'exact', false);
    const started = performance.now();
    expect(test(`${'ꞵ'.repeat(REGEX_MAX_WIDE_INPUT - 1)}\n`)).toBe(false);
    expect(test(`${'ꞵ'.repeat(REGEX_MAX_INPUT - 1)}\n`)).toBe(false);
    expect(performance.now() - started).toBeLessThan(100);
  });

  it("answers a deny line's overLong (true) for a value past the cap, an allow's (false), and the other under not", () => {
    const long = `refs/heads/feature/${'x'.repeat(REGEX_MAX_INPUT)}`;
    const feature = { regex: 'refs/heads/feature/.*' };
    for (const overLong of [false, true]) {
      expect(compileMatcher(feature, 'exact', overLong).test(long)).toBe(overLong);
      expect(compileMatcher([feature], 'exact', overLong).test([long])).toBe(overLong);
      // Under not, the inner regex answers the other way, so the line as a whole still answers overLong.
      expect(compileMatcher({ not: feature }, 'exact', overLong).test(long)).toBe(overLong);
      expect(compileMatcher({ not: { not: feature } }, 'exact', overLong).test(long)).toBe(overLong);
    }
  });
});

describe('claim paths', () => {
  const claims = {
    'oidc.circleci.com/org-id': 'org-1',
    'kubernetes.io': { namespace: 'prod', serviceaccount: { name: 'deployer' } },
    'a/b': { '~x': 1, '~1': 2 },
    list: ['first'],
    gone: null,
  };

  it('reads top-level names containing dots and slashes as plain names', () => {
    expect(claimReader('oidc.circleci.com/org-id')(claims)).toBe('org-1');
  });

  it('reads nested claims by JSON Pointer, with ~1 and ~0 escapes', () => {
    expect(claimReader('/kubernetes.io/namespace')(claims)).toBe('prod');
    expect(claimReader('/kubernetes.io/serviceaccount/name')(claims)).toBe('deployer');
    expect(claimReader('/a~1b/~0x')(claims)).toBe(1);
    expect(claimReader('/kubernetes.io/missing/deeper')(claims)).toBeUndefined();
    // ~01 is ~1 (RFC 6901 unescapes ~1 before ~0), never /.
    expect(claimReader('/a~1b/~01')(claims)).toBe(2);
  });

  it('reads no further into arrays or null', () => {
    expect(claimReader('/list/0')(claims)).toBeUndefined();
    expect(claimReader('/gone/deeper')(claims)).toBeUndefined();
  });

  it('does not read inherited properties', () => {
    expect(claimReader('constructor')(claims)).toBeUndefined();
    expect(claimReader('/kubernetes.io/toString')(claims)).toBeUndefined();
  });

  it('refuses malformed pointers', () => {
    expect(() => claimReader('/a~2b')).toThrow(/JSON Pointer/);
    expect(() => claimReader('/a~')).toThrow(/JSON Pointer/);
  });
});

describe('presence', () => {
  it.each<[Matcher, boolean]>([
    ['x', true],
    [{ glob: '*' }, true],
    [{ regex: 'a' }, true],
    [{ not: 'x' }, true],
    [{ exists: true }, true],
    [{ exists: false }, false],
    [['x', { exists: false }], false],
    [['x', { glob: 'y*' }], true],
    [{ not: { exists: false } }, true],
  ])('%j requires the claim to be present: %s', (matcher, expected) => {
    expect(compileMatcher(matcher, 'exact', false).requiresPresence).toBe(expected);
  });
});

describe('glob inclusion', () => {
  it.each([
    ['refs/tags/*', 'refs/tags/v*', true],
    ['refs/tags/v*', 'refs/tags/*', false],
    ['**', 'refs/heads/*', true],
    ['refs/**', 'refs/tags/v?', true],
    ['refs/*', 'refs/**', false],
    ['refs/*', 'refs/tags/v1', false],
    ['refs/?', 'refs/*', false],
    ['refs/*', 'refs/?', true],
    ['a*b', 'a*b', true],
    ['a*b*', 'a*', false],
    ['acme/*', 'acme/api', true],
  ])('%s includes %s: %s', (outer, inner, expected) => {
    expect(globIncludes(outer, inner, 'exact')).toBe(expected);
  });

  it('folds case for case-insensitive claims', () => {
    expect(globIncludes('ACME/*', 'acme/api*', 'whole')).toBe(true);
    expect(globIncludes('ACME/*', 'acme/api*', 'exact')).toBe(false);
  });
});

describe('matcher inclusion and widening', () => {
  it.each<[Matcher, Matcher, Widening]>([
    ['main', 'main', 'same'],
    ['main', ['main', 'dev'], 'wider'],
    [['main', 'dev'], 'main', 'narrower'],
    [['main', 'dev'], ['dev', 'main'], 'same'],
    ['main', 'dev', 'changed'],
    ['refs/heads/main', { glob: 'refs/heads/*' }, 'wider'],
    [{ glob: 'refs/heads/*' }, 'refs/heads/main', 'narrower'],
    [{ glob: 'refs/tags/v*' }, { glob: 'refs/tags/**' }, 'wider'],
    [{ regex: 'v\\d+' }, { regex: 'v\\d+' }, 'same'],
    [{ regex: 'v\\d+' }, { regex: 'v[0-9]+' }, 'changed'],
    [{ regex: 'v\\d+' }, { exists: true }, 'wider'],
    [{ not: ['a', 'b'] }, { not: 'a' }, 'wider'],
    [{ not: 'a' }, { not: ['a', 'b'] }, 'narrower'],
    [{ exists: false }, { exists: true }, 'changed'],
    [['push', { glob: 'release*' }], ['push', { glob: 'release*' }, 'schedule'], 'wider'],
  ])('%j → %j is %s', (before, after, expected) => {
    expect(compareMatchers(before, after, 'exact')).toBe(expected);
  });

  it('proves exact values by testing them', () => {
    expect(matcherIncludes({ not: 'pull_request_target' }, ['push', 'workflow_dispatch'], 'exact')).toBe(true);
    expect(matcherIncludes({ not: 'pull_request_target' }, ['push', 'pull_request_target'], 'exact')).toBe(false);
  });
});

describe('glob matching against a regular expression of the spec', () => {
  // compileGlob compares a pattern's literal head character by character and simulates the rest: over random patterns
  // (literals, wildcards, `@`, a letter in both cases, non-ASCII and astral characters) it must agree with the spec's own
  // regular expression (`*` = [^/]*, `**` = anything, `?` = one character but `/`), for exact and whole-value folds.
  const asciiLower = (text: string): string => text.replace(/[A-Z]/g, (letter) => letter.toLowerCase());
  const oracle = (pattern: string, value: string, fold: 'exact' | 'whole'): boolean => {
    const folded = (text: string): string => (fold === 'whole' ? asciiLower(text) : text);
    const source = Array.from(folded(pattern).replace(/\*\*+/g, '\u0000'))
      .map((char) => {
        if (char === '\u0000') return '[\\s\\S]*';
        if (char === '*') return '[^/]*';
        if (char === '?') return '[^/]';
        return char.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
      })
      .join('');
    return new RegExp(`^(?:${source})$`, 'u').test(folded(value));
  };

  it('folds only the value before its first @ wherever the literal head ends (before-@)', () => {
    expect(compileGlob('ab/*@r', 'before-@')('AB/c@r')).toBe(true);
    expect(compileGlob('ab/*@r', 'before-@')('ab/c@R')).toBe(false);
    expect(compileGlob('ab/c@r', 'before-@')('ab/c@R')).toBe(false);
    expect(compileGlob('a😀/*@r', 'before-@')('A😀/c@R')).toBe(false);
  });

  it('agrees on thousands of random patterns and values', () => {
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) >>> 0;
      return seed / 2 ** 32;
    };
    const pick = (items: readonly string[], most: number): string =>
      Array.from({ length: Math.floor(random() * most) }, () => items[Math.floor(random() * items.length)]).join('');
    let matched = 0;
    for (let round = 0; round < 20_000; round += 1) {
      const value = pick(['a', 'A', 'b', '/', '@', 'é', '😀', '.'], 7);
      const pattern =
        random() < 0.5
          ? value.slice(0, Math.floor(random() * (value.length + 1))) + pick(['*', '**', '?', 'a', 'A', '/', '😀'], 4)
          : pick(['a', 'A', '/', '@', '*', '**', '?', 'é', '😀'], 7);
      for (const fold of ['exact', 'whole'] as const) {
        const expected = oracle(pattern, value, fold);
        expect(compileGlob(pattern, fold)(value), `${fold} ${JSON.stringify(pattern)} ${JSON.stringify(value)}`).toBe(expected);
        if (expected) matched += 1;
      }
    }
    expect(matched).toBeGreaterThan(2000);
  });
});
