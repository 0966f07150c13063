import { Redis } from 'ioredis';
import { RedisGatewayLease } from 'nestjs-discourse-connect/internal';
import { waitFor } from '../support/wait';
import { describeWithServices, redisUrl, uniquePrefix } from './support/services';

/** The Discord gateway lease on a real Redis: one holder at a time, taken over when it lapses. */
describeWithServices('Discord gateway lease (Redis)', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(redisUrl());
  });
  afterAll(async () => {
    await redis.quit();
  });

  it('one holder at a time; only the holder renews or releases; a release hands it over at once', async () => {
    const key = `${uniquePrefix('lease')}discord-gateway`;
    const a = new RedisGatewayLease(redis, key, 10_000);
    const b = new RedisGatewayLease(redis, key, 10_000);
    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false);
    expect(await a.renew()).toBe(true);
    expect(await b.renew()).toBe(false);
    await b.release(); // not the holder: nothing happens
    expect(await redis.get(key)).toBe(a.holder);
    await a.release();
    expect(await b.acquire()).toBe(true);
    expect(await a.renew()).toBe(false);
    expect(await redis.get(key)).toBe(b.holder);
  });

  it('a holder that stops renewing loses the lease when it expires, and another takes it', async () => {
    const key = `${uniquePrefix('lease')}discord-gateway`;
    const dead = new RedisGatewayLease(redis, key, 300);
    const next = new RedisGatewayLease(redis, key, 300);
    expect(await dead.acquire()).toBe(true);
    expect(await redis.pttl(key)).toBeGreaterThan(0);
    await waitFor(() => next.acquire(), 'the lease to lapse and be taken over');
    expect(await dead.renew()).toBe(false);
  });
});
