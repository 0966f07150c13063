import { Logger } from '@nestjs/common';
import { ThrottlerStorageService } from '@nestjs/throttler';
import { Redis } from 'ioredis';
import {
  MemoryFailureCounter,
  RedisFailureCounter,
  RedisThrottlerStorage,
} from 'nestjs-discourse-connect/internal';
import { startHarness, type Harness } from '../support/harness';
import { describeWithServices, redisUrl, uniquePrefix } from './support/services';

const LIMIT = 4;
/** Failed requests allowed per client (the `limit` option). */
const FAILURES = 3;

describeWithServices('per-IP rate limit in Redis, shared by every instance', () => {
  jest.setTimeout(20_000);
  const prefix = uniquePrefix('throttle');
  let redis: Redis;
  // Two instances on the same Redis, one on each HTTP adapter, behind one trusted proxy hop (so each
  // test can be its own client through X-Forwarded-For).
  let one: Harness;
  let two: Harness;
  beforeAll(async () => {
    redis = new Redis(redisUrl());
    const options = {
      redis: { url: redisUrl(), prefix },
      trustProxy: true,
      rateLimit: { limit: FAILURES, requestLimit: LIMIT, ttlSeconds: 60 },
    };
    one = await startHarness('forRoot', { ...options, adapter: 'express' });
    two = await startHarness('forRoot', { ...options, adapter: 'fastify' });
  });
  afterAll(async () => {
    await one?.close();
    await two?.close();
    await redis?.quit();
  });

  let n = 0;
  const newClient = () => `198.51.100.${++n}`;
  const get = (h: Harness, path: string, ip: string, headers: Record<string, string> = {}) =>
    fetch(`${h.appUrl}${path}`, {
      redirect: 'manual',
      headers: { 'x-forwarded-for': ip, ...headers },
    });

  it(`lets ${LIMIT} requests spread over both instances through, then both answer the readable 429`, async () => {
    const ip = newClient();
    for (let i = 0; i < LIMIT; i++) {
      const res = await get(i % 2 ? two : one, '/auth/discord', ip);
      expect(res.status).toBe(302);
      await res.arrayBuffer();
    }
    for (const h of [one, two]) {
      const page = await get(h, '/auth/discord', ip, { accept: 'text/html' });
      expect(page.status).toBe(429);
      const retryAfter = Number(page.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(60);
      const body = await page.text();
      expect(body).toContain('Too many attempts');
      expect(body).toMatch(
        new RegExp(`more than ${LIMIT} in 60 seconds.*Please wait \\d+ seconds`, 's'),
      );
    }
    // Another client is not affected, on either instance.
    const other = newClient();
    expect((await get(two, '/auth/discord', other)).status).toBe(302);
    expect((await get(one, '/auth/discord', other)).status).toBe(302);
    // The counters live under the module's prefix; no client address in clear.
    const keys = await redis.keys(`${prefix}throttle:*`);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.join(' ')).not.toContain('198.51.100');
  });

  it('counts each route separately across instances', async () => {
    const ip = newClient();
    for (let i = 0; i < LIMIT; i++)
      await (await get(i % 2 ? one : two, '/auth/discord', ip)).arrayBuffer();
    expect((await get(one, '/auth/discord', ip)).status).toBe(429);
    expect((await get(two, '/discourse/sso?sso=x&sig=y', ip)).status).toBe(400);
  });

  it(`counts failed requests of a client across instances: after ${FAILURES}, 429 on every limited route`, async () => {
    const ip = newClient();
    for (let i = 0; i < FAILURES; i++) {
      const res = await get(i % 2 ? one : two, '/discourse/sso?sso=x&sig=y', ip);
      expect(res.status).toBe(400);
      await res.arrayBuffer();
      // The count lands once the answer is sent; give Redis its round trip.
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const h of [one, two]) {
      const page = await get(h, '/auth/discord', ip, { accept: 'text/html' });
      expect(page.status).toBe(429);
      expect(await page.text()).toMatch(
        new RegExp(`failed \\(more than ${FAILURES} in 60 seconds`),
      );
    }
    const keys = await redis.keys(`${prefix}throttle:failures:*`);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.join(' ')).not.toContain('198.51.100');
    // Valid requests of another client flow.
    expect((await get(two, '/auth/discord', newClient())).status).toBe(302);
  });
});

