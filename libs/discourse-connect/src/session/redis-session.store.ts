import { randomUUID } from 'node:crypto';
import { Store, type SessionData } from 'express-session';
import type { Redis } from 'ioredis';
import { BoundedCache } from '../common/bounded-cache';
import { memberOf } from './typeorm-session.store';

type Callback<T = void> = (err?: unknown, value?: T) => void;

/** The cookie fields kept with a session: those express-session's `Cookie#toJSON` writes. */
export interface StoredSessionCookie {
  originalMaxAge: number | null;
  /** ISO date, or null for a cookie that ends with the browser session. */
  expires: string | null;
  secure?: boolean | 'auto';
  httpOnly?: boolean;
  domain?: string;
  path?: string;
  sameSite?: boolean | 'lax' | 'strict' | 'none';
  partitioned?: boolean;
  priority?: 'low' | 'medium' | 'high';
}

/** The in-process copy of the sessions: its freshness, its size, and the connection that hears other instances' writes. */
export interface RedisSessionCacheOptions {
  /** How long a copy answers reads without Redis, in milliseconds (a bound even if a message is lost). */
  readCacheMs: number;
  /** Sessions kept at most (least recently used go first). Default 10000. */
  size?: number;
  /**
   * A connection of its own (a subscriber cannot send other commands) on which every instance
   * announces the sessions it wrote or destroyed, so the others drop their copies at once.
   */
  subscriber: Redis;
}

interface CachedRedisSession {
  raw: string;
  /** Epoch ms of the cookie's expiry (Infinity without one). */
  expiresAt: number;
  freshUntil: number;
  /** The signed-in member's id in it, once asked; null for none. */
  member?: string | null;
}

/**
 * A session store on Redis, shared by every app instance. The callback API of express-session
 * stores (`get(sid, cb)`, `set(sid, session, cb)`, `destroy(sid, cb)`, `touch(sid, session, cb)`),
 * which `@fastify/session` accepts as well. Each session is one JSON string under
 * `<prefix>sess:<sid>` that Redis expires when the cookie does.
 *
 * express-session hands the store a plain object, `@fastify/session` its `Session` instance (whose
 * cookie has other fields: `originalExpires`, nulls for unset attributes). Both are written, and
 * read back, as the same plain data: the session's own fields plus the cookie as express-session
 * writes it (`originalMaxAge`, `expires` as an ISO date, the attributes that are set), so a session
 * saved by one adapter reads the same on the other, and its key's TTL is that cookie's expiry.
 */
