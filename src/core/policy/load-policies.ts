import { inert } from '../inert-text.ts';
import {
  bareLookalikeProblem,
  DevIssuerDisabledError,
  IssuerReferenceError,
  MAX_TOKEN_AGE_SECONDS,
  resolveIssuer,
  type IssuerReference,
  type IssuerResolutionOptions,
  type TrustedIssuer,
} from '../verify/trusted-issuer.ts';
import { GITHUB_TOKEN_LIFETIME_SECONDS, ORGANIZATION_PERMISSIONS, REPOSITORY_PERMISSIONS } from './github-permissions.ts';
import { presetMaySend } from '../verify/issuer-preset.ts';
import { PRESETS } from '../verify/presets.ts';
import { asciiLowerCase, type CaseFold } from '../claims/case-fold.ts';
import { canonicalText, claimReader, ClaimPathError, plainSpellingOf, topLevelClaim } from '../claims/claim-value.ts';
import { compileMatcher } from './compile-matcher.ts';
import { lintPolicies, pinsTenant } from './lint/lint-policies.ts';
import { parseYamlFile, type Locate, type ParsedYamlFile } from './parse-yaml-file.ts';
import type { ClaimCondition, CloudGrant, GitHubGrant, Grant, Policy } from './policy.ts';
import { AWS_AUDIENCE, AZURE_AUDIENCE, CLOUD_MAX_TTL_SECONDS, cloudOfAudience, gcpAudience } from './cloud-profile.ts';
import { AWS_TAGS_CLAIM } from '../mint/mint-cloud-token.ts';
import { PolicySet, type InactivePolicy } from './policy-set.ts';
import { UnsafeRegexError } from './safe-regex.ts';
import { GITHUB_CHORES } from './proxy-chores.ts';
import { compileProxyRule, ProxyRuleError, type ProxyGrant, type ProxyRule } from './proxy-rule.ts';
import {
  PolicySchema,
  type CloudGrantDocument,
  type GitHubGrantDocument,
  type GrantDocument,
  type ProxyGrantDocument,
  type Matcher,
  type PolicyDocument,
} from './schema.ts';
import { compileTemplate, TemplateSyntaxError, type Template } from './template.ts';
import { KeywayError } from '../errors/keyway-error.ts';
import { sha256Hex } from '../mint/sha256-hex.ts';
import { boundText } from '../audit/bound-audit-event.ts';
import { pageSessionAudience } from '../mint/page-session-token.ts';

export interface PolicyFile {
  /** Path under the policy directory, with `/` separators: `deploy/prod.yaml`. */
  readonly path: string;
  readonly text: string;
}

export interface PolicyLoadOptions extends IssuerResolutionOptions {
  /** The broker's own issuer URL: the default `subject_audience`. */
  readonly brokerIssuer: string;
  /** No grant may ask for a longer token than this. */
  readonly maxTtlSeconds: number;
  /**
   * The audiences of the keyway JWTs the proxy hands its `keyway-jwt` upstreams (KEYWAY_PROXY_UPSTREAMS): each upstream
   * holds every token minted for it, so no policy may take the broker's own tokens for one of them as subject tokens.
   */
  readonly upstreamAudiences?: readonly string[];
  /** The central policy repository keyway's policy review protects (KEYWAY_GITHUB_POLICY_REPOSITORY and its id), when one is set. */
  readonly reviewedRepository?: ReviewedRepository;
  /**
   * The GitHub deployment the App mints on (`githubDeploymentOf` KEYWAY_GITHUB_API_URL): a GitHub grant that pins no
   * `owner_id` goes to a job of that deployment only. Undefined when not known: any GitHub Actions issuer's job.
   */
  readonly githubDeployment?: string | undefined;
  /**
   * The issuers an actor token is verified against beyond those the files name: for a repository's own policies and an
   * organisation's guardrails, the central set's. A `match_actor` line on one of them compares as its preset says.
   */
  readonly actorIssuers?: readonly TrustedIssuer[];
  /** How many regexes the files may write, counted before any is compiled: for a repository's own policies and an organisation's guardrails. */
  readonly regexBound?: RegexBound;
}

/**
 * The most regexes policy files may write, and their most characters together, in `match` and `match_actor` (`not` and lists
 * included). Compiling one estimates how it backtracks (compileSafeRegex), a few milliseconds for one of 512 characters, on the
 * thread that serves `/token` when the files are a repository's own; the bound is read from the files' text, so files past it
 * cost no estimate: none of the files it covers is compiled.
 */
export interface RegexBound {
  readonly regexes: number;
  readonly characters: number;
  /** Over each file alone (`file`: a repository's own policies, one loaded by an exchange), or over all the files together (`set`). */
  readonly over: 'file' | 'set';
  /** What a problem calls the regexes' files: `this policy`, `the organisation's guardrails`. */
  readonly whose: string;
}

/** A GitHub repository by owner, name and GitHub's numeric id (as the `repository_id` claim writes it). */
export interface ReviewedRepository {
  readonly owner: string;
  readonly name: string;
  readonly id: string;
}

export interface PolicyProblem {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

/** The policy set does not load. Every problem found is listed, with file, line and column. */
export class PolicyLoadError extends KeywayError {
  override readonly name = 'PolicyLoadError';
  readonly code = 'policy_load_failed';
  readonly problems: readonly PolicyProblem[];

