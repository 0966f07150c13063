import type { Store } from 'express-session';
import type { Repository } from 'typeorm';
import type { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import type { DiscourseConnectRedis } from '../redis/discourse-connect-redis';
import { RedisSessionStore } from '../redis/redis-session.store';
import type { DiscourseConnectSessionEntity } from './discourse-connect-session.entity';
import { TypeOrmSessionStore } from './typeorm-session.store';

/** The session store in use and how to release what the module created for it. */
export interface SessionStoreChoice {
  store: Store;
  /** `host`: `session.store` from the options; `redis`: shared by instances; `database`: the module's table. */
  kind: 'host' | 'redis' | 'database';
  /** Stops the store's timers (the host's own store is left alone; the Redis connection closes with the app). */
  close(): void;
}

/**
 * Which session store the module uses, for every HTTP adapter (express-session and
 * `@fastify/session` take the same store object): the host's `session.store` if given, else Redis
 * when `redis` is configured (sessions valid on every instance), else the module's database table.
 */
export function createSessionStore(
  settings: DiscourseConnectSettings,
  deps: { sessions: Repository<DiscourseConnectSessionEntity>; redis?: DiscourseConnectRedis | null },
): SessionStoreChoice {
  const ttlMs = settings.session.maxAgeSeconds * 1000;
  if (settings.session.store) return { store: settings.session.store, kind: 'host', close: () => undefined };
  if (deps.redis) {
    return { store: new RedisSessionStore(deps.redis.client, deps.redis.prefix, ttlMs), kind: 'redis', close: () => undefined };
  }
  const store = new TypeOrmSessionStore(deps.sessions, { defaultTtlMs: ttlMs, readCacheMs: settings.session.readCacheMs });
  return { store, kind: 'database', close: () => store.close() };
}

/**
 * The session cookie's attributes, the same on every adapter: httpOnly, SameSite=Lax, Secure when
 * the public URL is https, the session's lifetime, the whole site.
 */
export function sessionCookieOptions(settings: DiscourseConnectSettings) {
  return {
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: settings.secureCookies,
    maxAge: settings.session.maxAgeSeconds * 1000,
    path: '/',
  };
}