export class RedisSessionStore extends Store {
  /** Sessions as this process last read or wrote them (only while the invalidations are heard). */
  private readonly cache?: BoundedCache<string, CachedRedisSession>;
  /** Whether the subscriber is subscribed: without it, other instances' writes could go unseen. */
  private listening = false;
  /** Counts local writes and other instances' announcements, so a read that raced one is not kept. */
  private changes = 0;
  private readonly instance = randomUUID();
  private readonly channel: string;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly defaultTtlMs: number,
    private readonly cacheOptions?: RedisSessionCacheOptions,
  ) {
    super();
    this.channel = `${prefix}sess:changed`;
    if (cacheOptions && cacheOptions.readCacheMs > 0) {
      this.cache = new BoundedCache(cacheOptions.size ?? 10_000);
      this.listen(cacheOptions.subscriber);
    }
  }

  /**
   * The session from this process's copy, when it is fresh, unexpired and the announcements of
   * other instances are being heard; undefined when only Redis can say.
   */
  cachedSession(sid: string): SessionData | undefined {
    const hit = this.fresh(sid);
    return hit ? (this.parse(hit.raw) ?? undefined) : undefined;
  }

  /** The signed-in member's id of a session {@link cachedSession} would answer, read once per copy. */
  cachedMember(sid: string): string | undefined {
    const hit = this.fresh(sid);
    if (!hit) return undefined;
    if (hit.member === undefined) hit.member = memberOf(this.parse(hit.raw));
    return hit.member ?? undefined;
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    const hit = this.fresh(sid);
    if (hit) return callback(null, this.parse(hit.raw));
    const changesBefore = this.changes;
    this.redis.get(this.key(sid)).then(
      (raw) => {
        if (raw === null) {
          this.cache?.delete(sid);
          return callback(null, null);
        }
        if (this.changes === changesBefore) this.remember(sid, raw);
        let data: Record<string, unknown>;
        try {
          data = JSON.parse(raw) as Record<string, unknown>;
        } catch (error) {
          return callback(error);
        }
        if (data === null || typeof data !== 'object' || Array.isArray(data))
          return callback(null, null);
        callback(null, toStoredSession(data) as unknown as SessionData);
      },
      (err) => callback(err),
    );
  }

  override set(sid: string, session: SessionData, callback?: Callback): void {
    const done = (err?: unknown) => callback?.(err ?? undefined);
    let json: string;
    let ttl: number;
    try {
      const data = toStoredSession(session as unknown as Record<string, unknown>);
      ttl = this.ttlOf(data.cookie);
      json = JSON.stringify(data);
    } catch (error) {
      return done(error);
    }
    this.changes++;
    this.cache?.delete(sid);
    if (ttl <= 0) {
      this.redis.del(this.key(sid)).then(() => this.announce(sid, done), done);
      return;
    }
    const mine = this.changes;
    this.redis.set(this.key(sid), json, 'PX', ttl).then(() => {
      if (this.changes === mine) this.remember(sid, json);
      this.announce(sid, done);
    }, done);
  }

  override destroy(sid: string, callback?: Callback): void {
    this.changes++;
    this.cache?.delete(sid);
    this.redis.del(this.key(sid)).then(
      () => this.announce(sid, (err) => callback?.(err)),
      (err) => callback?.(err),
    );
  }

  /**
   * Ends every session of this member (passport's `user`) at once: each of their keys goes, and is
   * announced to the other instances as a sign-out's is, so no instance's copy answers for it after.
   * Walks the sessions with `SCAN` (a rare call: forgetting a member). Resolves to how many ended.
   */
  async destroyMember(member: string): Promise<number> {
    const pattern = `${globEscape(this.prefix)}sess:*`;
    const keyPrefix = this.key('');
    let ended = 0;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length === 0) continue;
      const values = await this.redis.mget(...keys);
      for (let i = 0; i < keys.length; i++) {
        const raw = values[i];
        if (raw === null || raw === undefined || !keys[i].startsWith(keyPrefix)) continue;
        let data: unknown;
        try {
          data = JSON.parse(raw);
        } catch {
          continue;
        }
        if (memberOf(data) !== member) continue;
        await new Promise<void>((done, fail) =>
          this.destroy(keys[i].slice(keyPrefix.length), (err) => (err ? fail(err) : done())),
        );
        ended++;
      }
    } while (cursor !== '0');
    return ended;
  }

  override touch(sid: string, session: SessionData, callback?: Callback): void {
    const ttl = this.ttlOf(toStoredCookie((session as { cookie?: unknown })?.cookie));
    this.redis.pexpire(this.key(sid), Math.max(1, ttl)).then(
      () => callback?.(),
      (err) => callback?.(err),
    );
  }

  private key(sid: string): string {
    return `${this.prefix}sess:${sid}`;
  }

  private fresh(sid: string): CachedRedisSession | undefined {
    if (!this.cache || !this.listening) return undefined;
    const hit = this.cache.get(sid);
    const now = Date.now();
    if (!hit || hit.freshUntil <= now) return undefined;
    if (hit.expiresAt <= now) {
      this.cache.delete(sid);
      return undefined;
    }
    return hit;
  }

  private parse(raw: string): SessionData | null {
    const data = JSON.parse(raw) as unknown;
    if (data === null || typeof data !== 'object' || Array.isArray(data)) return null;
    return toStoredSession(data as Record<string, unknown>) as unknown as SessionData;
  }

  private remember(sid: string, raw: string): void {
    if (!this.cache || !this.listening) return;
    let expiresAt = Infinity;
    try {
      const cookie = toStoredCookie((JSON.parse(raw) as { cookie?: unknown } | null)?.cookie);
      if (cookie?.expires) expiresAt = new Date(cookie.expires).getTime();
    } catch {
      return; // not JSON: read from Redis each time (get answers the parse error)
    }
    this.cache.set(sid, {
      raw,
      expiresAt,
      freshUntil: Date.now() + (this.cacheOptions?.readCacheMs ?? 0),
    });
  }

  /** Tells the other instances that `sid` changed; a failure to tell them is not the write's failure. */
  private announce(sid: string, done: (err?: unknown) => void): void {
    if (!this.cache) return done();
    this.redis.publish(this.channel, `${this.instance} ${sid}`).then(
      () => done(),
      () => done(),
    );
  }

  /** Hears the other instances; while not subscribed (connecting, reconnecting) nothing is cached. */
  private listen(subscriber: Redis): void {
    const stop = () => {
      this.listening = false;
      this.changes++;
      this.cache?.clear();
    };
    const start = () => {
      subscriber.subscribe(this.channel).then(() => {
        this.changes++;
        this.cache?.clear();
        this.listening = true;
      }, stop);
    };
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const space = message.indexOf(' ');
      if (message.slice(0, space) === this.instance) return;
      this.changes++;
      this.cache?.delete(message.slice(space + 1));
    });
    subscriber.on('close', stop);
    subscriber.on('end', stop);
    subscriber.on('reconnecting', stop);
    subscriber.on('ready', start);
    if (subscriber.status === 'ready') start();
  }

  /** Milliseconds until the cookie expires; the default lifetime for a cookie without an expiry. */
  private ttlOf(cookie: StoredSessionCookie | undefined): number {
    if (!cookie?.expires) return this.defaultTtlMs;
    return new Date(cookie.expires).getTime() - Date.now();
  }
}

