import { Store, type SessionData } from 'express-session';
import type { Redis } from 'ioredis';

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
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly defaultTtlMs: number,
  ) {
    super();
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    this.redis.get(this.key(sid)).then(
      (raw) => {
        if (raw === null) return callback(null, null);
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
    if (ttl <= 0) {
      this.redis.del(this.key(sid)).then(() => done(), done);
      return;
    }
    this.redis.set(this.key(sid), json, 'PX', ttl).then(() => done(), done);
  }

  override destroy(sid: string, callback?: Callback): void {
    this.redis.del(this.key(sid)).then(
      () => callback?.(),
      (err) => callback?.(err),
    );
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

  /** Milliseconds until the cookie expires; the default lifetime for a cookie without an expiry. */
  private ttlOf(cookie: StoredSessionCookie | undefined): number {
    if (!cookie?.expires) return this.defaultTtlMs;
    return new Date(cookie.expires).getTime() - Date.now();
  }
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
