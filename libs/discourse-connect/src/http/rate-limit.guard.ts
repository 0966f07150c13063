import {
  ExecutionContext,
  HttpStatus,
  Inject,
  Injectable,
  Logger,
  OnApplicationShutdown,
  Optional,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  ThrottlerGuard,
  ThrottlerStorageService,
  type ThrottlerLimitDetail,
} from '@nestjs/throttler';
import { BlockList, isIP } from 'node:net';
import { createHash } from 'node:crypto';
import type { DiscourseConnectRequest, DiscourseConnectResponse } from './http-adapter-glue';
import { DiscourseConnectHttp } from './discourse-connect-http.service';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectRedis } from '../redis/discourse-connect-redis';
import {
  RedisFailureCounter,
  RedisThrottlerStorage,
  type FailureCount,
  type FailureCounter,
} from '../redis/redis-throttler.storage';
import { DiscourseConnectHttpException } from '../common/discourse-connect.exceptions';

/** 429: one client IP sent too many requests (or too many failed ones) to a sign-in or SSO route. */
export class TooManyRequestsException extends DiscourseConnectHttpException {
  constructor(
    retryAfterSeconds: number,
    limit: number,
    ttlSeconds: number,
    what: 'requests' | 'failures' = 'requests',
  ) {
    super(
      HttpStatus.TOO_MANY_REQUESTS,
      'Too many attempts',
      (what === 'failures'
        ? `Too many sign-in requests from your network failed (more than ${limit} in ${ttlSeconds} seconds). `
        : `Too many sign-in requests came from your network (more than ${limit} in ${ttlSeconds} seconds). `) +
        `Please wait ${retryAfterSeconds} seconds and try again.`,
      'rate_limited',
      [],
      retryAfterSeconds,
    );
  }
}

/** Failures counted in this process: the counter without Redis, the fallback with it. */
export class MemoryFailureCounter implements FailureCounter {
  private readonly windows = new Map<string, { hits: number; expiresAt: number }>();
  private lastSweep = Date.now();

  async count(key: string, ttlMs: number): Promise<FailureCount> {
    return this.countNow(key, ttlMs);
  }

  /** {@link count}, answered at once. */
  countNow(key: string, _ttlMs: number): FailureCount {
    const now = Date.now();
    const window = this.windows.get(key);
    if (!window || window.expiresAt <= now) return { hits: 0, expiresInMs: 0 };
    return { hits: window.hits, expiresInMs: window.expiresAt - now };
  }

  async add(key: string, ttlMs: number): Promise<void> {
    const now = Date.now();
    this.sweep(now, ttlMs);
    const window = this.windows.get(key);
    if (!window || window.expiresAt <= now)
      this.windows.set(key, { hits: 1, expiresAt: now + ttlMs });
    else window.hits++;
  }

  /** Forgets ended windows, at most once a window, so the map holds only current clients. */
  private sweep(now: number, ttlMs: number): void {
    if (now - this.lastSweep < ttlMs) return;
    this.lastSweep = now;
    for (const [key, window] of this.windows) if (window.expiresAt <= now) this.windows.delete(key);
  }
}

const PRIVATE_NETWORKS = new BlockList();
for (const [net, prefix] of [
  ['127.0.0.0', 8],
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['169.254.0.0', 16],
  ['100.64.0.0', 10],
] as const) {
  PRIVATE_NETWORKS.addSubnet(net, prefix, 'ipv4');
}
PRIVATE_NETWORKS.addAddress('::1', 'ipv6');
PRIVATE_NETWORKS.addSubnet('fc00::', 7, 'ipv6');
PRIVATE_NETWORKS.addSubnet('fe80::', 10, 'ipv6');

