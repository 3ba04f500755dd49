import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { JSON_SCHEMAS, jsonSchemaText } from './json-schemas.ts';

/** `npm run schema`: writes the policy JSON Schemas under schema/ from the valibot schemas. */
for (const entry of JSON_SCHEMAS) {
  mkdirSync(dirname(entry.file), { recursive: true });
  writeFileSync(entry.file, jsonSchemaText(entry));
  console.log(`keyway: wrote ${entry.file}`);
}
