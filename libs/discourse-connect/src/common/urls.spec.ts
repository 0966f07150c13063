import { randomBytes } from 'node:crypto';
import { encodeLocation, isSafeRelativePath, isUnderForum, parseForumBase } from './urls';

describe('isSafeRelativePath', () => {
  it.each([
    '/',
    '/t/welcome/1',
    '/t/welcome/1?page=2#post_3',
    '/u/ava%20m',
    '/path/with:colon',
    '/a//b',
    '/%2e%2e/x',
  ])('accepts the path %j', (path) => {
    expect(isSafeRelativePath(path)).toBe(true);
  });

  it.each([
    ['scheme-relative', '//evil.example'],
    ['scheme-relative with path', '//evil.example/session/sso_login'],
    ['absolute http', 'https://evil.example/'],
    ['javascript:', 'javascript:alert(1)'],
    ['data:', 'data:text/html,x'],
    ['backslash host', '/\\evil.example'],
    ['two backslashes', '\\\\evil.example'],
    ['backslash later', '/t/\\x'],
    ['encoded slash after the first slash', '/%2F%2Fevil.example'],
    ['encoded slash, lowercase', '/%2f/evil.example'],
    ['encoded backslash', '/%5Cevil.example'],
    ['encoded slash without the leading slash', '%2F%2Fevil.example'],
    ['tab inside //', '/\t/evil.example'],
    ['newline inside //', '/\n/evil.example'],
    ['carriage return (header splitting)', '/x\r\nSet-Cookie: a=b'],
    ['NUL', '/x\u0000'],
    ['DEL', '/x\u007f'],
    ['no leading slash', 't/welcome'],
    ['leading space', ' /t/welcome'],
    ['empty', ''],
    ['dot', '.'],
    ['userinfo-like', '@evil.example'],
  ])('refuses %s (%j)', (_name, path) => {
    expect(isSafeRelativePath(path)).toBe(false);
  });

  it.each([undefined, null, 42, ['/'], { path: '/' }])('refuses the non-string %p', (value) => {
    expect(isSafeRelativePath(value)).toBe(false);
  });

  it('refuses paths over the length limit', () => {
    expect(isSafeRelativePath(`/${'a'.repeat(2047)}`)).toBe(true);
    expect(isSafeRelativePath(`/${'a'.repeat(2048)}`)).toBe(false);
    expect(isSafeRelativePath('/abcd', 4)).toBe(false);
  });
});

describe('parseForumBase', () => {
  it('splits origin and folder, without a trailing slash', () => {
    expect(parseForumBase('https://forum.example.com')).toEqual({
      origin: 'https://forum.example.com',
      path: '',
    });
    expect(parseForumBase('https://forum.example.com/')).toEqual({
      origin: 'https://forum.example.com',
      path: '',
    });
    expect(parseForumBase('https://example.com/forum/')).toEqual({
      origin: 'https://example.com',
      path: '/forum',
    });
    expect(parseForumBase('http://127.0.0.1:8080/a/b')).toEqual({
      origin: 'http://127.0.0.1:8080',
      path: '/a/b',
    });
  });
});

