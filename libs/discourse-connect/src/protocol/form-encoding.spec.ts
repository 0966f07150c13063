import { randomBytes } from 'node:crypto';
import { formDecodePairs, formEncode, formEncodeBase64 } from './form-encoding';

/** What the standard's serializer writes for one name or value. */
const standardEncode = (text: string) => new URLSearchParams({ x: text }).toString().slice(2);

/** A random string of code units, drawn mostly from the ranges where encodings differ. */
function randomText(bytes: Buffer): string {
  const ranges: Array<[number, number]> = [
    [0x00, 0x7f],
    [0x20, 0x2f],
    [0x80, 0x7ff],
    [0x800, 0xffff],
    [0xd800, 0xdfff],
  ];
  let text = '';
  for (let i = 0; i + 2 < bytes.length; i += 3) {
    const [low, high] = ranges[bytes[i] % ranges.length];
    text += String.fromCharCode(low + (((bytes[i + 1] << 8) | bytes[i + 2]) % (high - low + 1)));
  }
  return text;
}

const EDGES = [
  '',
  ' ',
  'abcXYZ019',
  "*-._~!'()",
  '+/=',
  'a b+c&d=e%f#g?h',
  '%41%zz%',
  'é€😀',
  '日本語のテキスト',
  '\u0000\u001f\u007f\u0080\u07ff\u0800\uffff',
  '\ud83d',
  '\ude00x',
  'x\ud83d\ud83d\ude00',
  '\ufeffbom',
  'line\r\nbreak\ttab',
  'https://forum.example/session/sso_login?a=1&b=two words',
];

describe('form encoding', () => {
  it('encodes every edge case exactly as URLSearchParams does', () => {
    for (const text of EDGES) expect(formEncode(text)).toBe(standardEncode(text));
  });

  it('encodes random text exactly as URLSearchParams does', () => {
    for (let i = 0; i < 2000; i++) {
      const text = randomText(randomBytes(3 * (i % 40)));
      expect(formEncode(text)).toBe(standardEncode(text));
    }
  });

  it('keeps text that needs no encoding as it is (the same string)', () => {
    const text = 'abc.DEF-123_*';
    expect(formEncode(text)).toBe(text);
  });

  it('encodes base64 exactly as URLSearchParams does', () => {
    for (let i = 0; i < 500; i++) {
      const base64 = randomBytes(i).toString('base64');
      expect(formEncodeBase64(base64)).toBe(standardEncode(base64));
    }
    expect(formEncodeBase64('+/==')).toBe('%2B%2F%3D%3D');
  });

  it('reads pairs exactly as URLSearchParams does', () => {
    const texts = [
      '',
      '&',
      '&&a=1&&',
      'a',
      'a=',
      '=b',
      '=',
      'a=1&a=2',
      'a=b=c',
      'sso=bm9uY2U9YWJj%0A%3D%3D&sig=0f',
      'n%61me=v%61lue+with+spaces',
      '%zz=%G1&ok=%41',
      'bad=%C3%28&bad2=%ED%A0%80&bad3=%F0%9F%98',
      'emoji=%F0%9F%98%80&euro=%E2%82%AC',
      'raw=é€😀',
      'lone=\ud83d&other=\ude00',
      'bom=%EF%BB%BFx',
      'plus=%2B+%2b',
      ...EDGES.map((text) => `k=${text}`),
      ...EDGES.map((text) => `${standardEncode(text)}=${standardEncode(text)}`),
    ];
    for (const text of texts) expect(formDecodePairs(text)).toEqual([...new URLSearchParams(text)]);
  });

  it('reads random form text exactly as URLSearchParams does', () => {
    const alphabet = 'ab=&+%%%0123456789ABCDEFcdef é😀\ud83d';
    for (let i = 0; i < 3000; i++) {
      const bytes = randomBytes(i % 30);
      let text = '';
      for (const b of bytes) text += alphabet[b % alphabet.length];
      expect(formDecodePairs(text)).toEqual([...new URLSearchParams(text)]);
    }
    for (let i = 0; i < 1000; i++) {
      const pairs = Array.from({ length: 1 + (i % 4) }, (_, j): [string, string] => [
        randomText(randomBytes(3 * j)),
        randomText(randomBytes(3 * (i % 7))),
      ]);
      const text = new URLSearchParams(pairs).toString();
      expect(formDecodePairs(text)).toEqual([...new URLSearchParams(text)]);
    }
  });
});
