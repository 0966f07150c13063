import { Controller, Get } from '@nestjs/common';
import {
  DiscourseConnectSettings,
  discourseConnectOptionsFromEnv,
} from 'nestjs-discourse-connect/internal';
import { untrustedProxyHop, isPrivateAddress } from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { HTTP_ADAPTERS, startHarness, type Harness, type ModuleStyle } from '../support/harness';

/** A host route: neither the module's rate limit nor its security headers apply to it. */
@Controller('host')
class HostController {
  @Get('ping')
  ping() {
    return { ok: true };
  }

  /** Host routes whose paths end like module routes (`/health`, `/auth/discord`). */
  @Get('health')
  health() {
    return { ok: true };
  }

  @Get('auth/discord')
  discord() {
    return { ok: true };
  }
}

const LIMIT = 3;
/** The per-route budget of valid requests in these tests (forRoot; forRootAsync keeps the default 200). */
const REQUEST_LIMIT = 6;

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
      rateLimit: { limit: LIMIT, requestLimit: REQUEST_LIMIT, ttlSeconds: 60 },
      controllers: [HostController],
    });
  });
  afterAll(async () => h.close());
  const requestLimit = style === 'forRoot' ? REQUEST_LIMIT : 200;

  let n = 0;
  /** A fresh client address for each test. */
  const newClient = () => `203.0.113.${++n}`;
  const get = (path: string, ip: string, headers: Record<string, string> = {}) =>
    fetch(`${h.appUrl}${path}`, {
      redirect: 'manual',
      headers: { 'x-forwarded-for': ip, ...headers },
    });

  async function expectReadable429(res: Response, json: Response) {
    expect(res.status).toBe(429);
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = await res.text();
    expect(body).toContain('Too many attempts');
    expect(body).toMatch(/Please wait \d+ seconds/);
    expect(body).not.toMatch(/ThrottlerException|at .*\.js/);
    expect(json.status).toBe(429);
    expect(json.headers.get('retry-after')).toBeTruthy();
    expect(await json.json()).toMatchObject({ statusCode: 429, error: 'Too many attempts' });
  }

  it.each(['/discourse/sso?sso=x&sig=y', '/auth/discord/callback?code=x&state=y'])(
    `lets %s fail ${LIMIT} times per client, then answers a readable 429 with Retry-After`,
    async (path) => {
      const ip = newClient();
      for (let i = 0; i < LIMIT; i++) {
        const res = await get(path, ip);
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).not.toBe(429);
        await res.arrayBuffer();
      }
      await expectReadable429(
        await get(path, ip, { accept: 'text/html' }),
        await get(path, ip, { accept: 'application/json' }),
      );
      // Another client is not affected.
      expect((await get(path, newClient())).status).not.toBe(429);
    },
  );

  it('a client that keeps failing is refused on every limited route, valid requests included', async () => {
    const ip = newClient();
    for (let i = 0; i < LIMIT; i++) {
      await (await get('/discourse/sso?sso=x&sig=y', ip)).arrayBuffer();
    }
    expect((await get('/auth/discord', ip)).status).toBe(429);
    expect((await get('/auth/discord/callback?code=x&state=y', ip)).status).toBe(429);
    // Routes without the limit stay open.
    expect((await get('/host/ping', ip)).status).toBe(200);
    expect((await get('/health', ip)).status).toBe(200);
  });

  it(`lets valid sign-in starts through ${REQUEST_LIMIT} times (forRoot) per client and route, then 429`, async () => {
    const ip = newClient();
    for (let i = 0; i < Math.min(requestLimit, 20); i++) {
      const res = await get('/auth/discord', ip);
      expect(res.status).toBe(302);
      await res.arrayBuffer();
    }
    if (requestLimit > 20) return; // 200 of them: see the classroom test below
    await expectReadable429(
      await get('/auth/discord', ip, { accept: 'text/html' }),
      await get('/auth/discord', ip, { accept: 'application/json' }),
    );
    // The other routes have their own budget.
    expect((await get('/discourse/sso?sso=x&sig=y', ip)).status).toBe(400);
  });

  it('limits POST /auth/logout too', async () => {
    const ip = newClient();
    const post = () =>
      fetch(`${h.appUrl}/auth/logout`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'x-forwarded-for': ip, origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
      });
    for (let i = 0; i < Math.min(requestLimit, 20); i++) expect((await post()).status).toBe(303);
    if (requestLimit <= 20) expect((await post()).status).toBe(429);
    // Refused as cross-site (403): failures, limited to LIMIT.
    const other = newClient();
    const crossSite = () =>
      fetch(`${h.appUrl}/auth/logout`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'x-forwarded-for': other, origin: 'https://evil.example' },
      });
    for (let i = 0; i < LIMIT; i++) expect((await crossSite()).status).toBe(403);
    expect((await crossSite()).status).toBe(429);
  });

  it("leaves host routes and the module's unlimited routes alone", async () => {
    const ip = newClient();
    for (let i = 0; i < LIMIT + 1; i++) {
      await (await get('/discourse/sso?sso=x&sig=y', ip)).arrayBuffer();
    }
    expect((await get('/discourse/sso?sso=x&sig=y', ip)).status).toBe(429);
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

    for (const path of ['/host/ping', '/host/health', '/host/auth/discord']) {
      const host = await get(path, newClient());
      expect(host.status).toBe(200);
      expect(host.headers.get('content-security-policy')).toBeNull();
      expect(host.headers.get('x-frame-options')).toBeNull();
    }
  });
});

