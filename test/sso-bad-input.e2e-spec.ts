import { randomBytes } from 'node:crypto';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from './support/browser';
import {
  FORUM_SECRET,
  HTTP_ADAPTERS,
  startHarness,
  type Harness,
  type ModuleStyle,
} from './support/harness';
import { b64, hmac } from './support/signing';

/**
 * `GET /discourse/sso` with everything a broken link, a confused forum or an attacker can send.
 * Inputs are built here with node:crypto and Buffer, never with the library's codec.
 */

const newNonce = (): string => randomBytes(16).toString('hex');
/** Form-encodes pairs in order (repeats allowed), as a forum would. */
const formEncode = (pairs: [string, string][]): string =>
  pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
/** `sso=<escaped base64>&sig=<hex>` for a payload text signed with `secret`. */
function signedQuery(payload: string | Buffer, secret = FORUM_SECRET): string {
  const sso = b64(payload);
  return `sso=${encodeURIComponent(sso)}&sig=${hmac(sso, secret)}`;
}

interface Ctx {
  /** The forum URL the app is configured with (may have a subfolder). */
  forumUrl: string;
  /** The forum's origin. */
  forumOrigin: string;
  /** A valid payload text for this forum. */
  valid: () => string;
}

interface BadCase {
  name: string;
  /** The raw query string (after `?`). */
  query: (ctx: Ctx) => string;
  /** Which app: the forum at the origin's root, or the forum in `/forum`. */
  app?: 'root' | 'subfolder';
  /** Expected status when it is known exactly. */
  status?: number;
}

const validPayload = (forumUrl: string, nonce = newNonce()): string =>
  formEncode([
    ['nonce', nonce],
    ['return_sso_url', `${forumUrl}/session/sso_login`],
  ]);

/** A payload with `return_sso_url` set to `url` and a good nonce, validly signed. */
const returningTo = (url: string) => (): string =>
  signedQuery(
    formEncode([
      ['nonce', newNonce()],
      ['return_sso_url', url],
    ]),
  );

/** A validly built base64 text with a `+` in it (a `~` in the right place gives one). */
function base64WithPlus(forumUrl: string): string {
  for (let i = 0; i < 100; i++) {
    const sso = b64(`${validPayload(forumUrl)}&name=${'n'.repeat(i)}~~~`);
    if (sso.includes('+')) return sso;
  }
  throw new Error('no base64 with a "+" found');
}

