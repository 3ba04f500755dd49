import { DOCS } from './markdown-docs.ts';

const EXAMPLE = /```yaml\n# policies\/ci\/([a-z0-9-]+)\.yaml\n([\s\S]*?)```/g;

/** The example policies of the CI system pages (docs/ci/), by name: the yaml blocks that start `# policies/ci/<name>.yaml`. */
export const README_POLICIES: ReadonlyMap<string, string> = new Map(
  [...DOCS]
    .filter(([path]) => path.startsWith('docs/ci/'))
    .flatMap(([, text]) => [...text.matchAll(EXAMPLE)].map((match) => [match[1] ?? '', match[2] ?? ''] as const)),
);

export function readmePolicy(name: string): string {
  const text = README_POLICIES.get(name);
  if (text === undefined) throw new Error(`the docs have no example policy policies/ci/${name}.yaml`);
  return text;
}

/** The policy exactly as the docs write it, but for the issuer given (a stand-in for the real one). */
export function atIssuer(policy: string, issuer: string): string {
  const lines = policy.split('\n');
  const at = lines.findIndex((line) => line.startsWith('issuer:'));
  if (at === -1) throw new Error('the policy has no issuer line');
  lines[at] = `issuer: ${issuer}`;
  return lines.join('\n');
}