describe.each(HTTP_ADAPTERS)(
  'the default limits fit a classroom behind one NAT (%s)',
  (adapter) => {
    let h: Harness;
    beforeAll(async () => {
      h = await startHarness('forRoot', {
        adapter,
        trustProxy: true,
        rateLimit: { limit: 30, ttlSeconds: 60 },
      });
    });
    afterAll(async () => h.close());
    const CLASS = 200;

    it(`signs ${CLASS} new members in from one IP within a minute, then ${CLASS} signed-in handshakes`, async () => {
      const started = Date.now();
      const ip = '198.51.100.7';
      const browsers: TestBrowser[] = [];
      for (let i = 0; i < CLASS; i++) {
        const id = String(700000000000000000n + BigInt(i));
        h.discord.users.set(id, {
          ...DISCORD_FIXTURES.migrated,
          id,
          username: `student${i}`,
          global_name: `Student ${i}`,
          email: `student${i}@school.example`,
        });
        h.discord.knobs.autoApproveAs = id;
        const browser = new TestBrowser();
        const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=/latest`, {
          headers: { 'x-forwarded-for': ip },
        });
        expect(page.hops.map((hop) => hop.status)).not.toContain(429);
        expect(page.status).toBe(200);
        expect(page.url).toBe(`${h.forum.baseUrl}/latest`);
        browsers.push(browser);
      }
      // Each member comes back to the forum once more (a second device, a new forum session):
      // a signed-in handshake each, from another IP of the same school.
      const ip2 = '198.51.100.8';
      for (const browser of browsers) {
        const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=/latest`, {
          headers: { 'x-forwarded-for': ip2 },
        });
        expect(page.hops.map((hop) => hop.status)).not.toContain(429);
        expect(page.status).toBe(200);
      }
      expect(Date.now() - started).toBeLessThan(60_000);
    }, 120_000);

    it(`answers a burst of ${CLASS} bad signatures from one IP with 429 after the failures limit`, async () => {
      const statuses: number[] = [];
      for (let i = 0; i < CLASS; i++) {
        const sso = Buffer.from(
          `nonce=n${i}&return_sso_url=${h.forumUrl}/session/sso_login`,
        ).toString('base64');
        const res = await fetch(
          `${h.appUrl}/discourse/sso?sso=${encodeURIComponent(sso)}&sig=${'0'.repeat(64)}`,
          {
            redirect: 'manual',
            headers: { 'x-forwarded-for': '198.51.100.66' },
          },
        );
        statuses.push(res.status);
        await res.arrayBuffer();
      }
      expect(statuses.slice(0, 30).every((s) => s >= 400 && s < 429)).toBe(true);
      expect(statuses.slice(30).every((s) => s === 429)).toBe(true);
      // Valid traffic from another client still flows.
      const other = await fetch(`${h.appUrl}/auth/discord`, {
        redirect: 'manual',
        headers: { 'x-forwarded-for': '198.51.100.67' },
      });
      expect(other.status).toBe(302);
    }, 60_000);
  },
);