  constructor(problems: readonly PolicyProblem[]) {
    // A line per problem, inert: a message quotes what the file's author wrote, whose line break would start a line of its
    // own where the message is printed (a CI log runs `::…::` lines as commands).
    super(problems.map((p) => inert(`${p.file}:${p.line}:${p.column} ${p.message}`)).join('\n'));
    this.problems = problems;
  }
}

export const DEFAULT_TTL_SECONDS = 5 * 60;
export const MAX_POLICY_FILE_BYTES = 256 * 1024;

/** Claims every issued token carries; a policy cannot set them. */
export const RESERVED_CLAIMS = new Set([
  'iss',
  'sub',
  'aud',
  'exp',
  'nbf',
  'iat',
  'jti',
  'client_id',
  'scope',
  'src_iss',
  'src_sub',
  // An /audit page session's (core/revocation/page-session.ts): a token a policy grants never passes as one.
  'src_jti',
  'src_kid',
  'cnf',
  'act',
  'may_act',
  AWS_TAGS_CLAIM,
  'auth_time',
  'acr',
  'amr',
]);

const POLICY_EXTENSION = /\.ya?ml$/;
const TEST_FILE = /\.test\.ya?ml$/;

export function isPolicyFile(path: string): boolean {
  return POLICY_EXTENSION.test(path) && !TEST_FILE.test(path);
}

export function isPolicyTestFile(path: string): boolean {
  return TEST_FILE.test(path);
}

/** A name that ends like a policy file in another case (`deny.YAML`): refused, since passing it over would drop a policy, a deny among them, unseen. */
export function isMiscasedPolicyFile(path: string): boolean {
  return /\.ya?ml$/i.test(path) && !POLICY_EXTENSION.test(path);
}

export function parseDuration(text: string): number {
  const unit = text.at(-1);
  const amount = Number(text.slice(0, -1));
  return amount * (unit === 'h' ? 3600 : unit === 'm' ? 60 : 1);
}

/** One policy file, parsed and validated, with its compiled policy when it compiled. */
export interface CompiledPolicyFile {
  /** Path under the policy directory. */
  readonly file: string;
  readonly id: string;
  readonly document: PolicyDocument;
  readonly locate: Locate;
  /** Absent when its issuer did not resolve or a line did not compile (see the problems). */
  readonly policy?: Policy;
  /** Why it takes no part in decisions (`disabled: true`, or its issuer is off), when it does not. */
  readonly inactive?: string;
}

export interface PolicyCompilation {
  readonly files: readonly CompiledPolicyFile[];
  /** Everything that keeps the set from loading, lint errors aside. */
  readonly problems: readonly PolicyProblem[];
  /** The broker's own issuer URL the set was compiled for: a policy naming it takes keyway's own tokens (at /proxy). */
  readonly brokerIssuer: string;
  /** The policy repository keyway's review protects, when the set was compiled for a broker that has one. */
  readonly reviewedRepository?: ReviewedRepository;
  /** The GitHub deployment the App mints on, when the set was compiled for a broker (or a policy command) that knows it. */
  readonly githubDeployment?: string;
  /** The audiences of the broker's keyway-jwt proxy upstreams, when the set was compiled for a broker (or a policy command) that knows them. */
  readonly upstreamAudiences?: readonly string[];
}

/**
 * Parses, validates and compiles every policy file, collecting every problem rather than
 * stopping at the first. `loadPolicies` and `keyway policy check` both start here.
 */
export function compilePolicyFiles(files: readonly PolicyFile[], options: PolicyLoadOptions): PolicyCompilation {
  return compileParsedPolicyFiles(parsePolicyFiles(files), options);
}

/** A policy file parsed and validated, or what kept it from parsing; positions point into the file. */
export interface ParsedPolicyFile {
  /** Path under the policy directory. */
  readonly path: string;
  readonly parsed: ParsedYamlFile<PolicyDocument>;
}

/** Each file parsed and validated (a file larger than MAX_POLICY_FILE_BYTES is not read), for what counts its regexes and what compiles it. */
export function parsePolicyFiles(files: readonly PolicyFile[]): ParsedPolicyFile[] {
  return files.map((file) => ({
    path: file.path,
    parsed:
      file.text.length > MAX_POLICY_FILE_BYTES
        ? { ok: false, problems: [{ line: 1, column: 1, message: `file is larger than ${MAX_POLICY_FILE_BYTES} bytes` }] }
        : parsePolicyFile(file.text),
  }));
}

/** compilePolicyFiles of files parsed already (parsePolicyFiles). */
export function compileParsedPolicyFiles(files: readonly ParsedPolicyFile[], options: PolicyLoadOptions): PolicyCompilation {
  const problems: PolicyProblem[] = [];
  /** Each file's entry, or what compiling its policy takes once every file's issuer is known. */
  const steps: (CompiledPolicyFile | PendingPolicy)[] = [];
  const seenIds = new Map<string, string>();
  /** The first policy to name each issuer URL: every later one must resolve it to the same rules. */
  const issuerRules = new Map<string, { readonly file: string; readonly rules: string; readonly issuer: TrustedIssuer }>();

  const sorted = [...files].sort((a, b) => a.path.localeCompare(b.path));
  for (const file of sorted) {
    const { parsed } = file;
    if (!parsed.ok) {
      problems.push(...parsed.problems.map((problem) => ({ file: file.path, ...problem })));
      continue;
    }
    const { data, locate } = parsed;
    const report = (message: string, path: readonly PropertyKey[] = []): void => {
      problems.push({ file: file.path, ...locate(path), message });
    };

    const id = data.id ?? file.path.replace(POLICY_EXTENSION, '');
    const clash = seenIds.get(id);
    if (clash !== undefined) report(`policy id ${id} is also used by ${clash}`, data.id === undefined ? [] : ['id']);
    seenIds.set(id, file.path);

    const entry = { file: file.path, id, document: data, locate, ...(data.disabled ? { inactive: 'disabled: true' } : {}) };
    const reference = issuerReference(data.issuer, report);
    if (reference === undefined) {
      steps.push(entry);
      continue;
    }
    let issuer: TrustedIssuer;
    try {
      issuer = resolveIssuer(reference, options);
    } catch (error) {
      if (error instanceof DevIssuerDisabledError) {
        steps.push({ ...entry, inactive: entry.inactive ?? error.message });
        continue;
      }
      if (error instanceof IssuerReferenceError) {
        report(error.message, ['issuer']);
        steps.push(entry);
        continue;
      }
      throw error;
    }
    const rules = describeRules(issuer);
    const earlier = issuerRules.get(issuer.url);
    if (earlier === undefined) issuerRules.set(issuer.url, { file: file.path, rules, issuer });
    else if (earlier.rules !== rules) {
      report(
        `issuer ${boundText(issuer.url)} is ${rules} here but ${earlier.rules} in ${earlier.file}; every policy naming one issuer must give it the same kind and overrides`,
        ['issuer'],
      );
      steps.push(entry);
      continue;
    }
    steps.push({ entry, data, issuer, report });
  }
  const uncompiled = options.regexBound === undefined ? new Set<CompiledPolicyFile>() : pastRegexBound(steps, options.regexBound, problems);
  // An actor token is verified against the issuers the set trusts, so its claims compare as their presets say.
  const trusted = new Map([
    ...[...issuerRules].map(([url, { issuer }]) => [url, issuer] as const),
    ...(options.actorIssuers ?? []).map((issuer) => [issuer.url, issuer] as const),
  ]);
  const compiled = steps.map((step): CompiledPolicyFile => {
    if (!('data' in step)) return step;
    if (uncompiled.has(step.entry)) return step.entry;
    const policy = compilePolicy(step.entry.id, step.entry.file, step.data, step.issuer, options, trusted, step.report);
    return policy === undefined ? step.entry : { ...step.entry, policy };
  });
  // File by file, as they were read: a file's compile problems come after its parse problems, before the next file's.
  const order = new Map(sorted.map((file, index) => [file.path, index]));
  problems.sort((a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0));
  return {
    files: compiled,
    problems,
    brokerIssuer: options.brokerIssuer,
    ...(options.reviewedRepository === undefined ? {} : { reviewedRepository: options.reviewedRepository }),
    ...(options.githubDeployment === undefined ? {} : { githubDeployment: options.githubDeployment }),
    ...(options.upstreamAudiences === undefined ? {} : { upstreamAudiences: options.upstreamAudiences }),
  };
}

/**
 * The files whose regexes pass `bound`, counted in file order from their text, each problem at the regex that first passes it
 * (into `problems`): under `set`, every file once one does.
 */
function pastRegexBound(steps: readonly (CompiledPolicyFile | PendingPolicy)[], bound: RegexBound, problems: PolicyProblem[]): Set<CompiledPolicyFile> {
  const entries = steps.map((step) => ('data' in step ? step.entry : step));
  const past = new Set<CompiledPolicyFile>();
  const scopes = bound.over === 'set' ? [entries] : entries.map((entry) => [entry]);
  for (const scope of scopes) {
    const { regexes, characters, first } = regexCount(scope, bound);
    if (first === undefined) continue;
    problems.push({
      file: first.file.file,
      ...first.file.locate(first.path),
      message: `the regexes of ${bound.whose} are ${regexes}, of ${characters} characters together: more than the ${bound.regexes} regexes or ${bound.characters} characters keyway estimates while an exchange waits for them to load (each estimate takes up to milliseconds of the thread that serves /token). Write fewer regexes, or globs`,
    });
    for (const entry of scope) past.add(entry);
  }
  return past;
}

/**
 * How many regexes the files write in `match` and `match_actor`, and their characters together, read from the documents of
 * those that parse: none is compiled, so none is estimated.
 */
export function countWrittenRegexes(files: readonly ParsedPolicyFile[]): { readonly regexes: number; readonly characters: number } {
  return regexCount(files.flatMap(({ parsed }) => (parsed.ok ? [{ document: parsed.data }] : [])));
}

/**
 * How many regexes the files' documents write (writtenRegexes), in file order, and their characters together; with `bound`,
 * also the first regex past it, where its count or characters so far first pass the bound's.
 */
function regexCount<File extends { readonly document: PolicyDocument }>(
  files: readonly File[],
  bound?: Pick<RegexBound, 'regexes' | 'characters'>,
): { readonly regexes: number; readonly characters: number; readonly first?: { readonly file: File; readonly path: readonly PropertyKey[] } } {
  let [regexes, characters] = [0, 0];
  let first: { readonly file: File; readonly path: readonly PropertyKey[] } | undefined;
  for (const file of files) {
    for (const { text, path } of writtenRegexes(file.document)) {
      regexes += 1;
      characters += text.length;
      if (first === undefined && bound !== undefined && (regexes > bound.regexes || characters > bound.characters)) first = { file, path };
    }
  }
  return { regexes, characters, ...(first === undefined ? {} : { first }) };
}

/** The regexes a policy writes in `match` and `match_actor`, `not` and lists included, each with its path in the document. */
function writtenRegexes(document: PolicyDocument): { readonly text: string; readonly path: readonly PropertyKey[] }[] {
  const found: { text: string; path: readonly PropertyKey[] }[] = [];
  const visit = (matcher: Matcher, path: readonly PropertyKey[]): void => {
    if (typeof matcher !== 'object') return;
    if (Array.isArray(matcher)) {
      for (const [i, entry] of (matcher as readonly Matcher[]).entries()) visit(entry, [...path, i]);
    } else if ('regex' in matcher) found.push({ text: matcher.regex, path: [...path, 'regex'] });
    else if ('not' in matcher) visit(matcher.not, [...path, 'not']);
  };
  for (const section of ['match', 'match_actor'] as const) {
    for (const [key, matcher] of Object.entries(document[section] ?? {})) visit(matcher, [section, key]);
  }
  return found;
}

/** The policy set a compilation describes: active policies in id order, the others listed as inactive. */
export function policySetOf(compilation: PolicyCompilation, version?: string): PolicySet {
  const active: Policy[] = [];
  const inactive: InactivePolicy[] = [];
  for (const entry of compilation.files) {
    if (entry.inactive !== undefined)
      inactive.push({ id: entry.id, file: entry.file, why: entry.inactive, ...(entry.policy === undefined ? {} : { policy: entry.policy }) });
    else if (entry.policy !== undefined) active.push(entry.policy);
  }
  return new PolicySet(
    active.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    inactive.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    version,
  );
}

/** The version of a policy set: `sha256:` and the hex SHA-256 of every file's path and text, in path order. Same files, same version. */
export function policySetVersion(files: readonly PolicyFile[]): string {
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).map((file) => [file.path, file.text]);
  return `sha256:${sha256Hex(JSON.stringify(sorted))}`;
}

