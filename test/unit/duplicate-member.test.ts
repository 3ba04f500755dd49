import { describe, expect, it } from 'vitest';
import { duplicateMember } from '../../src/core/audit/duplicate-member.ts';

describe('duplicateMember', () => {
  it.each([
    ['{"a":1,"a":2}', 'a'],
    ['{"a":{"b":1,"b":2}}', 'b'],
    ['{"x":[{"k":1},{"k":2,"k":3}]}', 'k'],
    ['{"a":1,"\\u0061":2}', 'a'],
    ['{"n":{"deep":[1,{"q":"}","q":"{"}]}}', 'q'],
    ['{ "s" : 1 , "s" : 2 }', 's'],
  ])('finds the name %s holds twice', (text, name) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(duplicateMember(text)).toBe(name);
  });

  it.each([
    ['{"a":1,"b":2}'],
    ['{"a":{"a":1},"b":{"a":2}}'],
    ['{"a":["a","a"],"b":"a"}'],
    ['{"a":"x\\"a\\":1","b":"\\\\"}'],
    ['[{"a":1},{"a":2}]'],
    ['{"k":"{\\"k\\":1}","j":"[,\\"k\\"]"}'],
    ['{}'],
  ])('finds none in %s', (text) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(duplicateMember(text)).toBeUndefined();
  });
});