describe('the untrusted-proxy warning', () => {
  const request = (peer: string, ip: string, xff?: string) => ({
    ip,
    socket: { remoteAddress: peer },
    headers: xff === undefined ? {} : { 'x-forwarded-for': xff },
  });

  it('spots X-Forwarded-For from a loopback or private peer that the app does not trust', () => {
    for (const peer of [
      '127.0.0.1',
      '::1',
      '::ffff:127.0.0.1',
      '10.1.2.3',
      '172.20.0.5',
      '192.168.1.10',
      'fd00::1',
    ]) {
      expect(untrustedProxyHop(request(peer, peer, '203.0.113.9'))).toBe(true);
    }
    // Trusted: the adapter took the client's address from the header.
    expect(untrustedProxyHop(request('10.1.2.3', '203.0.113.9', '203.0.113.9'))).toBe(false);
    // No header.
    expect(untrustedProxyHop(request('10.1.2.3', '10.1.2.3'))).toBe(false);
  });

  it('says nothing for a public peer: anyone can send the header', () => {
    for (const peer of ['203.0.113.50', '8.8.8.8', '2001:db8::1', '172.32.0.1']) {
      expect(untrustedProxyHop(request(peer, peer, '198.51.100.1'))).toBe(false);
    }
    expect(isPrivateAddress('172.31.255.255')).toBe(true);
    expect(isPrivateAddress('not an ip')).toBe(false);
  });

  it.each(HTTP_ADAPTERS)(
    'logs one warning with the fix for proxied requests while trust proxy is off (%s)',
    async (adapter) => {
      const warnings: string[] = [];
      const logger = {
        log: () => undefined,
        error: () => undefined,
        debug: () => undefined,
        verbose: () => undefined,
        warn: (message: unknown) => void warnings.push(String(message)),
      };
      const h = await startHarness('forRoot', {
        adapter,
        rateLimit: { limit: 30, ttlSeconds: 60 },
        logger,
      });
      try {
        for (let i = 0; i < 5; i++) {
          const res = await fetch(`${h.appUrl}/auth/discord`, {
            redirect: 'manual',
            headers: { 'x-forwarded-for': `203.0.113.${i}` },
          });
          await res.arrayBuffer();
        }
        const proxy = warnings.filter((w) => /X-Forwarded-For/.test(w));
        expect(proxy).toHaveLength(1);
        expect(proxy[0]).toContain('TRUST_PROXY=true');
        expect(proxy[0]).toContain('trust proxy');
      } finally {
        await h.close();
      }
    },
  );
});

describe('rate limit options', () => {
  it('is on by default (30 failed and 200 valid requests per minute) and can be turned off', () => {
    const base = {
      forums: [{ url: 'https://forum.example.com', secret: 'forum-secret-0123' }],
      discord: { clientId: 'id', clientSecret: 'secret' },
      publicUrl: 'https://example.com',
      session: { secret: 's'.repeat(32) },
    };
    expect(new DiscourseConnectSettings(base).rateLimit).toEqual({
      enabled: true,
      limit: 30,
      requestLimit: 200,
      ttlSeconds: 60,
    });
    expect(
      () => new DiscourseConnectSettings({ ...base, rateLimit: { requestLimit: -1 } }),
    ).toThrow(/rateLimit.requestLimit/);
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