/** How a problem says a claim compares. */
const FOLD_WORDS: Readonly<Record<CaseFold, string>> = {
  exact: 'exactly',
  whole: 'without case',
  'before-@': 'without case before its first @',
  'split-@': 'exactly',
};

/** One issuer URL however it is spelt: scheme and host in lower case, no default port, no trailing slash. */
function issuerSpelling(url: string): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const { protocol, host, pathname, search } = new URL(url);
  return `${protocol}//${host}${pathname.replace(/\/+$/, '')}${search}`;
}

/** A policy file whose issuer resolved, to compile once every file's issuer is known. */
interface PendingPolicy {
  readonly entry: CompiledPolicyFile;
  readonly data: PolicyDocument;
  readonly issuer: TrustedIssuer;
  readonly report: (message: string, path?: readonly PropertyKey[]) => void;
}

/** The policy's `issuer` as the resolver takes it, with `max_token_age` in seconds. */
function issuerReference(written: PolicyDocument['issuer'], report: (message: string, path?: readonly PropertyKey[]) => void): IssuerReference | undefined {
  if (typeof written === 'string') {
    const lookalike = bareLookalikeProblem(written);
    if (lookalike !== undefined) report(lookalike, ['issuer']);
    return lookalike === undefined ? written : undefined;
  }
  const maxTokenAgeSeconds = written.max_token_age === undefined ? undefined : parseDuration(written.max_token_age);
  if (maxTokenAgeSeconds !== undefined && maxTokenAgeSeconds > MAX_TOKEN_AGE_SECONDS) {
    report(`issuer.max_token_age ${written.max_token_age} is above ${MAX_TOKEN_AGE_SECONDS / 3600}h: a token that old is refused whatever the policy says`, [
      'issuer',
      'max_token_age',
    ]);
    return undefined;
  }
  return { kind: written.kind, url: written.url, maxTokenAgeSeconds, extraAlgorithms: written.extra_algorithms, diagnostics: written.diagnostics };
}

