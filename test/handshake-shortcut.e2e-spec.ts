import {
  Injectable,
  Module,
  RequestMethod,
  type MiddlewareConsumer,
  type NestMiddleware,
  type NestModule,
} from '@nestjs/common';
import {
  DiscourseConnectFilter,
  type DiscourseConnectPayload,
} from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from './support/browser';
import { FORUM_SECRET, HTTP_ADAPTERS, startHarness, type Harness } from './support/harness';
import { hmac } from './support/signing';
import { signedHandshakeUrl, watchEarlyAnswers } from './support/early-answers';

/** Counts the payload filter's calls; refuses when told to. */
@Injectable()
class CountingPlugin {
  calls = 0;
  refuse = false;

  @DiscourseConnectFilter('sso.payload')
  count(payload: DiscourseConnectPayload): DiscourseConnectPayload {
    this.calls++;
    if (this.refuse) throw new Error('refused by the host');
    return { ...payload, title: 'counted' };
  }
}

const { migrated } = DISCORD_FIXTURES;

/**
 * A signed-in member's handshake is answered from what the process knows (verified cookie,
 * cached session and member) where it can: the answer must be the route's, byte for byte, and
 * anything it cannot answer must get the route's answer.
 */
describe.each(HTTP_ADAPTERS)(
  'signed-in handshake, answered early where possible (%s)',
  (adapter) => {
    let h: Harness;
    let plugin: CountingPlugin;
    let browser: TestBrowser;

    beforeAll(async () => {
      h = await startHarness('forRoot', {
        adapter,
        providers: [CountingPlugin],
        // Long enough that the cached session cannot go stale between two steps of a test.
        moduleOptions: (o) => ({ ...o, session: { ...o.session!, readCacheMs: 60_000 } }),
      });
      plugin = h.app.get(CountingPlugin);
      h.discord.knobs.autoApproveAs = migrated.id;
      browser = new TestBrowser();
      const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
      expect(page.status).toBe(200);
    });
    afterAll(async () => h.close());
    beforeEach(() => {
      plugin.calls = 0;
      plugin.refuse = false;
    });

    /** The forum's request, signed; `extra` query parameters make the route answer it. */
    const handshakeUrl = (nonce: string, extra = '') => signedHandshakeUrl(h, nonce, extra);

    const headersOf = (res: Response) =>
      [...res.headers].filter(([name]) => !['date', 'keep-alive', 'connection'].includes(name));

    it('answers exactly as the route does (status, headers, signed payload), running the filters once', async () => {
      const { answers, stop } = watchEarlyAnswers(h.app);
      const early = await browser.request(handshakeUrl('nonce-one'));
      stop();
      expect(answers).toEqual([expect.stringContaining('sso_login?')]);
      const route = await browser.request(handshakeUrl('nonce-one', '&utm_source=x'));
      expect(early.status).toBe(302);
      expect(route.status).toBe(302);
      expect(headersOf(early)).toEqual(headersOf(route));
      expect(await early.text()).toBe(await route.text());
      const location = new URL(early.headers.get('location')!);
      expect(location.origin + location.pathname).toBe(`${h.forumUrl}/session/sso_login`);
      const sso = location.searchParams.get('sso')!;
      expect(location.searchParams.get('sig')).toBe(hmac(sso, FORUM_SECRET));
      const fields = new URLSearchParams(Buffer.from(sso, 'base64').toString('utf8'));
      expect(fields.get('nonce')).toBe('nonce-one');
      expect(fields.get('external_id')).toBe(migrated.id);
      expect(fields.get('title')).toBe('counted');
      expect(plugin.calls).toBe(2); // once per request
    });

    it('a filter that refuses gets the route’s error page, and is asked once', async () => {
      plugin.refuse = true;
      const res = await browser.request(handshakeUrl('nonce-two'));
      const route = await browser.request(handshakeUrl('nonce-two', '&utm_source=x'));
      expect(res.status).toBe(route.status);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(await res.text()).toBe(await route.text());
      expect(plugin.calls).toBe(2);
    });

    it('a tampered or unknown session cookie is not signed in', async () => {
      const jar = browser.cookies.get('127.0.0.1')!;
      const [name, value] = [...jar].find(([, v]) => v.startsWith('s%3A') || v.startsWith('s:'))!;
      const stranger = new TestBrowser();
      const tampered = `${value.slice(0, -2)}${value.endsWith('AA') ? 'BB' : 'AA'}`;
      stranger.cookies.set('127.0.0.1', new Map([[name, tampered]]));
      const res = await stranger.request(handshakeUrl('nonce-three'));
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toMatch(/\/auth\/discord\?continue=1$/);
      expect(plugin.calls).toBe(0);
    });

    it('after signing out here, the same cookie is no longer signed in', async () => {
      const jar = new Map(browser.cookies.get('127.0.0.1'));
      const before = await browser.request(handshakeUrl('nonce-four'));
      expect(before.headers.get('location')).toContain('/session/sso_login?');
      const out = await browser.request(`${h.mountUrl}/auth/logout`, {
        method: 'POST',
        headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
      });
      expect(out.status).toBe(303);
      const old = new TestBrowser();
      old.cookies.set('127.0.0.1', jar);
      const after = await old.request(handshakeUrl('nonce-five'));
      expect(after.status).toBe(302);
      expect(after.headers.get('location')).toMatch(/\/auth\/discord\?continue=1$/);
    });
  },
);

