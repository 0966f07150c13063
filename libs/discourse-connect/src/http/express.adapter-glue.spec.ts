import { cookieOf } from './express.adapter-glue';

// express-session's own cookie parser (`cookie` 0.7), which ships no type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- an untyped CommonJS package, typed here
const { parse } = require('cookie') as {
  parse(header: string): Record<string, string | undefined>;
};

/**
 * The early handshake answer on Express reads the session cookie itself, and must read exactly
 * the value express-session would (the `cookie` package's parse), or it would answer for another
 * session than the route.
 */
describe('cookieOf (the session cookie as express-session reads it)', () => {
  const name = 'dc.sid';
  const headers = [
    'dc.sid=s%3Aabc.def',
    'a=1; dc.sid=s%3Aabc.def; b=2',
    'xdc.sid=s%3Aother.sig; dc.sid=s%3Aabc.def',
    'dc.sidx=1; dc.sid=s:plain.sig',
    'dc.sid=first; dc.sid=second',
    ' \tdc.sid \t= \t s%3Aspaced.sig \t ; b=2',
    'dc.sid="s%3Aquoted.sig"',
    'dc.sid=s%3Abad%ZZencoding',
    'novalue; dc.sid=s%3Aafter.novalue',
    'a=b=c; dc.sid=x=y',
    'a; b; c',
    'dc.sid=',
    'dc.sid',
    'other=1',
    '',
    '=; dc.sid=v',
    'dc.sid=a;dc.sid=b',
    'a="dc.sid=inside"; dc.sid=real',
    'DC.SID=upper; dc.sid=lower',
  ];

  it.each(headers)('%j', (header) => {
    expect(cookieOf(header, name)).toBe(parse(header)[name]);
  });

  it('agrees with cookie.parse on random headers', () => {
    const alphabet = ['dc.sid', '=', ';', ' ', '\t', '"', '%3A', '%', 's', 'x', '.', 'dc', ','];
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 5000; i++) {
      let header = '';
      const parts = 1 + (random() % 12);
      for (let j = 0; j < parts; j++) header += alphabet[random() % alphabet.length];
      expect([header, cookieOf(header, name)]).toEqual([header, parse(header)[name]]);
    }
  });
});