function describeRules(issuer: TrustedIssuer): string {
  return `${issuer.preset.name} (algorithms ${[...issuer.algorithms].sort().join(', ')}; max token age ${issuer.maxTokenAgeSeconds}s; diagnostics ${issuer.diagnostics})`;
}

/**
 * Parses, validates, compiles and lints a policy directory. All or nothing: any problem in any
 * file, or any error-severity lint finding not silenced with a reason, throws PolicyLoadError
 * listing every one, so a broken set never replaces a good one.
 */
export function loadPolicies(files: readonly PolicyFile[], options: PolicyLoadOptions): PolicySet {
  const compilation = compilePolicyFiles(files, options);
  const lintErrors = lintPolicies(compilation)
    .filter((finding) => finding.severity === 'error')
    .map((finding) => ({ file: finding.file, line: finding.line, column: finding.column, message: `${finding.message} (${finding.rule})` }));
  const problems = [...compilation.problems, ...lintErrors];
  if (problems.length > 0) throw new PolicyLoadError(problems);
  return policySetOf(compilation, policySetVersion(files));
}

/** A policy file, parsed and validated against the schema; positions point into the file. */
export function parsePolicyFile(text: string): ParsedYamlFile<PolicyDocument> {
  return parseYamlFile(text, PolicySchema);
}