const CASES: BadCase[] = [
  { name: 'missing sso', query: (c) => `sig=${hmac(b64(c.valid()))}`, status: 400 },
  { name: 'missing sig', query: (c) => `sso=${encodeURIComponent(b64(c.valid()))}`, status: 400 },
  { name: 'both missing', query: () => '', status: 400 },
  { name: 'both empty', query: () => 'sso=&sig=', status: 400 },
  {
    name: 'unrelated parameters only',
    query: () => 'foo=bar&return_sso_url=https%3A%2F%2Fevil.example%2F',
    status: 400,
  },
  {
    name: 'sso given twice',
    query: (c) => {
      const sso = encodeURIComponent(b64(c.valid()));
      return `sso=${sso}&sso=${sso}&sig=${hmac(b64(c.valid()))}`;
    },
    status: 400,
  },
  {
    name: 'sso given twice (a & b)',
    query: (c) => `sso=a&sso=b&sig=${hmac(b64(c.valid()))}`,
    status: 400,
  },
  {
    name: 'sig given twice',
    query: (c) => {
      const sso = b64(c.valid());
      return `sso=${encodeURIComponent(sso)}&sig=${hmac(sso)}&sig=${hmac(sso)}`;
    },
    status: 400,
  },
  {
    name: 'sso in bracket form',
    query: (c) => `sso[]=${encodeURIComponent(b64(c.valid()))}&sig=${hmac(b64(c.valid()))}`,
    status: 400,
  },
  {
    name: 'sso as a nested key',
    query: (c) => `sso[a]=${encodeURIComponent(b64(c.valid()))}&sig=${hmac(b64(c.valid()))}`,
    status: 400,
  },
  {
    name: 'non-hex sig',
    query: (c) => `sso=${encodeURIComponent(b64(c.valid()))}&sig=${'zz'.repeat(32)}`,
    status: 400,
  },
  {
    name: 'uppercase hex sig',
    query: (c) => {
      const sso = b64(c.valid());
      return `sso=${encodeURIComponent(sso)}&sig=${hmac(sso).toUpperCase()}`;
    },
    status: 400,
  },
  {
    name: 'short sig (63 chars)',
    query: (c) => {
      const sso = b64(c.valid());
      return `sso=${encodeURIComponent(sso)}&sig=${hmac(sso).slice(0, 63)}`;
    },
    status: 400,
  },
  {
    name: '65-char sig',
    query: (c) => {
      const sso = b64(c.valid());
      return `sso=${encodeURIComponent(sso)}&sig=${hmac(sso)}0`;
    },
    status: 400,
  },
  {
    name: 'sig with a space',
    query: (c) => {
      const sso = b64(c.valid());
      return `sso=${encodeURIComponent(sso)}&sig=%20${hmac(sso).slice(1)}`;
    },
    status: 400,
  },
  {
    name: 'tampered payload (valid base64, signature of another payload)',
    query: (c) => {
      const good = b64(c.valid());
      const tampered = b64(`${c.valid()}&admin=true`);
      return `sso=${encodeURIComponent(tampered)}&sig=${hmac(good)}`;
    },
    status: 403,
  },
  { name: 'non-base64 sso (%%%)', query: () => `sso=%%%&sig=${hmac('%%%')}`, status: 400 },
  {
    name: 'non-base64 sso (spaces), validly signed',
    query: (c) => {
      const spaced = b64(c.valid()).replace(/(.{8})/g, '$1 ');
      return `sso=${encodeURIComponent(spaced)}&sig=${hmac(spaced)}`;
    },
    status: 400,
  },
  {
    name: 'non-base64 sso (*), validly signed',
    query: (c) => {
      const starred = `${b64(c.valid())}*`;
      return `sso=${encodeURIComponent(starred)}&sig=${hmac(starred)}`;
    },
    status: 400,
  },
  {
    name: '"+" in the base64 sent unescaped (arrives as a space)',
    query: (c) => {
      const sso = base64WithPlus(c.forumUrl);
      return `sso=${sso}&sig=${hmac(sso)}`;
    },
    status: 400,
  },
  {
    name: 'bad base64 padding, validly signed',
    query: (c) => {
      const sso = `${b64(c.valid()).replace(/=+$/, '')}A`;
      return `sso=${encodeURIComponent(sso)}&sig=${hmac(sso)}`;
    },
  },
  {
    name: 'sso over the length limit (5 KB), validly signed',
    query: (c) => signedQuery(`${c.valid()}&bio=${'x'.repeat(5000)}`),
    status: 400,
  },
  {
    name: 'payload without nonce',
    query: (c) => signedQuery(formEncode([['return_sso_url', `${c.forumUrl}/session/sso_login`]])),
    status: 400,
  },
  {
    name: 'payload with an empty nonce',
    query: (c) =>
      signedQuery(
        formEncode([
          ['nonce', ''],
          ['return_sso_url', `${c.forumUrl}/session/sso_login`],
        ]),
      ),
    status: 400,
  },
  {
    name: 'payload with a nonce that is not a token',
    query: (c) =>
      signedQuery(
        formEncode([
          ['nonce', 'a b<script>'],
          ['return_sso_url', `${c.forumUrl}/session/sso_login`],
        ]),
      ),
    status: 400,
  },
  {
    name: 'payload with nonce repeated',
    query: (c) =>
      signedQuery(
        formEncode([
          ['nonce', 'a'],
          ['nonce', 'b'],
          ['return_sso_url', `${c.forumUrl}/session/sso_login`],
        ]),
      ),
    status: 400,
  },
  {
    name: 'payload with return_sso_url repeated',
    query: (c) =>
      signedQuery(
        formEncode([
          ['nonce', newNonce()],
          ['return_sso_url', `${c.forumUrl}/session/sso_login`],
          ['return_sso_url', 'https://evil.example/session/sso_login'],
        ]),
      ),
    status: 400,
  },
  {
    name: 'invalid UTF-8 inside the payload',
    query: (c) =>
      signedQuery(
        Buffer.concat([Buffer.from(`${c.valid()}&name=`), Buffer.from([0xc3, 0x28, 0xff, 0xfe])]),
      ),
    status: 400,
  },
  {
    name: 'payload that is binary garbage',
    query: () => signedQuery(randomBytes(48)),
    status: 400,
  },
  {
    name: 'return_sso_url missing',
    query: () => signedQuery(formEncode([['nonce', newNonce()]])),
    status: 400,
  },
  {
    name: 'return_sso_url on another host',
    query: () => returningTo('https://evil.example/session/sso_login')(),
    status: 403,
  },
  {
    name: 'return_sso_url javascript:alert(1)',
    query: () => returningTo('javascript:alert(1)')(),
    status: 403,
  },
  {
    name: 'return_sso_url data: URL',
    query: () => returningTo('data:text/html,<script>alert(1)</script>')(),
    status: 403,
  },
  {
    name: 'return_sso_url scheme-relative',
    query: () => returningTo('//evil.example/session/sso_login')(),
    status: 403,
  },
  {
    name: 'return_sso_url relative path',
    query: () => returningTo('/session/sso_login')(),
    status: 403,
  },
  {
    name: 'return_sso_url userinfo trick (forum-host@evil)',
    query: (c) =>
      returningTo(`http://${new URL(c.forumOrigin).host}@evil.example/session/sso_login`)(),
    status: 403,
  },
  {
    name: 'return_sso_url with credentials on the forum host',
    query: (c) =>
      returningTo(`http://user:pass@${new URL(c.forumOrigin).host}/session/sso_login`)(),
    status: 403,
  },
  {
    name: 'return_sso_url on the forum host name with another port',
    query: (c) => {
      const u = new URL(c.forumOrigin);
      return returningTo(`${u.protocol}//${u.hostname}:${Number(u.port) + 1}/session/sso_login`)();
    },
    status: 403,
  },
  {
    name: 'return_sso_url with https instead of http',
    query: (c) => returningTo(`${c.forumOrigin.replace('http:', 'https:')}/session/sso_login`)(),
    status: 403,
  },
  {
    name: 'return_sso_url forum host as a prefix of another host',
    query: (c) => returningTo(`${c.forumOrigin}.evil.example/session/sso_login`)(),
    status: 403,
  },
  {
    name: 'return_sso_url with a backslash after the host',
    query: (c) => returningTo(`${c.forumOrigin}\\@evil.example/session/sso_login`)(),
    status: 403,
  },
  {
    name: 'return_sso_url with a tab in it',
    query: (c) => returningTo(`${c.forumOrigin}/session/\tsso_login`)(),
    status: 403,
  },
  {
    name: 'return_sso_url with a newline in it',
    query: (c) => returningTo(`${c.forumOrigin}/session/sso_login\r\nSet-Cookie: x=1`)(),
    status: 403,
  },
  {
    name: 'return_sso_url outside a subfolder forum',
    app: 'subfolder',
    query: (c) => returningTo(`${c.forumOrigin}/session/sso_login`)(),
    status: 403,
  },
  {
    name: 'return_sso_url on a sibling of a subfolder forum (/forumx)',
    app: 'subfolder',
    query: (c) => returningTo(`${c.forumOrigin}/forumx/session/sso_login`)(),
    status: 403,
  },
  {
    name: 'return_sso_url leaving a subfolder forum with ../',
    app: 'subfolder',
    query: (c) => returningTo(`${c.forumUrl}/../admin/sso_login`)(),
    status: 403,
  },
  {
    name: 'return_sso_url leaving a subfolder forum with an encoded slash (..%2F)',
    app: 'subfolder',
    query: (c) => returningTo(`${c.forumUrl}/..%2Fadmin/sso_login`)(),
    status: 403,
  },
  {
    name: 'return_sso_url leaving a subfolder forum with an encoded backslash (..%5C)',
    app: 'subfolder',
    query: (c) => returningTo(`${c.forumUrl}/..%5cadmin/sso_login`)(),
    status: 403,
  },
  {
    name: 'payload signed with another secret (unknown forum)',
    query: (c) => signedQuery(c.valid(), 'another-forums-secret-0123456789'),
    status: 403,
  },
];