describeWithServices('RedisThrottlerStorage', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(redisUrl());
  });
  afterAll(async () => {
    await redis.quit();
  });

  it('answers the ThrottlerStorage record: counts in a window, blocks over the limit, starts afresh after the block', async () => {
    const memory = new ThrottlerStorageService();
    const storage = new RedisThrottlerStorage(redis, uniquePrefix('storage'), memory);
    expect(await storage.increment('k', 400, 2, 300, 'default')).toEqual({
      totalHits: 1,
      timeToExpire: 1,
      isBlocked: false,
      timeToBlockExpire: 0,
    });
    expect(await storage.increment('k', 400, 2, 300, 'default')).toMatchObject({
      totalHits: 2,
      isBlocked: false,
    });
    expect(await storage.increment('k', 400, 2, 300, 'default')).toEqual({
      totalHits: 3,
      timeToExpire: 1,
      isBlocked: true,
      timeToBlockExpire: 1,
    });
    expect(await storage.increment('k', 400, 2, 300, 'default')).toMatchObject({ isBlocked: true });
    // Another key (another client or route) and another throttler name count on their own.
    expect(await storage.increment('other', 400, 2, 300, 'default')).toMatchObject({
      totalHits: 1,
      isBlocked: false,
    });
    expect(await storage.increment('k', 400, 2, 300, 'strict')).toMatchObject({
      totalHits: 1,
      isBlocked: false,
    });
    await new Promise((r) => setTimeout(r, 350));
    expect(await storage.increment('k', 400, 2, 300, 'default')).toMatchObject({
      totalHits: 1,
      isBlocked: false,
    });
    // Without a block duration, a hit over the limit is refused until the window ends, uncounted.
    expect(await storage.increment('nb', 300, 1, 0, 'default')).toMatchObject({
      totalHits: 1,
      isBlocked: false,
    });
    expect(await storage.increment('nb', 300, 1, 0, 'default')).toMatchObject({
      isBlocked: true,
      timeToBlockExpire: 1,
    });
    await new Promise((r) => setTimeout(r, 350));
    expect(await storage.increment('nb', 300, 1, 0, 'default')).toMatchObject({
      totalHits: 1,
      isBlocked: false,
    });
    memory.onApplicationShutdown();
  });

  it('RedisFailureCounter counts failures in a window that expires', async () => {
    const counter = new RedisFailureCounter(
      redis,
      uniquePrefix('failures'),
      new MemoryFailureCounter(),
    );
    expect(await counter.count('k', 300)).toEqual({ hits: 0, expiresInMs: 0 });
    await counter.add('k', 300);
    await counter.add('k', 300);
    const counted = await counter.count('k', 300);
    expect(counted.hits).toBe(2);
    expect(counted.expiresInMs).toBeGreaterThan(0);
    expect(counted.expiresInMs).toBeLessThanOrEqual(300);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await counter.count('k', 300)).toEqual({ hits: 0, expiresInMs: 0 });
  });

  it('counts in the process when Redis does not answer, and says so in the log', async () => {
    const down = new Redis(redisUrl());
    await down.quit(); // every command now fails at once
    const memory = new ThrottlerStorageService();
    const storage = new RedisThrottlerStorage(down, uniquePrefix('down'), memory);
    const logged: string[] = [];
    const spy = jest
      .spyOn(Logger.prototype, 'error')
      .mockImplementation((...args: unknown[]) => void logged.push(String(args[0])));
    try {
      expect(await storage.increment('k', 60_000, 1, 60_000, 'default')).toMatchObject({
        totalHits: 1,
        isBlocked: false,
      });
      expect(await storage.increment('k', 60_000, 1, 60_000, 'default')).toMatchObject({
        isBlocked: true,
      });
    } finally {
      spy.mockRestore();
      memory.onApplicationShutdown();
    }
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('Rate limit: Redis did not answer');
    expect(logged[0]).not.toContain(redisUrl());
  });
});
