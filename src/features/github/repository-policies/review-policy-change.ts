import type { AuditEvent } from '../../../core/audit/audit-event.ts';
import type { CheckRunAnnotation } from '../app/check-run.ts';
import { diffPolicies, type PolicyDiff } from '../../../core/policy/diff/diff-policies.ts';
import { grantUsage, windowText, type UsageEvidence } from '../../../core/policy/suggest-narrowing.ts';
import { accessHeadline, cell, codeCell, renderDiffMarkdown, summarizeFindings } from '../../../core/policy/diff/render-diff-markdown.ts';
import { checkPolicies, type LintFinding } from '../../../core/policy/lint/lint-policies.ts';
import { INVALID_POLICY } from '../../../core/policy/lint/lint-rules.ts';
import {
  compileParsedPolicyFiles,
  countWrittenRegexes,
  parsePolicyFiles,
  policySetOf,
  type ParsedPolicyFile,
  type PolicyCompilation,
  type PolicyFile,
  type PolicyLoadOptions,
  type PolicyProblem,
} from '../../../core/policy/load-policies.ts';
import type { PolicyReloadStatus } from '../../../core/policy/policy-reload-status.ts';
import type { PolicySet } from '../../../core/policy/policy-set.ts';
import { IMPACT_WINDOW_DAYS, replayImpact, type ImpactExample, type ReplayImpact } from './replay-impact.ts';

/** What the review publishes: a completed check run's conclusion and output. */
export interface PolicyReview {
  readonly conclusion: 'success' | 'failure';
  readonly output: {
    readonly title: string;
    readonly summary: string;
    readonly annotations: readonly CheckRunAnnotation[];
  };
  /** Undefined when the proposed set does not load (nothing to replay). */
  readonly impact?: ReplayImpact;
}

export interface PolicyReviewInput {
  /** The policy directory at the pull request's base and head. */
  readonly base: readonly PolicyFile[];
  readonly proposed: readonly PolicyFile[];
  /** Audited exchanges of the replay window; undefined for a repository's own policies, or when the replay is withheld. */
  readonly events: Iterable<AuditEvent> | undefined;
  /** Why the replay is withheld from this pull request (its author is not trusted with audit data), to say so in the summary. */
  readonly replayWithheld?: string;
  /** How the proposed set is replayed; default: every exchange the policies decided, re-decided by the proposed set alone (the central set). */
  readonly replayImpact?: (proposed: PolicySet, events: Iterable<AuditEvent>, brokerIssuer: string) => ReplayImpact;
  /** Problems beyond the loader's: what a repository's own policies may not grant. */
  readonly extraProblems?: (compilation: PolicyCompilation) => readonly PolicyProblem[];
  /** The broker's own load options: the review judges the files as the live switch would. */
  readonly loadOptions: PolicyLoadOptions;
  /** The policy directory in the repository, to put annotations on the right files. */
  readonly directory: string;
  /** The live set's last switch, when it failed: a broken push must not go unnoticed. */
  readonly lastSwitch?: PolicyReloadStatus;
  /** The audit log's usage of the last UNUSED_WINDOW_DAYS, given where the replay is (it reveals as much): unused access of the policies touched. */
  readonly usage?: Pick<UsageEvidence, 'since' | 'until' | 'rows'>;
  /** How the change is held to POLICY_REVIEW_LIMITS, when anyone able to open a pull request proposes it; unheld when undefined. */
  readonly limited?: ReviewBound;
}

/** How far back the review looks for unused access, as `keyway policy suggest` does by default. */
export const UNUSED_WINDOW_DAYS = 90;

/** GitHub takes at most 50 annotations per request and 65535 characters of summary. */
export const CHECK_RUN_LIMITS = { annotations: 50, summaryChars: 65_535 } as const;
export const CHECK_RUN_NAME = 'keyway policy review';

