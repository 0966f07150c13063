import type { MiddlewareConsumer } from '@nestjs/common';
import type { Application, NextFunction, Request, RequestHandler, Response } from 'express';
import { sessionMiddleware } from '../session/session.middleware';
import { sessionCookieName } from '../session/session-store.factory';
import {
  BODYLESS_METHODS,
  refusedBody,
  requestPath,
  type HandshakeShortcut,
  type HttpAdapterGlue,
  type HttpInstallContext,
} from './http-adapter-glue';

/**
 * `@nestjs/platform-express`: express-session and passport as Nest middleware on every route
 * (`session/session.middleware.ts`), and an error middleware for the body parser's errors on the
 * module's routes. A signed-in handshake the module can answer early skips the session layer and
 * is answered right before the SSO route's handler (see {@link ExpressEarlyHandshake}).
 */
export class ExpressAdapterGlue implements HttpAdapterGlue {
  readonly name = 'express';

  async installSessions(consumer: MiddlewareConsumer, parts: HttpInstallContext): Promise<void> {
    const sessions = sessionMiddleware(parts.settings, parts.store, parts.passport);
    const headers = parts.securityHeaders;
    // A session that cannot be loaded (the store failed) is an error for the app's handler: on a
    // module route it goes with the module's headers, which its own middleware (mounted after
    // this one) would have set.
    const load: RequestHandler = headers
      ? (req, res, next) =>
          sessions(req, res, (err?: unknown) => {
            if (
              err === undefined ||
              err === null ||
              res.headersSent ||
              res.hasHeader('content-security-policy') ||
              !isModuleRequest(parts, req)
            )
              return next(err);
            headers(req, res, () => next(err));
          })
      : sessions;
    const shortcut = parts.handshake;
    const middleware = shortcut
      ? new ExpressEarlyHandshake(parts, shortcut, load).sessionLayer
      : load;
    consumer.apply(middleware).forRoutes('{*path}');
  }

  routeEarlyErrors(parts: HttpInstallContext): void {
    const app = parts.instance as Application;
    const isModuleRoute = (req: Request) => isModuleRequest(parts, req);
    const render = (error: unknown, req: Request, res: Response, next: NextFunction) => {
      const send = () => {
        if (!parts.renderError(error, req as never, res)) next(error);
      };
      if (parts.securityHeaders) parts.securityHeaders(req, res, send);
      else send();
    };
    // Both registered before Nest mounts the routes, after its body parsers (which run first on
    // Express, whatever the module does). A body the module refuses (Content-Encoding, a JSON
    // charset other than UTF-8) gets its 415 here even when the parser accepted it (it inflates
    // gzip, decodes UTF-16) …
    app.use((req: Request, res: Response, next: NextFunction) => {
      // GET and HEAD first: their body is never refused (most requests: one set lookup).
      const refusal =
        !BODYLESS_METHODS.has(req.method) && isModuleRoute(req)
          ? refusedBody(req as never)
          : undefined;
      if (refusal) render(refusal, req, res, next);
      else next();
    });
    // … and the parsers' errors stop here: the module's page, with the module's own 415 when the
    // body broke its rule; ignored on GET/HEAD, whose body the module never reads (as on Fastify).
    app.use((error: unknown, req: Request, res: Response, next: NextFunction) => {
      if (!isModuleRoute(req)) return next(error);
      if (BODYLESS_METHODS.has(req.method) && isBodyParserError(error)) {
        req.body = undefined;
        return next();
      }
      render(refusedBody(req as never) ?? error, req, res, next);
    });
  }

  send(res: object, status: number, body: string, headers: Record<string, string>): void {
    const r = res as Response;
    r.status(status);
    for (const [name, value] of Object.entries(headers)) r.setHeader(name, value);
    r.send(body);
  }

  redirect(res: object, status: number, url: string): void {
    (res as Response).redirect(status, url);
  }

  setHeader(res: object, name: string, value: string): void {
    (res as Response).setHeader(name, value);
  }

  appendHeader(res: object, name: string, value: string): void {
    (res as Response).append(name, value);
  }

  headersSent(res: object): boolean {
    return (res as Response).headersSent;
  }

  onFinish(res: object, done: (status: number) => void): void {
    const response = res as Response;
    response.once('finish', () => done(response.statusCode));
  }
}

