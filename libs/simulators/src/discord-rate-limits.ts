import { createHash } from 'node:crypto';

/** The bot routes of the simulated Discord, by template (the keys of the call counters). */
export type DiscordBotRoute =
  | 'GET /gateway/bot'
  | 'GET /users/@me'
  | 'GET /guilds/:guild'
  | 'GET /guilds/:guild/members'
  | 'GET /guilds/:guild/members/:user';

/** A route bucket: `limit` requests per `windowMs`. */
export interface DiscordRouteLimit {
  limit: number;
  windowMs: number;
}

/** Rate limits the bot routes enforce (mutable; `reset()` restores the defaults). */
export interface DiscordRateLimitSettings {
  /** Every route's bucket, unless `routes` names it. Default 50 per 1,000 ms. */
  route: DiscordRouteLimit;
  routes: Partial<Record<DiscordBotRoute, DiscordRouteLimit>>;
  /** The global limit per bot token, requests per second. Default 50 (Discord's). */
  globalPerSecond: number;
}

/** The next `count` bot answers (on `route`, or any bot route) are 429, global or per route. */
export interface DiscordForcedRateLimit {
  count: number;
  /** A global 429 (`global: true`, `X-RateLimit-Global`, scope `global`). Default false. */
  global?: boolean;
  /** Only this route's answers; default every bot route. */
  route?: DiscordBotRoute;
  /** Seconds, fractional (`retry_after`; the `Retry-After` header is rounded up). Default 0.25. */
  retryAfter?: number;
}

/** The verdict on one request: headers to send, and a 429 body when it is refused. */
export interface RateLimitVerdict {
  headers: Record<string, string>;
  limited: { retry_after: number; global: boolean } | null;
}

export const defaultRateLimits = (): DiscordRateLimitSettings => ({
  route: { limit: 50, windowMs: 1000 },
  routes: {},
  globalPerSecond: 50,
});

/** Discord-style per-route buckets (keyed by route and major parameter) plus a global limit. */
export class DiscordRateLimiter {
  private readonly buckets = new Map<string, { used: number; resetAt: number }>();
  private global = { used: 0, resetAt: 0 };

  constructor(
    private readonly settings: () => DiscordRateLimitSettings,
    private readonly now: () => number,
  ) {}

  reset(): void {
    this.buckets.clear();
    this.global = { used: 0, resetAt: 0 };
  }

  /** Counts one request and decides; `forced` is the knob, consumed here when it applies. */
  take(
    route: DiscordBotRoute,
    major: string,
    forced: DiscordForcedRateLimit | null,
  ): { verdict: RateLimitVerdict; forcedUsed: boolean } {
    const now = this.now();
    const s = this.settings();
    const limit = s.routes[route] ?? s.route;
    const hash = bucketHash(route);
    if (forced && forced.count > 0 && (forced.route === undefined || forced.route === route)) {
      const retryAfter = forced.retryAfter ?? 0.25;
      return {
        forcedUsed: true,
        verdict: forced.global
          ? globalLimited(retryAfter)
          : routeLimited(limit.limit, retryAfter, hash, now),
      };
    }
    if (now >= this.global.resetAt) this.global = { used: 0, resetAt: now + 1000 };
    if (this.global.used >= s.globalPerSecond) {
      return {
        forcedUsed: false,
        verdict: globalLimited((this.global.resetAt - now) / 1000),
      };
    }
    const key = `${route}:${major}`;
    let bucket = this.buckets.get(key);
    if (!bucket || now >= bucket.resetAt) {
      bucket = { used: 0, resetAt: now + limit.windowMs };
      this.buckets.set(key, bucket);
    }
    if (bucket.used >= limit.limit) {
      return {
        forcedUsed: false,
        verdict: routeLimited(limit.limit, (bucket.resetAt - now) / 1000, hash, now),
      };
    }
    this.global.used++;
    bucket.used++;
    const resetAfter = (bucket.resetAt - now) / 1000;
    return {
      forcedUsed: false,
      verdict: {
        limited: null,
        headers: {
          'X-RateLimit-Limit': String(limit.limit),
          'X-RateLimit-Remaining': String(limit.limit - bucket.used),
          'X-RateLimit-Reset': (bucket.resetAt / 1000).toFixed(3),
          'X-RateLimit-Reset-After': resetAfter.toFixed(3),
          'X-RateLimit-Bucket': hash,
        },
      },
    };
  }
}

/** An opaque, stable bucket id per route (Discord's are hashes too). */
function bucketHash(route: string): string {
  return createHash('sha256').update(`sim-bucket:${route}`).digest('hex').slice(0, 32);
}

function routeLimited(
  limit: number,
  retryAfter: number,
  hash: string,
  now: number,
): RateLimitVerdict {
  const seconds = Math.max(0.001, Math.round(retryAfter * 1000) / 1000);
  return {
    limited: { retry_after: seconds, global: false },
    headers: {
      'Retry-After': String(Math.ceil(seconds)),
      'X-RateLimit-Limit': String(limit),
      'X-RateLimit-Remaining': '0',
      'X-RateLimit-Reset': ((now + seconds * 1000) / 1000).toFixed(3),
      'X-RateLimit-Reset-After': seconds.toFixed(3),
      'X-RateLimit-Bucket': hash,
      'X-RateLimit-Scope': 'user',
    },
  };
}

function globalLimited(retryAfter: number): RateLimitVerdict {
  const seconds = Math.max(0.001, Math.round(retryAfter * 1000) / 1000);
  return {
    limited: { retry_after: seconds, global: true },
    headers: {
      'Retry-After': String(Math.ceil(seconds)),
      'X-RateLimit-Global': 'true',
      'X-RateLimit-Scope': 'global',
    },
  };
}
