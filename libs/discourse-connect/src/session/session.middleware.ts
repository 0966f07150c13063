import type { Store } from 'express-session';
import { Inject, Injectable, NestMiddleware, OnModuleDestroy, Optional } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import session from 'express-session';
import type { PassportStatic } from 'passport';
import { Repository } from 'typeorm';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DISCOURSE_CONNECT_PASSPORT } from './discourse-connect-passport';
import { DiscourseConnectSessionEntity } from './discourse-connect-session.entity';
import { DiscourseConnectRedis } from '../redis/discourse-connect-redis';
import {
  createSessionStore,
  legacySessionCookie,
  parseCookieHeader,
  sessionCookieName,
  sessionCookieOptions,
  type SessionStoreChoice,
  HOST_SESSION_STORE,
} from './session-store.factory';

/**
 * Server-side sessions and passport, installed by the module on the host's routes: cookie
 * httpOnly, SameSite=Lax, Secure and `__Host-` when the public URL is https; stored in the
 * module's database table unless the host gives another store. The cookie's old name (without
 * `__Host-`) is still read when the new one is absent, and moved to the new name.
 */
@Injectable()
export class DiscourseConnectSessionMiddleware implements NestMiddleware, OnModuleDestroy {
  private readonly chain: RequestHandler[];
  /** The session store in use, on either adapter (the Fastify glue hands it to @fastify/session). */
  readonly sessionStore: SessionStoreChoice;

  constructor(
    settings: DiscourseConnectSettings,
    @InjectRepository(DiscourseConnectSessionEntity)
    sessions: Repository<DiscourseConnectSessionEntity>,
    @Inject(DISCOURSE_CONNECT_PASSPORT) passport: PassportStatic,
    @Inject(HOST_SESSION_STORE) hostStore: Store | null,
    @Optional() @Inject(DiscourseConnectRedis) redis?: DiscourseConnectRedis | null,
  ) {
    const s = settings.session;
    this.sessionStore = createSessionStore(settings, { sessions, redis, hostStore });
    this.chain = [
      (req, res, next) => {
        const legacy = legacySessionCookie(settings, parseCookieHeader(req.headers.cookie));
        if (legacy) {
          // First in the header: express-session reads the first cookie of a name.
          req.headers.cookie = `${legacy.name}=${legacy.value}; ${req.headers.cookie ?? ''}`;
          for (const line of legacy.setCookies) res.append('Set-Cookie', line);
        }
        next();
      },
      session({
        name: sessionCookieName(settings),
        secret: s.secret,
        store: this.sessionStore.store,
        resave: false,
        saveUninitialized: false,
        rolling: false,
        unset: 'destroy',
        cookie: sessionCookieOptions(settings),
      }),
      passport.initialize(),
      passport.session(),
    ];
  }

  use(req: Request, res: Response, next: NextFunction): void {
    let i = 0;
    const step = (err?: unknown): void => {
      if (err) return next(err);
      const handler = this.chain[i++];
      if (!handler) return next();
      handler(req, res, step);
    };
    step();
  }

  onModuleDestroy(): void {
    this.sessionStore.close();
  }
}
