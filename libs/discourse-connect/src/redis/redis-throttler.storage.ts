import { Logger } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import type { Redis } from 'ioredis';
import { createHash } from 'node:crypto';
import { RedisErrorLog } from './redis-error-log';

/**
 * One atomic step of the limit. KEYS: the window's hit counter, the block marker. ARGV: window
 * (ms), limit, block duration (ms). Returns { hits, ms until the window ends, blocked (0/1), ms
 * until the block ends }.
 *
 * While blocked nothing is counted. A hit over the limit starts a block of `blockDuration` and
 * clears the counter, so the first request after the block starts a fresh window (as
 * @nestjs/throttler's in-memory storage does). With no block duration, a hit over the limit is
 * refused until the window ends and not counted.
 */
const INCREMENT = `
local hits_key, block_key = KEYS[1], KEYS[2]
local ttl, limit, block = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local blocked_for = redis.call('PTTL', block_key)
if blocked_for > 0 then
  return {limit + 1, blocked_for, 1, blocked_for}
end
local hits = redis.call('INCR', hits_key)
local expires_in = redis.call('PTTL', hits_key)
if expires_in < 0 then
  redis.call('PEXPIRE', hits_key, ttl)
  expires_in = ttl
end
if hits <= limit then
  return {hits, expires_in, 0, 0}
end
if block > 0 then
  redis.call('SET', block_key, '1', 'PX', block)
  redis.call('DEL', hits_key)
  return {hits, expires_in, 1, block}
end
redis.call('DECR', hits_key)
return {hits, expires_in, 1, expires_in}
`;
/** What `ThrottlerStorage.increment` resolves to (the record type is not exported by the package's index). */
type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

const INCREMENT_SHA = createHash('sha1').update(INCREMENT).digest('hex');

/**
 * `@nestjs/throttler` storage in Redis, so every app instance counts against one limit per client
 * and route: one fixed window per key (`<prefix>throttle:{<key>}:hits`, expiring with the window)
 * and a block marker (`…:block`). The keys hold the throttler's key, a SHA-256 hash (no client
 * address in clear). When Redis does not answer, the request is counted by `fallback` (this
 * process only) rather than refused or failed: the limit is a brake on abuse, not a reason to stop
 * sign-ins; the error is logged by message at most every 30 s, never with the URL.
 */
export class RedisThrottlerStorage implements ThrottlerStorage {
  private readonly errors = new RedisErrorLog(new Logger('DiscourseConnect'));

  constructor(
    private readonly redis: Redis,
    /** Prefix of every key the module writes, e.g. `dc:`. */
    private readonly prefix: string,
    private readonly fallback: ThrottlerStorage,
  ) {}

  async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<ThrottlerStorageRecord> {
    const base = `${this.prefix}throttle:${throttlerName}:{${key}}`;
    const args = [
      `${base}:hits`,
      `${base}:block`,
      String(Math.max(1, Math.ceil(ttl))),
      String(limit),
      String(Math.max(0, Math.ceil(blockDuration))),
    ];
    let answer: unknown;
    try {
      answer = await this.redis.evalsha(INCREMENT_SHA, 2, ...args).catch((error: Error) => {
        if (!/NOSCRIPT/.test(error.message)) throw error;
        return this.redis.eval(INCREMENT, 2, ...args);
      });
    } catch (error) {
      this.errors.log(
        'Rate limit: Redis did not answer, counting in this process meanwhile',
        error,
      );
      return this.fallback.increment(key, ttl, limit, blockDuration, throttlerName);
    }
    const [totalHits, expiresInMs, blocked, blockedForMs] = (answer as number[]).map(Number);
    return {
      totalHits,
      timeToExpire: Math.ceil(expiresInMs / 1000),
      isBlocked: blocked === 1,
      timeToBlockExpire: blocked === 1 ? Math.ceil(blockedForMs / 1000) : 0,
    };
  }
}

/** A client's failed requests in the current window. */
export interface FailureCount {
  /** Failures counted in the window (0 when none). */
  hits: number;
  /** Milliseconds until the window ends (0 when none is open). */
  expiresInMs: number;
}

/**
 * Counts a client's failed requests (answers 4xx) in fixed windows: `add` after a failure, `count`
 * before handling the next request. The rate-limit guard refuses a client whose count reached the
 * failures limit, while its valid requests have their own, larger budget.
 */
export interface FailureCounter {
  count(key: string, ttlMs: number): Promise<FailureCount>;
  add(key: string, ttlMs: number): Promise<void>;
}

/** KEYS: the window's failure counter. ARGV: window (ms). Opens the window on the first failure. */
const ADD_FAILURE = `
local hits = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
end
return hits
`;

/**
 * {@link FailureCounter} in Redis, one count for every instance: `<prefix>throttle:failures:{<key>}`
 * (the key a SHA-256 hash, no client address in clear), expiring with its window. While Redis does
 * not answer, `fallback` counts in this process (logged at most every 30 s).
 */
export class RedisFailureCounter implements FailureCounter {
  private readonly errors = new RedisErrorLog(new Logger('DiscourseConnect'));

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly fallback: FailureCounter,
  ) {}

  private keyOf(key: string): string {
    return `${this.prefix}throttle:failures:{${key}}`;
  }

  async count(key: string, ttlMs: number): Promise<FailureCount> {
    try {
      const name = this.keyOf(key);
      const [hits, pttl] = await Promise.all([this.redis.get(name), this.redis.pttl(name)]);
      return { hits: Number(hits ?? 0), expiresInMs: Math.max(0, Number(pttl)) };
    } catch (error) {
      this.errors.log(
        'Rate limit: Redis did not answer, counting in this process meanwhile',
        error,
      );
      return this.fallback.count(key, ttlMs);
    }
  }

  async add(key: string, ttlMs: number): Promise<void> {
    try {
      await this.redis.eval(ADD_FAILURE, 1, this.keyOf(key), String(Math.max(1, Math.ceil(ttlMs))));
    } catch (error) {
      this.errors.log(
        'Rate limit: Redis did not answer, counting in this process meanwhile',
        error,
      );
      await this.fallback.add(key, ttlMs);
    }
  }
}
