import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { MiddlewareConsumer } from '@nestjs/common';
import type { Store } from 'express-session';
import type { PassportStatic } from 'passport';
import type { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectHttpException } from '../common/discourse-connect.exceptions';
import type { LocalUser } from '../users/local-user.interface';

/**
 * What the module reads from a request. Express's `Request` and Fastify's `FastifyRequest` both have
 * these fields once the adapter glue has installed sessions and passport, so the module's
 * controllers, guards and filters use this type and never the adapter's own.
 */
export interface DiscourseConnectRequest {
  method: string;
  /** The request target, with its query string. */
  url: string;
  /** The request target before any mount point was stripped (both adapters set it). */
  originalUrl?: string;
  headers: IncomingHttpHeaders;
  query: unknown;
  body?: unknown;
  /** The exact body bytes (the app is created with `rawBody: true`). */
  rawBody?: Buffer;
  /** The client address, as the adapter's trusted-proxy setting decides it. */
  ip?: string;
  socket?: { remoteAddress?: string };
  /** The signed-in user (passport). */
  user?: LocalUser | null;
  session?: DiscourseConnectSessionData | null;
  logIn?(user: unknown, done: (err?: unknown) => void): void;
  logout?(options: { keepSessionInfo?: boolean }, done: (err?: unknown) => void): void;
}

/** The session as express-session and @fastify/session both expose it: fields plus callback methods. */
export interface DiscourseConnectSessionData {
  [field: string]: unknown;
  destroy(done: (err?: unknown) => void): unknown;
}

/** The response: opaque to the module; only the adapter glue writes to it. */
export type DiscourseConnectResponse = object;

/** The path of the request, without its query string, as the client sent it. */
export function requestPath(req: DiscourseConnectRequest): string {
  const target = req.originalUrl ?? req.url;
  const query = target.indexOf('?');
  return query === -1 ? target : target.slice(0, query);
}

/** A body the module cannot read (a content type without a parser, or none at all). */
export const UNSUPPORTED_BODY_MESSAGE =
  'The request body could not be read: send it as application/json.';

/**
 * Methods whose body the module never reads: a body sent with them is ignored (Fastify does not
 * parse it; on Express the parser's result or error is dropped), so a GET answers the same with or
 * without one.
 */
export const BODYLESS_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD']);

/**
 * The module's rule for request bodies, the same on both adapters (the stricter of the two): no
 * `Content-Encoding` other than identity (Express would inflate gzip/deflate, Fastify refuses it),
 * and JSON only as UTF-8 (Fastify would read any charset, Express some). Either way the answer is a
 * 415 with the module's page. Undefined when the request may go on (GET/HEAD: the body is ignored).
 */
