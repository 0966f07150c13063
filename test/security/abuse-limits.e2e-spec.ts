import { Controller, Get } from '@nestjs/common';
import {
  DiscourseConnectSettings,
  discourseConnectOptionsFromEnv,
} from 'nestjs-discourse-connect/internal';
import { HTTP_ADAPTERS, startHarness, type Harness, type ModuleStyle } from '../support/harness';

/** A host route: neither the module's rate limit nor its security headers apply to it. */
@Controller('host')
class HostController {
  @Get('ping')
  ping() {
    return { ok: true };
  }
}

const LIMIT = 3;

describe.each(
  HTTP_ADAPTERS.flatMap((adapter) =>
    (['forRoot', 'forRootAsync'] as ModuleStyle[]).map((style) => [adapter, style] as const),
  ),
)('per-IP rate limit and security headers (%s, %s)', (adapter, style) => {
  let h: Harness;
  beforeAll(async () => {
    // As behind one reverse proxy (what TRUST_PROXY=true does in the bundled app): the client
    // address comes from X-Forwarded-For, so each test below can be its own client.
    h = await startHarness(style, {
      adapter,
      trustProxy: true,
      rateLimit: { limit: LIMIT, ttlSeconds: 60 },
      controllers: [HostController],
    });
  });
  afterAll(async () => h.close());

  let n = 0;
  /** A fresh client address for each test. */
  const newClient = () => `203.0.113.${++n}`;
  const get = (path: string, ip: string, headers: Record<string, string> = {}) =>
    fetch(`${h.appUrl}${path}`, {
      redirect: 'manual',
      headers: { 'x-forwarded-for': ip, ...headers },
    });

  it.each(['/auth/discord', '/discourse/sso?sso=x&sig=y', '/auth/discord/callback?code=x&state=y'])(
    `lets %s through ${LIMIT} times per client, then answers a readable 429 with Retry-After`,
    async (path) => {
      const ip = newClient();
      for (let i = 0; i < LIMIT; i++) {
        const res = await get(path, ip);
        expect(res.status).not.toBe(429);
        await res.arrayBuffer();
      }
      const page = await get(path, ip, { accept: 'text/html' });
      expect(page.status).toBe(429);
      const retryAfter = Number(page.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      expect(page.headers.get('cache-control')).toBe('no-store');
      const body = await page.text();
      expect(body).toContain('Too many attempts');
      expect(body).toMatch(/Please wait \d+ seconds/);
      expect(body).not.toMatch(/ThrottlerException|at .*\.js/);

      const json = await get(path, ip, { accept: 'application/json' });
      expect(json.status).toBe(429);
      expect(json.headers.get('retry-after')).toBeTruthy();
      expect(await json.json()).toMatchObject({ statusCode: 429, error: 'Too many attempts' });

      // Another client is not affected.
      expect((await get(path, newClient())).status).not.toBe(429);
    },
  );

  it('limits POST /auth/logout too', async () => {
    const ip = newClient();
    const post = () =>
      fetch(`${h.appUrl}/auth/logout`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'x-forwarded-for': ip, origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
      });
    for (let i = 0; i < LIMIT; i++) expect((await post()).status).toBe(303);
    expect((await post()).status).toBe(429);
  });

  it('counts each route separately and leaves host routes and other module routes alone', async () => {
    const ip = newClient();
    for (let i = 0; i < LIMIT + 1; i++) await (await get('/auth/discord', ip)).arrayBuffer();
    expect((await get('/auth/discord', ip)).status).toBe(429);
    expect((await get('/discourse/sso?sso=x&sig=y', ip)).status).toBe(400);
    for (let i = 0; i < LIMIT * 3; i++) {
      expect((await get('/host/ping', ip)).status).toBe(200);
      expect((await get('/discourse/forum', ip)).status).toBe(302);
      expect((await get('/health', ip)).status).toBe(200);
    }
  });

  it('sends security headers on the module pages and leaves host pages to the host', async () => {
    const page = await get('/discourse/sso?sso=x&sig=y', newClient(), { accept: 'text/html' });
    expect(page.status).toBe(400);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("style-src 'unsafe-inline'");
    expect(csp).toContain("form-action 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('upgrade-insecure-requests'); // http here; only with an https publicUrl
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('strict-transport-security')).toBeNull();
    expect(page.headers.get('x-powered-by')).toBeNull();
    // The page's only style is inline and it has no script: the policy does not break it.
    const body = await page.text();
    expect(body).toContain('<style>');
    expect(body).not.toContain('<script');

    for (const path of ['/auth/discord', '/discourse/logout', '/health']) {
      const res = await get(path, newClient());
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    }

    const host = await get('/host/ping', newClient());
    expect(host.headers.get('content-security-policy')).toBeNull();
    expect(host.headers.get('x-frame-options')).toBeNull();
  });
});

describe('rate limit options', () => {
  it('is on by default at 30 requests per minute and can be turned off', () => {
    const base = {
      forums: [{ url: 'https://forum.example.com', secret: 'forum-secret-0123' }],
      discord: { clientId: 'id', clientSecret: 'secret' },
      publicUrl: 'https://example.com',
      session: { secret: 's'.repeat(32) },
    };
    expect(new DiscourseConnectSettings(base).rateLimit).toEqual({
      enabled: true,
      limit: 30,
      ttlSeconds: 60,
    });
    expect(new DiscourseConnectSettings({ ...base, rateLimit: false }).rateLimit.enabled).toBe(
      false,
    );
    expect(() => new DiscourseConnectSettings({ ...base, rateLimit: { limit: 0 } })).toThrow(
      /rateLimit.limit/,
    );

    const env = {
      DISCOURSE_URL: 'https://forum.example.com',
      DISCOURSE_CONNECT_SECRET: 'forum-secret-0123',
      DISCORD_CLIENT_ID: 'id',
      DISCORD_CLIENT_SECRET: 'secret',
      PUBLIC_URL: 'https://example.com',
      SESSION_SECRET: 's'.repeat(32),
    };
    expect(discourseConnectOptionsFromEnv(env).rateLimit).toBeUndefined();
    expect(
      discourseConnectOptionsFromEnv({ ...env, DISCOURSE_CONNECT_RATE_LIMIT: 'off' }).rateLimit,
    ).toBe(false);
    expect(
      discourseConnectOptionsFromEnv({ ...env, DISCOURSE_CONNECT_RATE_LIMIT: '120' }).rateLimit,
    ).toEqual({ limit: 120, ttlSeconds: 60 });
    expect(() =>
      discourseConnectOptionsFromEnv({ ...env, DISCOURSE_CONNECT_RATE_LIMIT: 'lots' }),
    ).toThrow(/DISCOURSE_CONNECT_RATE_LIMIT/);
  });
});
