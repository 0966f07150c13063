import type { MiddlewareConsumer } from '@nestjs/common';
import type { Application, NextFunction, Request, Response } from 'express';
import { DiscourseConnectSessionMiddleware } from '../session/session.middleware';
import {
  BODYLESS_METHODS,
  refusedBody,
  requestPath,
  type HttpAdapterGlue,
  type HttpInstallContext,
} from './http-adapter-glue';

/**
 * `@nestjs/platform-express`: express-session and passport as Nest middleware on every route
 * (`session/session.middleware.ts`), and an error middleware for the body parser's errors on the
 * module's routes.
 */
export class ExpressAdapterGlue implements HttpAdapterGlue {
  readonly name = 'express';

  async installSessions(consumer: MiddlewareConsumer): Promise<void> {
    consumer.apply(DiscourseConnectSessionMiddleware).forRoutes('{*path}');
  }

  routeEarlyErrors(parts: HttpInstallContext): void {
    const app = parts.instance as Application;
    // Express matches routes ignoring a trailing slash and the letters' case: so does this check.
    const isModuleRoute = (req: Request) =>
      parts.isModuleRoute(
        requestPath(req as never)
          .replace(/(.)\/+$/, '$1')
          .toLowerCase(),
      );
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
      const refusal = isModuleRoute(req) ? refusedBody(req as never) : undefined;
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

/** An error of body-parser (it sets an http-errors `type` such as `entity.parse.failed`) with a 4xx status. */
function isBodyParserError(error: unknown): boolean {
  const e = error as { type?: unknown; status?: unknown } | null;
  return (
    typeof e?.type === 'string' && typeof e.status === 'number' && e.status >= 400 && e.status < 500
  );
}