/**
 * The most a review of a repository's own policies, or of an organisation's guardrails, reads on either side of a change (the
 * base's directory and the proposed one): policy files, their characters, and the regexes they write and those regexes'
 * characters. Anyone able to open a pull request, from a fork too, has one reviewed at every push, on the thread that serves
 * /token: 500 files each within what an exchange loads alone took 11 s of it to compile and lint. Counted before any is
 * compiled (files from the listing, before any is fetched); a side past them is not reviewed. Real repositories hold a handful
 * of files of a few regexes each.
 */
export const POLICY_REVIEW_LIMITS = { files: 64, characters: 128 * 1024, regexes: 128, regexCharacters: 8192 } as const;

type ReviewLimit = keyof typeof POLICY_REVIEW_LIMITS;
type ReviewSize = { readonly [Key in ReviewLimit]?: number };

/**
 * How a review is held to POLICY_REVIEW_LIMITS: each side of the change within them, or (the central set, thousands of policies
 * the operator's own) the proposed side within the base's size and them more.
 */
export type ReviewBound = 'either side' | 'beyond the base';

const SIZE_NOUNS: Readonly<Record<ReviewLimit, string>> = {
  files: 'files',
  characters: 'characters',
  regexes: 'regexes',
  regexCharacters: 'characters of regexes',
};

const LIMITS = Object.keys(POLICY_REVIEW_LIMITS) as ReviewLimit[];
const limitsText = (size: ReviewSize): string => LIMITS.map((key) => `${size[key] ?? 0} ${SIZE_NOUNS[key]}`).join(', ');

/** One side of a change: its files, parsed once, when first counted or compiled. */
export interface ChangeSide {
  readonly files: readonly PolicyFile[];
  readonly parsed: () => readonly ParsedPolicyFile[];
}

function changeSide(files: readonly PolicyFile[]): ChangeSide {
  let parsed: readonly ParsedPolicyFile[] | undefined;
  return { files, parsed: () => (parsed ??= parsePolicyFiles(files)) };
}

/**
 * What one side of a change holds: regexes counted only when its files and characters are within `limits` (they are parsed to
 * count), all of them without.
 */
function sizeOf(side: number | ChangeSide, limits?: Readonly<Record<ReviewLimit, number>>): ReviewSize {
  if (typeof side === 'number') return { files: side };
  const size = { files: side.files.length, characters: side.files.reduce((sum, file) => sum + file.text.length, 0) };
  if (limits !== undefined && (size.files > limits.files || size.characters > limits.characters)) return size;
  const { regexes, characters } = countWrittenRegexes(side.parsed());
  return { ...size, regexes, regexCharacters: characters };
}

/**
 * The failed review of a change past POLICY_REVIEW_LIMITS as `bound` holds it (a number: the listing's count of files, before
 * any is fetched; or the files fetched), or undefined when it is not. Nothing of either side is compiled.
 */
export function pastReviewLimits(
  directory: string,
  sides: { readonly base: number | ChangeSide; readonly proposed: number | ChangeSide },
  bound: ReviewBound,
): PolicyReview | undefined {
  const base = bound === 'beyond the base' ? sizeOf(sides.base) : undefined;
  const limits =
    base === undefined
      ? POLICY_REVIEW_LIMITS
      : (Object.fromEntries(LIMITS.map((key) => [key, (base[key] ?? 0) + POLICY_REVIEW_LIMITS[key]])) as Readonly<Record<ReviewLimit, number>>);
  for (const side of base === undefined ? (['proposed', 'base'] as const) : (['proposed'] as const)) {
    const size = sizeOf(sides[side], limits);
    const past = LIMITS.filter((key) => (size[key] ?? 0) > limits[key]);
    if (past.length === 0) continue;
    const held = past.map((key) => `${size[key]} ${SIZE_NOUNS[key]}, at most ${limits[key]}`).join('; ');
    const whose = side === 'base' ? `the policies under ${directory} at the base of this change` : `the proposed policies under ${directory}`;
    const reviewed =
      base === undefined
        ? `It reviews at most ${limitsText(POLICY_REVIEW_LIMITS)} on either side of a change`
        : `It reviews a pull request from a fork only when its proposed policies hold at most ${limitsText(POLICY_REVIEW_LIMITS)} more than the base (${limitsText(base)})`;
    return {
      conclusion: 'failure',
      output: {
        title: `too large to review: ${side === 'base' ? 'the base holds' : 'the proposed policies hold'} ${held}`,
        summary:
          `**keyway does not review this change:** ${whose} hold ${held}. ` +
          `${reviewed}, counted before any policy is compiled, so that no pull request holds the broker long. ` +
          (base === undefined
            ? 'Keep fewer policy files, or write globs rather than regexes.'
            : 'Propose it in smaller parts, or from a branch of this repository (whose writers may change the base itself).'),
        annotations: [],
      },
    };
  }
  return undefined;
}

