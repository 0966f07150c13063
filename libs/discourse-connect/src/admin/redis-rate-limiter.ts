import type { Redis } from 'ioredis';
import { AdminApiRateLimiter, sleep } from './rate-limiter';

/** Reserves the next free slot of the shared budget; Redis's own clock, so instances' clocks need not agree. */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local nextSlot = tonumber(redis.call('GET', KEYS[1]) or '0')
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
local at = math.max(now, nextSlot, paused)
redis.call('SET', KEYS[1], tostring(at + interval), 'PX', math.ceil(at - now + interval) + 60000)
return math.ceil(at - now)
`;

/** Moves the shared pause forward (never back) by the forum's 429 wait. */
const PAUSE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilMs = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilMs > current then redis.call('SET', KEYS[1], tostring(untilMs), 'PX', tonumber(ARGV[1])) end
return 0
`;

/**
 * The admin API rate limit shared by every app instance through Redis: each call reserves the
 * next slot of ONE budget per forum (`forums[].api.ratePerMinute`, default `sync.ratePerMinute`), and a 429 pauses every instance.
 * Counts calls, not jobs: a log-out that first looks the user up costs two slots. If Redis cannot
 * be reached the process falls back to spacing its own calls.
 */
export class RedisAdminApiRateLimiter extends AdminApiRateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    perMinute: number,
    forumRates: Readonly<Record<string, number>> = {},
    /** Where the budget is kept: `<prefix><key>:next` and `:paused`. */
    private readonly key = 'admin-api',
  ) {
    super(perMinute, forumRates);
  }

  /** Each forum's budget under its own keys, `<prefix>admin-api:<forum>:…`. */
  protected override createForForum(name: string, perMinute: number): AdminApiRateLimiter {
    return new RedisAdminApiRateLimiter(
      this.redis,
      this.prefix,
      perMinute,
      {},
      `admin-api:${encodeURIComponent(name)}`,
    );
  }

  override async acquire(): Promise<void> {
    let wait: number;
    try {
      wait = Number(
        await this.redis.eval(
          ACQUIRE,
          2,
          `${this.prefix}${this.key}:next`,
          `${this.prefix}${this.key}:paused`,
          String(60_000 / this.ratePerMinute),
        ),
      );
    } catch {
      return super.acquire();
    }
    if (wait > 0) await sleep(wait);
  }

  override pause(seconds: number): void {
    super.pause(seconds);
    this.redis
      .eval(PAUSE, 1, `${this.prefix}${this.key}:paused`, String(Math.ceil(seconds * 1000)))
      .catch(() => undefined);
  }
}
