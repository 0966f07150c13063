import { Inject, Injectable, NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import session, { type Store } from 'express-session';
import type { PassportStatic } from 'passport';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectSessions } from './sessions';
import { DISCOURSE_CONNECT_PASSPORT } from './discourse-connect-passport';
import {
  legacySessionCookie,
  legacySessionCookieName,
  parseCookieHeader,
  sessionCookieName,
  sessionCookieOptions,
} from './session-store.factory';

/**
 * Server-side sessions and passport, installed by the module on the host's routes: cookie
 * httpOnly, SameSite=Lax, Secure and `__Host-` when the public URL is https; stored in the
 * module's database table unless the host gives another store. The cookie's old name (without
 * `__Host-`) is still read when the new one is absent, and moved to the new name.
 */
@Injectable()
export class DiscourseConnectSessionMiddleware implements NestMiddleware {
  private readonly load: RequestHandler;

  constructor(
    settings: DiscourseConnectSettings,
    sessions: DiscourseConnectSessions,
    @Inject(DISCOURSE_CONNECT_PASSPORT) passport: PassportStatic,
  ) {
    this.load = sessionMiddleware(settings, sessions.store, passport);
  }

  use(req: Request, res: Response, next: NextFunction): void {
    this.load(req, res, next);
  }
}

/**
 * The session layer as one Express middleware: the old cookie name moved to the new one,
 * express-session on `store`, then passport's `initialize()` and `session()`.
 */
export function sessionMiddleware(
  settings: DiscourseConnectSettings,
  store: Store,
  passport: PassportStatic,
): RequestHandler {
  const s = settings.session;
  const legacyName = legacySessionCookieName(settings);
  const chain: RequestHandler[] = [
    (req, res, next) => {
      // Parsed only when the old name may be there (most requests: a substring search).
      const header = req.headers.cookie;
      const legacy =
        legacyName !== undefined && header?.includes(legacyName)
          ? legacySessionCookie(settings, parseCookieHeader(header))
          : undefined;
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
      store,
      resave: false,
      saveUninitialized: false,
      rolling: false,
      unset: 'destroy',
      cookie: sessionCookieOptions(settings),
    }),
    passport.initialize() as RequestHandler,
    passport.session() as RequestHandler,
  ];
  return (req, res, next) => {
    let i = 0;
    const step = (err?: unknown): void => {
      if (err) return next(err);
      const handler = chain[i++];
      if (!handler) return next();
      handler(req, res, step);
    };
    step();
  };
}