/** The keys of a `sub` some issuer preset joins names to a git ref in (`job_workflow_ref:…@refs/heads/main`). */
const SUBJECT_REF_KEYS: readonly string[] = [...new Set([...PRESETS.values()].flatMap((preset) => preset.subjectRefKeys ?? []))];

/** The claims some issuer preset joins names to a git ref in (`before-@`: `job_workflow_ref`, `ci_config_ref_uri`, …). */
const REF_JOINING_CLAIMS: ReadonlySet<string> = new Set(
  [...PRESETS.values()].flatMap((preset) =>
    Object.entries(preset.caseFolds)
      .filter(([, fold]) => fold === 'before-@')
      .map(([claim]) => claim),
  ),
);

function compilePolicy(
  id: string,
  file: string,
  data: PolicyDocument,
  issuer: TrustedIssuer,
  options: PolicyLoadOptions,
  trusted: ReadonlyMap<string, TrustedIssuer>,
  report: (message: string, path?: readonly PropertyKey[]) => void,
): Policy | undefined {
  let ok = true;
  const fail = (message: string, path: readonly PropertyKey[]): void => {
    ok = false;
    report(message, path);
  };

  const preset = issuer.preset;
  const conditions: ClaimCondition[] = [];
  for (const [key, written] of Object.entries(data.match)) {
    const plain = plainSpellingOf(key);
    if (plain !== undefined) {
      // Folding and formats are the preset's by claim name: spelt as a pointer, a deny policy would compare byte for byte.
      fail(`match.${key}: write it as ${plain}: a JSON Pointer to a top-level claim skips ${preset.name}'s rules for it (case folding, formats)`, [
        'match',
        key,
      ]);
      continue;
    }
    const format = preset.claimFormats[key];
    const neverMatching = format === undefined ? undefined : pinnedValues(written).find((value) => !format.pattern.test(canonicalText(value) ?? ''));
    if (format !== undefined && neverMatching !== undefined) {
      fail(
        `match.${key}: ${JSON.stringify(typeof neverMatching === 'string' ? boundText(neverMatching) : neverMatching)} can never match: ${preset.name} always sends ${key} as ${format.description}`,
        ['match', key],
      );
    }
    try {
      const fold = preset.caseFolds[key] ?? 'exact';
      const refKeys = key === 'sub' ? preset.subjectRefKeys : undefined;
      conditions.push({ key, written, read: claimReader(key), matcher: compileMatcher(written, fold, data.effect === 'deny', refKeys), fold });
    } catch (error) {
      if (!(error instanceof ClaimPathError || error instanceof UnsafeRegexError)) throw error;
      fail(error.message, ['match', key]);
    }
  }

  // The actor's issuer is named exactly: another trusted issuer (a GitHub Enterprise Server, a self-managed GitLab) can sign
  // the same sub. Its claims compare as the presets of the issuers `iss` names that the set trusts say, as `match` compares
  // them, or a deny on acme/Orchestrator would not hold acme/orchestrator; where they would say it differently, the policy
  // does not load. A claim no preset folds compares exactly; one some preset joins names to a git ref in still splits at its
  // first `@` (`split-@`), and a `sub` at the `@` of such a claim's field.
  const actorConditions: ClaimCondition[] | undefined = data.match_actor === undefined ? undefined : [];
  const actorIssuer = data.match_actor?.['iss'];
  const actorIssuerUrls = typeof actorIssuer === 'string' ? [actorIssuer] : Array.isArray(actorIssuer) ? actorIssuer : [];
  const actorIssuers = actorIssuerUrls.flatMap((url) => {
    const named = typeof url === 'string' ? trusted.get(url) : undefined;
    return named === undefined ? [] : [named];
  });
  // `iss` compares byte for byte: a trusted issuer spelt another way (a trailing slash) would match no actor token, and a deny hold none.
  for (const url of actorIssuerUrls) {
    const spelling = typeof url === 'string' && !trusted.has(url) ? issuerSpelling(url) : undefined;
    const meant = spelling === undefined ? undefined : [...trusted.keys()].find((known) => issuerSpelling(known) === spelling);
    if (meant !== undefined) {
      fail(`match_actor.iss: ${boundText(String(url))} is not how its issuer's tokens name it: they say ${meant}, and iss compares exactly`, [
        'match_actor',
        'iss',
      ]);
    }
  }
  if (
    data.match_actor !== undefined &&
    !(typeof actorIssuer === 'string' || (Array.isArray(actorIssuer) && actorIssuer.every((one) => typeof one === 'string')))
  ) {
    fail(
      "match_actor needs iss, the actor token's issuer written exactly (a URL or a list of them): the actor may come from any issuer a policy trusts, and another's tokens can carry the same claims",
      ['match_actor'],
    );
  }
  for (const [key, written] of Object.entries(data.match_actor ?? {})) {
    try {
      const plainKey = plainSpellingOf(key) ?? key;
      const foldOf = (named: TrustedIssuer): CaseFold => named.preset.caseFolds[plainKey] ?? 'exact';
      // An issuer whose tokens never carry the claim never meets the line, whatever it would fold.
      const sending = actorIssuers.filter((named) => presetMaySend(named.preset, topLevelClaim(key)));
      const folds = new Set(sending.map(foldOf));
      if (folds.size > 1) {
        const how = sending.map((named) => `${boundText(named.url)} ${FOLD_WORDS[foldOf(named)]}`).join(', ');
        fail(`match_actor.${key}: the issuers iss names compare it differently (${how}): write a policy for each`, ['match_actor', key]);
        continue;
      }
      const preset = [...folds][0] ?? 'exact';
      const fold: CaseFold = preset === 'exact' && REF_JOINING_CLAIMS.has(plainKey) ? 'split-@' : preset;
      const refKeys = plainKey === 'sub' ? SUBJECT_REF_KEYS : undefined;
      actorConditions?.push({ key, written, read: claimReader(key), matcher: compileMatcher(written, fold, data.effect === 'deny', refKeys), fold });
    } catch (error) {
      if (!(error instanceof ClaimPathError || error instanceof UnsafeRegexError)) throw error;
      fail(error.message, ['match_actor', key]);
    }
  }

  if (preset.fixedAudience !== undefined && data.subject_audience !== undefined && data.subject_audience !== preset.fixedAudience) {
    fail(`subject_audience: ${preset.name} tokens always carry aud ${preset.fixedAudience}, which the job cannot change`, ['subject_audience']);
  }
  if (issuer.url === options.brokerIssuer && data.subject_audience !== undefined && cloudOfAudience(data.subject_audience) !== undefined) {
    fail(
      `subject_audience ${data.subject_audience} is a cloud STS audience: the broker's own tokens for it are the cloud tokens grant.cloud mints, credentials for the cloud, never identities to exchange`,
      ['subject_audience'],
    );
  }
  if (issuer.url === options.brokerIssuer && data.subject_audience !== undefined && options.upstreamAudiences?.includes(data.subject_audience)) {
    fail(
      `subject_audience ${data.subject_audience} is the audience of a keyway-jwt proxy upstream (KEYWAY_PROXY_UPSTREAMS): that upstream holds every keyway token for it, and could exchange one here as its caller`,
      ['subject_audience'],
    );
  }
  if (issuer.url === options.brokerIssuer && data.subject_audience === pageSessionAudience(options.brokerIssuer)) {
    fail(
      `subject_audience ${data.subject_audience} is the /audit page's: the broker's own tokens for it are the page's sessions, kept in a browser's cookie for the page alone, never identities to exchange`,
      ['subject_audience'],
    );
  }
  if (preset.singleUse && data.single_use === false) {
    fail(`single_use: ${preset.name} tokens are also accepted elsewhere, so each is good for one exchange; single_use cannot be false`, ['single_use']);
  }
  if (data.grant?.proxy !== undefined && (preset.singleUse || data.single_use === true)) {
    // /proxy uses the subject token up on no call: the forwarder sends one token with many.
    fail(
      `grant.proxy cannot be single use: /proxy takes the subject token with every request, so a token good for one exchange would be good for any number of calls${preset.singleUse ? ` (${preset.name} tokens are always single use)` : ''}`,
      data.single_use === true ? ['single_use'] : ['grant', 'proxy'],
    );
  }

  const grant = data.grant === undefined ? undefined : compileGrant(data.grant, issuer, options, fail);
  const diagnostics = data.diagnostics ?? issuer.diagnostics;
  if (data.effect === 'deny' && data.diagnostics !== undefined) {
    fail("diagnostics belongs on allow policies: a refusal names the deny guardrails that fired when its closest allow policy's diagnostics allow it", [
      'diagnostics',
    ]);
  }
  if (data.effect === 'allow' && diagnostics === 'claim-names' && issuer.shared && !pinsTenant(preset, conditions)) {
    fail(
      `diagnostics: claim-names on ${issuer.url}, which ${issuer.sharedBecause}, needs a tenant pin (one of ${preset.tenantClaims.join(', ')}): otherwise strangers learn this policy's claim names`,
      data.diagnostics === undefined ? ['issuer', 'diagnostics'] : ['diagnostics'],
    );
  }
  if (!ok) return undefined;
  return {
    id,
    file,
    description: data.description,
    effect: data.effect,
    mode: data.mode,
    issuer,
    subjectAudience: data.subject_audience ?? preset.fixedAudience ?? options.brokerIssuer,
    everyAudience: data.effect === 'deny' && data.subject_audience === undefined,
    singleUse: preset.singleUse || data.single_use === true,
    conditions,
    actorConditions,
    grant,
    diagnostics,
  };
}

