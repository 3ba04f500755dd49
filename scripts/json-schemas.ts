import { toJsonSchema } from '@valibot/to-json-schema';
import type * as v from 'valibot';
import { MatcherSchema, PolicySchema } from '../src/core/policy/schema.ts';
import { PolicyTestFileSchema } from '../src/core/policy/testing/policy-test-schema.ts';

/**
 * The JSON Schemas editors use for policy files and policy test files, generated from the
 * valibot schemas the loader validates with: one source of truth. The committed files under
 * schema/ must equal what this produces (a test checks it); `npm run schema` rewrites them.
 * What JSON Schema cannot say (an allow policy needs a grant, a deny policy has none; a test
 * case needs a fixture or claims) is checked by the loader alone.
 */
export const JSON_SCHEMAS: readonly {
  readonly file: string;
  readonly source: string;
  readonly schema: v.GenericSchema;
  /** Recursive parts, written once under $defs. */
  readonly definitions?: Record<string, v.GenericSchema>;
}[] = [
  { file: 'schema/policy.schema.json', source: 'src/core/policy/schema.ts', schema: PolicySchema, definitions: { Matcher: MatcherSchema } },
  { file: 'schema/policy-test.schema.json', source: 'src/core/policy/testing/policy-test-schema.ts', schema: PolicyTestFileSchema },
];

export function jsonSchemaText(entry: (typeof JSON_SCHEMAS)[number]): string {
  const generated = toJsonSchema(entry.schema, { errorMode: 'ignore', ...(entry.definitions === undefined ? {} : { definitions: entry.definitions }) });
  const { $schema, ...rest } = generated;
  return `${JSON.stringify({ $schema, $comment: `Generated from ${entry.source} by npm run schema. Do not edit.`, ...rest }, null, 2)}\n`;
}
