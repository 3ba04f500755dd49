import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { readPolicyDirectory } from '../src/storage/read-policy-directory.ts';
import { loadPolicies, PolicyLoadError } from '../src/core/policy/load-policies.ts';

/**
 * Wrangler's build step: reads the policy directory (KEYWAY_POLICIES, default policies/),
 * refuses to build if it does not load, and writes it to build/policies.json for the Worker.
 */
const dir = resolve(process.env['KEYWAY_POLICIES'] || 'policies');
const files = readPolicyDirectory(dir);
try {
  // The Worker's own settings decide http loopback and the TTL cap at run time; this checks everything else.
  loadPolicies(files, { brokerIssuer: 'https://keyway.invalid', maxTtlSeconds: 24 * 3600, allowHttpLoopback: true });
} catch (error) {
  if (!(error instanceof PolicyLoadError)) throw error;
  console.error(`keyway: policies in ${dir} do not load:\n${error.message}`);
  process.exit(1);
}
mkdirSync('build', { recursive: true });
// Written whole and renamed into place: a build running beside another (npm test and npm run bench) never reads half a file.
writeFileSync(`build/policies.json.${process.pid}`, JSON.stringify(files));
renameSync(`build/policies.json.${process.pid}`, 'build/policies.json');
console.log(`keyway: bundled ${files.length} policy files from ${dir}`);