/** The plain values a `match` line pins: a scalar, or the scalars of a list. */
function pinnedValues(matcher: Matcher): readonly (string | number | boolean)[] {
  if (typeof matcher !== 'object') return [matcher];
  return Array.isArray(matcher) ? matcher.flatMap((entry: Matcher) => pinnedValues(entry)) : [];
}

function compileGrant(
  grant: GrantDocument,
  issuer: TrustedIssuer,
  options: PolicyLoadOptions,
  fail: (message: string, path: readonly PropertyKey[]) => void,
): Grant | undefined {
  const ttlSeconds = grant.ttl === undefined ? DEFAULT_TTL_SECONDS : parseDuration(grant.ttl);
  if (ttlSeconds > options.maxTtlSeconds) fail(`grant.ttl ${grant.ttl} is above the broker's cap of ${options.maxTtlSeconds}s`, ['grant', 'ttl']);

  const template = (source: string, path: readonly PropertyKey[]): Template | undefined => {
    let compiled: Template;
    try {
      compiled = compileTemplate(source);
    } catch (error) {
      if (!(error instanceof TemplateSyntaxError || error instanceof ClaimPathError)) throw error;
      fail(error.message, path);
      return undefined;
    }
    const where = path.join('.');
    for (const key of compiled.claims) {
      const problem = templateClaimProblem(key, issuer);
      if (problem !== undefined) fail(`${where} reads {${key}}, ${problem}`, path);
    }
    return compiled;
  };
  const subject = grant.subject === undefined ? undefined : template(grant.subject, ['grant', 'subject']);
  const claims = new Map<string, Template>();
  for (const [name, source] of Object.entries(grant.claims ?? {})) {
    if (RESERVED_CLAIMS.has(name)) {
      fail(`grant.claims cannot set ${name}: keyway sets it`, ['grant', 'claims', name]);
      continue;
    }
    const compiled = template(source, ['grant', 'claims', name]);
    if (compiled !== undefined) claims.set(name, compiled);
  }
  const audiences = grant.audience === undefined ? [] : typeof grant.audience === 'string' ? [grant.audience] : [...new Set(grant.audience)];
  for (const audience of audiences) {
    const cloud = cloudOfAudience(audience);
    if (cloud !== undefined) {
      fail(`grant.audience ${audience} is ${cloud}'s STS audience: a keyway access token for it would pass as a cloud token; write grant.cloud`, [
        'grant',
        'audience',
      ]);
    }
  }
  const github = grant.github === undefined ? undefined : compileGitHubGrant(grant.github, fail);
  if (github !== undefined && ttlSeconds > GITHUB_TOKEN_LIFETIME_SECONDS) {
    fail(`grant.ttl ${grant.ttl} is longer than GitHub installation tokens live (1h)`, ['grant', 'ttl']);
  }
  const cloud = grant.cloud === undefined ? undefined : compileCloudGrant(grant.cloud, template, fail);
  if (cloud !== undefined && ttlSeconds > CLOUD_MAX_TTL_SECONDS) {
    fail(`grant.ttl ${grant.ttl} is longer than a cloud token needs to reach the cloud's STS (at most 1h)`, ['grant', 'ttl']);
  }
  const proxy = grant.proxy === undefined ? undefined : compileProxyGrant(grant.proxy, issuer.preset.caseFolds, template, fail);
  return {
    audiences,
    github,
    ...(cloud === undefined ? {} : { cloud }),
    ...(proxy === undefined ? {} : { proxy }),
    scopes: [...new Set(grant.scopes ?? [])],
    ttlSeconds,
    subject,
    claims,
    requireDpop: grant.require_dpop === true,
  };
}