/** Whether an address is loopback, private (RFC 1918, unique local, CGNAT) or link-local. */
export function isPrivateAddress(address: string | undefined): boolean {
  if (!address) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const ip = mapped ? mapped[1] : address;
  const family = isIP(ip);
  if (family === 0) return false;
  return PRIVATE_NETWORKS.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Whether a request looks as if it came through a reverse proxy the app does not trust: it carries
 * `X-Forwarded-For`, its peer is a loopback or private address (where proxies run), and the client
 * address the adapter chose is still the peer's. Then every client behind the proxy shares one
 * limit. From a public peer it says nothing: anyone can send the header.
 */
export function untrustedProxyHop(req: {
  ip?: string;
  headers: Record<string, string | string[] | undefined>;
  socket?: { remoteAddress?: string };
}): boolean {
  const forwarded = req.headers['x-forwarded-for'];
  if (forwarded === undefined || forwarded === '' || forwarded.length === 0) return false;
  const peer = req.socket?.remoteAddress;
  // The cheap test first: behind a trusted proxy (the usual case) the client is not the peer.
  if (req.ip !== undefined && req.ip !== peer) return false;
  return isPrivateAddress(peer);
}

/**
 * Requests already counted against the request budget before the route (the early handshake
 * answer): `within` the budget, or the 429 to answer.
 */
const countedEarly = new WeakMap<object, TooManyRequestsException | 'within'>();

/** The request's key among the counted ones (Fastify's request or its Node request). */
const requestKey = (req: object): object => (req as { raw?: object }).raw ?? req;

/**
 * The in-process counters of one module (keyed by its settings): Nest makes a guard named in
 * `@UseGuards` apart from the provider the early answer uses, and both must count in one place.
 */
const sharedCounters = new WeakMap<
  DiscourseConnectSettings,
  { memory: ThrottlerStorageService; failures: MemoryFailureCounter }
>();

/** How often the untrusted-proxy warning may be logged. */
const PROXY_WARNING_INTERVAL_MS = 10 * 60 * 1000;

/**
 * `@nestjs/throttler` on the module's sign-in and SSO routes only, configured by the module's
 * `rateLimit` option, with two budgets per client IP:
 *
 * - every request, per route, up to `rateLimit.requestLimit` (default 200, Discourse's own per-IP
 *   budget) per window; on the SSO route, signed-in handshakes and anonymous ones (which start a
 *   sign-in and come back once signed in) count apart, so one NAT full of first sign-ins fits;
 * - failed requests (answered 4xx, other than 429), all routes together, up to `rateLimit.limit`
 *   (default 30): checked before each request, counted once the answer is sent, so a client that
 *   keeps failing gets 429 while valid traffic from elsewhere flows.
 *
 * It keeps its own counters, so it neither needs nor touches a `ThrottlerModule` the host may have: in
 * Redis when the module has `redis` (one limit shared by every instance, `<prefix>throttle:*` keys),
 * in this process's memory otherwise (and while Redis does not answer). The client is `req.ip`
 * (Express's `trust proxy` / Fastify's `trustProxy` decides it); requests with `X-Forwarded-For` from
 * a private peer while that is off are logged as a warning (at most every 10 minutes). Over a limit:
 * the module's 429 page with `Retry-After`.
 */
@Injectable()
export class DiscourseConnectRateLimitGuard
  extends ThrottlerGuard
  implements OnApplicationShutdown
{
  /** In-process counters: the storage without Redis, the fallback with it. */
  private readonly memory: ThrottlerStorageService;
  private readonly failures: FailureCounter;
  private readonly log = new Logger('DiscourseConnect');
  private lastProxyWarning = -Infinity;
  private readonly earlyKeys = new Map<string, { failures: string; requests: string }>();
  private ready?: Promise<void>;
  /** `ready` has resolved: the early answer need not wait for it. */
  private initialised = false;

  // Explicit tokens: the parent's @InjectThrottlerOptions()/@InjectThrottlerStorage() would be inherited.
  constructor(
    @Inject(DiscourseConnectSettings) private readonly settings: DiscourseConnectSettings,
    @Inject(Reflector) reflector: Reflector,
    @Inject(DiscourseConnectHttp) private readonly http: DiscourseConnectHttp,
    @Optional() @Inject(DiscourseConnectRedis) redis?: DiscourseConnectRedis | null,
  ) {
    let counters = sharedCounters.get(settings);
    if (!counters) {
      counters = { memory: new ThrottlerStorageService(), failures: new MemoryFailureCounter() };
      sharedCounters.set(settings, counters);
    }
    const memory = counters.memory;
    const storage = redis ? new RedisThrottlerStorage(redis.client, redis.prefix, memory) : memory;
    const { requestLimit, ttlSeconds } = settings.rateLimit;
    super(
      {
        throttlers: [{ name: 'default', limit: requestLimit, ttl: ttlSeconds * 1000 }],
        setHeaders: false,
      },
      storage,
      reflector,
    );
    this.memory = memory;
    const failures = counters.failures;
    this.failures = redis
      ? new RedisFailureCounter(redis.client, redis.prefix, failures)
      : failures;
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    if (!this.settings.rateLimit.enabled) return true;
    // Guards named in @UseGuards are not always initialised by Nest; set the throttlers up once.
    this.ready ??= super.onModuleInit();
    await this.ready;
    const http = context.switchToHttp();
    const req = http.getRequest<DiscourseConnectRequest>();
    // Counted by the early answer already (see `admitSignedInHandshake`): not counted twice.
    const early = countedEarly.get(requestKey(req));
    if (early) countedEarly.delete(requestKey(req));
    if (early instanceof TooManyRequestsException) throw early;
    this.warnOnUntrustedProxy(req);

    const { limit, ttlSeconds } = this.settings.rateLimit;
    const ttlMs = ttlSeconds * 1000;
    const key = createHash('sha256')
      .update(`failures:${await this.getTracker(req as unknown as Record<string, unknown>)}`)
      .digest('hex');
    const failed = await this.failures.count(key, ttlMs);
    if (failed.hits >= limit) {
      throw new TooManyRequestsException(
        Math.max(1, Math.ceil(failed.expiresInMs / 1000)),
        limit,
        ttlSeconds,
        'failures',
      );
    }
    this.http.onFinish(http.getResponse<DiscourseConnectResponse>(), (status) => {
      if (status >= 400 && status < 500 && status !== 429) {
        this.failures.add(key, ttlMs).catch(() => undefined);
      }
    });
    return early === 'within' ? true : super.canActivate(context);
  }

  /**
   * The accounting of the SSO route for a signed-in handshake answered before the route (the early
   * answer, `handshakeRoute` naming the route's controller class and handler): the same budgets as
   * {@link canActivate}, without Nest's pipeline. True: within both, and counted (should the
   * request still go to the route, its guard does not count it again). False: the request must go
   * the normal way, where this guard answers it: over the failure budget (checked there again,
   * nothing counted here), or over the request budget (counted here once; the route's guard then
   * only answers 429).
   */
  async admitSignedInHandshake(
    req: {
      ip?: string;
      headers: Record<string, string | string[] | undefined>;
      socket?: { remoteAddress?: string };
    },
    key: object,
    handshakeRoute: { controller: string; handler: string },
  ): Promise<boolean> {
    if (!this.settings.rateLimit.enabled) return true;
    if (!this.initialised) {
      this.ready ??= super.onModuleInit();
      await this.ready;
      this.initialised = true;
    }
    this.warnOnUntrustedProxy(req as DiscourseConnectRequest);
    const { limit, ttlSeconds, requestLimit } = this.settings.rateLimit;
    const ttlMs = ttlSeconds * 1000;
    const tracker = req.ip ?? req.socket?.remoteAddress ?? 'unknown';
    const keys = this.earlyKeysOf(tracker, handshakeRoute);
    // In this process's memory (no Redis): counted without a promise.
    const failures =
      this.failures instanceof MemoryFailureCounter
        ? this.failures.countNow(keys.failures, ttlMs)
        : await this.failures.count(keys.failures, ttlMs);
    if (failures.hits >= limit) return false;
    const counted = await this.storageService.increment(
      keys.requests,
      ttlMs,
      requestLimit,
      ttlMs,
      'default',
    );
    if (!counted.isBlocked) {
      countedEarly.set(requestKey(key), 'within');
      return true;
    }
    countedEarly.set(
      requestKey(key),
      new TooManyRequestsException(
        Math.max(1, counted.timeToBlockExpire),
        requestLimit,
        ttlSeconds,
      ),
    );
    return false;
  }

  /**
   * The two counter keys of a client for the early answer, as {@link canActivate} and
   * `generateKey` make them (the failures key; ThrottlerGuard's key of the route for a signed-in
   * request), hashed once per client and remembered (a bounded number).
   */
  private earlyKeysOf(
    tracker: string,
    route: { controller: string; handler: string },
  ): { failures: string; requests: string } {
    let keys = this.earlyKeys.get(tracker);
    if (keys) return keys;
    const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
    keys = {
      failures: sha256(`failures:${tracker}`),
      requests: sha256(`${route.controller}-${route.handler}-default-${tracker}:member`),
    };
    if (this.earlyKeys.size >= 10_000) this.earlyKeys.clear();
    this.earlyKeys.set(tracker, keys);
    return keys;
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

  /** Per route and client; signed-in requests count apart from anonymous ones (first sign-ins). */
  protected override generateKey(context: ExecutionContext, suffix: string, name: string): string {
    const req = context.switchToHttp().getRequest<DiscourseConnectRequest>();
    return super.generateKey(context, `${suffix}:${req.user ? 'member' : 'anonymous'}`, name);
  }

  protected override async throwThrottlingException(
    _context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    const { requestLimit, ttlSeconds } = this.settings.rateLimit;
    throw new TooManyRequestsException(
      Math.max(1, detail.timeToBlockExpire),
      requestLimit,
      ttlSeconds,
    );
  }

  private warnOnUntrustedProxy(req: DiscourseConnectRequest): void {
    if (!untrustedProxyHop(req)) return;
    const now = Date.now();
    if (now - this.lastProxyWarning < PROXY_WARNING_INTERVAL_MS) return;
    this.lastProxyWarning = now;
    this.log.warn(
      `Requests with X-Forwarded-For arrive from ${req.socket?.remoteAddress}, a private address, but the app does not trust its proxy: ` +
        'every client behind it shares one per-IP rate limit (and one IP in the logs). ' +
        "Set TRUST_PROXY=true in the bundled app, or app.set('trust proxy', 1) (Express) / new FastifyAdapter({ trustProxy: 1 }) in your own host. " +
        '(Logged at most every 10 minutes.)',
    );
  }

  onApplicationShutdown(): void {
    this.memory.onApplicationShutdown();
  }
}
