import type { Store } from 'express-session';
import type { Repository } from 'typeorm';
import type { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import type { DiscourseConnectRedis } from '../redis/discourse-connect-redis';
import { RedisSessionStore } from './redis-session.store';
import type { DiscourseConnectSessionEntity } from './discourse-connect-session.entity';
import { TypeOrmSessionStore } from './typeorm-session.store';

/** Injection token of the host's session store (`session.store`), or null for the module's own. */
export const HOST_SESSION_STORE = Symbol('DiscourseConnectHostSessionStore');

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
  deps: {
    sessions: Repository<DiscourseConnectSessionEntity>;
    redis?: DiscourseConnectRedis | null;
    /** The host's `session.store` (instantiated by the module when given as a class), if any. */
    hostStore?: Store | null;
  },
): SessionStoreChoice {
  const ttlMs = settings.session.maxAgeSeconds * 1000;
  if (deps.hostStore) return { store: deps.hostStore, kind: 'host', close: () => undefined };
  if (deps.redis) {
    // With the read cache on, each instance keeps the sessions it read or wrote for
    // `session.readCacheMs` and drops a copy as soon as another instance announces a change to it.
    const readCacheMs = settings.session.readCacheMs;
    const cache =
      readCacheMs > 0
        ? { readCacheMs, subscriber: deps.redis.duplicate({}, 'discourse-connect-sessions') }
        : undefined;
    return {
      store: new RedisSessionStore(deps.redis.client, deps.redis.prefix, ttlMs, cache),
      kind: 'redis',
      close: () => undefined,
    };
  }
  const store = new TypeOrmSessionStore(deps.sessions, {
    defaultTtlMs: ttlMs,
    readCacheMs: settings.session.readCacheMs,
  });
  return { store, kind: 'database', close: () => store.close() };
}

/**
 * Pre-sign-in sessions (the OAuth state and PKCE verifier, where to go back to) live one hour at
 * most: long enough for a sign-in that outlasts the forum's 30-minute nonce, short enough that the
 * rows anonymous visitors create do not pile up for the session's full lifetime. Signing in starts a
 * new session (passport regenerates it) with the normal lifetime.
 */
export const PRE_SIGN_IN_MAX_AGE_MS = 60 * 60 * 1000;

/** The prefix that makes a cookie host-only, Secure and Path=/ in the browser (no sibling subdomain can set it). */
export const HOST_COOKIE_PREFIX = '__Host-';

/**
 * The session cookie's name: `__Host-<session.cookieName>` when the public URL is https, so a
 * sibling subdomain cannot plant or shadow it; the configured name as is on plain http (browsers
 * refuse `__Host-` cookies without Secure).
 */
export function sessionCookieName(settings: DiscourseConnectSettings): string {
  const name = settings.session.cookieName;
  return settings.secureCookies && !name.startsWith(HOST_COOKIE_PREFIX)
    ? `${HOST_COOKIE_PREFIX}${name}`
    : name;
}

/**
 * The name the session cookie had before the `__Host-` prefix (the configured name), accepted for
 * one release when the prefixed cookie is absent, so upgrading signs nobody out. Undefined when the
 * two are the same (plain http, or a configured name that already has the prefix).
 */
export function legacySessionCookieName(settings: DiscourseConnectSettings): string | undefined {
  const name = sessionCookieName(settings);
  return name === settings.session.cookieName ? undefined : settings.session.cookieName;
}

/**
 * The session cookie's attributes, the same on every adapter: httpOnly, SameSite=Lax, Secure when
 * the public URL is https, the session's lifetime, the whole site, no Domain (host-only, as
 * `__Host-` requires).
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

/**
 * A `Set-Cookie` value for a session cookie with the attributes above: `expires` in the past
 * expires it (sign-out, the old name after migration).
 */
export function sessionSetCookie(
  settings: DiscourseConnectSettings,
  name: string,
  value: string,
  expires: Date,
): string {
  const o = sessionCookieOptions(settings);
  const secure = o.secure ? '; Secure' : '';
  return `${name}=${value}; Path=${o.path}; Expires=${expires.toUTCString()}; HttpOnly${secure}; SameSite=Lax`;
}