/**
 * With the module's rate limit on (its default), the early answer counts every signed-in handshake
 * against the route's own budget, so the limit holds whichever way a handshake is answered.
 */
describe.each(HTTP_ADAPTERS)('signed-in handshake with the rate limit on (%s)', (adapter) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness('forRoot', {
      adapter,
      rateLimit: { limit: 30, requestLimit: 4 },
      moduleOptions: (o) => ({ ...o, session: { ...o.session!, readCacheMs: 60_000 } }),
    });
    h.discord.knobs.autoApproveAs = migrated.id;
  });
  afterAll(async () => h.close());

  it('answers early within the budget and gives the route’s 429 beyond it, counting each handshake once', async () => {
    const browser = new TestBrowser();
    // Signing in resumes one signed-in handshake through the route: 1 of the 4.
    const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.status).toBe(200);
    const { answers, stop } = watchEarlyAnswers(h.app);
    const url = () => signedHandshakeUrl(h, 'n');
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await browser.request(url())).status);
    stop();
    expect(statuses).toEqual([302, 302, 302, 429]);
    expect(answers).toEqual([
      expect.stringContaining('sso_login?'),
      expect.stringContaining('sso_login?'),
      expect.stringContaining('sso_login?'),
      undefined,
    ]);
    // Still refused: the 429 was counted once, by the early answer or by the route.
    const again = await browser.request(url());
    expect(again.status).toBe(429);
    expect(again.headers.get('retry-after')).toMatch(/^[0-9]+$/);
  });
});

/** What the host's middleware saw: one entry per request, with whether a session was loaded. */
const hostSeen: { path: string; session: boolean }[] = [];

/** A host middleware on every route: records the request and marks the answer. */
@Injectable()
class HostEverywhere implements NestMiddleware {
  use(
    req: { originalUrl?: string; url?: string; session?: unknown },
    res: { setHeader(name: string, value: string): void },
    next: () => void,
  ): void {
    hostSeen.push({
      path: (req.originalUrl ?? req.url ?? '').split('?')[0],
      session: req.session !== undefined,
    });
    res.setHeader('X-Host-Everywhere', 'ran');
    next();
  }
}

/** A host middleware bound to the SSO route only (Express mounts it as a route of its own). */
@Injectable()
class HostOnSso implements NestMiddleware {
  use(_req: unknown, res: { setHeader(name: string, value: string): void }, next: () => void) {
    res.setHeader('X-Host-On-Sso', 'ran');
    next();
  }
}

/** The host's own module with middleware, as an app's AppModule applies it in `configure()`. */
@Module({})
class HostMiddlewareModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(HostEverywhere).forRoutes('{*path}');
    consumer.apply(HostOnSso).forRoutes({ path: 'discourse/sso', method: RequestMethod.GET });
  }
}

/**
 * The early answer never skips the host's middleware: on Express it sits right before the SSO
 * route's handler, after every middleware (the host's, mounted after the module's session layer,
 * included); on Fastify after the hook that runs Nest's middleware. And when it declines after the
 * session layer left the session unloaded, the route still answers signed in.
 */
