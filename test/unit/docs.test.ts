import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import canonicalize from 'canonicalize';
import { describe, expect, it } from 'vitest';
import { anchors, codeBlocks, DOCS, inlineCode, links } from '../support/markdown-docs.ts';
import ownSource from './docs.test.ts?raw';

/** Files outside the Markdown that the docs may link to, by path from the repository root. */
const LINKABLE = new Set(
  Object.keys(import.meta.glob(['../../{examples,policies,schema,templates,action,bench,scripts,bin}/**', '!**/node_modules/**'])).map((path) =>
    path.replace(/^\.\.\/\.\.\//, ''),
  ),
);

/** Every test source, by path from the repository root: what the docs cite as proof (a glob leaves out its own file). */
const TEST_SOURCES: ReadonlyMap<string, string> = new Map([
  ...Object.entries(import.meta.glob<string>('/test/**/*.ts', { query: '?raw', import: 'default', eager: true })).map(
    ([path, text]) => [path.slice(1), text] as const,
  ),
  ['test/unit/docs.test.ts', ownSource] as const,
]);

function resolve(from: string, target: string): string {
  const parts = from.split('/').slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '..') parts.pop();
    else if (part !== '.' && part !== '') parts.push(part);
  }
  return parts.join('/');
}

const exists = (path: string): boolean => DOCS.has(path) || LINKABLE.has(path) || [...DOCS.keys(), ...LINKABLE].some((file) => file.startsWith(`${path}/`));

/** The titles of a test file's `describe` and `it` blocks, as written. */
function titles(source: string): string[] {
  const calls = source.matchAll(/\b(?:describe|it|test)(?:\.each\([^)]*\))?\(\s*(['"`])((?:\\.|(?!\1)[^\\])*)\1/g);
  return [...calls].map((match) => (match[2] ?? '').replace(/\\(.)/g, '$1'));
}

/** A title quoted with `…` where words were left out: the parts appear in order, anchored where no `…` stands. */
function quotes(title: string, quoted: string): boolean {
  const parts = quoted.split('…').map((part) => part.trim());
  let from = 0;
  for (const [index, part] of parts.entries()) {
    const at = title.indexOf(part, from);
    if (at === -1 || (index === 0 && part !== '' && at !== 0)) return false;
    from = at + part.length;
  }
  return parts.at(-1) === '' || title.endsWith(parts.at(-1) ?? '');
}

describe('the docs', () => {
  it('link only to files that exist, and to headings that exist in them', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const [file, text] of DOCS) {
      for (const { line, value } of links(text)) {
        if (/^[a-z]+:/i.test(value)) continue;
        checked += 1;
        const [path = '', fragment] = value.split('#');
        const target = path === '' ? file : resolve(file, path);
        if (!exists(target)) broken.push(`${file}:${line} ${value}: no such file`);
        else if (fragment !== undefined && !anchors(DOCS.get(target) ?? '').has(fragment)) broken.push(`${file}:${line} ${value}: no such heading`);
      }
    }
    expect(checked).toBeGreaterThan(300);
    expect(broken).toEqual([]);
  });

  it('cite tests that exist, by titles they have', () => {
    const wrong: string[] = [];
    let cited = 0;
    for (const [file, text] of DOCS) {
      for (const { line, value } of inlineCode(text)) {
        if (/^test\/\S+\.ts$/.test(value) && !TEST_SOURCES.has(value)) wrong.push(`${file}:${line} ${value}: no such test file`);
      }
      const prose = text.replace(/\n/g, ' ');
      for (const match of prose.matchAll(/`(test\/[^`\s]+\.ts)`(?: \([^)]*\))? › ((?:"[^"]*"(?:, )?)+)/g)) {
        const source = TEST_SOURCES.get(match[1] ?? '') ?? '';
        for (const [, quoted = ''] of (match[2] ?? '').matchAll(/"([^"]*)"/g)) {
          cited += 1;
          if (!titles(source).some((title) => quotes(title, quoted))) wrong.push(`${file}: ${match[1]} has no test titled "${quoted}"`);
        }
      }
    }
    expect(cited).toBeGreaterThan(60);
    expect(wrong).toEqual([]);
  });

  it('give hash-chain test vectors that JCS and SHA-256 alone reproduce, index columns included', () => {
    const spec = DOCS.get('docs/audit/hash-chain.md') ?? '';
    const blocks = codeBlocks(spec);
    const at = blocks.findIndex((block) => block.lang === 'ndjson');
    const [vectors, hashed] = [blocks[at], blocks[at + 1]];
    const records = (vectors?.text ?? '').split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records).toHaveLength(2);
    let previous = '0'.repeat(64);
    let input = '';
    for (const record of records) {
      const { chain, index, ...event } = record as { chain: ChainLink; index: Record<string, unknown> } & Record<string, unknown>;
      input = canonicalize({ event, prev_hash: chain.prev_hash }) ?? '';
      expect(chain.prev_hash).toBe(previous);
      expect(bytesToHex(sha256(utf8ToBytes(input)))).toBe(chain.hash);
      expect(index).toEqual(specifiedIndex(event));
      previous = chain.hash;
    }
    // The text hashed for the last record, as the specification shows it.
    expect(hashed?.text).toBe(input);
  });
});

interface ChainLink {
  readonly seq: number;
  readonly prev_hash: string;
  readonly hash: string;
}

/** The index columns, derived as the specification's table says (not by keyway's own code). */
function specifiedIndex(event: Record<string, unknown>): Record<string, unknown> {
  const field = (path: string): unknown => path.split('.').reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], event);
  const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
  return {
    id: event['id'],
    time: Date.parse(String(event['time'])),
    decision: event['decision'],
    reason: event['reason'],
    issuer: text(field('issuer')) ?? text(field('subject_token.claimed_iss')),
    subject: text(field('subject')) ?? text(field('subject_token.claimed_sub')),
    policy_id: text(field('policy.granted_by')) ?? text(field('policy.denied_by.0')),
    repository: text(field('claims.repository')) ?? text(field('claims.project_path')),
    client_ip: text(field('request.client_ip')),
    subject_sha256: text(field('subject_token.sha256')),
    subject_jti: text(field('subject_token.jti')),
    issued_jti: text(field('issued.jti')) ?? text(field('proxy.credential.jti')),
  };
}
