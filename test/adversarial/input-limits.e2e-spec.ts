import { createHmac, randomBytes } from 'node:crypto';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { HTTP_ADAPTERS, type Harness } from '../support/harness';
import { slowRequest } from '../support/raw-http';
import {
  expectCleanErrorBody,
  expectNothingWritten,
  snapshot,
  startAdversarialHarness,
  WEBHOOK_SECRET,
} from './adversarial-support';
import { b64, hmac, nextEventId } from '../support/signing';

/**
 * Input size and shape: oversized queries and bodies, heavily repeated parameters, invalid UTF-8 and
 * NUL bytes. Every one gets a 4xx (never a 5xx, never a redirect), memory stays bounded and the
 * process keeps answering. A 100 KB `sso` and the 5 KB limit are in test/sso-bad-input.e2e-spec.ts.
 */

describe.each(HTTP_ADAPTERS)('adversarial: input size and shape (%s)', (adapter) => {
  let h: Harness;
  const anonymous = new TestBrowser();
  const signedIn = new TestBrowser();

  beforeAll(async () => {
    h = await startAdversarialHarness(adapter);
    h.discord.knobs.autoApproveAs = DISCORD_FIXTURES.migrated.id;
    await signedIn.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
  });
  afterAll(async () => h?.close());

  const validSso = () =>
    b64(
      new URLSearchParams({
        nonce: randomBytes(16).toString('hex'),
        return_sso_url: `${h.forumUrl}/session/sso_login`,
      }).toString(),
    );

  const health = async () => (await fetch(`${h.appUrl}/health`)).status;

  async function expect4xx(
    res: Response,
    opts: { status?: number | number[] } = {},
  ): Promise<string> {
    const text = await res.text();
    if (opts.status !== undefined) expect([opts.status].flat()).toContain(res.status);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.headers.get('location')).toBeNull();
    expectCleanErrorBody(text);
    return text;
  }

  describe.each([
    ['anonymous', () => anonymous],
    ['signed-in', () => signedIn],
  ] as const)('%s browser', (_who, browser) => {
    it.each<[string, () => string, number | number[]]>([
      [
        'a 1 MB query string',
        () => `/discourse/sso?sso=${'A'.repeat(1_000_000)}&sig=${'0'.repeat(64)}`,
        [414, 431],
      ],
      [
        'a 60 KB query string under the header limit',
        () => `/discourse/sso?sso=${'A'.repeat(60_000)}&sig=${'0'.repeat(64)}`,
        [400, 414, 431],
      ],
      [
        'sso repeated 5,000 times',
        () => `/discourse/sso?${'sso=AAAA&'.repeat(5000)}sig=${'0'.repeat(64)}`,
        [400, 414, 431],
      ],
      [
        'sso and sig repeated 900 times each, validly signed',
        () => {
          const sso = encodeURIComponent(validSso());
          return `/discourse/sso?${`sso=${sso}&sig=${hmac(decodeURIComponent(sso))}&`.repeat(900)}`;
        },
        [400, 414, 431],
      ],
      [
        '2,000 unrelated parameters before a valid pair',
        () => {
          const sso = validSso();
          return `/discourse/sso?${'x=1&'.repeat(2000)}sso=${encodeURIComponent(sso)}&sig=${hmac(sso)}`;
        },
        [400, 414, 431],
      ],
      [
        'a deeply nested bracket key',
        () => `/discourse/sso?${'sso' + '[a]'.repeat(500)}=AAAA&sig=${'0'.repeat(64)}`,
        400,
      ],
      ['invalid UTF-8 in sso', () => `/discourse/sso?sso=%FF%FE%C0%AF&sig=${hmac('\uFFFD')}`, 400],
      [
        'invalid UTF-8 in sig',
        () => `/discourse/sso?sso=${encodeURIComponent(validSso())}&sig=%FF${'0'.repeat(63)}`,
        400,
      ],
      [
        'an overlong UTF-8 slash in sso',
        () => `/discourse/sso?sso=%C0%AF&sig=${'0'.repeat(64)}`,
        400,
      ],
      [
        'a NUL byte in sso',
        () => {
          const sso = `${validSso()}\u0000`;
          return `/discourse/sso?sso=${encodeURIComponent(sso)}&sig=${hmac(sso)}`;
        },
        400,
      ],
      [
        'a NUL byte in sig',
        () => `/discourse/sso?sso=${encodeURIComponent(validSso())}&sig=%00${'0'.repeat(63)}`,
        400,
      ],
      ['invalid UTF-8 in returnTo', () => '/auth/discord?returnTo=%2F%FF%FE', 400],
      ['a NUL byte in returnTo', () => '/auth/discord?returnTo=%2Fa%00b', 400],
      ['invalid UTF-8 in return_path', () => '/discourse/forum?return_path=%2Ft%2F%C3%28', 400],
      ['a NUL byte in return_path', () => '/discourse/forum?return_path=%2Ft%00', 400],
      ['a 10 KB returnTo', () => `/auth/discord?returnTo=%2F${'a'.repeat(10_000)}`, 400],
      ['a 10 KB return_path', () => `/discourse/forum?return_path=%2F${'a'.repeat(10_000)}`, 400],
      [
        'returnTo repeated 3,000 times',
        () => `/auth/discord?${'returnTo=%2F&'.repeat(3000)}`,
        [400, 431],
      ],
      [
        'invalid UTF-8 in the callback code and state',
        () => '/auth/discord/callback?code=%FF&state=%FE',
        403,
      ],
      ['a NUL byte in the callback code', () => '/auth/discord/callback?code=a%00b&state=x', 403],
      [
        'an empty code on the callback (must not start a new authorization)',
        () => '/auth/discord/callback?code=&state=x',
        400,
      ],
      ['an empty error on the callback', () => '/auth/discord/callback?error=', 400],
      [
        'code repeated on the callback',
        () => '/auth/discord/callback?code=a&code=b&state=x',
        [400, 403],
      ],
    ])('%s → 4xx, nothing written or sent', async (_n, path, status) => {
      const before = await snapshot(h);
      const authorizeBefore = h.discord.stats.authorizeRequests;
      const tokensBefore = h.discord.stats.tokenExchanges;
      const res = await browser().request(`${h.appUrl}${path()}`);
      await expect4xx(res, { status });
      await expectNothingWritten(h, before);
      expect(h.discord.stats.authorizeRequests).toBe(authorizeBefore);
      expect(h.discord.stats.tokenExchanges).toBe(tokensBefore);
      expect(await health()).toBe(200);
    });
  });

  describe('bodies', () => {
    const sign = (raw: string | Buffer) =>
      `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(raw).digest('hex')}`;
    const webhook = (raw: string | Buffer, contentType = 'application/json') =>
      fetch(`${h.appUrl}/discourse/webhooks`, {
        method: 'POST',
        headers: {
          'content-type': contentType,
          'x-discourse-instance': h.forum.baseUrl,
          'x-discourse-event': 'user_updated',
          'x-discourse-event-id': nextEventId(),
          'x-discourse-event-signature': sign(raw),
        },
        body: raw,
      });

    it.each<[string, () => string | Buffer, string | undefined, number | number[]]>([
      [
        'a 5 MB validly signed JSON body',
        () => JSON.stringify({ user: { id: 1, username: 'x', bio: 'x'.repeat(5_000_000) } }),
        undefined,
        413,
      ],
      [
        'JSON nested 50,000 levels deep',
        () => `${'['.repeat(50_000)}${']'.repeat(50_000)}`,
        undefined,
        [400, 413, 422],
      ],
      [
        'invalid UTF-8 in a validly signed JSON body',
        () =>
          Buffer.concat([
            Buffer.from('{"user":{"id":1,"username":"'),
            Buffer.from([0xff, 0xfe]),
            Buffer.from('"}}'),
          ]),
        undefined,
        [400, 422],
      ],
      [
        'a NUL byte in a validly signed JSON body',
        () => '{"user":{"id":1,"username":"a\u0000b"}}\u0000',
        undefined,
        [400, 422],
      ],
      ['JSON that is not an object', () => '"just a string"', undefined, [400, 422]],
      [
        'JSON with __proto__ keys',
        () =>
          '{"__proto__":{"user":{"id":1,"username":"x"}},"constructor":{"prototype":{"polluted":true}}}',
        undefined,
        400,
      ],
      [
        'a form body with 5,000 repeated keys',
        () => 'user=1&'.repeat(5000),
        'application/x-www-form-urlencoded',
        [400, 413, 415, 422],
      ],
    ])('a webhook with %s → 4xx, the process stays up', async (_n, raw, contentType, status) => {
      const before = await snapshot(h);
      const res = await webhook(raw(), contentType);
      await expect4xx(res, { status });
      await expectNothingWritten(h, before, { sessions: true });
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(await health()).toBe(200);
    });

    it('a 5 MB form body on sign-out → 4xx, still signed in', async () => {
      const before = await snapshot(h);
      const res = await signedIn.request(`${h.appUrl}/auth/logout`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: h.appUrl },
        body: `a=${'x'.repeat(5_000_000)}`,
      });
      await expect4xx(res, { status: 413 });
      await expectNothingWritten(h, before, { sessions: true });
      expect(
        (await signedIn.request(`${h.appUrl}/discourse/forum`)).headers.get('location'),
      ).toContain('/session/sso?');
    });
  });

  it('memory stays bounded under a burst of large refused requests, and the app keeps answering', async () => {
    const rssBefore = process.memoryUsage().rss;
    const big = 'A'.repeat(12_000);
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const res =
            i % 2 === 0
              ? await fetch(`${h.appUrl}/discourse/sso?sso=${big}&sig=${'0'.repeat(64)}`)
              : await fetch(`${h.appUrl}/discourse/webhooks`, {
                  method: 'POST',
                  headers: {
                    'content-type': 'application/json',
                    'x-discourse-event-signature': `sha256=${'0'.repeat(64)}`,
                  },
                  body: JSON.stringify({ pad: 'x'.repeat(90_000) }),
                });
          await res.arrayBuffer();
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
        }),
      );
    }
    // 200 requests of up to 90 KB each: the process (app, simulators and test together) grows far
    // less than it would if bodies or queries were kept.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(150 * 1024 * 1024);
    expect(await health()).toBe(200);
    const sso = validSso();
    expect(
      (
        await anonymous.request(
          `${h.appUrl}/discourse/sso?sso=${encodeURIComponent(sso)}&sig=${hmac(sso)}`,
        )
      ).status,
    ).toBe(302);
  });
});

