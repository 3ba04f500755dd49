import { describe, expect, it } from 'vitest';
import { bodyOverridesMethod } from '../../src/features/proxy/method-override.ts';

const mp = (headers: string, value = 'DELETE') => `--b\r\n${headers}\r\n\r\n${value}\r\n--b--\r\n`;
const cases: [string, string | null, string, boolean | 'unreadable'][] = [
  ['folded', 'multipart/form-data; boundary=b', mp('Content-Disposition: form-data;\r\n name="_method"'), 'unreadable'],
  ['single quote', 'multipart/form-data; boundary=b', mp("Content-Disposition: form-data; name='_method'"), true],
  ['backslash', 'multipart/form-data; boundary=b', mp('Content-Disposition: form-data; name="_\\method"'), true],
  ['content-id', 'multipart/form-data; boundary=b', mp('Content-ID: _method'), true],
  [
    'x-content-disposition',
    'multipart/form-data; boundary=b',
    mp('X-Content-Disposition: form-data; name="_method"\r\nContent-Disposition: form-data; name="a"'),
    true,
  ],
  ['mixed', 'multipart/mixed; boundary=b', mp('Content-Disposition: form-data; name="_method"'), true],
  ['[_method]', 'application/x-www-form-urlencoded', '[_method]=DELETE', true],
  [']_method', 'application/x-www-form-urlencoded', ']_method=DELETE', true],
  ['name*0', 'multipart/form-data; boundary=b', mp('Content-Disposition: form-data; name*0="_me"; name*1="thod"'), 'unreadable'],
  ['json anywhere', 'text/plain; x=/json', '{"_method":"DELETE"}', true],
  [
    'file content',
    'multipart/form-data; boundary=b',
    '--b\r\nContent-Disposition: form-data; name="f"; filename="a.eml"\r\n\r\nContent-Disposition: form-data; name="_method"\r\n--b--\r\n',
    false,
  ],
  ['payment_method', 'multipart/form-data; boundary=b', mp('Content-Disposition: form-data; name="payment_method"'), false],
  ['filename=_method', 'multipart/form-data; boundary=b', mp('Content-Disposition: form-data; name="f"; filename="_method"'), false],
  ['json method', 'application/json', '{"method":"card"}', false],
  ['no name form-data only', 'multipart/form-data; boundary=b', mp('Content-Disposition: name="_method"'), true],
  ['empty headers part', 'multipart/form-data; boundary=b', '--b\r\n\r\nx\r\n--b--\r\n', false],
  ['LF only', 'multipart/form-data; boundary=b', '--b\nContent-Disposition: form-data; name="_method"\n\nDELETE\n--b--\n', true],
  // Rack takes the last boundary parameter, others the first: which one the parts use is not to be guessed.
  [
    'two boundary parameters',
    'multipart/form-data; boundary=decoy; boundary=real',
    '--real\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--real--\r\n',
    'unreadable',
  ],
  // A close delimiter inside a value, not at a line's start: RFC 2046 readers (Rack, PHP) take the part after it, a lax
  // reader stops there. Refused as the lax reading's parts after its close.
  [
    'close delimiter mid-line',
    'multipart/form-data; boundary=b',
    '--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nx--b--\r\n--b\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--b--\r\n',
    'unreadable',
  ],
  [
    'parts after the close',
    'multipart/form-data; boundary=b',
    `${mp('Content-Disposition: form-data; name="a"')}${mp('Content-Disposition: form-data; name="c"')}`,
    'unreadable',
  ],
  // Read as a lax reader would (a delimiter anywhere), it is not multipart: a client's boundary never occurs in its parts.
  ['delimiter text in a value', 'multipart/form-data; boundary=b', mp('Content-Disposition: form-data; name="a"', 'see --b for parts'), 'unreadable'],
  // Laravel reads a type with /json anywhere as JSON, whatever its media type says.
  ['form type, json parameter', 'application/x-www-form-urlencoded; x=/json', '{"_method":"DELETE"}', true],
  ['multipart type, json parameter', 'multipart/form-data; boundary=b; x=/json', '{"_method":"DELETE"}', true],
];

describe('bodyOverridesMethod', () => {
  // Each spelling a framework reads as _method (Rack, PHP, qs, Laravel's isJson), each that would be a false positive, and
  // the multipart bodies whose names cannot be read unambiguously (refused).
  it.each(cases)('%s', (_label, type, body, expected) => {
    expect(bodyOverridesMethod(new TextEncoder().encode(body), type)).toBe(expected);
  });
});