/**
 * `grant.proxy`: each allow entry (a chore is its requests) compiled into a rule, its claims folded as the issuer's preset
 * folds them in `match`; a path whose templates read unknown claims fails as templates do.
 */
function compileProxyGrant(
  proxy: ProxyGrantDocument,
  caseFolds: Readonly<Record<string, CaseFold>>,
  template: (source: string, path: readonly PropertyKey[]) => Template | undefined,
  fail: (message: string, path: readonly PropertyKey[]) => void,
): ProxyGrant {
  const rules: ProxyRule[] = [];
  for (const [index, entry] of proxy.allow.entries()) {
    const where = ['grant', 'proxy', 'allow', index];
    const requests =
      'chore' in entry
        ? GITHUB_CHORES[entry.chore].requests.map((request) => ({
            ...request,
            permissions: GITHUB_CHORES[entry.chore].permissions,
            written: `chore ${entry.chore}`,
          }))
        : [{ method: entry.method, path: entry.path, permissions: entry.permissions ?? {}, written: `${entry.method} ${entry.path}`, ownerId: entry.owner_id }];
    for (const request of requests) {
      // The claims each placeholder reads are checked as any template's are (known to the issuer, not a secret).
      for (const part of request.path.split('/').filter((segment) => segment.includes('{'))) template(part, [...where, 'path']);
      try {
        rules.push(
          compileProxyRule(request.method, request.path, request.permissions, request.written, caseFolds, 'ownerId' in request ? request.ownerId : undefined),
        );
      } catch (error) {
        if (!(error instanceof ProxyRuleError || error instanceof TemplateSyntaxError || error instanceof ClaimPathError)) throw error;
        fail(`grant.proxy.allow: ${error.message}`, [...where, 'path']);
      }
    }
  }
  return { upstream: proxy.upstream, rules };
}