type Who = 'anonymous' | 'signed-in';
type ForumKind = 'root' | 'subfolder';

/**
 * One app at a time: the Discord passport strategy is registered process-wide, so two apps running
 * side by side in one process would share the last one's callback URL.
 */
describe.each(
  HTTP_ADAPTERS.flatMap((adapter) =>
    (['forRoot', 'forRootAsync'] as ModuleStyle[]).map((style) => [adapter, style] as const),
  ),
)('GET /discourse/sso with bad input (%s, %s)', (adapter, style) => {
  describe.each<ForumKind>(['root', 'subfolder'])('forum at the %s', (kind) => {
    let h: Harness;
    const browsers: Record<Who, TestBrowser> = {
      anonymous: new TestBrowser(),
      'signed-in': new TestBrowser(),
    };
    const cases = CASES.filter((c) => (c.app ?? 'root') === kind);

    beforeAll(async () => {
      h = await startHarness(
        style,
        kind === 'subfolder' ? { adapter, forumPath: '/forum' } : { adapter },
      );
      h.discord.knobs.autoApproveAs = DISCORD_FIXTURES.migrated.id;
      if (kind === 'root') {
        // Signed in once through the forum's own flow.
        const page = await browsers['signed-in'].visit(
          `${h.forum.baseUrl}/session/sso?return_path=%2F`,
        );
        expect(page.status).toBe(200);
        expect(h.forum.stats.ssoLogins).toBe(1);
      } else {
        // The simulated forum always sends its root as return_sso_url, so sign in on the app directly.
        await browsers['signed-in'].visit(`${h.appUrl}/auth/discord`);
        const link = await browsers['signed-in'].request(`${h.appUrl}/discourse/forum`);
        expect(link.headers.get('location')).toBe(`${h.forumUrl}/session/sso?return_path=%2F`);
      }
    });
    afterAll(async () => h?.close());

    const ctx = (): Ctx => ({
      forumUrl: h.forumUrl,
      forumOrigin: new URL(h.forumUrl).origin,
      valid: () => validPayload(h.forumUrl),
    });

    describe.each<Who>(['anonymous', 'signed-in'])('%s browser', (who) => {
      it('a valid request is accepted (control)', async () => {
        const res = await browsers[who].request(
          `${h.appUrl}/discourse/sso?${signedQuery(validPayload(h.forumUrl))}`,
        );
        expect(res.status).toBe(302);
        const location = res.headers.get('location')!;
        if (who === 'anonymous') {
          expect(location).toBe('/auth/discord?continue=1');
        } else {
          expect(location.startsWith(`${h.forumUrl}/session/sso_login?sso=`)).toBe(true);
          const back = new URL(location).searchParams;
          expect(back.get('sig')).toBe(hmac(back.get('sso')!));
        }
      });

      it('a valid request with Ruby-style newlines in the base64 is accepted (control)', async () => {
        const text = `${validPayload(h.forumUrl)}&pad=${'p'.repeat(80)}`;
        const sso = `${(b64(text).match(/.{1,60}/g) ?? []).join('\n')}\n`;
        const res = await browsers[who].request(
          `${h.appUrl}/discourse/sso?sso=${encodeURIComponent(sso)}&sig=${hmac(sso)}`,
        );
        expect(res.status).toBe(302);
      });

      it.each(cases.map((c) => [c.name, c] as const))(
        '%s → a readable 4xx page, no redirect, no forum login',
        async (_n, c) => {
          const before = h.forum.stats.ssoLogins;
          const res = await browsers[who].request(`${h.appUrl}/discourse/sso?${c.query(ctx())}`);
          const body = await res.text();
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
          if (c.status) expect(res.status).toBe(c.status);
          expect(res.headers.get('location')).toBeNull();
          expect(res.headers.get('content-type')).toMatch(/^text\/html/);
          expect(body).toMatch(/<h1>[^<]*\w[^<]*<\/h1>/);
          expect(body).toMatch(/<p id="message">[^<]*[A-Za-z]{3,} [^<]*[.!?]<\/p>/);
          expect(body).not.toMatch(/\bat \S+ \(/);
          expect(body).not.toMatch(/\.ts:\d+/);
          expect(body).not.toMatch(/node_modules|Error:/);
          expect(body).not.toContain(FORUM_SECRET);
          expect(h.forum.stats.ssoLogins).toBe(before);
        },
      );

      if (kind !== 'root') return;

      it('a huge sso (100 KB) is refused with a 4xx, never a 5xx', async () => {
        const before = h.forum.stats.ssoLogins;
        const sso = b64(`${validPayload(h.forumUrl)}&bio=${'x'.repeat(75_000)}`);
        expect(sso.length).toBeGreaterThanOrEqual(100_000);
        const res = await browsers[who].request(
          `${h.appUrl}/discourse/sso?sso=${encodeURIComponent(sso)}&sig=${hmac(sso)}`,
        );
        await res.arrayBuffer();
        expect([400, 414, 431]).toContain(res.status);
        expect(res.headers.get('location')).toBeNull();
        expect(h.forum.stats.ssoLogins).toBe(before);
      });

      it.each([
        ['missing sig', (c: Ctx) => `sso=${encodeURIComponent(b64(c.valid()))}`, 400],
        [
          'unknown forum',
          (c: Ctx) => signedQuery(c.valid(), 'another-forums-secret-0123456789'),
          403,
        ],
        [
          'foreign return_sso_url',
          () => returningTo('https://evil.example/session/sso_login')(),
          403,
        ],
      ] as const)('a JSON client gets a JSON 4xx body (%s)', async (_n, query, status) => {
        const res = await browsers[who].request(`${h.appUrl}/discourse/sso?${query(ctx())}`, {
          headers: { accept: 'application/json' },
        });
        expect(res.status).toBe(status);
        expect(res.headers.get('content-type')).toMatch(/^application\/json/);
        expect(res.headers.get('location')).toBeNull();
        const body = (await res.json()) as { statusCode: number; error: string; message: string };
        expect(body.statusCode).toBe(status);
        expect(typeof body.error).toBe('string');
        expect(body.message).toMatch(/\w+ \w+/);
        expect(JSON.stringify(body)).not.toMatch(/\.ts:\d+|\bat \S+ \(/);
      });
    });
  });
});