describe.each(HTTP_ADAPTERS)('signed-in handshake with the host’s middleware (%s)', (adapter) => {
  let h: Harness;
  let browser: TestBrowser;

  beforeAll(async () => {
    h = await startHarness('forRoot', {
      adapter,
      imports: [HostMiddlewareModule],
      moduleOptions: (o) => ({ ...o, session: { ...o.session!, readCacheMs: 60_000 } }),
    });
    h.discord.knobs.autoApproveAs = migrated.id;
    browser = new TestBrowser();
    const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.status).toBe(200);
  });
  afterAll(async () => h.close());
  beforeEach(() => {
    hostSeen.length = 0;
  });

  const handshakeUrl = (nonce: string) => signedHandshakeUrl(h, nonce);

  /** Records the early answer's results while `run` goes. */
  async function withAnswers<T>(
    run: () => Promise<T>,
    decline = false,
  ): Promise<{ result: T; answers: (string | undefined)[] }> {
    const { answers, stop } = watchEarlyAnswers(h.app, { decline });
    try {
      return { result: await run(), answers };
    } finally {
      stop();
    }
  }

  it('runs the host’s middleware (on every route and on the SSO route) before an early answer', async () => {
    const { result: res, answers } = await withAnswers(() =>
      browser.request(handshakeUrl('host-one')),
    );
    expect(answers).toEqual([expect.stringContaining('sso_login?')]);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe(answers[0]);
    expect(res.headers.get('x-host-everywhere')).toBe('ran');
    expect(res.headers.get('x-host-on-sso')).toBe('ran');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(hostSeen.map((r) => r.path)).toEqual([new URL(handshakeUrl('x')).pathname]);
  });

  it('mounts the host’s middleware after the module’s session layer on Express (sessions loaded for it elsewhere)', async () => {
    const res = await browser.request(`${h.mountUrl}/discourse/forum`);
    expect(res.status).toBe(302);
    expect(hostSeen).toHaveLength(1);
    // Express: Nest mounts the module's middleware first; Fastify: sessions come after Nest's middleware.
    expect(hostSeen[0].session).toBe(adapter === 'express');
  });

  it('when the early answer declines, loads the session it skipped and the route answers signed in', async () => {
    const { result: res, answers } = await withAnswers(
      () => browser.request(handshakeUrl('host-two')),
      true,
    );
    expect(answers).toEqual([undefined]);
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    expect(location.origin + location.pathname).toBe(`${h.forumUrl}/session/sso_login`);
    const sso = location.searchParams.get('sso')!;
    expect(location.searchParams.get('sig')).toBe(hmac(sso, FORUM_SECRET));
    const fields = new URLSearchParams(Buffer.from(sso, 'base64').toString('utf8'));
    expect(fields.get('nonce')).toBe('host-two');
    expect(fields.get('external_id')).toBe(migrated.id);
    expect(res.headers.get('x-host-everywhere')).toBe('ran');
    expect(res.headers.get('x-host-on-sso')).toBe('ran');
    expect(hostSeen).toHaveLength(1);
  });
});

/** Under a global prefix the SSO route's path is the prefixed one: the early answer finds it there. */
describe.each(HTTP_ADAPTERS)('signed-in handshake under a global prefix (%s)', (adapter) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness('forRoot', {
      adapter,
      globalPrefix: 'community',
      moduleOptions: (o) => ({ ...o, session: { ...o.session!, readCacheMs: 60_000 } }),
    });
    h.discord.knobs.autoApproveAs = migrated.id;
  });
  afterAll(async () => h.close());

  it('answers early, as the route would', async () => {
    const browser = new TestBrowser();
    const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.status).toBe(200);
    const { answers, stop } = watchEarlyAnswers(h.app);
    const res = await browser.request(signedHandshakeUrl(h, 'prefixed'));
    stop();
    expect(res.status).toBe(302);
    expect(answers).toEqual([res.headers.get('location')]);
    expect(res.headers.get('location')).toContain(`${h.forumUrl}/session/sso_login?`);
  });
});

/**
 * Behind a trusted proxy the early answer counts each client by the address the proxy reports
 * (`X-Forwarded-For`), as the route does: one client over its budget does not hold up another one
 * sending through the same proxy connection.
 */
describe.each(HTTP_ADAPTERS)('signed-in handshake behind a trusted proxy (%s)', (adapter) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness('forRoot', {
      adapter,
      trustProxy: true,
      rateLimit: { limit: 30, requestLimit: 3 },
      moduleOptions: (o) => ({ ...o, session: { ...o.session!, readCacheMs: 60_000 } }),
    });
    h.discord.knobs.autoApproveAs = migrated.id;
  });
  afterAll(async () => h.close());

  it('counts each forwarded client address on its own', async () => {
    const browser = new TestBrowser();
    const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.status).toBe(200);
    const url = () => signedHandshakeUrl(h, 'n');
    const from = async (client: string) =>
      (await browser.request(url(), { headers: { 'x-forwarded-for': client } })).status;
    const first: number[] = [];
    for (let i = 0; i < 4; i++) first.push(await from('198.51.100.1'));
    expect(first).toEqual([302, 302, 302, 429]);
    expect(await from('198.51.100.2')).toBe(302);
    expect(await from('198.51.100.1')).toBe(429);
    expect(await from('198.51.100.2')).toBe(302);
  });
});
