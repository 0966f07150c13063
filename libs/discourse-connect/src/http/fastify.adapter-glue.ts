import type { MiddlewareConsumer } from '@nestjs/common';
import { loadOptionalDependency } from '../config/optional-dependency';
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  RouteOptions,
} from 'fastify';
import {
  hasEncodedPath,
  refusedBody,
  type HttpAdapterGlue,
  type HttpInstallContext,
} from './http-adapter-glue';
import {
  legacySessionCookieName,
  legacySessionCookie,
  sessionCookieName,
  sessionCookieOptions,
} from '../session/session-store.factory';
import { SessionCookieSigner } from '../session/session-cookie-signer';

type NodeCallback = (err?: unknown) => void;
type Middleware = (req: unknown, res: unknown, next: NodeCallback) => void;

/** Request fields passport sets on every request: declared once, so Fastify keeps one object shape. */
const PASSPORT_REQUEST_FIELDS = [
  'user',
  'login',
  'logIn',
  'logout',
  'logOut',
  'isAuthenticated',
  'isUnauthenticated',
  '_sessionManager',
  '_passport',
  'authInfo',
];

/**
 * `@nestjs/platform-fastify`: `@fastify/cookie` + `@fastify/session` registered on the Fastify
 * instance from the module's `configure()` (which Nest awaits before it registers any route, so the
 * plugins' hooks cover every route), passport's `initialize()` + `session()` in a `preValidation`
 * hook, and two reply methods passport calls on a Node response: `setHeader` (→ `header`) and `end`
 * (→ `send`). Passport's redirect to Discord therefore goes through Fastify's reply, whose `onSend`
 * hook saves the session holding the OAuth state and PKCE verifier.
 *
 * The session cookie is the one express-session writes (`s:` + id + `.` + HMAC-SHA256 of the id,
 * same attributes), so a session started on one adapter is valid on the other.
 */
export class FastifyAdapterGlue implements HttpAdapterGlue {
  readonly name = 'fastify';