/**
 * Bodies in an encoding or charset the module does not read: 415 with the module's page on both
 * adapters (Express would inflate gzip and decode UTF-16; Fastify would read latin1), nothing
 * written, even when the signature covers the bytes as the server would have read them.
 */
describe.each(HTTP_ADAPTERS)('adversarial: content encodings and charsets (%s)', (adapter) => {
  let h: Harness;
  const signedIn = new TestBrowser();
  beforeAll(async () => {
    h = await startAdversarialHarness(adapter);
    h.discord.knobs.autoApproveAs = DISCORD_FIXTURES.migrated.id;
    await signedIn.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
  });
  afterAll(async () => h?.close());

  const json = '{"user":{"id":1,"username":"encoded"}}';
  const webhook = (body: Buffer, signedOver: Buffer, headers: Record<string, string>) =>
    fetch(`${h.appUrl}/discourse/webhooks`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-discourse-instance': h.forum.baseUrl,
        'x-discourse-event': 'user_updated',
        'x-discourse-event-id': nextEventId(),
        'x-discourse-event-signature': `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(signedOver).digest('hex')}`,
        ...headers,
      },
      body,
    });

  it.each<[string, (b: Buffer) => Buffer]>([
    ['gzip', (b) => gzipSync(b)],
    ['x-gzip', (b) => gzipSync(b)],
    ['GZIP', (b) => gzipSync(b)],
    ['deflate', (b) => deflateSync(b)],
    ['br', (b) => brotliCompressSync(b)],
    ['compress', (b) => b],
    ['identity, gzip', (b) => gzipSync(b)],
    ['gzip, gzip', (b) => gzipSync(gzipSync(b))],
    ['zstd', (b) => b],
  ])('a webhook with Content-Encoding: %s → 415, nothing written', async (encoding, encode) => {
    const before = await snapshot(h);
    for (const signedOver of [Buffer.from(json), encode(Buffer.from(json))]) {
      const res = await webhook(encode(Buffer.from(json)), signedOver, {
        'content-encoding': encoding,
      });
      expect(res.status).toBe(415);
      expectCleanErrorBody(await res.text());
    }
    await expectNothingWritten(h, before, { sessions: true });
  });

  it.each<[string, BufferEncoding]>([
    ['utf-16', 'utf16le'],
    ['utf-16le', 'utf16le'],
    ['UTF-16BE', 'utf16le'],
    ['"utf-16"', 'utf16le'],
    ['latin1', 'latin1'],
    ['iso-8859-1', 'latin1'],
    ['windows-1252', 'latin1'],
    ['us-ascii', 'ascii'],
    ['utf8', 'utf8'],
    ['utf-7', 'utf8'],
  ])('a webhook in JSON with charset=%s → 415, nothing written', async (charset, encoding) => {
    const before = await snapshot(h);
    const raw = Buffer.from(json, encoding);
    const res = await webhook(raw, raw, { 'content-type': `application/json; charset=${charset}` });
    expect(res.status).toBe(415);
    expectCleanErrorBody(await res.text());
    await expectNothingWritten(h, before, { sessions: true });
  });

  it.each(['utf-8', 'UTF-8', '"utf-8"'])(
    'charset=%s is UTF-8: the webhook is processed',
    async (charset) => {
      // A body of its own per case: a signed body already processed is refused (409) by design.
      const raw = Buffer.from(
        JSON.stringify({
          user: { id: 7, username: `utf8-${Buffer.from(charset).toString('hex')}` },
        }),
      );
      const res = await webhook(raw, raw, {
        'content-type': `application/json; charset=${charset}`,
      });
      expect(res.status).toBe(200);
    },
  );

  it.each(['gzip', 'deflate', 'br'])(
    'sign-out with a %s-encoded form body → 415, still signed in',
    async (encoding) => {
      const res = await signedIn.request(`${h.appUrl}/auth/logout`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-encoding': encoding,
          origin: h.appUrl,
        },
        body: gzipSync('a=1'),
      });
      expect(res.status).toBe(415);
      expectCleanErrorBody(await res.text());
      expect(
        (await signedIn.request(`${h.appUrl}/discourse/forum`)).headers.get('location'),
      ).toContain('/session/sso?');
    },
  );
});

