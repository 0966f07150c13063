import cookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { DataSource } from 'typeorm';
import {
  DiscourseConnectSettings,
  BullMqSyncQueue,
  DiscourseConnectModule,
  RedisSessionStore,
  SyncQueue,
  discourseConnectOptionsFromEnv,
  type DiscourseConnectModuleOptions,
} from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { HTTP_ADAPTERS, startHarness, type Harness } from '../support/harness';
import { API_KEY, waitFor } from './support/flows';
import { createDatabase, describeWithServices, redisUrl, uniquePrefix } from './support/services';

const { migrated, legacy, animated } = DISCORD_FIXTURES;
const call = <T>(fn: (cb: (err?: unknown, value?: T) => void) => void) =>
  new Promise<T | undefined>((resolve, reject) =>
    fn((err, value) => (err ? reject(err) : resolve(value))),
  );

describeWithServices('Redis session store', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(redisUrl());
  });
  afterAll(async () => {
    await redis.quit();
  });

  it('get/set/touch/destroy with callbacks; the key expires with the cookie', async () => {
    const prefix = uniquePrefix('sess');
    const store = new RedisSessionStore(redis, prefix, 60_000);
    const expires = new Date(Date.now() + 30_000);
    const session = {
      cookie: { expires, originalMaxAge: 30_000 },
      passport: { user: migrated.id },
    } as any;
    await call((cb) => store.set('abc', session, cb));
    expect(await redis.pttl(`${prefix}sess:abc`)).toBeGreaterThan(25_000);
    expect(await redis.pttl(`${prefix}sess:abc`)).toBeLessThanOrEqual(30_000);
    expect(await call((cb) => store.get('abc', cb))).toMatchObject({
      passport: { user: migrated.id },
    });
    await call((cb) =>
      store.touch('abc', { ...session, cookie: { expires: new Date(Date.now() + 50_000) } }, cb),
    );
    expect(await redis.pttl(`${prefix}sess:abc`)).toBeGreaterThan(45_000);
    await call((cb) => store.destroy('abc', cb));
    expect(await call((cb) => store.get('abc', cb))).toBeNull();
    // An already expired cookie is not stored; an unknown sid reads as no session.
    await call((cb) =>
      store.set('old', { cookie: { expires: new Date(Date.now() - 1000) } } as any, cb),
    );
    expect(await redis.exists(`${prefix}sess:old`)).toBe(0);
    expect(await call((cb) => store.get('nope', cb))).toBeNull();
  });

  it('works as the store of @fastify/session', async () => {
    const prefix = uniquePrefix('fastify');
    const app = Fastify();
    await app.register(cookie);
    await app.register(fastifySession, {
      secret: 'a-fastify-session-secret-of-32-characters!',
      store: new RedisSessionStore(redis, prefix, 60_000) as never,
      saveUninitialized: false,
      cookie: { secure: false, maxAge: 20_000 },
    });
    app.get('/set', async (req) => {
      (req.session as any).who = 'ava';
      return { ok: true };
    });
    app.get('/get', async (req) => ({ who: (req.session as any).who ?? null }));
    app.get('/out', async (req) => {
      await req.session.destroy();
      return { ok: true };
    });
    try {
      const base = await app.listen({ port: 0, host: '127.0.0.1' });
      const set = await fetch(`${base}/set`);
      const sid = /sessionId=([^;]+)/.exec(set.headers.get('set-cookie') ?? '')?.[1];
      expect(sid).toBeDefined();
      const keys = await redis.keys(`${prefix}sess:*`);
      expect(keys).toHaveLength(1);
      expect(await redis.pttl(keys[0])).toBeGreaterThan(15_000);
      // Plain data in express-session's shape, not the Session/Cookie instances' fields.
      expect(JSON.parse((await redis.get(keys[0]))!)).toEqual({
        cookie: {
          originalMaxAge: 20_000,
          expires: expect.any(String),
          secure: false,
          httpOnly: true,
          path: '/',
        },
        who: 'ava',
      });
      const headers = { cookie: `sessionId=${sid}` };
      expect(await (await fetch(`${base}/get`, { headers })).json()).toEqual({ who: 'ava' });
      await fetch(`${base}/out`, { headers });
      expect(await redis.keys(`${prefix}sess:*`)).toHaveLength(0);
      expect(await (await fetch(`${base}/get`, { headers })).json()).toEqual({ who: null });
    } finally {
      await app.close();
    }
  });
});