  async installSessions(_consumer: MiddlewareConsumer, parts: HttpInstallContext): Promise<void> {
    const app = parts.instance as FastifyInstance;
    const { settings, store, passport } = parts;
    const s = settings.session;
    const cookieName = sessionCookieName(settings);
    // Loaded here, so an app on Express never needs the Fastify packages.
    const fastifyCookie = loadOptionalDependency<typeof import('@fastify/cookie')>(
      '@fastify/cookie',
      'Sessions on Fastify',
    );
    const fastifySession = loadOptionalDependency<typeof import('@fastify/session')>(
      '@fastify/session',
      'Sessions on Fastify',
    );
    if (!app.hasReplyDecorator('setCookie')) await app.register(fastifyCookie);
    // The cookie's old name (before `__Host-`) is read when the new one is absent, and moved to the
    // new name; registered before the session plugin, whose onRequest hook reads the cookie.
    const legacyName = legacySessionCookieName(settings);
    app.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
      const cookies = req.cookies as Record<string, string | undefined> | undefined;
      // Nothing to move unless the old name is there (most requests: one property lookup).
      const legacy =
        cookies && legacyName !== undefined && cookies[legacyName] !== undefined
          ? legacySessionCookie(settings, cookies)
          : undefined;
      if (cookies && legacy) {
        cookies[legacy.name] = legacy.value;
        for (const line of legacy.setCookies) reply.header('Set-Cookie', line);
      }
      done();
    });
    // A signed-in handshake the module can answer from what it already knows is answered here,
    // after the host's Nest middleware (which Fastify runs in an earlier onRequest hook) and before
    // the session plugin: no session object, no re-sign, no Nest pipeline. Anything else goes on.
    const shortcut = parts.handshake;
    if (shortcut) {
      const headers = parts.securityHeaders;
      const noop = () => undefined;
      app.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
        const cookies = req.cookies as Record<string, string | undefined> | undefined;
        const pending = shortcut.answer(req.raw, cookies?.[cookieName], req.ip);
        if (pending === undefined) return done();
        pending.then(
          (location) => {
            if (location === undefined) return done();
            // The module's headers, as the route's own onRequest hook sets them (see routeEarlyErrors).
            if (headers) headers(req.raw, reply.raw, noop);
            // The route's own headers (@Header on the SSO route), then its redirect.
            reply.header('Cache-Control', 'no-store');
            reply.header('Referrer-Policy', 'no-referrer');
            reply.redirect(location, 302);
          },
          () => done(),
        );
      });
    }
    // A session saved during the request under a new id (passport's log-in regenerates it) gets
    // its cookie; without this, @fastify/session would also send a Set-Cookie expiring the old id
    // first (one Set-Cookie on Express). Runs before the session plugin's onSend hook.
    app.addHook(
      'onSend',
      (
        req: FastifyRequest,
        _reply: FastifyReply,
        payload: unknown,
        done: (err: null, payload: unknown) => void,
      ) => {
        const session = req.session as
          { isSaved?: () => boolean; encryptedSessionId?: string } | null | undefined;
        const cookies = req.cookies as Record<string, string | undefined> | undefined;
        if (cookies?.[cookieName] && session?.isSaved?.() && session.encryptedSessionId) {
          cookies[cookieName] = `s:${session.encryptedSessionId}`;
        }
        done(null, payload);
      },
    );
    await app.register(fastifySession, {
      cookieName,
      cookiePrefix: 's:',
      // The same signature as express-session's, with the keys prepared once and the cookies
      // already verified remembered (no HMAC per request for a returning browser).
      secret: parts.signer ?? new SessionCookieSigner(s.secret),
      store: store as never,
      saveUninitialized: false,
      rolling: false,
      cookie: sessionCookieOptions(settings),
    });

    for (const field of PASSPORT_REQUEST_FIELDS) {
      if (!app.hasRequestDecorator(field)) app.decorateRequest(field, null);
    }
    if (!app.hasReplyDecorator('setHeader')) {
      app.decorateReply(
        'setHeader',
        function (this: FastifyReply, name: string, value: string | number | string[]) {
          this.header(name, value);
          return this;
        },
      );
    }
    if (!app.hasReplyDecorator('end')) {
      app.decorateReply('end', function (this: FastifyReply, chunk?: string | Buffer) {
        this.send(chunk);
        return this;
      });
    }

    const initialize = passport.initialize() as Middleware;
    const restore = passport.session() as Middleware;
    app.addHook(
      'preValidation',
      (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
        initialize(req, reply, (err) =>
          err ? done(err as Error) : restore(req, reply, done as NodeCallback),
        );
      },
    );
  }

  routeEarlyErrors(parts: HttpInstallContext): void {
    const app = parts.instance as FastifyInstance;
    const noop = () => undefined;
    // Before the body is read: a path that matched only once Fastify decoded it (`/discourse/%6Cogout`)
    // gets the app's 404, as on Express; a body the module refuses (Content-Encoding, a JSON charset
    // other than UTF-8) its 415. Fastify never parses a GET/HEAD body, so nothing to do there.
    const guard: onRequestHookHandler = (req, reply, done) => {
      if (hasEncodedPath(req as never)) {
        reply.callNotFound();
        return;
      }
      const refusal = refusedBody(req as never);
      if (refusal) done(refusal);
      else done();
    };
    // The module's security headers, set by each of its routes: a hook of the route itself rather
    // than Nest middleware, which on Fastify runs every request of the app through @fastify/middie.
    const headers = parts.securityHeaders;
    const setHeaders: onRequestHookHandler | undefined = headers
      ? (req, reply, done) => headers(req.raw, reply.raw, done as (err?: unknown) => void)
      : undefined;
    app.addHook('onRoute', (route: RouteOptions) => {
      if (!parts.isModuleRoute(route.url)) return;
      // Headers first, so the guard's refusals carry them (a percent-encoded path gets none).
      route.onRequest = [
        ...(setHeaders ? [setHeaders] : []),
        guard,
        ...(route.onRequest ? [route.onRequest].flat() : []),
      ];
      // A route's own error handler sees the errors of its body parsing and of every hook, the
      // app's (the session plugin's) among them, which run before the route's own hooks: the
      // headers are set there when they are not yet. What it rethrows goes on to Nest's handler.
      if (route.errorHandler) return;
      route.errorHandler = (error, req, reply) => {
        if (headers && !reply.raw.headersSent && !reply.raw.hasHeader('content-security-policy'))
          headers(req.raw, reply.raw, noop);
        if (!parts.renderError(error, req as never, reply)) throw error;
      };
    });
  }

  send(res: object, status: number, body: string, headers: Record<string, string>): void {
    (res as FastifyReply).code(status).headers(headers).send(body);
  }

  redirect(res: object, status: number, url: string): void {
    (res as FastifyReply).redirect(url, status);
  }

  setHeader(res: object, name: string, value: string): void {
    (res as FastifyReply).header(name, value);
  }

  appendHeader(res: object, name: string, value: string): void {
    // Fastify keeps every value of Set-Cookie given to header().
    (res as FastifyReply).header(name, value);
  }

  headersSent(res: object): boolean {
    const reply = res as FastifyReply;
    return reply.sent || reply.raw.headersSent;
  }

  onFinish(res: object, done: (status: number) => void): void {
    const raw = (res as FastifyReply).raw;
    raw.once('finish', () => done(raw.statusCode));
  }
}
