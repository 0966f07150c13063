import type { MiddlewareConsumer } from '@nestjs/common';
import type { Application, NextFunction, Request, Response } from 'express';
import { DiscourseConnectSessionMiddleware } from '../session/session.middleware';
import { requestPath, type HttpAdapterGlue, type SessionParts } from './http-adapter-glue';

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

  routeEarlyErrors(parts: SessionParts): void {
    // Registered before Nest mounts the routes, after its body parsers: their errors stop here.
    (parts.instance as Application).use(
      (error: unknown, req: Request, res: Response, next: NextFunction) => {
        if (!parts.isModuleRoute(requestPath(req as never))) return next(error);
        const render = () => {
          if (!parts.renderError(error, req as never, res)) next(error);
        };
        if (parts.securityHeaders) parts.securityHeaders(req, res, render);
        else render();
      },
    );
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
}