export function refusedBody(
  req: Pick<DiscourseConnectRequest, 'method' | 'headers'>,
): DiscourseConnectHttpException | undefined {
  if (BODYLESS_METHODS.has(req.method.toUpperCase())) return undefined;
  const encoding = headerValue(req.headers['content-encoding']);
  if (encoding !== undefined) {
    const codings = encoding.split(',').map((c) => c.trim().toLowerCase());
    if (codings.some((c) => c !== '' && c !== 'identity')) {
      return new DiscourseConnectHttpException(
        415,
        'This request cannot be completed',
        'The request body could not be read: send it without Content-Encoding (gzip, deflate, br are not accepted).',
        'unsupported_content_encoding',
      );
    }
  }
  const contentType = headerValue(req.headers['content-type']);
  if (contentType !== undefined) {
    const [type, ...params] = contentType.split(';');
    const mediaType = type.trim().toLowerCase();
    if (mediaType === 'application/json' || mediaType.endsWith('+json')) {
      for (const param of params) {
        const eq = param.indexOf('=');
        if (eq === -1 || param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
        const charset = param
          .slice(eq + 1)
          .trim()
          .replace(/^"(.*)"$/, '$1')
          .toLowerCase();
        if (charset !== 'utf-8') {
          return new DiscourseConnectHttpException(
            415,
            'This request cannot be completed',
            'The request body could not be read: send JSON as UTF-8 (charset=utf-8 or no charset).',
            'unsupported_charset',
          );
        }
      }
    }
  }
  return undefined;
}

/**
 * Whether the path of the request, as sent, holds a percent-encoded character. The module's routes
 * are plain ASCII paths, so such a request reached one only because the router decoded it
 * (Fastify does, Express does not): it gets the 404 an unknown path gets, on both adapters.
 */
export function hasEncodedPath(req: DiscourseConnectRequest): boolean {
  return requestPath(req).includes('%');
}

function headerValue(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(',') : value;
}

/**
 * Answers a signed-in member's handshake from what the process already knows (the verified
 * cookie, the cached session and user), before the session plugin and the framework's pipeline
 * run. Only ever answers the success the route would give; for anything else (not the route, not
 * signed in, not cached, a request the route would refuse) it answers undefined and the request
 * goes the normal way.
 */
export interface HandshakeShortcut {
  /** The route it answers for: its controller class and handler (Nest names the route's handler after them). */
  readonly route: { controller: string; handler: string };
  /**
   * The `Location` of the 302, or undefined (at once, or once the promise resolves) to let the
   * route answer. `sessionCookie`: the session cookie's decoded value, if the request has one;
   * `ip`: the client address as the framework decided it (its trusted-proxy setting), which the
   * module's rate limit counts by (without it, the socket's peer address).
   */
  answer(
    req: HandshakeShortcutRequest,
    sessionCookie: string | undefined,
    ip?: string,
  ): Promise<string | undefined> | undefined;
  /**
   * Whether {@link answer} may take the request, known at once and cheaply (method, path, a
   * verified cookie of a session held here): the session layer then leaves loading the session
   * to the answer, which does it only if it cannot answer. `target`: path and query as sent.
   */
  mayAnswer(method: string, target: string, sessionCookie: string): boolean;
}

/** What the early handshake answer reads of a request (Node's, or the framework's). */
export interface HandshakeShortcutRequest {
  method?: string;
  url?: string;
  headers: Record<string, string | string[] | undefined>;
  socket?: { remoteAddress?: string };
}

/** What the glue needs to install the module on the adapter: sessions and passport, the module's error page for body errors, its route test and its security headers. */
export interface HttpInstallContext {
  settings: DiscourseConnectSettings;
  store: Store;
  /** The session cookie's signer (shared with the handshake shortcut, so both remember the same cookies). */
  signer?: {
    sign(value: string): string;
    unsign(value: string): { valid: boolean; renew: boolean; value: string | null };
  };
  /** The signed-in handshake answered early, when the module can (see {@link HandshakeShortcut}). */
  handshake?: HandshakeShortcut;
  passport: PassportStatic;
  /** The underlying server instance (`HttpAdapterHost.httpAdapter.getInstance()`). */
  instance: unknown;
  /** Whether a route path (as registered, with any prefix) is one of the module's. */
  isModuleRoute(path: string): boolean;
  /**
   * Answers a client error raised before a module route's handler (body parsing) with the module's
   * page; false for any other error, which stays with the app's own error handler.
   */
  renderError(error: unknown, req: DiscourseConnectRequest, res: DiscourseConnectResponse): boolean;
  /**
   * The module's security headers as Node middleware, when on: Express parses bodies before any
   * Nest middleware runs, so its early errors need them added; on Fastify each module route sets
   * them in its own onRequest hook (no Nest middleware, so no @fastify/middie on every request).
   */
  securityHeaders?: (
    req: IncomingMessage,
    res: ServerResponse,
    next: (err?: unknown) => void,
  ) => void;
}

/**
 * Everything that differs between `@nestjs/platform-express` and `@nestjs/platform-fastify`, in one
 * small implementation per adapter (`express.adapter-glue.ts`, `fastify.adapter-glue.ts`).
 */
export interface HttpAdapterGlue {
  readonly name: 'express' | 'fastify';
  /**
   * Installs server-side sessions and the module's passport on every route, before the routes are
   * registered (called from the module's `configure()`).
   */
  installSessions(consumer: MiddlewareConsumer, parts: HttpInstallContext): Promise<void>;
  /**
   * Sends errors raised before the handler of a module route (a body too large, bad JSON, an
   * unsupported content type) to `parts.renderError`, so they get the module's page too.
   */
  routeEarlyErrors(parts: HttpInstallContext): void;
  /** Sends `body` with `status` and `headers` (a Content-Type among them). */
  send(
    res: DiscourseConnectResponse,
    status: number,
    body: string,
    headers: Record<string, string>,
  ): void;
  redirect(res: DiscourseConnectResponse, status: number, url: string): void;
  /** Sets a header, replacing any value it had. */
  setHeader(res: DiscourseConnectResponse, name: string, value: string): void;
  /** Adds a header value, keeping the values already set (Set-Cookie). */
  appendHeader(res: DiscourseConnectResponse, name: string, value: string): void;
  headersSent(res: DiscourseConnectResponse): boolean;
  /** Calls `done` with the status once the answer has been sent in full (not when the client went away first). */
  onFinish(res: DiscourseConnectResponse, done: (status: number) => void): void;
}
