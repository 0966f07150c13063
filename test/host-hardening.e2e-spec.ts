import { createHmac } from 'node:crypto';
import { deflateSync, gzipSync } from 'node:zlib';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { startAdversarialHarness, WEBHOOK_SECRET } from './adversarial/adversarial-support';
import { TestBrowser } from './support/browser';
import type { Harness, HttpAdapterName } from './support/harness';
import { rawRequest, slowRequest } from './support/raw-http';
import { nextEventId } from './support/signing';

/**
 * What the bundled host sets on both adapters (time limits, no X-Powered-By, router options without
 * deprecation warnings) and the module's answers to input the two adapters used to treat
 * differently: the stricter answer on both.
 */
describe.each<HttpAdapterName>(['fastify', 'express'])('host and hostile input (%s)', (adapter) => {
  let h: Harness;
  const warnings: string[] = [];
  const signedIn = new TestBrowser();

  beforeAll(async () => {
    const emitWarning = jest.spyOn(process, 'emitWarning');
    try {
      h = await startAdversarialHarness(adapter, {
        timeouts: { requestMs: 1000, headersMs: 1000, idleMs: 1000, keepAliveMs: 1000 },
      });
      await new Promise((r) => setImmediate(r));
      // process.emitWarning(message, name, code) or (message, { code }): every argument, as text.
      for (const args of emitWarning.mock.calls)
        warnings.push(
          args.map((a) => (typeof a === 'object' ? JSON.stringify(a) : String(a))).join(' '),
        );
    } finally {
      emitWarning.mockRestore();
    }
    h.discord.knobs.autoApproveAs = DISCORD_FIXTURES.migrated.id;
    await signedIn.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
  });
  afterAll(async () => h?.close());

  const sign = (raw: string | Buffer) =>
    `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(raw).digest('hex')}`;
  const webhookHeaders = (signed: string | Buffer, extra: Record<string, string>) => ({
    'x-discourse-instance': h.forum.baseUrl,
    'x-discourse-event': 'ping',
    'x-discourse-event-id': nextEventId(),
    'x-discourse-event-signature': sign(signed),
    ...extra,
  });

  it('boots without a deprecation warning from Fastify (FSTDEP…)', () => {
    expect(warnings.filter((w) => /FSTDEP/.test(w))).toEqual([]);
  });

  it('sends no X-Powered-By, on the module’s routes, the host’s 404 and an error page', async () => {
    for (const path of ['/health', '/discourse/sso?sso=x&sig=y', '/nowhere']) {
      const res = await fetch(`${h.appUrl}${path}`, { redirect: 'manual' });
      await res.arrayBuffer();
      expect(res.headers.get('x-powered-by')).toBeNull();
    }
  });

  it('cuts a request whose body trickles in slower than the request time limit (408, connection closed)', async () => {
    const body = '{"user":{"id":1,"username":"slow"}}';
    const head = `POST /discourse/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const answer = await slowRequest(h.appUrl, { head, body, tickMs: 150, giveUpMs: 6000 });
    expect(answer.closed).toBe(true);
    expect(answer.elapsedMs).toBeLessThan(4000);
    if (answer.status !== undefined) expect(answer.status).toBe(408);
    expect((await fetch(`${h.appUrl}/health`)).status).toBe(200);
  });

  it.each([
    ['/discourse/%6Cogout'],
    ['/discourse/%73so?sso=x&sig=y'],
    ['/%64iscourse/forum'],
    ['/auth/discord%2Fcallback?code=a&state=b'],
    ['/heal%74h'],
  ])(
    '%s (percent-encoded letters in a module route’s path) → 404, as an unknown path',
    async (path) => {
      const res = await signedIn.request(`${h.appUrl}${path}`);
      expect(res.status).toBe(404);
      expect(res.headers.get('location')).toBeNull();
      expect(await res.text()).toContain('Not Found');
    },
  );

  it.each<[string, (s: string) => Buffer]>([
    ['gzip', (s) => gzipSync(s)],
    ['deflate', (s) => deflateSync(s)],
  ])('a %s-encoded webhook → 415 with the module’s page', async (encoding, encode) => {
    const json = '{"user":{"id":1,"username":"x"}}';
    const res = await fetch(`${h.appUrl}/discourse/webhooks`, {
      method: 'POST',
      headers: webhookHeaders(json, {
        'content-type': 'application/json',
        'content-encoding': encoding,
        accept: 'text/html',
      }),
      body: encode(json),
    });
    expect(res.status).toBe(415);
    expect(await res.text()).toContain('Content-Encoding');
  });

  it.each([
    ['utf-16', 'utf16le'],
    ['latin1', 'latin1'],
  ] as const)(
    'a webhook in JSON with charset=%s → 415 with the module’s page',
    async (charset, encoding) => {
      const raw = Buffer.from('{"user":{"id":1,"username":"x"}}', encoding);
      const res = await fetch(`${h.appUrl}/discourse/webhooks`, {
        method: 'POST',
        headers: webhookHeaders(raw, {
          'content-type': `application/json; charset=${charset}`,
          accept: 'text/html',
        }),
        body: raw,
      });
      expect(res.status).toBe(415);
      expect(await res.text()).toContain('UTF-8');
    },
  );

  it('a validly signed UTF-8 webhook is still accepted (charset=utf-8, Content-Encoding: identity)', async () => {
    const json = '{"user":{"id":1,"username":"x"}}';
    const res = await fetch(`${h.appUrl}/discourse/webhooks`, {
      method: 'POST',
      headers: webhookHeaders(json, {
        'content-type': 'application/json; charset=UTF-8',
        'content-encoding': 'identity',
      }),
      body: json,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'pong' });
  });

  it.each([
    ['malformed JSON', 'application/json', '{x'],
    ['valid JSON', 'application/json', '{"a":1}'],
    ['a UTF-16 JSON body', 'application/json; charset=utf-16', '{}'],
    ['a form body', 'application/x-www-form-urlencoded', 'a=1&a=2'],
  ])('GET /health with %s → answered as without a body', async (_n, contentType, body) => {
    const res = await rawRequest(`${h.appUrl}/health`, {
      method: 'GET',
      headers: { 'content-type': contentType },
      body,
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string }).status).toBe('ok');
  });

  it('GET /discourse/forum with a malformed JSON body still redirects (to sign-in)', async () => {
    const res = await rawRequest(`${h.appUrl}/discourse/forum?return_path=%2Ft%2F1`, {
      method: 'GET',
      headers: { 'content-type': 'application/json' },
      body: '{x',
    });
    expect([302, 303]).toContain(res.status);
  });
});
