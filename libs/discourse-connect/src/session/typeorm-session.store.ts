import { Store, type SessionData } from 'express-session';
import { LessThan, type Repository } from 'typeorm';
import type { DiscourseConnectSessionEntity } from './discourse-connect-session.entity';

type Callback<T = void> = (err?: unknown, value?: T) => void;

/**
 * An express-session store on the module's TypeORM table. Expired rows are ignored on read and swept
 * periodically; `touch` writes at most once per `touchIntervalMs` per session, so a busy signed-in
 * user does not cost a write per request.
 */
export class TypeOrmSessionStore extends Store {
  private readonly lastTouch = new Map<string, number>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly sessions: Repository<DiscourseConnectSessionEntity>,
    private readonly defaultTtlMs: number,
    private readonly touchIntervalMs = 10 * 60_000,
    sweepIntervalMs = 15 * 60_000,
  ) {
    super();
    this.sweeper = setInterval(() => void this.sweep().catch(() => undefined), sweepIntervalMs);
    this.sweeper.unref();
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    this.sessions
      .findOneBy({ sid })
      .then((row) => {
        if (!row || row.expiresAt <= Date.now()) return callback(null, null);
        callback(null, JSON.parse(row.data) as SessionData);
      })
      .catch((err) => callback(err));
  }

  override set(sid: string, session: SessionData, callback?: Callback): void {
    const expiresAt = this.expiryOf(session);
    this.sessions
      .upsert({ sid, data: JSON.stringify(session), expiresAt }, ['sid'])
      .then(() => {
        this.lastTouch.set(sid, Date.now());
        callback?.();
      })
      .catch((err) => callback?.(err));
  }

  override destroy(sid: string, callback?: Callback): void {
    this.lastTouch.delete(sid);
    this.sessions
      .delete({ sid })
      .then(() => callback?.())
      .catch((err) => callback?.(err));
  }

  override touch(sid: string, session: SessionData, callback?: Callback): void {
    const last = this.lastTouch.get(sid) ?? 0;
    if (Date.now() - last < this.touchIntervalMs) return callback?.();
    if (this.lastTouch.size > 100_000) this.lastTouch.clear();
    this.lastTouch.set(sid, Date.now());
    this.sessions
      .update({ sid }, { expiresAt: this.expiryOf(session) })
      .then(() => callback?.())
      .catch((err) => callback?.(err));
  }

  /** Deletes expired sessions; called periodically. */
  async sweep(): Promise<number> {
    const result = await this.sessions.delete({ expiresAt: LessThan(Date.now()) });
    return result.affected ?? 0;
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private expiryOf(session: SessionData): number {
    const expires = session.cookie?.expires;
    return expires ? new Date(expires).getTime() : Date.now() + this.defaultTtlMs;
  }
}
