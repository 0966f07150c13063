import {
  ArgumentsHost,
  ExceptionFilter,
  HttpException,
  HttpStatus,
  Inject,
  Injectable,
  MiddlewareConsumer,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { DiscourseConnectHttpException } from '../common/discourse-connect.exceptions';
import type { PassportStatic } from 'passport';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DISCOURSE_CONNECT_PASSPORT } from '../session/discourse-connect-passport';
import { DiscourseConnectSessions } from '../session/sessions';
import { expiredSessionCookies } from '../session/session-store.factory';
import { ExpressAdapterGlue } from './express.adapter-glue';
import { FastifyAdapterGlue } from './fastify.adapter-glue';
import { encodeLocation } from '../common/urls';
import {
  DiscourseConnectRoutes,
  type DiscourseConnectRoutePaths,
} from './discourse-connect-routes';
import {
  UNSUPPORTED_BODY_MESSAGE,
  type DiscourseConnectRequest,
  type DiscourseConnectResponse,
  type HttpAdapterGlue,
  type HttpInstallContext,
} from './http-adapter-glue';

/**
 * The module's access to the HTTP adapter the host runs on (Express or Fastify): it picks the glue
 * for that adapter once, installs sessions and passport through it, and writes the few responses
 * that Nest's decorators cannot (pages, cookies). Nothing else in the module knows the adapter.
 */
@Injectable()
export class DiscourseConnectHttp {
  private chosen?: HttpAdapterGlue;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly settings: DiscourseConnectSettings,
    @Inject(DISCOURSE_CONNECT_PASSPORT) private readonly passport: PassportStatic,
    private readonly sessions: DiscourseConnectSessions,
    private readonly routes: DiscourseConnectRoutes,
  ) {}

  /** The module's route paths as served, normalised (see `routeKey`), for the current mount. */
  private servedPaths?: { from: DiscourseConnectRoutePaths; keys: Set<string> };

  /**
   * Whether a path (as registered, or as requested) is exactly one of the module's routes as the
   * app serves them (global prefix, RouterModule path, version), ignoring a trailing slash and the
   * letters' case as Express does. A host route that merely ends the same way is not one.
   */
  private isServedRoute(path: string): boolean {
    const paths = this.routes.paths;
    if (this.servedPaths?.from !== paths) {
      this.servedPaths = { from: paths, keys: new Set(Object.values(paths).map(routeKey)) };
    }
    return this.servedPaths.keys.has(routeKey(path));
  }

  /** The glue of the adapter in use (known once the Nest application exists). */
  get glue(): HttpAdapterGlue {
    if (!this.chosen) {
      const type = this.adapterHost.httpAdapter?.getType();
      if (type === 'express') this.chosen = new ExpressAdapterGlue();
      else if (type === 'fastify') this.chosen = new FastifyAdapterGlue();
      else {
        throw new Error(
          `DiscourseConnectModule runs on @nestjs/platform-express or @nestjs/platform-fastify; this app's HTTP adapter is "${type ?? 'none'}".`,
        );
      }
    }
    return this.chosen;
  }

  /**
   * Called from the module's `configure()`, which Nest awaits before it registers any route:
   * sessions + passport on every route (unless the host installs its own), and the module's error
   * page for body errors on the module's routes.
   */
  async install(
    consumer: MiddlewareConsumer,
    module: {
      filter: ExceptionFilter;
      securityHeaders?: HttpInstallContext['securityHeaders'];
      handshake?: HttpInstallContext['handshake'];
    },
  ): Promise<void> {
    const parts = {
      ...this.installContext(module.filter),
      securityHeaders: module.securityHeaders,
      handshake: module.handshake,
    };
    this.glue.routeEarlyErrors(parts);
    if (this.settings.session.installMiddleware) await this.glue.installSessions(consumer, parts);
  }

  send(
    res: DiscourseConnectResponse,
    status: number,
    body: string,
    headers: Record<string, string>,
  ): void {
    this.glue.send(res, status, body, headers);
  }

  redirect(res: DiscourseConnectResponse, status: number, url: string): void {
    this.glue.redirect(res, status, encodeLocation(url));
  }

  headersSent(res: DiscourseConnectResponse): boolean {
    return this.glue.headersSent(res);
  }

  /** Calls `done` with the answer's status once it has been sent. */
  onFinish(res: DiscourseConnectResponse, done: (status: number) => void): void {
    this.glue.onFinish(res, done);
  }

  /** Sets a response header (one the route must have even when a guard answers, e.g. Cache-Control). */
  setHeader(res: DiscourseConnectResponse, name: string, value: string): void {
    this.glue.setHeader(res, name, value);
  }

  /**
   * Expires the session cookie (and its old name, before `__Host-`). Written the same way on both
   * adapters: the attributes of the session cookie itself, an empty value and a date in 1970.
   */
  clearSessionCookie(res: DiscourseConnectResponse): void {
    for (const line of expiredSessionCookies(this.settings))
      this.glue.appendHeader(res, 'Set-Cookie', line);
  }

  private installContext(filter: ExceptionFilter): HttpInstallContext {
    return {
      settings: this.settings,
      store: this.sessions.store,
      signer: this.sessions.signer,
      passport: this.passport,
      instance: this.adapterHost.httpAdapter.getInstance(),
      // With a global prefix or RouterModule path the registered path ends with the module's own.
      isModuleRoute: (path) => this.isServedRoute(path),
      renderError: (error, req, res) => {
        const mapped = this.adapterHost.httpAdapter.mapException?.(error) ?? error;
        if (!(mapped instanceof HttpException) || mapped.getStatus() >= 500) return false;
        filter.catch(earlyException(mapped), httpHost(req, res));
        return true;
      },
    };
  }
}

/** The body errors both adapters raise before a handler runs, with one wording for both. */
const EARLY_ERRORS: Partial<Record<number, [string, string]>> = {
  [HttpStatus.BAD_REQUEST]: [
    'The request body could not be read: it is not valid JSON or form data.',
    'unreadable_body',
  ],
  [HttpStatus.PAYLOAD_TOO_LARGE]: ['The request body is too large.', 'body_too_large'],
  [HttpStatus.UNSUPPORTED_MEDIA_TYPE]: [UNSUPPORTED_BODY_MESSAGE, 'unsupported_media_type'],
};

function earlyException(error: HttpException): HttpException {
  if (error instanceof DiscourseConnectHttpException) return error;
  const known = EARLY_ERRORS[error.getStatus()];
  if (!known) return error;
  return new DiscourseConnectHttpException(
    error.getStatus(),
    'This request cannot be completed',
    known[0],
    known[1],
  );
}

function httpHost(req: DiscourseConnectRequest, res: DiscourseConnectResponse): ArgumentsHost {
  const args = [req, res];
  const http = { getRequest: () => req, getResponse: () => res, getNext: () => undefined };
  return {
    getArgs: () => args,
    getArgByIndex: (i: number) => args[i],
    getType: () => 'http',
    switchToHttp: () => http,
    switchToRpc: () => {
      throw new Error('not an RPC context');
    },
    switchToWs: () => {
      throw new Error('not a WebSocket context');
    },
  } as unknown as ArgumentsHost;
}

/** A path as compared with the module's routes: no trailing slash, lower case. */
function routeKey(path: string): string {
  return path.replace(/(.)\/+$/, '$1').toLowerCase();
}
