import { describe, expect, it } from 'vitest';
import { bodyOverridesMethod } from '../../src/features/proxy/method-override.ts';

const mp = (headers: string) => `--b\r\n${headers}\r\n\r\nDELETE\r\n--b--\r\n`;
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
];

describe('bodyOverridesMethod', () => {
  // Each spelling a framework reads as _method (Rack, PHP, qs, Laravel's isJson), each that would be a false positive, and
  // the multipart bodies whose names cannot be read unambiguously (refused).
  it.each(cases)('%s', (_label, type, body, expected) => {
    expect(bodyOverridesMethod(new TextEncoder().encode(body), type)).toBe(expected);
  });
});
