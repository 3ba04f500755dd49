import * as v from 'valibot';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Alias, type Document, type ErrorCode } from 'yaml';

export interface Position {
  readonly line: number;
  readonly column: number;
}

export type LocatedMessage = Position & { readonly message: string };

/** Finds the line and column of a path into the document: the node there, or the deepest part of it that exists. */
export type Locate = (path: readonly PropertyKey[]) => Position;

export interface YamlFileOptions {
  /**
   * Whether a problem names a key the text wrote that the schema refuses (default): a typo is found by its name. Off for
   * text that holds secrets, where a key may be a secret written where its value belongs (`{ kind: static, eyJ… }`): the
   * problem then gives the key's line and column and the path of the map it is in, and only the first problem is given.
   */
  readonly nameWrittenKeys?: boolean;
}

export type ParsedYamlFile<T> =
  | { readonly ok: true; readonly data: T; readonly locate: Locate }
  | { readonly ok: false; readonly problems: readonly LocatedMessage[] };

/**
 * What each YAML error says, in our words: the yaml package's own messages quote the source at times
 * (`Block scalar header includes extra characters: |…`), and a policy file can be a link to a file of
 * secrets. A new code in the yaml package fails the typecheck here.
 */
const YAML_ERRORS: Record<ErrorCode, string> = {
  ALIAS_PROPS: 'an alias cannot carry an anchor or a tag',
  BAD_ALIAS: 'an anchor or alias name is empty or ends in :',
  BAD_COLLECTION_TYPE: 'a tag names another kind of collection than the one written',
  BAD_DIRECTIVE: 'a % directive is malformed',
  BAD_DQ_ESCAPE: 'a double-quoted string holds an invalid escape sequence',
  BAD_INDENT: 'the indentation is wrong here, or a [ or { is not closed',
  BAD_PROP_ORDER: 'anchors and tags must come after the - or ? indicator',
  BAD_SCALAR_START: 'a plain value cannot start with this character: quote it',
  BLOCK_AS_IMPLICIT_KEY: 'a block collection cannot be a map key, nor nest in a compact map',
  BLOCK_IN_FLOW: 'a block collection cannot be inside [ ] or { }',
  DUPLICATE_KEY: 'map keys must be unique',
  IMPOSSIBLE: 'the YAML cannot be read here',
  KEY_OVER_1024_CHARS: 'a map key is longer than 1024 characters',
  MISSING_CHAR: 'a character is missing here: a closing quote or bracket, a comma, or a space after :',
  MULTILINE_IMPLICIT_KEY: 'a map key must be on one line',
  MULTIPLE_ANCHORS: 'a node can have at most one anchor',
  MULTIPLE_DOCS: 'a file holds one YAML document: no second ---',
  MULTIPLE_TAGS: 'a node can have at most one tag',
  NON_STRING_KEY: 'a map key must be plain text, not a list or a map',
  RESOURCE_EXHAUSTION: 'aliases expand to too many nodes',
  TAB_AS_INDENT: 'tabs are not allowed as indentation',
  TAG_RESOLVE_FAILED: 'a tag is unknown, or does not fit its value',
  UNEXPECTED_TOKEN: 'unexpected text here: check the indentation, brackets and quotes',
};

/**
 * One YAML document (unique keys, bounded aliases) validated against a schema; every problem
 * carries the line and column it points at. Policies, policy tests and proxy upstream declarations
 * are read this way. No problem quotes the text: each names the key path, what was expected and
 * what kind of value was found, because the file may be a link to a secret (the upstream
 * declarations hold secrets themselves) and the message may reach a log or a public check run.
 */