describeWithServices.each(HTTP_ADAPTERS)('Redis sessions through the module on %s', (adapter) => {
  jest.setTimeout(20_000);
  let h: Harness;
  let redis: Redis;
  const prefix = uniquePrefix(`sessions-${adapter}`);
  const MAX_AGE_SECONDS = 3600;
  beforeAll(async () => {
    redis = new Redis(redisUrl());
    h = await startHarness('forRoot', {
      adapter,
      redis: { url: redisUrl(), prefix },
      moduleOptions: (o) => ({ ...o, session: { ...o.session, maxAgeSeconds: MAX_AGE_SECONDS } }),
    });
  });
  afterAll(async () => {
    await h?.close();
    await redis?.quit();
  });

  const sessionKeys = () => redis.keys(`${prefix}sess:*`);

  it('signs in, answers the SSO handshake from the Redis session, and signing out deletes the key', async () => {
    h.discord.knobs.autoApproveAs = migrated.id;
    const browser = new TestBrowser();
    const signedAt = Date.now();
    const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.url).toBe(`${h.forum.baseUrl}/`);
    expect(h.discord.stats.authorizeRequests).toBe(1);

    // One key, plain JSON: the passport user and the cookie's expiry, the same fields on both adapters.
    const keys = await sessionKeys();
    expect(keys).toHaveLength(1);
    const stored = JSON.parse((await redis.get(keys[0]))!);
    expect(stored).toEqual({
      cookie: {
        originalMaxAge: MAX_AGE_SECONDS * 1000,
        expires: expect.any(String),
        secure: false,
        httpOnly: true,
        path: '/',
        sameSite: 'lax',
      },
      passport: { user: migrated.id },
    });
    const expires = new Date(stored.cookie.expires).getTime();
    expect(expires).toBeGreaterThanOrEqual(signedAt + MAX_AGE_SECONDS * 1000 - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + MAX_AGE_SECONDS * 1000);
    // Redis expires the key with the cookie.
    const pttl = await redis.pttl(keys[0]);
    expect(Math.abs(Date.now() + pttl - expires)).toBeLessThan(2000);

    // A second handshake (the forum signed out) is answered from the session read back from Redis: no
    // new Discord sign-in.
    const forgetForum = () => browser.cookies.get('127.0.0.1')?.delete('_forum_session');
    forgetForum();
    const again = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2Fagain`);
    expect(again.url).toBe(`${h.forum.baseUrl}/again`);
    expect(again.hops.map((hop) => new URL(hop.url).pathname)).toEqual([
      '/session/sso',
      '/discourse/sso',
      '/session/sso_login',
      '/again',
    ]);
    expect(h.discord.stats.authorizeRequests).toBe(1);
    // Reading the session neither rewrote it nor moved its expiry.
    expect(await sessionKeys()).toEqual(keys);
    expect(JSON.parse((await redis.get(keys[0]))!)).toEqual(stored);

    const out = await browser.request(`${h.appUrl}/auth/logout`, {
      method: 'POST',
      headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
    });
    expect(out.status).toBe(303);
    expect(await sessionKeys()).toHaveLength(0);
    // Signed out: the next handshake goes through Discord again.
    forgetForum();
    const after = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(after.url).toBe(`${h.forum.baseUrl}/`);
    expect(h.discord.stats.authorizeRequests).toBe(2);
  });
});

describeWithServices('REDIS_URL configuration', () => {
  const env = {
    DISCOURSE_URL: 'https://forum.example.com',
    DISCOURSE_CONNECT_SECRET: 'forum-secret-0123456789',
    DISCORD_CLIENT_ID: 'id',
    DISCORD_CLIENT_SECRET: 'secret',
    PUBLIC_URL: 'https://example.com',
    SESSION_SECRET: 's'.repeat(40),
  };

  it('reads REDIS_URL and the key prefix into the redis option', () => {
    expect(
      discourseConnectOptionsFromEnv({
        ...env,
        REDIS_URL: 'redis://:pw@cache:6379/2',
        DISCOURSE_CONNECT_REDIS_PREFIX: 'site1:',
      }).redis,
    ).toEqual({
      url: 'redis://:pw@cache:6379/2',
      prefix: 'site1:',
    });
    expect(discourseConnectOptionsFromEnv(env).redis).toBeUndefined();
  });

  it('refuses a bad REDIS_URL with a message that names it and never repeats the value (it may hold a password)', () => {
    for (const bad of [
      'http://:hunter2secret@cache:6379',
      'hunter2secret',
      'redis://:hunter2secret@cache:6379/db?x=1',
    ]) {
      let message = '';
      try {
        discourseConnectOptionsFromEnv({ ...env, REDIS_URL: bad });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toContain('REDIS_URL is invalid');
      expect(message).toContain('redis://');
      expect(message).not.toContain('hunter2secret');
    }
  });

  it('a bad redis option stops the module at boot without echoing the URL', () => {
    const options = {
      forums: [{ url: 'https://forum.example.com', secret: 'forum-secret-0123456789' }],
      discord: { clientId: 'id', clientSecret: 'secret' },
      publicUrl: 'https://example.com',
      session: { secret: 's'.repeat(40) },
      redis: { url: 'memcached://:hunter2secret@cache' },
    };
    expect(() => new DiscourseConnectSettings(options)).toThrow(/redis\.url must be a Redis URL/);
    expect(() => new DiscourseConnectSettings(options)).not.toThrow(/hunter2secret/);
    expect(DiscourseConnectModule).toBeDefined();
  });
});

/** Times of the admin API requests the forum received (sync_sso and log_out). */
function recordApiCalls(h: Harness): number[] {
  const times: number[] = [];
  (h.forum as unknown as { server: import('node:http').Server }).server.on('request', (req) => {
    if (/^\/admin\/users\//.test(req.url ?? '')) times.push(Date.now());
  });
  return times;
}

describeWithServices('the module with Redis (BullMQ queue, Redis sessions) on PostgreSQL', () => {
  jest.setTimeout(40_000);
  let h: Harness;
  let db: Awaited<ReturnType<typeof createDatabase>>;
  let redis: Redis;
  let apiCalls: number[];
  const prefix = uniquePrefix('module');
  const sql = <T = any>(text: string, params: unknown[] = []) =>
    h.app.get(DataSource).query(text, params) as Promise<T[]>;
  const RATE = 600; // one admin API call per 100 ms

  beforeAll(async () => {
    db = await createDatabase('redis');
    redis = new Redis(redisUrl());
    h = await startHarness('forRoot', {
      databaseUrl: db.url,
      redis: { url: redisUrl(), prefix },
      forumOptions: { apiKey: API_KEY, apiRateLimitPerMinute: 0, authOverridesName: true },
      moduleOptions: (o: DiscourseConnectModuleOptions) => ({
        ...o,
        forums: o.forums.map((f) => ({ ...f, api: { key: API_KEY, timeoutMs: 2000 } })),
        // Retries spread over ~1.7 s: a job waiting out an outage does not run out of them mid-test.
        sync: {
          ratePerMinute: RATE,
          backoffBaseMs: 250,
          backoffMaxMs: 1000,
          maxAttempts: 4,
          pollIntervalMs: 50,
        },
      }),
    });
    apiCalls = recordApiCalls(h);
  });
  afterAll(async () => {
    await h?.close();
    await redis?.quit();
    await db?.drop();
  });
  beforeEach(() => {
    h.discord.reset();
    h.forum.reset();
    apiCalls.length = 0;
  });

  const queue = () => h.app.get(SyncQueue);
  const idle = () =>
    waitFor(
      async () => {
        const c = await queue().counts();
        return c.pending + c.running === 0;
      },
      'an empty queue',
      20_000,
    );
  const signInOnSite = async (id: string, browser = new TestBrowser()) => {
    h.discord.knobs.autoApproveAs = id;
    const page = await browser.visit(`${h.appUrl}/auth/discord`);
    expect(page.url).toBe(`${h.appUrl}/`);
    return browser;
  };
  /** A first sign-in through the forum: the member has an account there, so syncs reach it. */
  const signInOnForum = async (id: string) => {
    h.discord.knobs.autoApproveAs = id;
    const page = await new TestBrowser().visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.url).toBe(`${h.forum.baseUrl}/`);
  };

  it('uses BullMQ behind the same SyncQueue token', () => {
    expect(queue()).toBeInstanceOf(BullMqSyncQueue);
  });

  it('keeps sessions in Redis, not in the database; signing out deletes the key', async () => {
    h.discord.knobs.autoApproveAs = migrated.id;
    const browser = new TestBrowser();
    const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.url).toBe(`${h.forum.baseUrl}/`);
    const keys = await redis.keys(`${prefix}sess:*`);
    expect(keys).toHaveLength(1);
    expect(JSON.parse((await redis.get(keys[0]))!)).toMatchObject({
      passport: { user: migrated.id },
    });
    expect(await redis.pttl(keys[0])).toBeGreaterThan(13 * 24 * 3600 * 1000);
    expect(await sql('SELECT sid FROM discourse_connect_sessions')).toHaveLength(0);
    const out = await browser.request(`${h.appUrl}/auth/logout`, {
      method: 'POST',
      headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
    });
    expect(out.status).toBe(303);
    expect(await redis.keys(`${prefix}sess:*`)).toHaveLength(0);
    await waitFor(() => h.forum.stats.apiLogOuts === 1, 'the forum log-out through BullMQ');
    await idle();
  });

  it('delivers a changed profile once; changes while a job waits are coalesced into it', async () => {
    await signInOnForum(legacy.id);
    await idle();
    expect(h.forum.stats.syncSsoCalls).toBe(0);
    h.forum.knobs.apiFailure = { status: 503 };
    h.discord.updateUser(legacy.id, { global_name: 'first' });
    await signInOnSite(legacy.id);
    await waitFor(() => h.forum.stats.apiRequests >= 1, 'a failed attempt');
    expect(h.forum.stats.syncSsoCalls).toBe(0);
    expect((await queue().counts()).failed).toBe(0);
    h.discord.updateUser(legacy.id, { global_name: 'second' });
    await signInOnSite(legacy.id);
    h.discord.updateUser(legacy.id, { global_name: 'third' });
    await signInOnSite(legacy.id);
    // Every change has left the outbox for BullMQ, where they are one job for this user.
    await waitFor(
      async () => (await sql('SELECT id FROM discourse_connect_sync_jobs')).length === 0,
      'the relay to BullMQ',
    );
    const calls = h.forum.stats.syncSsoCalls;
    h.forum.knobs.apiFailure = null;
    await idle();
    expect(h.forum.stats.syncSsoCalls).toBe(calls + 1);
    expect(h.forum.findByExternalId(legacy.id)!.name).toBe('third');
    expect((await queue().counts()).failed).toBe(0);
  });

  it('spaces admin API calls by the shared rate limit', async () => {
    const ids = [migrated.id, legacy.id, animated.id];
    for (const id of ids) await signInOnForum(id);
    await idle();
    apiCalls.length = 0;
    for (const [i, id] of ids.entries()) {
      h.discord.updateUser(id, { global_name: `burst ${i}` });
      await signInOnSite(id);
    }
    await idle();
    expect(apiCalls).toHaveLength(3);
    for (let i = 1; i < apiCalls.length; i++)
      expect(apiCalls[i] - apiCalls[i - 1]).toBeGreaterThanOrEqual(60_000 / RATE - 15);
  });

  it('a 429 from the forum pauses the whole queue for its wait, without costing an attempt', async () => {
    await signInOnForum(animated.id);
    await signInOnForum(migrated.id);
    await idle();
    apiCalls.length = 0;
    const before = h.forum.stats.apiRequests;
    h.forum.knobs.apiFailure = { status: 429, retryAfter: 1 };
    h.discord.updateUser(animated.id, { global_name: 'after the wait' });
    h.discord.updateUser(migrated.id, { global_name: 'also after the wait' });
    await signInOnSite(animated.id);
    await waitFor(() => h.forum.stats.apiRequests > before, 'the rate-limited call');
    const limitedAt = Date.now();
    h.forum.knobs.apiFailure = null;
    await signInOnSite(migrated.id);
    await idle();
    // Both jobs (the limited one and the one queued after it) waited for the forum's second.
    expect(apiCalls.length).toBe(3);
    expect(apiCalls[1] - limitedAt).toBeGreaterThanOrEqual(850);
    expect(h.forum.findByExternalId(animated.id)!.name).toBe('after the wait');
    expect((await queue().counts()).failed).toBe(0);
  });

  it('keeps a job that ran out of retries as failed, and delivers it when retried', async () => {
    await signInOnForum(migrated.id);
    await idle();
    h.forum.knobs.apiFailure = { status: 500 };
    h.discord.updateUser(migrated.id, { global_name: 'kept' });
    await signInOnSite(migrated.id);
    await waitFor(async () => (await queue().counts()).failed === 1, 'the job to fail', 30_000);
    const [failed] = await queue().failed();
    expect(failed).toMatchObject({ kind: 'sync', discordId: migrated.id, attempts: 4 });
    expect(failed.lastError).toContain('500');
    expect(failed.lastError).not.toContain(API_KEY);
    const health = await (await fetch(`${h.appUrl}/health`)).json();
    expect(health).toMatchObject({
      status: 'ok',
      checks: { database: 'up', redis: 'up' },
      queue: { failed: 1 },
    });
    h.forum.knobs.apiFailure = null;
    expect(await queue().retryFailed()).toBe(1);
    await idle();
    expect(h.forum.findByExternalId(migrated.id)!.name).toBe('kept');
    expect((await queue().counts()).failed).toBe(0);
  });
});
