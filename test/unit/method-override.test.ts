import { describe, expect, it } from 'vitest';
import { bodyNamesField, formNamesField, unreadableBody } from '../../src/features/proxy/method-override.ts';

/** Whether a POST body names `_method` (`unreadable` when its names cannot be read alike). */
const postNamesMethod = (body: Uint8Array, type: string | null): boolean | 'unreadable' => {
  const found = bodyNamesField(body, type, 'POST');
  return found === 'unreadable' ? found : found === '_method';
};
const queryNamesMethod = (query: string): boolean => formNamesField(query, ['_method']) !== undefined;

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
    'unreadable',
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
  [
    'LF only (commons-fileupload ends header lines at CRLF only)',
    'multipart/form-data; boundary=b',
    '--b\nContent-Disposition: form-data; name="_method"\n\nDELETE\n--b--\n',
    'unreadable',
  ],
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

describe('bodyNamesField, for _method in a POST', () => {
  // Each spelling a framework reads as _method (Rack, PHP, qs, Laravel's isJson), each that would be a false positive, and
  // the multipart bodies whose names cannot be read unambiguously (refused).
  it.each(cases)('%s', (_label, type, body, expected) => {
    expect(postNamesMethod(new TextEncoder().encode(body), type)).toBe(expected);
  });
});

describe('what PHP, Rack and express read otherwise than a plain reading', () => {
  it('takes a name with a NUL as _method (PHP cuts it there), in a body and in a query', () => {
    expect(postNamesMethod(new TextEncoder().encode('body=x&_method%00x=DELETE'), 'application/x-www-form-urlencoded')).toBe(true);
    expect(queryNamesMethod('_method%00anything=DELETE')).toBe(true);
    expect(queryNamesMethod('_%00m%00e%00t%00h%00o%00d=DELETE')).toBe(true);
    expect(queryNamesMethod('method=card&payment_method=x')).toBe(false);
  });

  it('refuses an RFC 2047 encoded-word part name (commons-fileupload and Tomcat decode it), in multipart only', () => {
    for (const name of ['=?UTF-8?B?X21ldGhvZA==?=', '=?UTF-8?Q?=5Fmethod?=']) {
      const body = new TextEncoder().encode(`--XyZ\r\nContent-Disposition: form-data; name="${name}"\r\n\r\nDELETE\r\n--XyZ--\r\n`);
      expect(postNamesMethod(body, 'multipart/form-data; boundary=XyZ'), name).toBe('unreadable');
    }
    // No JSON or form reader decodes one: a key that merely looks like it is a key.
    expect(postNamesMethod(new TextEncoder().encode('{"=?what?=":1}'), 'application/json')).toBe(false);
    expect(queryNamesMethod('%3D%3Fwhat%3F%3D=1')).toBe(false);
  });

  it.each([
    ['boundary=b,x', 'multipart/form-data; boundary=b,x'],
    ['a space after =', 'multipart/form-data; boundary= b'],
    ['a space before =', 'multipart/form-data; boundary =b'],
    ['; in a quoted boundary', 'multipart/form-data; boundary="b;c"'],
    ['boundary inside another parameter', 'multipart/form-data; xboundary=d; boundary=r'],
    ['two boundary parameters', 'multipart/form-data; boundary=decoy; boundary=real'],
    ['an RFC 2231 boundary* beside boundary', "multipart/form-data; boundary*=utf-8''decoy; boundary=real"],
    ['no boundary', 'multipart/form-data'],
  ])('refuses a multipart boundary readers take differently: %s', (_label, type) => {
    expect(unreadableBody(type, null, 'POST')).toMatch(/^a (multipart )?(boundary|body|Content-Type)/);
  });

  it.each([
    ['gzip form', 'application/x-www-form-urlencoded', 'gzip', /^a body with Content-Encoding gzip is refused/],
    ['deflate JSON', 'application/json', 'deflate', /^a body with Content-Encoding deflate is refused/],
    ['UTF-16 JSON', 'application/json; charset=utf-16le', null, /^a body in charset utf-16le is refused/],
    ['UTF-16 form', 'application/x-www-form-urlencoded; charset="UTF-16"', null, /^a body in charset utf-16 is refused/],
    ['two charsets', 'application/json; charset=utf-8; charset=utf-16', null, /^a charset written otherwise than once/],
    // Tomcat finds charset= anywhere in the header: a form in UTF-16LE to it, in no charset to a plain reading.
    ['charset inside another parameter', 'application/x-www-form-urlencoded; xcharset=UTF-16LE', null, /^a charset written otherwise/],
    ['charset* (RFC 2231)', "application/json; charset*=utf-8''x", null, /^a charset written otherwise/],
  ])('refuses a body a framework decodes before reading its fields: %s', (_label, type, encoding, message) => {
    expect(unreadableBody(type, encoding, 'POST')).toMatch(message);
  });

  it.each([
    ['a plain form', 'application/x-www-form-urlencoded', null],
    ['UTF-8 JSON, quoted charset', 'application/json; charset="UTF-8"', 'identity'],
    ['a quoted boundary', 'multipart/form-data; boundary="----keyway-0123"', null],
    ['a gzip image (no fields read)', 'image/png', 'gzip'],
    ['UTF-16 text (no fields read)', 'text/plain; charset=utf-16', null],
    ['no Content-Type (Rack reads a form)', null, null],
    ['an empty Content-Type', '', null],
  ])('takes %s', (_label, type, encoding) => {
    expect(unreadableBody(type, encoding, 'POST')).toBeUndefined();
  });

  it('refuses a multipart body that never closes, or whose part headers run past any reader', () => {
    const open = '--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n';
    expect(postNamesMethod(new TextEncoder().encode(open), 'multipart/form-data; boundary=b')).toBe('unreadable');
    const long = `--b\r\nContent-Disposition: form-data; name="${'a'.repeat(20_000)}"\r\n\r\nx\r\n--b--\r\n`;
    expect(postNamesMethod(new TextEncoder().encode(long), 'multipart/form-data; boundary=b')).toBe('unreadable');
  });

  it("takes a real client's multipart upload (undici's FormData, as fetch sends it), and finds its _method", async () => {
    const upload = async (fields: Record<string, string>) => {
      const form = new FormData();
      for (const [name, value] of Object.entries(fields)) form.append(name, value);
      form.append('file', new Blob(['--not-a-boundary\r\n_method=DELETE']), 'notes.txt');
      const request = new Request('http://127.0.0.1/', { method: 'POST', body: form });
      const type = request.headers.get('content-type');
      return { type, body: new Uint8Array(await request.arrayBuffer()) };
    };
    const plain = await upload({ title: 'release notes' });
    expect(unreadableBody(plain.type, null, 'POST')).toBeUndefined();
    expect(postNamesMethod(plain.body, plain.type)).toBe(false);
    const smuggled = await upload({ title: 'x', _method: 'DELETE' });
    expect(postNamesMethod(smuggled.body, smuggled.type)).toBe(true);
  });
});