/** Whether a request is for one of the module's routes (Express ignores a trailing slash and case). */
function isModuleRequest(parts: HttpInstallContext, req: Request): boolean {
  return parts.isModuleRoute(
    requestPath(req as never)
      .replace(/(.)\/+$/, '$1')
      .toLowerCase(),
  );
}

/** An error of body-parser (it sets an http-errors `type` such as `entity.parse.failed`) with a 4xx status. */
function isBodyParserError(error: unknown): boolean {
  const e = error as { type?: unknown; status?: unknown } | null;
  return (
    typeof e?.type === 'string' && typeof e.status === 'number' && e.status >= 400 && e.status < 500
  );
}

/** The session cookie value of a request the session layer left to the early answer. */
const deferred = new WeakMap<object, string>();

/** What the early answer reads of Express's router (`router` 2): its layers and their routes. */
interface RouterLayer {
  route?: {
    path: unknown;
    methods: Record<string, boolean | undefined>;
    stack: unknown[];
    get(handler: RequestHandler): unknown;
  };
}

/**
 * The signed-in handshake answered early on Express, without skipping any middleware of the host.
 * Nest mounts every middleware (the module's, then the host's) before any route, so the answer
 * sits on the SSO route itself, as the first handler of its Express `Route`: after all middleware,
 * just before Nest's handler. The session layer (a middleware, mounted first) recognises a request
 * that answer may take (GET of the SSO route, a verified cookie of a session this process holds
 * signed in) and lets it pass without loading its session; the answer then gives the route's
 * redirect, or, when it cannot (over a rate limit, the member not cached, a filter refused…),
 * loads the session it skipped and hands the request to Nest's handler as usual.
 */
class ExpressEarlyHandshake {
  /** Whether the answer sits on the SSO route (decided at the first request it could take). */
  private attached?: boolean;
  private readonly cookieName: string;
  /** Client addresses by socket address and X-Forwarded-For, for {@link trust}. */
  private readonly addresses = new Map<string, string>();
  private trust: unknown;

  constructor(
    private readonly parts: HttpInstallContext,
    private readonly shortcut: HandshakeShortcut,
    private readonly load: RequestHandler,
  ) {
    this.cookieName = sessionCookieName(parts.settings);
  }

  /** The module's session middleware: loads the session, unless the early answer may take the request. */
  readonly sessionLayer: RequestHandler = (req, res, next) => {
    if (this.attached === false) return this.load(req, res, next);
    const cookie = this.deferrable(req);
    if (cookie === undefined) return this.load(req, res, next);
    deferred.set(req, cookie);
    next();
  };

  /** Before Nest's handler of the SSO route: the early answer, or the session skipped, then the route. */
  private readonly answer: RequestHandler = (req, res, next) => {
    const cookie = deferred.get(req);
    if (cookie === undefined) return next();
    deferred.delete(req);
    const ip = this.clientAddress(req);
    const pending = this.shortcut.answer(req, cookie, ip);
    if (pending === undefined) return this.load(req, res, next);
    pending.then(
      (location) => {
        if (location === undefined) return this.load(req, res, next);
        // The route's own headers (@Header on the SSO route) in the order Nest sets them, then
        // its redirect, written as Nest writes it (`res.redirect`). The module's security headers
        // and the host's middleware ran already.
        try {
          res.set('Referrer-Policy', 'no-referrer');
          res.set('Cache-Control', 'no-store');
          res.redirect(302, location);
        } catch (error) {
          next(error);
        }
      },
      () => this.load(req, res, next),
    );
  };

  /**
   * `req.ip`: the socket's address unless X-Forwarded-For names others; then what Express's
   * `trust proxy` setting makes of both, remembered (a pure function of the two and the setting;
   * a bounded number, forgotten at once when full or when the setting changes).
   */
  private clientAddress(req: Request): string | undefined {
    const forwarded = req.headers['x-forwarded-for'];
    const peer = req.socket.remoteAddress;
    if (forwarded === undefined) return peer;
    // Only short, single headers are remembered: the client writes X-Forwarded-For, so the
    // memory it can take is bounded by entries × this length (≈ 2.6 MB at most).
    if (typeof forwarded !== 'string' || peer === undefined || forwarded.length > 200)
      return req.ip;
    const trust: unknown = req.app.get('trust proxy fn');
    if (trust !== this.trust) {
      this.addresses.clear();
      this.trust = trust;
    }
    const key = `${peer}\n${forwarded}`;
    let ip = this.addresses.get(key);
    if (ip === undefined) {
      ip = req.ip;
      if (ip === undefined) return undefined;
      if (this.addresses.size >= 10_000) this.addresses.clear();
      this.addresses.set(key, ip);
    }
    return ip;
  }

