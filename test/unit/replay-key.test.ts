import { describe, expect, it } from 'vitest';
import { replayKey } from '../../src/core/replay/replay-key.ts';

/** Issuers whose preset does not type `jti` (Google's) pass it through as the token has it: only a non-empty string is one. */
describe('replayKey', () => {
  const token = 'eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOjd9.c2ln';

  it('knows a token whose jti is not a string by its signed part, never by the jti it claims', () => {
    for (const jti of [7, true, { id: 'x' }, ['x'], null]) {
      expect(replayKey(token, 'https://accounts.google.com', jti)).toEqual(replayKey(token, 'https://accounts.google.com', undefined));
      expect(replayKey(token, 'https://accounts.google.com', jti).basis).toBe('signed part');
    }
    expect(replayKey(token, 'https://accounts.google.com', '7')).toMatchObject({ basis: 'jti' });
    expect(replayKey(token, 'https://accounts.google.com', '7').key).not.toBe(replayKey(token, 'https://accounts.google.com', 7).key);
  });
});
