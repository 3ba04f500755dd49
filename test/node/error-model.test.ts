import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExchangeError } from '../../src/core/errors/exchange-error.ts';
import { KeywayError } from '../../src/core/errors/keyway-error.ts';
import { RateLimitedError } from '../../src/core/limits/rate-limited-error.ts';
import { ConfigError } from '../../src/core/settings/read-settings.ts';
import { DevIssuerDisabledError, IssuerReferenceError } from '../../src/core/verify/trusted-issuer.ts';
import { PlaintextKeyError } from '../../src/storage/sqlite-key-store.ts';

const SRC = new URL('../../src/', import.meta.url).pathname;

interface DeclaredClass {
  readonly name: string;
  readonly base: string;
  readonly body: string;
  readonly file: string;
}

/** Every class in src/ that extends another, as written: a new error class is found without being listed anywhere. */
function declaredClasses(): DeclaredClass[] {
  const files = readdirSync(SRC, { recursive: true, encoding: 'utf8' }).filter((file) => /\.tsx?$/.test(file));
  return files.flatMap((file) =>
    [...readFileSync(join(SRC, file), 'utf8').matchAll(/^export (?:abstract )?class (\w+) extends (\w+)(?:<[^>\n]*>)? \{(?:\}|\n([\s\S]*?)^\})/gm)].map(
      ([, name = '', base = '', body = '']) => ({ name, base, body, file: relative(SRC, join(SRC, file)) }),
    ),
  );
}

/** The classes that descend from Error, through any chain of classes declared in src/. */
function errorClasses(classes: readonly DeclaredClass[]): DeclaredClass[] {
  const errors = new Set(['Error']);
  for (let grown = true; grown; ) {
    grown = false;
    for (const declared of classes) {
      if (errors.has(declared.base) && !errors.has(declared.name)) {
        errors.add(declared.name);
        grown = true;
      }
    }
  }
  return classes.filter((declared) => errors.has(declared.name));
}

describe('one error model', () => {
  const errors = errorClasses(declaredClasses());

  it('finds the error classes of src/ (a scanner that finds none proves nothing)', () => {
    expect(errors.length).toBeGreaterThanOrEqual(27);
    expect(errors.map((declared) => declared.name)).toEqual(
      expect.arrayContaining(['KeywayError', 'ExchangeError', 'RateLimitedError', 'ConfigError', 'GitHubError']),
    );
  });

  it('lets only KeywayError extend Error itself: every other error class descends from it', () => {
    expect(errors.filter((declared) => declared.base === 'Error').map((declared) => `${declared.file}: ${declared.name}`)).toEqual([
      'core/errors/keyway-error.ts: KeywayError',
    ]);
  });

  it('has every error class name itself, so a log line says which error it was', () => {
    const unnamed = errors.filter(
      (declared) => declared.name !== 'KeywayError' && !new RegExp(`override readonly name(?:: string)? = '${declared.name}';`).test(declared.body),
    );
    expect(unnamed.map((declared) => `${declared.file}: ${declared.name}`)).toEqual([]);
  });

  it('has every error class carry a stable code of its own, or its refusal reason as its code', () => {
    const withCode = (declared: DeclaredClass): boolean => /readonly code\b|get code\(\)/.test(declared.body) || declared.base === 'ExchangeError';
    const codeless = errors.filter((declared) => declared.name !== 'KeywayError' && !withCode(declared));
    expect(codeless.map((declared) => `${declared.file}: ${declared.name}`)).toEqual([]);
  });

  it('reports a rate-limited refusal as RateLimitedError, with rate_limited as its code', () => {
    const limited = new RateLimitedError({ name: 'subject', perMinute: 60, burst: 1 }, 3, 1);
    expect(limited).toBeInstanceOf(ExchangeError);
    expect(limited).toBeInstanceOf(KeywayError);
    expect(limited.name).toBe('RateLimitedError');
    expect(limited.code).toBe('rate_limited');
    expect(String(limited)).toMatch(/^RateLimitedError: the subject rate limit/);
  });

  it('gives a subclass its own name and code, not its parent’s', () => {
    expect(new DevIssuerDisabledError('off')).toMatchObject({ name: 'DevIssuerDisabledError', code: 'dev_issuer_disabled' });
    expect(new DevIssuerDisabledError('off')).toBeInstanceOf(IssuerReferenceError);
    expect(new PlaintextKeyError(['k1'])).toMatchObject({ name: 'PlaintextKeyError', code: 'signing_key_plaintext' });
    expect(new PlaintextKeyError(['k1'])).toBeInstanceOf(ConfigError);
    expect(new ConfigError('x')).toMatchObject({ name: 'ConfigError', code: 'config_invalid' });
  });
});