  /**
   * The session cookie's value when the early answer may take the request (the session not
   * loaded then). Such a request is a GET of the SSO route's path: middleware that would send it
   * to another route (rewriting `req.url`) would leave that route without the session.
   */
  private deferrable(req: Request): string | undefined {
    if (req.method !== 'GET') return undefined;
    const header = req.headers.cookie;
    if (header === undefined) return undefined;
    // With the session cookie there, a cookie under its old name is left alone by the session
    // layer: nothing to move.
    const value = cookieOf(header, this.cookieName);
    if (value === undefined) return undefined;
    const target = req.originalUrl;
    if (!this.shortcut.mayAnswer(req.method, target, value)) return undefined;
    if (this.attached === undefined)
      this.attached = this.attach(target.slice(0, target.indexOf('?')));
    return this.attached ? value : undefined;
  }

  /**
   * Puts the answer first on the SSO route once Nest has mounted everything: on the Express
   * `Route` at exactly this path that holds Nest's handler of the SSO route (which Nest names
   * `<controller>.<handler>`). Middleware mounted on that path (Nest mounts a middleware bound to
   * a controller's routes as a route of its own, before the handlers) still runs first.
   */
  private attach(path: string): boolean {
    const app = this.parts.instance as { router?: { stack?: RouterLayer[] } };
    const { controller, handler } = this.shortcut.route;
    const name = `${controller}.${handler}`;
    for (const layer of app.router?.stack ?? []) {
      const route = layer.route;
      if (!route || route.path !== path || !route.methods.get) continue;
      if (!route.stack.some((l) => (l as { name?: string }).name === name)) continue;
      route.get(this.answer);
      route.stack.unshift(route.stack.pop());
      return true;
    }
    return false;
  }
}

/**
 * The value of cookie `name` in a `Cookie` header exactly as express-session reads it (the
 * `cookie` package's parse: the first pair of that name, spaces and tabs trimmed, quotes removed,
 * percent-decoded when it can be), without parsing the other cookies.
 */
export function cookieOf(header: string, name: string): string | undefined {
  const length = header.length;
  let index = 0;
  while (index < length) {
    const eq = header.indexOf('=', index);
    if (eq === -1) return undefined;
    let end = header.indexOf(';', index);
    if (end === -1) end = length;
    else if (eq > end) {
      index = end + 1; // a pair without '=': skipped
      continue;
    }
    const keyStart = skipBlanks(header, index, eq);
    if (eq - keyStart >= name.length && header.startsWith(name, keyStart)) {
      if (trimBlanks(header, eq, keyStart) === keyStart + name.length) {
        let start = skipBlanks(header, eq + 1, end);
        let stop = trimBlanks(header, end, start);
        if (header.charCodeAt(start) === 0x22 && header.charCodeAt(stop - 1) === 0x22) {
          start++;
          stop--;
        }
        const raw = header.slice(start, stop);
        if (!raw.includes('%')) return raw;
        try {
          return decodeURIComponent(raw);
        } catch {
          return raw;
        }
      }
    }
    index = end + 1;
  }
  return undefined;
}

/** The first index from `index` (below `max`) that is not a space or tab. */
function skipBlanks(text: string, index: number, max: number): number {
  while (index < max) {
    const code = text.charCodeAt(index);
    if (code !== 0x20 && code !== 0x09) return index;
    index++;
  }
  return max;
}

/** The end of the text before `index` (down to `min`) without trailing spaces and tabs. */
function trimBlanks(text: string, index: number, min: number): number {
  while (index > min) {
    const code = text.charCodeAt(index - 1);
    if (code !== 0x20 && code !== 0x09) return index;
    index--;
  }
  return min;
}
