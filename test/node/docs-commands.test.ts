import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { codeBlocks, DOCS, headings, inlineCode, section } from '../support/markdown-docs.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/keyway.js');

/** What the real `keyway` binary prints for these arguments, on either stream. */
function keyway(args: readonly string[]): Promise<string> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`keyway ${args.join(' ')} exited ${code}: ${output}`))));
  });
}

const flagsIn = (text: string): Set<string> => new Set([...text.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)].map((match) => match[0]));

/** The CLI's commands, from its own usage text, each with the flags its `--help` lists. */
let commands: ReadonlyMap<string, ReadonlySet<string>>;

beforeAll(async () => {
  const usage = await keyway(['--help']);
  const listed = usage
    .slice(usage.indexOf('commands:'))
    .split('\n')
    .slice(1)
    .filter((line) => /^ {2}\S/.test(line))
    .map((line) => line.trim().split(/\s{2,}/)[0] ?? '');
  const helps = await Promise.all(listed.map((name) => keyway([...name.split(' '), '--help'])));
  commands = new Map(listed.map((name, index) => [name, new Set([...flagsIn(helps[index] ?? ''), '--help'])]));
  // Some 25 processes, each loading the CLI from source (about 1.3 CPU-seconds): 55 s on two loaded cores.
}, 180_000);

interface Invocation {
  readonly at: string;
  /** The words after `keyway`, up to the end of its command (a pipe, `&&`, `;`, or `--` before an --exec command). */
  readonly words: readonly string[];
}

const STOP = new Set(['|', '||', '&&', ';', '--']);

/** Where a word starts a command: a line or span's start, after `npx`, `$(`, a pipe, `;`, `&&`, `run:` or a list's `-`. */
const COMMAND_POSITION = /(?:^|\$\(|[|;&]|\bnpx|--yes,?|\brun:?|^-)$/;

/**
 * Every place the docs run `keyway` (or `npx keyway`, `keyway@x.y.z`): in inline code, and in code
 * blocks (comment lines aside; in a transcript, only the `$ ` lines, the rest being output).
 */
function invocations(): Invocation[] {
  const found: Invocation[] = [];
  for (const [file, text] of DOCS) {
    const snippets = [
      ...codeBlocks(text).flatMap((block) => {
        const lines = block.text.replace(/\\\n/g, ' ').split('\n');
        const transcript = lines.some((line) => line.startsWith('$ '));
        return lines
          .filter((line) => (transcript ? line.startsWith('$ ') : !line.trim().startsWith('#')))
          .map((line) => ({ line: block.line, value: transcript ? line.slice(2) : line }));
      }),
      ...inlineCode(text),
    ];
    for (const { line, value } of snippets) {
      for (const match of value.matchAll(/\bkeyway(?:@[\d.]+)?(?=[\s,]|$)/g)) {
        if (!COMMAND_POSITION.test(value.slice(0, match.index).trimEnd())) continue;
        const rest = value
          .slice((match.index ?? 0) + match[0].length)
          .split(/[\s,[\]]+/)
          .filter((word) => word !== '');
        const words = rest[0] === '--' ? rest.slice(1) : rest;
        const end = words.findIndex((word) => STOP.has(word) || word.startsWith('#'));
        found.push({ at: `${file}:${line}`, words: end === -1 ? words : words.slice(0, end) });
      }
    }
  }
  return found;
}

describe('the docs and the command line', () => {
  it('every keyway command in the docs is one the CLI has, with flags its --help lists', () => {
    expect(commands.size).toBeGreaterThanOrEqual(13);
    const found = invocations();
    expect(found.length).toBeGreaterThan(60);
    const wrong: string[] = [];
    for (const { at, words } of found) {
      const [first = '', second = ''] = words;
      if (first === '' || first === '…' || first.startsWith('<') || first === '--help') continue;
      const name = [`${first} ${second}`, first].find((candidate) => commands.has(candidate));
      // A group by itself (`keyway audit`, `keyway audit … --url`) may use any flag of its commands.
      const group = [...commands.keys()].filter((command) => command.startsWith(`${first} `));
      if (name === undefined && !(group.length > 0 && (second === '' || second === '…' || second.startsWith('<') || second.startsWith('-')))) {
        wrong.push(`${at} keyway ${words.join(' ')}: no such command`);
        continue;
      }
      const allowed = new Set(name === undefined ? group.flatMap((command) => [...(commands.get(command) ?? [])]) : commands.get(name));
      for (const flag of flagsIn(words.join(' '))) {
        if (!allowed.has(flag)) wrong.push(`${at} keyway ${name ?? first}: no flag ${flag}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('the CLI reference documents every command, with every flag its --help lists', () => {
    const reference = DOCS.get('docs/reference/cli.md') ?? '';
    const titled = (name: string) => headings(reference).find((heading) => heading.text.replace(/`/g, '') === `keyway ${name}`);
    const missing: string[] = [];
    for (const [name, flags] of commands) {
      const heading = titled(name);
      if (heading === undefined) {
        missing.push(`keyway ${name}: no section`);
        continue;
      }
      // A group's own text (`keyway audit`, before its first command) holds the options its commands share.
      const parent = name.includes(' ') ? titled(name.split(' ')[0] ?? '') : undefined;
      const child = parent === undefined ? undefined : headings(reference).find((other) => other.line > parent.line && other.level > parent.level);
      const shared =
        parent === undefined
          ? ''
          : reference
              .split('\n')
              .slice(parent.line - 1, (child?.line ?? parent.line) - 1)
              .join('\n');
      const documented = flagsIn(section(reference, heading) + shared);
      missing.push(...[...flags].filter((flag) => flag !== '--help' && !documented.has(flag)).map((flag) => `keyway ${name}: ${flag} undocumented`));
    }
    expect(missing).toEqual([]);
  });
});
