import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { renderPage } from './html-page';
import { DiscourseConnectHttpException } from './discourse-connect.exceptions';

/**
 * Renders the module's errors as a readable page (or JSON for API clients) with no stack trace,
 * and logs one line for the operator. Unexpected errors become a generic 500 page; their detail
 * goes to the log only (messages never contain secrets).
 */
@Catch()
export class DiscourseConnectExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('DiscourseConnect');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<Request>();
    const res = ctx.getResponse<Response>();
    const route = `${req.method} ${req.path}`;

    let status: number = HttpStatus.INTERNAL_SERVER_ERROR;
    let title = 'Something went wrong';
    let message = 'The sign-in could not be completed. Please try again in a moment.';
    let links = [{ href: '/', label: 'Home' }];
    let retryAfter: number | undefined;

    if (exception instanceof DiscourseConnectHttpException) {
      status = exception.getStatus();
      title = exception.title;
      message = (exception.getResponse() as { message: string }).message;
      links = [...exception.links, ...links];
      retryAfter = exception.retryAfterSeconds;
      this.logger.warn(`${route} -> ${status} ${exception.reason}: ${message}`);
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      const body = exception.getResponse();
      const text = typeof body === 'string' ? body : (body as { message?: unknown }).message;
      message = Array.isArray(text) ? text.join('; ') : String(text ?? exception.message);
      title = status < 500 ? 'This request cannot be completed' : title;
      this.logger.warn(`${route} -> ${status}: ${message}`);
    } else {
      const err = exception as Error;
      this.logger.error(`${route} -> 500 unexpected ${err?.name ?? 'error'}: ${err?.message ?? String(exception)}`);
    }

    if (res.headersSent) return;
    res.status(status);
    res.setHeader('Cache-Control', 'no-store');
    if (retryAfter !== undefined) res.setHeader('Retry-After', String(retryAfter));
    const wantsJson = (req.headers.accept ?? '').includes('application/json') && !(req.headers.accept ?? '').includes('text/html');
    if (wantsJson) {
      res.json({ statusCode: status, error: title, message });
    } else {
      res.type('html').send(renderPage({ title, message, links }));
    }
  }
}
