/// <reference types="vite/client" />

/**
 * The project's Markdown (README.md and every page under docs/), read the same way in Node tests
 * and inside workerd, and the few parts of Markdown the docs tests look at: fenced code blocks,
 * headings and their GitHub anchors, links and inline code. Fenced blocks hide everything inside
 * them; inline code hides links.
 */
const RAW = import.meta.glob<string>(['../../README.md', '../../docs/**/*.md'], { query: '?raw', import: 'default', eager: true });

/** Markdown files by path from the repository root (`README.md`, `docs/ci/gitlab.md`). */
export const DOCS: ReadonlyMap<string, string> = new Map(Object.entries(RAW).map(([path, text]) => [path.replace(/^\.\.\/\.\.\//, ''), text]));

export interface CodeBlock {
  /** The info string's first word: `yaml`, `sh`, or empty. */
  readonly lang: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The block's content, its indentation (a block inside a list item) removed. */
  readonly text: string;
}

export interface Heading {
  readonly level: number;
  readonly text: string;
  readonly line: number;
}

export interface Located {
  readonly line: number;
  readonly value: string;
}

const FENCE = /^(\s*)```\s*(\S*)/;

/** The file's lines, each either inside a fenced block or not. */
function split(text: string): { readonly blocks: CodeBlock[]; readonly prose: { readonly line: number; readonly text: string }[] } {
  const blocks: CodeBlock[] = [];
  const prose: { line: number; text: string }[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const open = FENCE.exec(lines[index] ?? '');
    if (open === null) {
      prose.push({ line: index + 1, text: lines[index] ?? '' });
      continue;
    }
    const indent = open[1]?.length ?? 0;
    const body: string[] = [];
    let end = index + 1;
    while (end < lines.length && !/^\s*```\s*$/.test(lines[end] ?? '')) {
      body.push((lines[end] ?? '').slice(indent));
      end += 1;
    }
    if (end === lines.length) throw new Error(`an unclosed code block at line ${index + 1}`);
    blocks.push({ lang: open[2] ?? '', line: index + 1, text: body.join('\n') });
    index = end;
  }
  return { blocks, prose };
}

export function codeBlocks(text: string): CodeBlock[] {
  return split(text).blocks;
}

/** The prose outside fenced blocks, as one string (line numbers kept by keeping the line breaks). */
function proseText(text: string): string {
  const lines = text.split('\n');
  const kept = new Set(split(text).prose.map((entry) => entry.line));
  return lines.map((line, index) => (kept.has(index + 1) ? line : '')).join('\n');
}

function lineAt(text: string, offset: number): number {
  return text.slice(0, offset).split('\n').length;
}

/** Inline code spans outside fenced blocks; a span may run over a line break, as in Markdown. */
export function inlineCode(text: string): Located[] {
  const prose = proseText(text);
  return [...prose.matchAll(/(`+)([^`][\s\S]*?)\1(?!`)/g)].map((match) => ({
    line: lineAt(prose, match.index),
    value: (match[2] ?? '').replace(/\s*\n\s*/g, ' '),
  }));
}

/** Link targets (`[text](target)`) outside fenced blocks and inline code. */
export function links(text: string): Located[] {
  const prose = proseText(text).replace(/(`+)([^`][\s\S]*?)\1(?!`)/g, (span) => span.replace(/[^\n]/g, ' '));
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => ({ line: lineAt(prose, match.index), value: match[1] ?? '' }));
}

export function headings(text: string): Heading[] {
  return split(text)
    .prose.map(({ line, text: content }) => ({ line, match: /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(content) }))
    .filter((entry) => entry.match !== null)
    .map(({ line, match }) => ({ level: match?.[1]?.length ?? 0, text: match?.[2] ?? '', line }));
}

/** GitHub's anchor for a heading: its rendered text, lower-cased, punctuation and symbols dropped, spaces as hyphens. */
export function slug(heading: string): string {
  const rendered = heading.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/`/g, '');
  return rendered
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor of a file, numbered as GitHub numbers repeated headings (`-1`, `-2`). */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const heading of headings(text)) {
    const base = slug(heading.text);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

/** The section a heading opens: its own text up to the next heading of its level or above. */
export function section(text: string, heading: Heading): string {
  const lines = text.split('\n');
  const next = headings(text).find((other) => other.line > heading.line && other.level <= heading.level);
  return lines.slice(heading.line - 1, next === undefined ? lines.length : next.line - 1).join('\n');
}