const LEVEL: Record<LintFinding['severity'], CheckRunAnnotation['annotation_level']> = { error: 'failure', warning: 'warning', notice: 'notice' };
const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

function annotationOf(finding: LintFinding, directory: string): CheckRunAnnotation {
  return {
    path: `${directory}/${finding.file}`,
    start_line: finding.line,
    end_line: finding.line,
    annotation_level: LEVEL[finding.severity],
    title: `keyway ${finding.rule}`,
    message: finding.message,
  };
}

function impactTable(heading: string, examples: readonly ImpactExample[], total: number): string[] {
  if (examples.length === 0) return [];
  const out = [
    '',
    `**${heading}** (${total === examples.length ? total : `first ${examples.length} of ${total}`}):`,
    '',
    '| audit event | time | subject | was | would be |',
    '|---|---|---|---|---|',
  ];
  for (const example of examples) {
    const now = example.policy === undefined ? example.now : `${example.now} by ${codeCell(example.policy)}`;
    out.push(`| \`${example.event_id}\` | ${example.time} | ${codeCell(example.subject ?? '')} | ${example.was} | ${now} |`);
  }
  return out;
}

/**
 * The unused-access findings (`keyway policy suggest`'s, pins aside) of the allow policies a change
 * touches and keeps, judged as proposed: what of each grant the log shows unused, or nothing.
 */
function unusedAccess(after: PolicyCompilation, diffs: readonly PolicyDiff[], usage: NonNullable<PolicyReviewInput['usage']>): string[] {
  const touched = new Set(diffs.filter((diff) => diff.status !== 'added' && diff.status !== 'removed').map((diff) => diff.id));
  const span = windowText(usage);
  const out: string[] = [];
  for (const entry of after.files) {
    const policy = entry.policy;
    if (!touched.has(entry.id) || policy === undefined || policy.effect !== 'allow' || policy.mode !== 'enforce' || policy.grant === undefined) continue;
    const { grants, findings } = grantUsage(policy, entry.file, usage.rows, span);
    const unused = findings.filter((finding) => finding.status !== 'used');
    out.push(
      unused.length === 0
        ? `| ${codeCell(policy.id)} | ${grants} | everything it grants was used |`
        : `| ${codeCell(policy.id)} | ${grants} | ${unused.map((finding) => `${finding.element === 'policy' ? 'the policy' : `${finding.element} ${codeCell(finding.value)}`}: ${cell(finding.evidence)}`).join('<br>')} |`,
    );
  }
  return out.length === 0
    ? []
    : [
        '',
        `**Unused access** of the policies this change touches, ${span} (\`keyway policy suggest\` proposes the narrowing):`,
        '',
        '| policy | grants | unused |',
        '|---|---|---|',
        ...out,
      ];
}

/** "would newly allow 2, newly deny 5". */
export function describeImpact(impact: ReplayImpact): string {
  return `would newly allow ${impact.newlyAllowed}, newly deny ${impact.newlyDenied}`;
}