describe('isUnderForum', () => {
  const root = parseForumBase('https://forum.example.com');
  const sub = parseForumBase('https://example.com/forum');

  it.each([
    'https://forum.example.com/session/sso_login',
    'https://forum.example.com/',
    'https://FORUM.example.com/session/sso_login',
    'https://forum.example.com/t/%E2%9C%93/1',
    'https://forum.example.com/session/sso_login?x=1',
  ])('accepts %j on a root forum', (url) => {
    expect(isUnderForum(url, root)).toBe(true);
  });

  it.each([
    ['another host', 'https://evil.example/session/sso_login'],
    ['javascript:', 'javascript:alert(1)'],
    ['scheme-relative', '//forum.example.com/session/sso_login'],
    ['relative path', '/session/sso_login'],
    ['userinfo trick', 'https://forum.example.com@evil.example/'],
    ['userinfo on the forum host', 'https://user:pw@forum.example.com/session/sso_login'],
    ['same host, another port', 'https://forum.example.com:8443/session/sso_login'],
    ['same host, http instead of https', 'http://forum.example.com/session/sso_login'],
    ['forum host as a prefix', 'https://forum.example.com.evil.example/session/sso_login'],
    ['backslash after the host', 'https://forum.example.com\\@evil.example/'],
    ['backslash as the path', 'https://forum.example.com\\evil'],
    ['tab in the host', 'https://forum.exam\tple.com/session/sso_login'],
    ['newline', 'https://forum.example.com/session/sso_login\r\nX: y'],
    ['control character', 'https://forum.example.com/\u0001'],
    ['no slash after the origin', 'https://forum.example.com?x=/'],
    [
      'explicit default port (the raw text must start with the origin)',
      'https://forum.example.com:443/session/sso_login',
    ],
    ['encoded slash', 'https://forum.example.com/%2F%2Fevil.example'],
    ['ftp', 'ftp://forum.example.com/'],
    ['not a URL', 'not a url'],
    ['empty', ''],
    ['too long', `https://forum.example.com/${'a'.repeat(2048)}`],
  ])('refuses %s (%j) on a root forum', (_name, url) => {
    expect(isUnderForum(url, root)).toBe(false);
  });

  it.each([
    'https://example.com/forum/session/sso_login',
    'https://example.com/forum',
    'https://example.com/forum/',
    'https://example.com/forum/t/x/1?y=%2F',
  ])('accepts %j in a subfolder forum', (url) => {
    expect(isUnderForum(url, sub)).toBe(true);
  });

  it.each([
    ['the origin root', 'https://example.com/session/sso_login'],
    ['a sibling folder', 'https://example.com/forumx/session/sso_login'],
    ['a prefix of the folder', 'https://example.com/foru'],
    ['../ out of the folder', 'https://example.com/forum/../admin'],
    ['encoded dots out of the folder', 'https://example.com/forum/%2e%2e/admin'],
    ['encoded slash out of the folder', 'https://example.com/forum/..%2Fadmin/sso_login'],
    ['encoded slash, lowercase', 'https://example.com/forum/..%2fadmin'],
    ['encoded backslash out of the folder', 'https://example.com/forum/..%5Cadmin'],
    ['backslash out of the folder', 'https://example.com/forum\\..\\admin'],
    ['userinfo trick', 'https://example.com@evil.example/forum/'],
    ['another host', 'https://evil.example/forum/session/sso_login'],
  ])('refuses %s (%j) for a subfolder forum', (_name, url) => {
    expect(isUnderForum(url, sub)).toBe(false);
  });

  it.each([undefined, null, 1, ['https://forum.example.com/']])(
    'refuses the non-string %p',
    (value) => {
      expect(isUnderForum(value, root)).toBe(false);
    },
  );
});

describe('isUnderForum verdicts remembered', () => {
  it('answers the same when asked again, and per forum base', () => {
    const forum = parseForumBase('https://forum.example.com/community');
    const other = parseForumBase('https://other.example.com');
    const url = 'https://forum.example.com/community/session/sso_login';
    const outside = 'https://forum.example.com/elsewhere/session/sso_login';
    for (let i = 0; i < 3; i++) {
      expect(isUnderForum(url, forum)).toBe(true);
      expect(isUnderForum(outside, forum)).toBe(false);
      expect(isUnderForum(url, other)).toBe(false);
    }
    // More distinct URLs than the memory holds: still the same verdicts.
    for (let i = 0; i < 600; i++)
      expect(isUnderForum(`https://forum.example.com/community/t/${i}`, forum)).toBe(true);
    expect(isUnderForum(outside, forum)).toBe(false);
  });
});

describe('encodeLocation', () => {
  /** The rule as the `encodeurl` package writes it, one replace after another. */
  const reference = (url: string) =>
    url
      .replace(
        /([\uD800-\uDBFF][\uDC00-\uDFFF])|[\uD800-\uDFFF]/g,
        (_, pair?: string) => pair ?? '\uFFFD',
      )
      .replace(
        /(?:[^\x21\x23-\x3B\x3D\x3F-\x5F\x61-\x7A\x7C\x7E]+|%+(?![0-9A-Fa-f]{2})){1,1024}/g,
        encodeURI,
      );

  it('writes every URL as the encodeurl rule does, kept as it is or encoded', () => {
    const urls = [
      '',
      'https://forum.example/session/sso_login?sso=bm9uY2U%3D%0A&sig=0a1b',
      'https://forum.example/t/€uro?x=1#frag',
      '/path with space',
      '%',
      '%4',
      '%41',
      '%%41',
      '%G1',
      'a%2',
      '%2f%5C',
      '100%',
      '%zz%41%',
      '"quoted"<tag>',
      '\\back',
      '`tick`{brace}^',
      '\ud83d\ude00',
      '\ud83d',
      'x\ude00y',
      '\u0000\u001f\u007f',
    ];
    for (const url of urls) expect(encodeLocation(url)).toBe(reference(url));
    const alphabet = 'aZ09/:?&=#%%%%4fFgG +~!*\'()"<>\\^`{|}[]@$,;é€\ud83d\ude00\u0001';
    for (let i = 0; i < 5000; i++) {
      let url = '';
      for (const b of randomBytes(i % 40)) url += alphabet[b % alphabet.length];
      expect(encodeLocation(url)).toBe(reference(url));
    }
  });
});
