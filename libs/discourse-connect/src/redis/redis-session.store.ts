import { Store, type SessionData } from 'express-session';
import type { Redis } from 'ioredis';

type Callback<T = void> = (err?: unknown, value?: T) => void;

/**
 * A session store on Redis, shared by every app instance. The callback API of express-session
 * stores (`get(sid, cb)`, `set(sid, session, cb)`, `destroy(sid, cb)`, `touch(sid, session, cb)`),
 * which `@fastify/session` accepts as well. Each session is one JSON string under
 * `<prefix>sess:<sid>` that Redis expires when the cookie does.
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
        let data: SessionData;
        try {
          data = JSON.parse(raw) as SessionData;
        } catch (error) {
          return callback(error);
        }
        callback(null, data);
      },
      (err) => callback(err),
    );
  }

  override set(sid: string, session: SessionData, callback?: Callback): void {
    const ttl = this.ttlOf(session);
    const done = (err?: unknown) => callback?.(err ?? undefined);
    if (ttl <= 0) {
      this.redis.del(this.key(sid)).then(() => done(), done);
      return;
    }
    let json: string;
    try {
      json = JSON.stringify(session);
    } catch (error) {
      return done(error);
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
    const ttl = this.ttlOf(session);
    this.redis.pexpire(this.key(sid), Math.max(1, ttl)).then(
      () => callback?.(),
      (err) => callback?.(err),
    );
  }

  private key(sid: string): string {
    return `${this.prefix}sess:${sid}`;
  }

  /** Milliseconds until the cookie expires (express-session and @fastify/session both keep `cookie.expires`). */
  private ttlOf(session: SessionData): number {
    const expires = (session as { cookie?: { expires?: Date | string | null } })?.cookie?.expires;
    if (!expires) return this.defaultTtlMs;
    const at = new Date(expires).getTime();
    return Number.isFinite(at) ? at - Date.now() : this.defaultTtlMs;
  }
}