export function parseYamlFile<T>(text: string, schema: v.GenericSchema<unknown, T>, options: YamlFileOptions = {}): ParsedYamlFile<T> {
  const nameWrittenKeys = options.nameWrittenKeys ?? true;
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) {
    return {
      ok: false,
      problems: document.errors.map((error) => {
        // linePos is only filled in by prettyErrors, whose messages quote the source line.
        const { line, col } = lineCounter.linePos(error.pos[0]);
        return { line, column: col, message: `YAML: ${YAML_ERRORS[error.code]}` };
      }),
    };
  }
  const locate: Locate = (path) => position(document, lineCounter, path);
  let data: unknown;
  try {
    data = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    // toJS throws for an alias with no anchor before it and for aliases that expand too far, naming the alias.
    if (!(error instanceof ReferenceError)) throw error;
    return { ok: false, problems: [aliasProblem(document, lineCounter)] };
  }
  // Without names, only the first problem: past a key it refuses, valibot goes on to its value, whose path names the key.
  const result = v.safeParse(schema, data, { message: describeMismatch, abortEarly: !nameWrittenKeys });
  if (!result.success) {
    return {
      ok: false,
      problems: result.issues.map((issue) => ({
        ...locate((issue.path ?? []).map((item) => item.key as PropertyKey)),
        message: describeIssue(issue, nameWrittenKeys),
      })),
    };
  }
  return { ok: true, data: result.output, locate };
}

const MAX_ALIAS_COUNT = 50;

/**
 * Why the document's aliases do not resolve: at the first alias that names no anchor before it, or else (they expand
 * too far) at the first alias. One pass in document order, as the yaml package resolves them: asking it alias by alias
 * would walk the whole document for each.
 */
function aliasProblem(document: Document, lineCounter: LineCounter): LocatedMessage {
  const anchors = new Set<string>();
  let first: Alias | undefined;
  let dangling: Alias | undefined;
  visit(document, {
    Node: (_, node) => {
      if (!isAlias(node)) {
        if (node.anchor !== undefined) anchors.add(node.anchor);
        return undefined;
      }
      first ??= node;
      if (anchors.has(node.source)) return undefined;
      dangling = node;
      return visit.BREAK;
    },
  });
  const { line, col } = lineCounter.linePos((dangling ?? first)?.range?.[0] ?? 0);
  return {
    line,
    column: col,
    message:
      dangling === undefined
        ? `YAML: ${YAML_ERRORS.RESOURCE_EXHAUSTION} (at most ${MAX_ALIAS_COUNT})`
        : 'YAML: an alias (*name) names no anchor (&name) set before it',
  };
}

function describeIssue(issue: v.BaseIssue<unknown>, nameWrittenKeys: boolean): string {
  const path = issue.path ?? [];
  // A key the issue is about, as the text wrote it: one the schema does not take, or a record's key it refuses.
  if (!nameWrittenKeys && path.at(-1)?.origin === 'key' && issue.received !== 'undefined') {
    const parent =
      path.length > 1
        ? path
            .slice(0, -1)
            .map((item) => String(item.key))
            .join('.')
        : 'the top level';
    return issue.type === 'strict_object' && issue.expected === 'never' ? `unknown field in ${parent}` : `a key of ${parent}: ${issue.message}`;
  }
  const where = path.map((item) => String(item.key)).join('.');
  // A strict object's issue for a key it does not know expects never; one for a key it lacks received undefined.
  if (issue.type === 'strict_object' && issue.expected === 'never' && where !== '') return `unknown field ${where}`;
  if (issue.received === 'undefined' && where !== '') return `${where} is required`;
  return where === '' ? issue.message : `${where}: ${issue.message}`;
}

/**
 * The message of an issue the schema words no message for: valibot's own quotes the value received
 * in full (`Expected Object but received "SECRET_TOKEN=…"`); this says only what kind of value it is.
 */
function describeMismatch(issue: v.BaseIssue<unknown>): string {
  return `${issue.expected === null ? '' : `expected ${issue.expected}, `}got ${kindOf(issue.input)}`;
}

/** What a value is, and how big, never what it says. */
function kindOf(input: unknown): string {
  if (input === null || input === undefined) return 'nothing';
  if (Array.isArray(input)) return `a list of ${input.length} entr${input.length === 1 ? 'y' : 'ies'}`;
  if (typeof input === 'string') return `text of ${input.length} character${input.length === 1 ? '' : 's'}`;
  if (typeof input === 'object') return `a map of ${Object.keys(input).length} entr${Object.keys(input).length === 1 ? 'y' : 'ies'}`;
  return `a ${typeof input}`;
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
