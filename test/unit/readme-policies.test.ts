import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import policySchema from '../../schema/policy.schema.json';
import policyTestSchema from '../../schema/policy-test.schema.json';
import { isPolicyTestFile, loadPolicies, type PolicyLoadOptions } from '../../src/core/policy/load-policies.ts';
import { runPolicyTests } from '../../src/core/policy/testing/run-policy-tests.ts';
import { codeBlocks, DOCS } from '../support/markdown-docs.ts';
import { README_POLICIES } from '../support/readme-policies.ts';

const PRODUCTION: PolicyLoadOptions = { brokerIssuer: 'https://keyway.example.com', maxTtlSeconds: 3600, allowHttpLoopback: false };

const EXAMPLES = Object.entries(import.meta.glob<string>('../../examples/policies/**/*.yaml', { query: '?raw', import: 'default', eager: true })).map(
  ([path, text]) => ({ path: path.replace('../../examples/policies/', ''), text }),
);

interface YamlBlock {
  readonly at: string;
  readonly text: string;
  readonly value: unknown;
  readonly errors: readonly string[];
}

const YAML_BLOCKS: readonly YamlBlock[] = [...DOCS].flatMap(([file, markdown]) =>
  codeBlocks(markdown)
    .filter((block) => block.lang === 'yaml' || block.lang === 'yml')
    .map((block) => {
      const document = parseDocument(block.text, { uniqueKeys: true });
      return { at: `${file}:${block.line}`, text: block.text, value: document.toJS(), errors: document.errors.map((error) => error.message) };
    }),
);

const keysOf = (value: unknown): string[] | undefined =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? Object.keys(value) : undefined;

/** A mapping made only of policy fields is a policy, and must be whole: a fragment could not be checked. */
const isPolicy = (block: YamlBlock): boolean => keysOf(block.value)?.every((key) => key in policySchema.properties) === true;
const isPolicyTest = (block: YamlBlock): boolean => {
  const keys = keysOf(block.value);
  return keys?.includes('cases') === true && keys.every((key) => key in policyTestSchema.properties);
};

describe('the example policies of the CI system pages', () => {
  it('cover every CI preset', () => {
    expect([...README_POLICIES.keys()].sort()).toEqual(
      [
        'azure-devops',
        'bitbucket',
        'buildkite',
        'circleci',
        'circleci-root',
        'forgejo',
        'github',
        'github-guardrail',
        'gitlab',
        'google',
        'kubernetes',
        'terraform-apply',
        'terraform-plan',
      ].sort(),
    );
  });

  it('load as written, with their real issuers, under production settings', () => {
    const set = loadPolicies(
      [...README_POLICIES].map(([name, text]) => ({ path: `ci/${name}.yaml`, text })),
      PRODUCTION,
    );
    expect(set.policies).toHaveLength(README_POLICIES.size);
    expect(Object.fromEntries(set.policies.map((policy) => [policy.id, policy.issuer.preset.name]))).toEqual({
      'ci/azure-devops': 'azure-devops',
      'ci/bitbucket': 'bitbucket',
      'ci/buildkite': 'buildkite',
      'ci/circleci': 'circleci',
      'ci/circleci-root': 'circleci',
      'ci/forgejo': 'forgejo',
      'ci/github': 'github',
      'ci/github-guardrail': 'github',
      'ci/gitlab': 'gitlab',
      'ci/google': 'google',
      'ci/kubernetes': 'kubernetes',
      'ci/terraform-apply': 'terraform',
      'ci/terraform-plan': 'terraform',
    });
  });
});

describe('every yaml block in README.md and docs/', () => {
  it('parses, without duplicate keys', () => {
    expect(YAML_BLOCKS.length).toBeGreaterThan(40);
    expect(YAML_BLOCKS.filter((block) => block.errors.length > 0).map((block) => `${block.at} ${block.errors.join('; ')}`)).toEqual([]);
  });

  it('that is a policy loads on its own under production settings, lint errors included', () => {
    const policies = YAML_BLOCKS.filter(isPolicy);
    expect(policies.length).toBeGreaterThan(README_POLICIES.size + 5);
    // A block whose first line names its path (`# policies/deploy/production.yaml`) is a policy of the set each other
    // block of its page is loaded with: a pin of another policy's id (client_id) names one the page shows.
    const named = (block: YamlBlock) => /^# policies\/(\S+)\.yaml\b/.exec(block.text)?.[1];
    const pageOf = (block: YamlBlock) => block.at.slice(0, block.at.lastIndexOf(':'));
    const problems = policies.flatMap((block) => {
      const siblings = policies
        .filter((other) => other !== block && pageOf(other) === pageOf(block) && named(other) !== undefined && named(other) !== named(block))
        .map((other) => ({ path: `${named(other)}.yaml`, text: other.text }));
      try {
        loadPolicies([{ path: `${named(block) ?? 'example'}.yaml`, text: block.text }, ...siblings], PRODUCTION);
        return [];
      } catch (error) {
        return [`${block.at} ${(error as Error).message}`];
      }
    });
    expect(problems).toEqual([]);
  });

  it('that is a policy test passes against examples/policies', () => {
    const tests = YAML_BLOCKS.filter(isPolicyTest);
    expect(tests.length).toBeGreaterThan(0);
    const examples = loadPolicies(
      EXAMPLES.filter((file) => !isPolicyTestFile(file.path)),
      PRODUCTION,
    );
    const run = runPolicyTests(
      examples,
      tests.map((block) => ({ path: `${block.at}.test.yaml`, text: block.text })),
      PRODUCTION,
    );
    expect(run.problems).toEqual([]);
    expect(run.results.length).toBeGreaterThanOrEqual(tests.length);
    const failed = run.results.filter((result) => result.failures.length > 0);
    expect(failed.map((result) => `${result.file} ${result.name}: ${result.failures.join('; ')}`)).toEqual([]);
  });
});
