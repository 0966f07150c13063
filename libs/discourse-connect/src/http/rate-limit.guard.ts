import {
  ExecutionContext,
  HttpStatus,
  Inject,
  Injectable,
  OnApplicationShutdown,
  Optional,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  ThrottlerGuard,
  ThrottlerStorageService,
  type ThrottlerLimitDetail,
} from '@nestjs/throttler';
import type { DiscourseConnectRequest } from './http-adapter-glue';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectRedis } from '../redis/discourse-connect-redis';
import { RedisThrottlerStorage } from '../redis/redis-throttler.storage';
import { DiscourseConnectHttpException } from '../common/discourse-connect.exceptions';

/** 429: one client IP sent too many requests to a sign-in or SSO route. */
export class TooManyRequestsException extends DiscourseConnectHttpException {
  constructor(retryAfterSeconds: number, limit: number, ttlSeconds: number) {
    super(
      HttpStatus.TOO_MANY_REQUESTS,
      'Too many attempts',
      `Too many sign-in requests came from your network (more than ${limit} in ${ttlSeconds} seconds). ` +
        `Please wait ${retryAfterSeconds} seconds and try again.`,
      'rate_limited',
      [],
      retryAfterSeconds,
    );
  }
}

/**
 * `@nestjs/throttler` on the module's sign-in and SSO routes only, configured by the module's
 * `rateLimit` option. It keeps its own counters, so it neither needs nor touches a `ThrottlerModule`
 * the host may have: in Redis when the module has `redis` (one limit shared by every instance,
 * `<prefix>throttle:*` keys), in this process's memory otherwise (and while Redis does not answer). The client is `req.ip` (Express's `trust proxy` decides it);
 * each route counts separately. Over the limit: the module's 429 page with `Retry-After`.
 */
@Injectable()
export class DiscourseConnectRateLimitGuard
  extends ThrottlerGuard
  implements OnApplicationShutdown
{
  /** In-process counters: the storage without Redis, the fallback with it. */
  private readonly memory: ThrottlerStorageService;
  private ready?: Promise<void>;

  // Explicit tokens: the parent's @InjectThrottlerOptions()/@InjectThrottlerStorage() would be inherited.
  constructor(
    @Inject(DiscourseConnectSettings) private readonly settings: DiscourseConnectSettings,
    @Inject(Reflector) reflector: Reflector,
    @Optional() @Inject(DiscourseConnectRedis) redis?: DiscourseConnectRedis | null,
  ) {
    const memory = new ThrottlerStorageService();
    const storage = redis ? new RedisThrottlerStorage(redis.client, redis.prefix, memory) : memory;
    const { limit, ttlSeconds } = settings.rateLimit;
    super(
      { throttlers: [{ name: 'default', limit, ttl: ttlSeconds * 1000 }], setHeaders: false },
      storage,
      reflector,
    );
    this.memory = memory;
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    if (!this.settings.rateLimit.enabled) return true;
    // Guards named in @UseGuards are not always initialised by Nest; set the throttlers up once.
    this.ready ??= super.onModuleInit();
    await this.ready;
    return super.canActivate(context);
  }

  override async onModuleInit(): Promise<void> {
    this.ready ??= super.onModuleInit();
    await this.ready;
  }

  protected override async getTracker(req: Record<string, unknown>): Promise<string> {
    // Both adapters set `ip` from their trusted-proxy setting (Express `trust proxy`, Fastify `trustProxy`).
    const r = req as unknown as DiscourseConnectRequest;
    return r.ip ?? r.socket?.remoteAddress ?? 'unknown';
  }

  protected override async throwThrottlingException(
    _context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    const { limit, ttlSeconds } = this.settings.rateLimit;
    throw new TooManyRequestsException(Math.max(1, detail.timeToBlockExpire), limit, ttlSeconds);
  }

  onApplicationShutdown(): void {
    this.memory.onApplicationShutdown();
  }
}
