import { Store, type SessionData } from 'express-session';
import { In, LessThan, type Repository } from 'typeorm';
import type { DiscourseConnectSessionEntity } from './discourse-connect-session.entity';

type Callback<T = void> = (err?: unknown, value?: T) => void;

/** A session row as last read or written by this process. */
interface CachedSession {
  data: string;
  expiresAt: number;
  /** Until when this copy may answer a read without asking the database. */
  freshUntil: number;
  /** Written by this process (not only read). */
  written: boolean;
  /** The signed-in member's id in it (passport's `user`), once asked; null for none. */
  member?: string | null;
}

/**
 * The cookie's expiry at the start of a stored session, as express-session writes it
 * (`{"cookie":{"originalMaxAge":…,"expires":"…"`); any other shape is compared whole.
 */
const COOKIE_EXPIRES = /^\{"cookie":\{"originalMaxAge":(?:null|-?[0-9.e+]+),"expires":"[^"]*"/;

/** Requests whose next session regeneration is a log-in (see {@link regenerateForLogIn}). */
const logIns = new WeakSet<object>();

/**
 * Marks a request about to log in (passport regenerates its session): with the module's store on
 * express-session, the new session's first save then renames the old row in one statement
 * (`UPDATE … SET sid = new WHERE sid = old`) instead of a `DELETE` of the old row and an `INSERT`
 * of the new one. The old id stops being valid in the same statement that makes the new one valid.
 */
export function regenerateForLogIn(req: object): void {
  logIns.add(req);
}

/** passport's `user` in a stored session, when it is a member id. */
export function memberOf(session: unknown): string | null {
  const user = (session as { passport?: { user?: unknown } } | null)?.passport?.user;
  return typeof user === 'string' ? user : null;
}

/** passport's `user` in a stored session's JSON; null for none or unreadable JSON. */
function memberOfRaw(data: string): string | null {
  try {
    return memberOf(JSON.parse(data));
  } catch {
    return null;
  }
}

/** Two stored sessions that differ at most in their cookie's expiry. */
function sameApartFromExpiry(a: string, b: string): boolean {
  if (a === b) return true;
  const ea = COOKIE_EXPIRES.exec(a);
  const eb = COOKIE_EXPIRES.exec(b);
  if (!ea || !eb) return false;
  const bare = (text: string, match: RegExpExecArray) =>
    match[0].replace(/"expires":"[^"]*"$/, '') + text.slice(match[0].length);
  return bare(a, ea) === bare(b, eb);
}

export interface TypeOrmSessionStoreOptions {
  /** Lifetime of a session whose cookie has no expiry, in milliseconds. */
  defaultTtlMs: number;
  /**
   * How long a session read or written by this process answers reads without the database, in
   * milliseconds (0: always read the database). Writes and destroys through this store update the
   * copy at once; only a change made by another process (another instance on a shared database)
   * can go unseen, for at most this long. Default 1000.
   */
  readCacheMs?: number;
  /** Sessions kept in that cache at most; the oldest go first. Default 10000. */
  readCacheSize?: number;
  /** A session's expiry is written at most this often, in milliseconds. Default 10 minutes. */
  touchIntervalMs?: number;
  /** Expired rows are deleted this often, in milliseconds. Default 15 minutes. */
  sweepIntervalMs?: number;
}

/**
 * An express-session store (also usable by @fastify/session) on the module's TypeORM table.
 * Expired rows are ignored on read and swept periodically; `touch` writes at most once per
 * `touchIntervalMs` per session, so a busy signed-in user does not cost a write per request; a
 * short read cache keeps the database off the path of a user's quick succession of requests (the
 * forum link, then the handshake it leads to).
 */
export class TypeOrmSessionStore extends Store {
  private readonly lastTouch = new Map<string, number>();
  private readonly cache = new Map<string, CachedSession>();
  /** Sessions regenerated at log-in and not saved yet: new id → the id whose row they take over. */
  private readonly renames = new Map<string, string>();
  /**
   * Counts the start and the end of every write and destroy, so a read that overlapped one does not
   * cache what it read.
   */
  private writes = 0;
  private readonly sweeper: NodeJS.Timeout;
  private readonly defaultTtlMs: number;
  private readonly readCacheMs: number;
  private readonly readCacheSize: number;
  private readonly touchIntervalMs: number;

  constructor(
    private readonly sessions: Repository<DiscourseConnectSessionEntity>,
    options: TypeOrmSessionStoreOptions | number,
  ) {
    super();
    const o = typeof options === 'number' ? { defaultTtlMs: options } : options;
    this.defaultTtlMs = o.defaultTtlMs;
    this.readCacheMs = o.readCacheMs ?? 1000;
    this.readCacheSize = o.readCacheSize ?? 10_000;
    this.touchIntervalMs = o.touchIntervalMs ?? 10 * 60_000;
    this.sweeper = setInterval(
      () => void this.sweep().catch(() => undefined),
      o.sweepIntervalMs ?? 15 * 60_000,
    );
    this.sweeper.unref();
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    const now = Date.now();
    const cached = this.cache.get(sid);
    if (cached && cached.freshUntil > now) {
      if (cached.expiresAt <= now) return callback(null, null);
      return callback(null, JSON.parse(cached.data) as SessionData);
    }
    const writesBefore = this.writes;
    this.sessions
      .findOneBy({ sid })
      .then((row) => {
        if (!row) {
          this.cache.delete(sid);
          return callback(null, null);
        }
        if (this.writes === writesBefore) this.remember(sid, row.data, row.expiresAt);
        if (row.expiresAt <= Date.now()) return callback(null, null);
        callback(null, JSON.parse(row.data) as SessionData);
      })
      .catch((err) => callback(err));
  }

  /**
   * The session as this process last read or wrote it, when that copy is still fresh (within
   * `readCacheMs`) and the session has not expired; undefined when only the database can say
   * (not cached, stale, expired, or the cache off). Synchronous: for a read path that must not wait.
   */
  cachedSession(sid: string): SessionData | undefined {
    const cached = this.cache.get(sid);
    if (!cached) return undefined;
    const now = Date.now();
    if (cached.freshUntil <= now || cached.expiresAt <= now) return undefined;
    return JSON.parse(cached.data) as SessionData;
  }

  /**
   * The signed-in member's id (passport's `user`) of a session {@link cachedSession} would answer,
   * read from the copy once and remembered with it; undefined otherwise.
   */
  cachedMember(sid: string): string | undefined {
    const cached = this.cache.get(sid);
    if (!cached) return undefined;
    const now = Date.now();
    if (cached.freshUntil <= now || cached.expiresAt <= now) return undefined;
    if (cached.member === undefined) cached.member = memberOf(JSON.parse(cached.data));
    return cached.member ?? undefined;
  }

  /**
   * express-session's regeneration (passport's log-in): for a request marked by
   * {@link regenerateForLogIn}, the new session takes over the old row at its first save (one
   * `UPDATE` renaming it), so the old id is not deleted separately first; any other regeneration
   * deletes the old row first, as express-session's own store does.
   */
  override regenerate(
    req: Parameters<Store['regenerate']>[0],
    callback: (err?: unknown) => void,
  ): void {
    const generate = (this as { generate?: (r: typeof req) => void }).generate;
    if (!logIns.has(req) || typeof generate !== 'function') return super.regenerate(req, callback);
    logIns.delete(req);
    const from = req.sessionID;
    this.lastTouch.delete(from);
    this.writes++;
    this.cache.delete(from);
    generate.call(this, req);
    this.renames.set(req.sessionID, from);
    if (this.renames.size > 10_000) {
      // Never saved (a log-in that failed before its save): the old row stays as it was.
      const oldest = this.renames.keys().next().value;
      if (oldest !== undefined) this.renames.delete(oldest);
    }
    callback();
  }

  override set(sid: string, session: SessionData, callback?: Callback): void {
    const expiresAt = this.expiryOf(session);
    const data = JSON.stringify(session);
    const from = this.renames.get(sid);
    if (from !== undefined) {
      this.renames.delete(sid);
      return this.rename(from, sid, data, expiresAt, callback);
    }
    // The same session saved again (express-session saves at the end of a request what passport
    // saved during it): the row already holds it, with an expiry at most a touch interval apart.
    const cached = this.cache.get(sid);
    if (
      cached?.written &&
      cached.freshUntil > Date.now() &&
      Math.abs(cached.expiresAt - expiresAt) < this.touchIntervalMs &&
      sameApartFromExpiry(cached.data, data)
    ) {
      return callback?.();
    }
    const mine = ++this.writes;
    this.cache.delete(sid);
    this.sessions
      .upsert({ sid, data, expiresAt }, ['sid'])
      .then(() => {
        this.lastTouch.set(sid, Date.now());
        // Counted again on completion, so a read that ran alongside this write does not cache what
        // it read; and kept only when no other write started meanwhile (which one lands last is the
        // database's call then).
        const untouched = this.writes === mine;
        this.writes++;
        if (untouched) this.remember(sid, data, expiresAt, true);
        callback?.();
      })
      .catch((err) => callback?.(err));
  }

  /**
   * The row of `from` becomes the row of `sid` with this data, in one statement; when `from` has no
   * row (expired and swept meanwhile), the new row is written instead. When the write fails, the old
   * row is deleted as the regeneration would have done.
   */
  private rename(
    from: string,
    sid: string,
    data: string,
    expiresAt: number,
    callback?: Callback,
  ): void {
    const mine = ++this.writes;
    this.cache.delete(from);
    this.cache.delete(sid);
    this.sessions
      .update({ sid: from }, { sid, data, expiresAt })
      .then(async (result) => {
        if (!result.affected) await this.sessions.upsert({ sid, data, expiresAt }, ['sid']);
        this.lastTouch.delete(from);
        this.lastTouch.set(sid, Date.now());
        const untouched = this.writes === mine;
        this.writes++;
        this.cache.delete(from);
        if (untouched) this.remember(sid, data, expiresAt, true);
        callback?.();
      })
      .catch(async (err) => {
        await this.sessions.delete({ sid: from }).catch(() => undefined);
        this.writes++;
        this.cache.delete(from);
        callback?.(err);
      });
  }

  override destroy(sid: string, callback?: Callback): void {
    this.lastTouch.delete(sid);
    this.writes++;
    this.cache.delete(sid);
    this.sessions
      .delete({ sid })
      .then(() => {
        this.writes++;
        this.cache.delete(sid);
        callback?.();
      })
      .catch((err) => callback?.(err));
  }

  override touch(sid: string, session: SessionData, callback?: Callback): void {
    const last = this.lastTouch.get(sid) ?? 0;
    if (Date.now() - last < this.touchIntervalMs) return callback?.();
    if (this.lastTouch.size > 100_000) this.lastTouch.clear();
    this.lastTouch.set(sid, Date.now());
    const expiresAt = this.expiryOf(session);
    this.sessions
      .update({ sid }, { expiresAt })
      .then(() => {
        const cached = this.cache.get(sid);
        if (cached) cached.expiresAt = expiresAt;
        callback?.();
      })
      .catch((err) => callback?.(err));
  }

  /**
   * Ends every session of this member (passport's `user`) at once: their rows go, and this
   * process's copies of them too, so no read (nor the early handshake answer) finds them after.
   * Resolves to how many sessions were ended.
   */
  async destroyMember(member: string): Promise<number> {
    this.writes++;
    this.forgetMember(member);
    const pattern = `%"passport":{"user":${JSON.stringify(member)}}%`;
    const rows = await this.sessions
      .createQueryBuilder('s')
      .select(['s.sid', 's.data'])
      .where('s.data LIKE :pattern', { pattern })
      .getMany();
    const sids = rows.filter((row) => memberOfRaw(row.data) === member).map((row) => row.sid);
    for (let i = 0; i < sids.length; i += 500) {
      await this.sessions.delete({ sid: In(sids.slice(i, i + 500)) });
    }
    this.writes++;
    this.forgetMember(member);
    for (const sid of sids) {
      this.lastTouch.delete(sid);
      this.cache.delete(sid);
    }
    return sids.length;
  }

  /** Drops this process's copies of the member's sessions. */
  private forgetMember(member: string): void {
    for (const [sid, cached] of this.cache) {
      if (cached.member === undefined) cached.member = memberOfRaw(cached.data);
      if (cached.member === member) this.cache.delete(sid);
    }
  }

  /** Deletes expired sessions; called periodically. */
  async sweep(): Promise<number> {
    const result = await this.sessions.delete({ expiresAt: LessThan(Date.now()) });
    return result.affected ?? 0;
  }

  close(): void {
    clearInterval(this.sweeper);
    this.cache.clear();
  }

  private remember(sid: string, data: string, expiresAt: number, written = false): void {
    if (this.readCacheMs <= 0) return;
    this.cache.delete(sid); // re-insert: the Map's order is the eviction order
    this.cache.set(sid, { data, expiresAt, freshUntil: Date.now() + this.readCacheMs, written });
    if (this.cache.size > this.readCacheSize) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
  }

  private expiryOf(session: SessionData): number {
    const expires = session.cookie?.expires;
    return expires ? new Date(expires).getTime() : Date.now() + this.defaultTtlMs;
  }
}