/**
 * The review of a change to the policy directory, as a check run: the proposed set's problems
 * and lint findings as annotations on their lines, the access diff against the base, and the
 * impact replay of the audited exchanges of the last days. Fails when the proposed set would
 * not load (the live switch would refuse it), or when the change is past POLICY_REVIEW_LIMITS
 * as `limited` holds it (then nothing is compiled). Each file is parsed once, to count its
 * regexes and to compile it. Pure: the caller fetches files and events.
 */
export function reviewPolicyChange(input: PolicyReviewInput): PolicyReview {
  const sides = { base: changeSide(input.base), proposed: changeSide(input.proposed) };
  const tooLarge = input.limited === undefined ? undefined : pastReviewLimits(input.directory, sides, input.limited);
  if (tooLarge !== undefined) return tooLarge;
  const before = compileParsedPolicyFiles(sides.base.parsed(), input.loadOptions);
  const after = compileParsedPolicyFiles(sides.proposed.parsed(), input.loadOptions);
  const extra = (input.extraProblems?.(after) ?? []).map((problem): LintFinding => ({ ...problem, severity: 'error', rule: INVALID_POLICY }));
  const findings = [...checkPolicies(after), ...extra].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column);
  const errors = findings.filter((finding) => finding.severity === 'error').length;
  const diffs = diffPolicies(before, after);
  const replay = input.replayImpact ?? replayImpact;
  const impact = errors === 0 && input.events !== undefined ? replay(policySetOf(after), input.events, input.loadOptions.brokerIssuer) : undefined;

  const out: string[] = [];
  if (input.lastSwitch !== undefined && !input.lastSwitch.ok) {
    out.push(
      `> **The live policy set did not switch** at ${input.lastSwitch.at}${input.lastSwitch.source === undefined ? '' : ` (${input.lastSwitch.source})`}: the set that was pushed does not load, so the one before keeps serving.`,
      ...(input.lastSwitch.problems ?? []).map((problem) => `> - ${codeCell(problem)}`),
      '',
    );
  }
  if (errors === 0 && impact === undefined) {
    out.push(`**The proposed policies load.**${input.replayWithheld === undefined ? '' : ` No impact replay: ${input.replayWithheld}.`}`);
  } else if (impact === undefined) {
    out.push(
      `**The proposed policies do not load** (${summarizeFindings(findings)}): merged as they are, they would not replace the live set. No impact replay.`,
    );
  } else {
    out.push(
      `**Impact replay: ${describeImpact(impact)}** of ${plural(impact.replayed, 'exchange')} the policies decided in the last ${IMPACT_WINDOW_DAYS} days` +
        ` (${plural(impact.skipped, 'other')} refused before any policy, unchanged).`,
      ...impactTable('Newly allowed', impact.examples.allowed, impact.newlyAllowed),
      ...impactTable('Newly denied', impact.examples.denied, impact.newlyDenied),
    );
  }
  if (errors === 0 && input.usage !== undefined) out.push(...unusedAccess(after, diffs, input.usage));
  out.push('', renderDiffMarkdown(diffs, findings, input.directory));

  const annotations = findings.slice(0, CHECK_RUN_LIMITS.annotations).map((finding) => annotationOf(finding, input.directory));
  if (findings.length > annotations.length)
    out.push(`Annotations show the first ${annotations.length} of ${findings.length} findings; the table above lists them all.`);
  let summary = out.join('\n');
  if (summary.length > CHECK_RUN_LIMITS.summaryChars) summary = `${summary.slice(0, CHECK_RUN_LIMITS.summaryChars - 40)}\n\n… (summary cut at GitHub's limit)`;

  const widens = accessHeadline(diffs);
  const title =
    errors > 0
      ? `${plural(errors, 'error')}: the proposed policies do not load`
      : impact === undefined
        ? widens || 'the proposed policies load'
        : `${describeImpact(impact)}${widens === '' ? '' : `; ${widens}`}`;
  return { conclusion: errors > 0 ? 'failure' : 'success', output: { title, summary, annotations }, ...(impact === undefined ? {} : { impact }) };
}