/** A string matched literally in a Redis glob pattern. */
function globEscape(text: string): string {
  return text.replace(/[\\*?[\]^-]/g, (c) => `\\${c}`);
}

/**
 * The plain data of a session, whatever object holds it (express-session's session, @fastify/session's
 * `Session`, or parsed JSON): its own enumerable fields, and the cookie in express-session's shape.
 */
export function toStoredSession(
  session: Record<string, unknown>,
): Record<string, unknown> & { cookie?: StoredSessionCookie } {
  const out: Record<string, unknown> & { cookie?: StoredSessionCookie } = {};
  for (const key of Object.keys(session)) {
    if (key === 'cookie' || key === '__proto__') continue;
    out[key] = session[key];
  }
  const cookie = toStoredCookie(session.cookie);
  return cookie ? { cookie, ...out } : out;
}

/** A session cookie (express-session's or @fastify/session's `Cookie`, or its JSON) as stored. */
export function toStoredCookie(cookie: unknown): StoredSessionCookie | undefined {
  if (cookie === null || typeof cookie !== 'object') return undefined;
  const c = cookie as Record<string, unknown>;
  const expiresAt =
    c.expires instanceof Date || typeof c.expires === 'string' || typeof c.expires === 'number'
      ? new Date(c.expires).getTime()
      : NaN;
  const out: StoredSessionCookie = {
    originalMaxAge:
      typeof c.originalMaxAge === 'number' && Number.isFinite(c.originalMaxAge)
        ? c.originalMaxAge
        : null,
    expires: Number.isFinite(expiresAt) ? new Date(expiresAt).toISOString() : null,
  };
  if (typeof c.secure === 'boolean' || c.secure === 'auto') out.secure = c.secure;
  if (typeof c.httpOnly === 'boolean') out.httpOnly = c.httpOnly;
  if (typeof c.domain === 'string') out.domain = c.domain;
  if (typeof c.path === 'string') out.path = c.path;
  if (
    typeof c.sameSite === 'boolean' ||
    c.sameSite === 'lax' ||
    c.sameSite === 'strict' ||
    c.sameSite === 'none'
  )
    out.sameSite = c.sameSite;
  if (typeof c.partitioned === 'boolean') out.partitioned = c.partitioned;
  if (c.priority === 'low' || c.priority === 'medium' || c.priority === 'high')
    out.priority = c.priority;
  return out;
}
