import readme from '../../README.md?raw';

const EXAMPLE = /```yaml\n# policies\/ci\/([a-z0-9-]+)\.yaml\n([\s\S]*?)```/g;

/** The example policies of the README's issuer catalog, by name: the yaml blocks that start `# policies/ci/<name>.yaml`. */
export const README_POLICIES: ReadonlyMap<string, string> = new Map([...readme.matchAll(EXAMPLE)].map((match) => [match[1] ?? '', match[2] ?? '']));

export function readmePolicy(name: string): string {
  const text = README_POLICIES.get(name);
  if (text === undefined) throw new Error(`the README has no example policy policies/ci/${name}.yaml`);
  return text;
}

/** The policy exactly as the README writes it, but for the issuer given (a stand-in for the real one). */
export function atIssuer(policy: string, issuer: string): string {
  const lines = policy.split('\n');
  const at = lines.findIndex((line) => line.startsWith('issuer:'));
  if (at === -1) throw new Error('the policy has no issuer line');
  lines[at] = `issuer: ${issuer}`;
  return lines.join('\n');
}