/**
 * Slow clients: a request whose headers or body trickle in (or stop) is cut at the host's request
 * time limit, on both adapters, with a 408 or a closed connection, and the app keeps answering.
 * The limit is 1 s here (30 s in the bundled app) so the test takes seconds.
 */
describe.each(HTTP_ADAPTERS)('adversarial: slow bodies (%s)', (adapter) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startAdversarialHarness(adapter, {
      timeouts: { requestMs: 1000, headersMs: 1000, idleMs: 1500, keepAliveMs: 1000 },
    });
  });
  afterAll(async () => h?.close());

  const webhookBody = JSON.stringify({ user: { id: 1, username: 'slow' } });
  const post = (path: string, contentType: string, body: string, extra = '') =>
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n`;

  it.each<[string, () => Parameters<typeof slowRequest>[1]]>([
    [
      'a webhook body, one byte every 150 ms',
      () => ({
        head: post('/discourse/webhooks', 'application/json', webhookBody),
        body: webhookBody,
        tickMs: 150,
        giveUpMs: 6000,
      }),
    ],
    [
      'a webhook body that stops half-way',
      () => ({
        head: post('/discourse/webhooks', 'application/json', webhookBody),
        body: webhookBody,
        tickMs: 10,
        bytesPerTick: 4,
        stallAfter: 16,
        giveUpMs: 6000,
      }),
    ],
    [
      'a chunked body, one chunk every 150 ms',
      () => ({
        head: 'POST /discourse/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
        body: '1\r\n{\r\n'.repeat(60),
        tickMs: 150,
        bytesPerTick: 6,
        giveUpMs: 6000,
      }),
    ],
    [
      'a sign-out form body, one byte every 150 ms',
      () => ({
        head: post('/auth/logout', 'application/x-www-form-urlencoded', 'a='.padEnd(60, 'x')),
        body: 'a='.padEnd(60, 'x'),
        tickMs: 150,
        giveUpMs: 6000,
      }),
    ],
    [
      'headers, one byte every 100 ms',
      () => ({
        head: `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${'x'.repeat(80)}\r\n\r\n`,
        slowHead: true,
        tickMs: 100,
        giveUpMs: 6000,
      }),
    ],
  ])('%s → cut near the time limit, the app keeps answering', async (_n, opts) => {
    const before = await snapshot(h);
    const answer = await slowRequest(h.appUrl, opts());
    expect(answer.closed).toBe(true);
    expect(answer.elapsedMs).toBeLessThan(4000);
    if (answer.status !== undefined) expect(answer.status).toBe(408);
    await expectNothingWritten(h, before, { sessions: true });
    expect((await fetch(`${h.appUrl}/health`)).status).toBe(200);
  });

  it('a request sent at once still gets through under the short limit', async () => {
    const res = await fetch(`${h.appUrl}/discourse/sso?sso=x&sig=y`);
    expect(res.status).toBe(400);
  });
});
