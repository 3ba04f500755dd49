import { describe, expect, it } from 'vitest';
import { keptRootCheckpoints } from '../../src/core/audit/kept-roots.ts';

describe('root checkpoints kept apart (--roots, the restore form’s roots part), as a witness appended them', () => {
  const answer = (jws: string): string => JSON.stringify({ root_checkpoints: [{ jws }] });

  it('reads answers one after another, a JSON array of them, or the latest alone', () => {
    expect(keptRootCheckpoints(`${answer('a.b.c')}\n${answer('d.e.f')}\n`)).toEqual(['a.b.c', 'd.e.f']);
    expect(keptRootCheckpoints(`[${answer('a.b.c')}, {"jws": "d.e.f"}]`)).toEqual(['a.b.c', 'd.e.f']);
  });

  it('refuses a file with anything else between the answers, rather than reading past it (a root there would be dropped unseen)', () => {
    // A root written as a JSON string (double-encoded), a stray closing bracket, text around a bracket pair: none is an answer.
    for (const text of [
      `${JSON.stringify(answer('x.y.z'))} ${answer('a.b.c')}`,
      `"note" ${answer('a.b.c')}`,
      `}garbage{ ${answer('a.b.c')}`,
      `${answer('a.b.c')}]`,
    ]) {
      expect(() => keptRootCheckpoints(text), text).toThrow(/not JSON/);
    }
  });

  it('refuses a file whose answers hold no root checkpoint: a witness holding nothing would hold the log to nothing', () => {
    for (const text of ['[]', JSON.stringify({ root_checkpoints: [] }), `${JSON.stringify({ root_checkpoints: [] })}\n[]\n`]) {
      expect(() => keptRootCheckpoints(text), text).toThrow(/hold no root checkpoint/);
    }
  });

  it('refuses an answer that is not what GET /v1/audit/root-checkpoints answers, naming which one', () => {
    for (const [text, which] of [
      [`${answer('a.b.c')}\n${JSON.stringify({ root_checkpoints: [{ jws: 'd.e.f' }, {}] })}`, 2],
      [`[${answer('a.b.c')}, {"jws": 5}]`, 1],
      [JSON.stringify({ roots: [{ jws: 'a.b.c' }] }), 1],
    ] as const) {
      expect(() => keptRootCheckpoints(text), text).toThrow(new RegExp(`^answer ${which} is not what GET /v1/audit/root-checkpoints answers`));
    }
  });
});