describe("part headers readers take differently, and browsers' own uploads", () => {
  // Bytes as written (latin1), so an ESC or a quote goes as it is.
  const bytes = (text: string) => new Uint8Array([...text].map((char) => char.charCodeAt(0)));
  const part = (disposition: string, extra = '') => bytes(`--XyZ\r\n${extra}Content-Disposition: ${disposition}\r\n\r\nDELETE\r\n--XyZ--\r\n`);
  const MULTIPART = 'multipart/form-data; boundary=XyZ';

  it.each([
    // PHP reads an unclosed quote to the line's end: _method.
    ['an unclosed double quote', 'form-data; name="_method'],
    ['an unclosed single quote', "form-data; name='_method"],
    // Rack 3.1 finds name= right after a quoted value, no ; between.
    ['a parameter without its ;', 'form-data; a="x"name=_method'],
    // Rack 2.2 and 3.0 end an unquoted value at ", , ( and the like.
    ['a quote after an unquoted value', 'form-data; name=_method"'],
    ['a comma in an unquoted value', 'form-data; name=_method,x'],
    ['a space around =', 'form-data; name = "_method"'],
  ])('refuses a Content-Disposition not written as type; name=value …: %s', (_label, disposition) => {
    expect(postNamesMethod(part(disposition), MULTIPART)).toBe('unreadable');
  });

  it.each([
    // PHP starts a quoted stretch at any ' in a word: a=x'y; b="' is one pair, then name=_method.
    ['an unquoted value with a single quote', `form-data; a=x'y; b="'; name=_method; c="`, ''],
    // Rack before 3.1.16 finds Content-Disposition: and Content-ID: anywhere in the header block.
    ['Content-Disposition: inside another header', 'form-data; name="a"', 'X-Note: Content-Disposition: form-data; name=_method\r\n'],
    ['Content-ID: inside another header', 'form-data; name="a"', 'X-Note: Content-ID: _method\r\n'],
    ['a header name that is not a token', 'form-data; name="a"\r\nX; name=_method: 1', ''],
    // commons-fileupload ends a header line at CRLF only: name="a"\nX: 1; name=_method is one line to it.
    ['a bare LF in a header line', 'form-data; name="a"\nX: 1; name=_method', ''],
    // Rack 2.2 and 3.0 take the line's last ; name=, inside a quoted value too.
    ['; name= inside a quoted value', 'form-data; name="a"; x="; name=_method"', ''],
    ['Content-Disposition: again inside a quoted value', 'form-data; name="a"; x="Content-Disposition: form-data; name=_method"', ''],
  ])('refuses a part header readers take differently: %s', (_label, disposition, extra) => {
    expect(postNamesMethod(part(disposition, extra), MULTIPART)).toBe('unreadable');
  });

  it('takes a name commons-fileupload trims (`_method `) as _method, and names in UTF-8 (a byte 0x81, 0x8D, 0x90) as themselves', () => {
    expect(postNamesMethod(part('form-data; name="_method "'), MULTIPART)).toBe(true);
    const utf8 = (text: string) => String.fromCharCode(...new TextEncoder().encode(text));
    for (const name of ['名前', 'Á', 'Í', 'Ð', 'Ý']) expect(postNamesMethod(part(`form-data; name="${utf8(name)}"`), MULTIPART), name).toBe(false);
  });

  it("takes Python's email package's quoted boundary (=== and = in it)", () => {
    const type = 'multipart/related; boundary="===============5729013526853147234=="';
    expect(unreadableBody(type, null, 'POST')).toBeUndefined();
    const body = bytes('--===============5729013526853147234==\r\nContent-Type: application/json\r\n\r\n{}\r\n--===============5729013526853147234==--\r\n');
    expect(postNamesMethod(body, type)).toBe(false);
  });

  it('reads a long name of encoded-word openers in one pass (no backtracking), and refuses it', () => {
    expect(postNamesMethod(part(`form-data; name="${"'=?a".repeat(3000)}?="`), MULTIPART)).toBe('unreadable');
  });

  it("takes a name with a control character as _method, and refuses a part in a charset a reader decodes its name from (Rack's ISO-2022-JP)", () => {
    expect(postNamesMethod(part('form-data; name="\x1b(B_method"'), MULTIPART)).toBe(true);
    expect(postNamesMethod(part('form-data; name="note"', 'Content-Type: text/plain; charset=ISO-2022-JP\r\n'), MULTIPART)).toBe('unreadable');
    expect(postNamesMethod(part('form-data; name="note"', 'Content-Type: text/plain; charset=UTF-8\r\n'), MULTIPART)).toBe(false);
  });

  it.each([
    ['Chrome and Safari', 'multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW'],
    ['Firefox', 'multipart/form-data; boundary=----geckoformboundary5c3e0e1f2a'],
    ['curl', 'multipart/form-data; boundary=------------------------d74496d66958873e'],
    ['.NET (quoted)', 'multipart/form-data; boundary="a5fa9c4a-2b3e-4d5c-9f7e-1b2c3d4e5f60"'],
    ['a boundary with charset in it', 'multipart/form-data; boundary=----charsetXYZ'],
  ])("takes %s's multipart header", (_label, type) => {
    expect(unreadableBody(type, null, 'POST')).toBeUndefined();
    const boundary = type.slice(type.indexOf('=') + 1).replaceAll('"', '');
    const body = bytes(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a b.txt"\r\nContent-Type: text/plain\r\n\r\nx\r\n--${boundary}--\r\n`,
    );
    expect(postNamesMethod(body, type)).toBe(false);
  });
});

