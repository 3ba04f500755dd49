import * as v from 'valibot';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';

export interface Position {
  readonly line: number;
  readonly column: number;
}

export type LocatedMessage = Position & { readonly message: string };

/** Finds the line and column of a path into the document: the node there, or the deepest part of it that exists. */
export type Locate = (path: readonly PropertyKey[]) => Position;

export type ParsedYamlFile<T> =
  | { readonly ok: true; readonly data: T; readonly locate: Locate }
  | { readonly ok: false; readonly problems: readonly LocatedMessage[] };

/**
 * One YAML document (unique keys, bounded aliases) validated against a schema; every problem
 * carries the line and column it points at. Policies and policy tests are both read this way.
 */
export function parseYamlFile<T>(text: string, schema: v.GenericSchema<unknown, T>): ParsedYamlFile<T> {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) {
    return {
      ok: false,
      problems: document.errors.map((error) => {
        const start = error.linePos?.[0] ?? { line: 1, col: 1 };
        return { line: start.line, column: start.col, message: `YAML: ${error.message.split('\n')[0] ?? ''}` };
      }),
    };
  }
  const locate: Locate = (path) => position(document, lineCounter, path);
  const result = v.safeParse(schema, document.toJS({ maxAliasCount: 50 }));
  if (!result.success) {
    return {
      ok: false,
      problems: result.issues.map((issue) => ({
        ...locate((issue.path ?? []).map((item) => item.key as PropertyKey)),
        message: describeIssue(issue),
      })),
    };
  }
  return { ok: true, data: result.output, locate };
}

function describeIssue(issue: v.BaseIssue<unknown>): string {
  const where = issue.path?.map((item) => String(item.key)).join('.') ?? '';
  // A strict object's issue for a key it does not know expects never; one for a key it lacks received undefined.
  if (issue.type === 'strict_object' && issue.expected === 'never' && where !== '') return `unknown field ${where}`;
  if (issue.received === 'undefined' && where !== '') return `${where} is required`;
  return where === '' ? issue.message : `${where}: ${issue.message}`;
}

function position(document: Document, lineCounter: LineCounter, path: readonly PropertyKey[]): Position {
  let node: unknown = document.contents;
  let offset = (document.contents as { range?: [number] } | null)?.range?.[0] ?? 0;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(key));
      if (pair === undefined) break;
      offset = (pair.key as { range?: [number] }).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(key)] as { range?: [number] } | undefined;
      if (item === undefined) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  const { line, col } = lineCounter.linePos(offset);
  return { line: Math.max(line, 1), column: Math.max(col, 1) };
}
