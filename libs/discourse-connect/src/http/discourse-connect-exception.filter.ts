import {
  ArgumentsHost,
  Catch,
  ExceptionFilter,
  HttpException,
  HttpStatus,
  Logger,
} from '@nestjs/common';
import { DiscourseConnectHttp } from './discourse-connect-http.service';
import {
  requestPath,
  type DiscourseConnectRequest,
  type DiscourseConnectResponse,
} from './http-adapter-glue';
import { renderPage } from './html-page';
import { DiscourseConnectHttpException } from '../common/discourse-connect.exceptions';
import { SsoForbiddenException } from '../common/discourse-connect.exceptions';
import { FilterFailedError } from '../hooks/filter-failed.error';

/**
 * Renders the module's errors as a readable page (or JSON for API clients) with no stack trace,
 * and logs one line for the operator. Unexpected errors become a generic 500 page; their detail
 * goes to the log only (messages never contain secrets).
 */
@Catch()
export class DiscourseConnectExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('DiscourseConnect');

  constructor(private readonly http: DiscourseConnectHttp) {}

  catch(thrown: unknown, host: ArgumentsHost): void {
    const exception = thrown instanceof FilterFailedError ? filterFailedPage(thrown) : thrown;
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<DiscourseConnectRequest>();
    const res = ctx.getResponse<DiscourseConnectResponse>();
    const route = `${req.method} ${requestPath(req)}`;

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
      this.logger.error(
        `${route} -> 500 unexpected ${err?.name ?? 'error'}: ${err?.message ?? String(exception)}`,
      );
    }

    if (this.http.headersSent(res)) return;
    const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
    if (retryAfter !== undefined) headers['Retry-After'] = String(retryAfter);
    const wantsJson =
      (req.headers.accept ?? '').includes('application/json') &&
      !(req.headers.accept ?? '').includes('text/html');
    if (wantsJson) {
      headers['Content-Type'] = 'application/json; charset=utf-8';
      this.http.send(
        res,
        status,
        JSON.stringify({ statusCode: status, error: title, message }),
        headers,
      );
    } else {
      headers['Content-Type'] = 'text/html; charset=utf-8';
      this.http.send(res, status, renderPage({ title, message, links }), headers);
    }
  }
}

/** The page a person sees when a host filter failed (the work stopped, nothing was changed). */
export function filterFailedPage(error: FilterFailedError): SsoForbiddenException {
  return new SsoForbiddenException(
    'This site could not complete the sign-in. Nothing was changed; please try again later or contact the site owner.',
    `filter_failed:${error.filter}`,
    'Sign-in stopped by the site',
  );
}