/** `grant.cloud`: the cloud's audience, the identities the caller may name, AWS session tags compiled and held to AWS's rules. */
function compileCloudGrant(
  grant: CloudGrantDocument,
  template: (source: string, path: readonly PropertyKey[]) => Template | undefined,
  fail: (message: string, path: readonly PropertyKey[]) => void,
): CloudGrant {
  switch (grant.provider) {
    case 'aws': {
      const sessionTags = new Map<string, Template>();
      const seen = new Map<string, string>();
      for (const [key, source] of Object.entries(grant.session_tags ?? {})) {
        // AWS treats tag keys without case: Project and project would be one tag.
        const twin = seen.get(key.toLowerCase());
        if (twin !== undefined) fail(`grant.cloud.session_tags has ${twin} and ${key}, which AWS takes for one key`, ['grant', 'cloud', 'session_tags', key]);
        seen.set(key.toLowerCase(), key);
        const compiled = template(source, ['grant', 'cloud', 'session_tags', key]);
        if (compiled !== undefined) sessionTags.set(key, compiled);
      }
      for (const [i, key] of (grant.transitive_tag_keys ?? []).entries()) {
        if (!sessionTags.has(key))
          fail(`grant.cloud.transitive_tag_keys names ${key}, which is not a session tag`, ['grant', 'cloud', 'transitive_tag_keys', i]);
      }
      return {
        provider: 'aws',
        audience: AWS_AUDIENCE,
        identities: [...new Set(grant.roles)],
        sessionTags,
        transitiveTagKeys: [...new Set(grant.transitive_tag_keys ?? [])],
        home: undefined,
      };
    }
    case 'gcp':
      return {
        provider: 'gcp',
        audience: gcpAudience(grant.workload_identity_provider),
        identities: [...new Set(grant.service_accounts ?? [])],
        sessionTags: new Map(),
        transitiveTagKeys: [],
        home: grant.workload_identity_provider,
      };
    case 'azure':
      return {
        provider: 'azure',
        audience: AZURE_AUDIENCE,
        identities: [...new Set(grant.client_ids.map((id) => id.toLowerCase()))],
        sessionTags: new Map(),
        transitiveTagKeys: [],
        home: grant.tenant_id.toLowerCase(),
      };
  }
}

/** `grant.github`: every repository under one owner, each named once. */
function compileGitHubGrant(grant: GitHubGrantDocument, fail: (message: string, path: readonly PropertyKey[]) => void): GitHubGrant | undefined {
  const owners = new Set<string>();
  if (grant.owner !== undefined) owners.add(asciiLowerCase(grant.owner));
  const repositories: string[] = [];
  for (const [i, written] of grant.repositories.entries()) {
    const slash = written.indexOf('/');
    if (slash >= 0) owners.add(asciiLowerCase(written.slice(0, slash)));
    const name = written.slice(slash + 1);
    if (repositories.some((seen) => asciiLowerCase(seen) === asciiLowerCase(name)))
      fail(`grant.github.repositories names ${name} twice`, ['grant', 'github', 'repositories', i]);
    repositories.push(name);
  }
  if (owners.size === 0) {
    fail('grant.github needs an owner: set owner, or write repositories as owner/name', ['grant', 'github']);
    return undefined;
  }
  if (owners.size > 1) {
    fail(`grant.github.repositories must all belong to one owner (an installation token is for one account), not ${[...owners].join(', ')}`, [
      'grant',
      'github',
      'repositories',
    ]);
    return undefined;
  }
  for (const [name, level] of Object.entries(grant.permissions)) {
    if (!REPOSITORY_PERMISSIONS[name]!.includes(level))
      fail(`grant.github.permissions.${name} can be ${REPOSITORY_PERMISSIONS[name]!.join(' or ')}, not ${level}`, ['grant', 'github', 'permissions', name]);
  }
  const organizationPermissions = grant.organization_permissions ?? {};
  for (const [name, level] of Object.entries(organizationPermissions)) {
    if (!ORGANIZATION_PERMISSIONS[name]!.includes(level)) {
      fail(`grant.github.organization_permissions.${name} can be ${ORGANIZATION_PERMISSIONS[name]!.join(' or ')}, not ${level}`, [
        'grant',
        'github',
        'organization_permissions',
        name,
      ]);
    }
  }
  if (Object.keys(organizationPermissions).length > 0 && (grant.owner === undefined || grant.owner_id === undefined)) {
    fail('grant.github.organization_permissions needs the organization named (owner) and pinned by its numeric id (owner_id): a login can be renamed', [
      'grant',
      'github',
      'organization_permissions',
    ]);
  }
  const owner = grant.owner ?? grant.repositories.find((written) => written.includes('/'))!.split('/')[0]!;
  return { owner, repositories, permissions: grant.permissions, ownerId: grant.owner_id, organizationPermissions };
}

/**
 * The template rule, at load time: a claim the issuer never sends (by its preset's documented
 * claim list) is a typo, and a claim that is always a list or an object never renders as one
 * value. Both are errors here rather than silent denials at run time. Any other claim the
 * token may lack is checked when it arrives: that policy then does not grant.
 */
function templateClaimProblem(key: string, issuer: TrustedIssuer): string | undefined {
  const claim = topLevelClaim(key);
  const preset = issuer.preset;
  if (!presetMaySend(preset, claim)) return `a claim ${preset.name} tokens never carry (a typo?)`;
  // Types are keyed like match keys: a name, or a JSON Pointer for nested claims (Kubernetes).
  const type = preset.claimTypes[key];
  if (type === 'string[]' || type === 'array' || type === 'object') return `which ${preset.name} sends as a list or object, never one value`;
  return undefined;
}
