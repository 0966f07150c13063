import type { SessionData } from 'express-session';
import type { Redis } from 'ioredis';
import { PRE_SIGN_IN_MAX_AGE_MS } from './session-store.factory';
import { RedisSessionStore } from './redis-session.store';

const DAY = 86_400_000;

/** The few Redis commands the store sends, recorded (the services suite runs it on a real Redis). */
function fakeRedis() {
  const calls: unknown[][] = [];
  const redis = {
    set: async (...args: unknown[]) => void calls.push(['set', ...args]),
    pexpire: async (...args: unknown[]) => void calls.push(['pexpire', ...args]),
    del: async (...args: unknown[]) => void calls.push(['del', ...args]),
    get: async () => null,
  };
  return { redis: redis as unknown as Redis, calls };
}

const withCookie = (maxAgeMs: number): SessionData =>
  ({
    cookie: { originalMaxAge: maxAgeMs, expires: new Date(Date.now() + maxAgeMs) },
    oauth: 'state',
  }) as unknown as SessionData;

const set = (store: RedisSessionStore, s: SessionData) =>
  new Promise<void>((resolve, reject) =>
    store.set('sid', s, (err) => (err ? reject(err) : resolve())),
  );

describe('RedisSessionStore: a session key expires with its cookie', () => {
  it('a pre-sign-in session (one-hour cookie) gets a one-hour TTL, not the 14-day default', async () => {
    const { redis, calls } = fakeRedis();
    await set(new RedisSessionStore(redis, 'dc:', 14 * DAY), withCookie(PRE_SIGN_IN_MAX_AGE_MS));
    const [cmd, key, , mode, ttl] = calls[0] as [string, string, string, string, number];
    expect([cmd, key, mode]).toEqual(['set', 'dc:sess:sid', 'PX']);
    expect(ttl).toBeLessThanOrEqual(PRE_SIGN_IN_MAX_AGE_MS);
    expect(ttl).toBeGreaterThan(PRE_SIGN_IN_MAX_AGE_MS - 5_000);
  });

  it('a signed-in session (14-day cookie) gets 14 days', async () => {
    const { redis, calls } = fakeRedis();
    await set(new RedisSessionStore(redis, 'dc:', 14 * DAY), withCookie(14 * DAY));
    expect(calls[0][4] as number).toBeGreaterThan(14 * DAY - 5_000);
  });

  it('touch keeps the cookie’s expiry (one hour stays one hour)', async () => {
    const { redis, calls } = fakeRedis();
    const store = new RedisSessionStore(redis, 'dc:', 14 * DAY);
    await new Promise<void>((resolve) =>
      store.touch('sid', withCookie(PRE_SIGN_IN_MAX_AGE_MS), () => resolve()),
    );
    expect(calls[0][0]).toBe('pexpire');
    expect(calls[0][2] as number).toBeLessThanOrEqual(PRE_SIGN_IN_MAX_AGE_MS);
  });
});
