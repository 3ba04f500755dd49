import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { readPolicyDirectory, readPolicyTestFiles } from '../../src/storage/read-policy-directory.ts';
import { JSON_SCHEMAS, jsonSchemaText } from '../../scripts/json-schemas.ts';

const ROOT = resolve(import.meta.dirname, '../..');
/** What a fresh deployment loads, and the examples beside it. */
const POLICY_DIRECTORIES = [join(ROOT, 'policies'), join(ROOT, 'examples/policies')];
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

function validator(file: string) {
  const ajv = new Ajv({ allErrors: true, strict: false });
  return ajv.compile(JSON.parse(read(file)) as object);
}

describe('the published JSON Schemas', () => {
  it.each(JSON_SCHEMAS.map((entry) => [entry.file, entry] as const))('%s is exactly what the valibot schema generates now (npm run schema)', (_file, entry) => {
    expect(read(entry.file)).toBe(jsonSchemaText(entry));
  });

  it('every shipped and example policy and test file names its schema for the YAML language server, and validates against it', () => {
    const cases = POLICY_DIRECTORIES.flatMap((dir) => [
      ...readPolicyDirectory(dir).map((file) => ({ ...file, dir, schema: 'schema/policy.schema.json' })),
      ...readPolicyTestFiles(dir).map((file) => ({ ...file, dir, schema: 'schema/policy-test.schema.json' })),
    ]);
    expect(cases.length).toBeGreaterThanOrEqual(18);
    const validators = new Map(JSON_SCHEMAS.map((entry) => [entry.file, validator(entry.file)]));
    for (const file of cases) {
      const directive = /^# yaml-language-server: \$schema=(\S+)$/m.exec(file.text);
      expect(directive, file.path).not.toBeNull();
      expect(resolve(file.dir, dirname(file.path), directive?.[1] ?? ''), file.path).toBe(join(ROOT, file.schema));
      const validate = validators.get(file.schema);
      expect(validate?.(parse(file.text)), `${file.path}: ${JSON.stringify(validate?.errors)}`).toBe(true);
    }
  });

  it('flags what the loader refuses: an unknown field, a bad matcher, an unknown lint rule, a reason left empty', () => {
    const validate = validator('schema/policy.schema.json');
    const policy = { version: 1, issuer: 'github', match: { repository_id: '1' }, grant: { audience: 'https://a.example' } };
    expect(validate(policy)).toBe(true);
    expect(validate({ ...policy, grant: { ...policy.grant, scope: ['x'] } })).toBe(false);
    expect(validate({ ...policy, match: { ref: { glob: 'x', regexp: 'y' } } })).toBe(false);
    expect(validate({ ...policy, match: {} })).toBe(false);
    expect(validate({ ...policy, match: { ref: { not: { exists: 'yes' } } } })).toBe(false);
    expect(validate({ ...policy, lint: { ignore: { 'long-ttl': 'a release takes an hour' } } })).toBe(true);
    expect(validate({ ...policy, lint: { ignore: { 'long-tll': 'typo' } } })).toBe(false);
    expect(validate({ ...policy, lint: { ignore: { 'long-ttl': '  ' } } })).toBe(false);
  });

  it('ships in the npm package', () => {
    const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' })) as [
      { files: { path: string }[] },
    ];
    const files = packed.files.map((file) => file.path);
    for (const entry of JSON_SCHEMAS) expect(files).toContain(entry.file);
  });
});
