import { execFileSync } from 'node:child_process';

/** The Worker imports build/policies.json, which wrangler's build step writes; tests bundle it the same way. */
export default function setup(): void {
  execFileSync(process.execPath, ['scripts/bundle-policies.ts'], { stdio: 'inherit' });
}