/** `Set-Cookie` values that expire the session cookie, under its current and its old name. */
export function expiredSessionCookies(settings: DiscourseConnectSettings): string[] {
  const epoch = new Date(0);
  const legacy = legacySessionCookieName(settings);
  return [sessionCookieName(settings), ...(legacy ? [legacy] : [])].map((name) =>
    sessionSetCookie(settings, name, '', epoch),
  );
}

/** A signed session id cookie, decoded: `s:<id>.<signature>`; nothing else is carried over. */
const SIGNED_ID_COOKIE = /^s:[A-Za-z0-9_-]{1,128}\.[A-Za-z0-9+/_=-]{1,128}$/;

function isSignedIdCookie(value: string): boolean {
  try {
    return SIGNED_ID_COOKIE.test(decodeURIComponent(value));
  } catch {
    return false;
  }
}

/**
 * The old-name cookie to accept on this request: its value when the request has the old name but not
 * the `__Host-` one (the prefixed cookie always wins), with the `Set-Cookie` values that move the
 * browser to the new name (same signed value, the normal lifetime; the old one expired). The
 * session row decides validity as for any cookie.
 */
export function legacySessionCookie(
  settings: DiscourseConnectSettings,
  cookies: Record<string, string | undefined>,
): { name: string; value: string; setCookies: string[] } | undefined {
  const legacy = legacySessionCookieName(settings);
  const name = sessionCookieName(settings);
  const value = legacy ? cookies[legacy] : undefined;
  if (!legacy || value === undefined || !isSignedIdCookie(value) || cookies[name] !== undefined)
    return undefined;
  const expires = new Date(Date.now() + settings.session.maxAgeSeconds * 1000);
  return {
    name,
    value,
    setCookies: [
      sessionSetCookie(settings, name, value, expires),
      sessionSetCookie(settings, legacy, '', new Date(0)),
    ],
  };
}

/** Cookie pairs of a `Cookie` header, the first of each name kept (as express-session and @fastify/cookie read them). */
export function parseCookieHeader(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim();
    if (key && !(key in out)) out[key] = part.slice(eq + 1).trim();
  }
  return out;
}

/**
 * Gives a session that is not signed in the short pre-sign-in lifetime (cookie and stored row:
 * both stores take the row's expiry from the cookie). A signed-in session is left alone.
 */
export function limitToPreSignInLifetime(
  req: { user?: unknown; session?: object | null },
  settings: DiscourseConnectSettings,
): void {
  if (req.user) return;
  const cookie = (req.session as { cookie?: unknown } | null | undefined)?.cookie as
    { maxAge?: number | null; originalMaxAge?: number | null } | undefined;
  if (!cookie) return;
  const limit = Math.min(PRE_SIGN_IN_MAX_AGE_MS, settings.session.maxAgeSeconds * 1000);
  const current = typeof cookie.maxAge === 'number' ? cookie.maxAge : Infinity;
  if (current > limit) cookie.maxAge = limit;
}

/**
 * Gives the session just signed in the normal lifetime. express-session's regenerated session
 * already has it; @fastify/session's keeps the cookie options of the session it replaced (the
 * pre-sign-in hour), so the cookie is reset and the session saved again with its new expiry.
 */
export async function startSignedInLifetime(
  req: { session?: object | null },
  settings: DiscourseConnectSettings,
): Promise<void> {
  const session = req.session as
    | { cookie?: { maxAge?: number | null }; save?(done: (err?: unknown) => void): void }
    | null
    | undefined;
  const cookie = session?.cookie;
  if (!session || !cookie) return;
  const lifetime = settings.session.maxAgeSeconds * 1000;
  // Under a minute short: a session that got the full lifetime a moment ago.
  if (typeof cookie.maxAge === 'number' && cookie.maxAge > lifetime - 60_000) return;
  cookie.maxAge = lifetime;
  if (typeof session.save === 'function') {
    const save = session.save.bind(session);
    await new Promise<void>((resolve, reject) => save((err) => (err ? reject(err) : resolve())));
  }
}