describe('sudo, as GitLab (Grape), Gitea and Forgejo read it', () => {
  const body = (text: string, type: string | null, method: string) => bodyNamesField(new TextEncoder().encode(text), type, method);

  it.each([
    ['sudo=root', 'sudo'],
    ['a=1&sudo[]=root', 'sudo'],
    ['a=1;sudo=root', 'sudo'],
    ['%73udo=root', 'sudo'],
    ['SUDO=root', 'sudo'],
    ['_method=DELETE&sudo=root', '_method'],
    ['pseudo=1&sudoers=2&user=sudo', undefined],
  ])('reads the query %s as naming %s', (query, expected) => {
    expect(formNamesField(query, ['_method', 'sudo'])).toBe(expected);
  });

  it.each([
    ['a PUT form', 'sudo=root', 'application/x-www-form-urlencoded', 'PUT', 'sudo'],
    ['a DELETE JSON body', '{"sudo":"root"}', 'application/json', 'DELETE', 'sudo'],
    [
      'a PATCH multipart body',
      '--b\r\nContent-Disposition: form-data; name="sudo"\r\n\r\nroot\r\n--b--\r\n',
      'multipart/form-data; boundary=b',
      'PATCH',
      'sudo',
    ],
    ['a typeless POST (Rack reads a form)', 'sudo=root', null, 'POST', 'sudo'],
    ['a typeless PUT (no reader takes a form)', 'sudo=root', null, 'PUT', undefined],
    ['a PUT _method (overridden from a POST only)', '_method=DELETE', 'application/x-www-form-urlencoded', 'PUT', undefined],
    ['a nested JSON key (Grape reads params[:sudo])', '{"user":{"sudo":"root"}}', 'application/json', 'PUT', undefined],
    ['a JSON array', '[{"sudo":"root"}]', 'application/json', 'PUT', undefined],
    ['an escaped JSON key', '{"\\u0073udo":"root"}', 'application/json', 'PUT', 'sudo'],
    ['a key after a block comment', '{"a":1, /* x */ "sudo":"root"}', 'application/json', 'PUT', 'sudo'],
    ['a key before a line comment', '{"sudo" // x\n:"root"}', 'application/json', 'PUT', 'sudo'],
    ['a key only inside a comment', '{/* "sudo": 1, */ "a": 1}', 'application/json', 'PUT', undefined],
    ['comment marks inside strings', '{"a":"/*","sudo":"root","b":"*/"}', 'application/json', 'PUT', 'sudo'],
    ['a comment left open', '{"sudo":"root"} /* x', 'application/json', 'PUT', 'sudo'],
    ['JSON that does not parse, under a JSON type: readers laxer than JSON.parse may read it', '{"sudo": }', 'application/json', 'PUT', 'unreadable'],
    ['an unknown escape (the json gem before 2.17 drops its backslash: sudo)', '{"sud\\o":"root"}', 'application/json', 'PUT', 'unreadable'],
    ['a bad escape beside a plain sudo key', '{"sudo":"root","x":"\\q"}', 'application/problem+json', 'PATCH', 'unreadable'],
    [
      'text that does not parse under a type that only mentions json (no reader takes fields from it)',
      '{"a":1}\n{"sudo":1}',
      'application/x-ndjson',
      'PUT',
      undefined,
    ],
  ])('reads %s', (_label, text, type, method, expected) => {
    expect(body(text, type, method)).toBe(expected);
  });

  it('holds a non-POST body to the grammar every reader takes alike', () => {
    expect(unreadableBody('application/x-www-form-urlencoded', 'gzip', 'PUT')).toMatch(/^a body with Content-Encoding gzip is refused/);
    expect(unreadableBody('multipart/form-data', null, 'PATCH')).toBe('a multipart body without a boundary is refused');
    expect(unreadableBody(null, 'gzip', 'PUT')).toBeUndefined();
    expect(body('--b\r\nContent-Disposition: form-data;\r\n name="sudo"\r\n\r\nroot\r\n--b--\r\n', 'multipart/form-data; boundary=b', 'PUT')).toBe(
      'unreadable',
    );
  });
});
