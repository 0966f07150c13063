import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import {
  DynamicModule,
  Inject,
  Injectable,
  LoggerService,
  MiddlewareConsumer,
  Module,
  NestMiddleware,
  NestModule,
} from '@nestjs/common';
import pino, { type DestinationStream, type Logger as Pino } from 'pino';
import { boundForLog } from 'nestjs-discourse-connect';

/**
 * Structured JSON logs: one pino logger for the whole app, a Nest `LoggerService` over it (so every
 * `new Logger(...)` in the app and in the module writes JSON), and a middleware that gives each
 * request an id, carries it to every line logged while handling the request, and writes one
 * access line when the response is sent.
 */

/** What pino must never write: by path, so it holds for every line whatever its message. */
export const REDACTED_PATHS = [
  'req.headers.cookie',
  'req.headers.authorization',
  'req.headers.referer',
  'req.headers["api-key"]',
  'req.headers["x-discourse-event-signature"]',
  'req.query.sso',
  'req.query.sig',
  'req.query.code',
  'req.query.state',
  'req.body',
  'res.headers["set-cookie"]',
  'res.headers.location',
  '*.secret',
  '*.clientSecret',
  '*.client_secret',
  '*.apiKey',
  '*.password',
  '*.token',
  '*.access_token',
  '*.refresh_token',
];

/** Query parameters that carry signed payloads, signatures, codes or state: scrubbed from messages too. */
const SECRET_PARAMS =
  /\b(sso|sig|code|state|code_verifier|code_challenge|access_token|refresh_token)=[^&\s"']+/g;

/** Redacts secret-bearing query parameters from free text (a last line of defence for messages). */
export function scrubMessage(text: string): string {
  return text.replace(SECRET_PARAMS, '$1=[Redacted]');
}

export function createJsonLogger(
  options: { destination?: DestinationStream; level?: string } = {},
): Pino {
  return pino(
    {
      level: options.level ?? process.env.LOG_LEVEL ?? 'info',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, censor: '[Redacted]' },
      serializers: { err: pino.stdSerializers.err },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

const requestContext = new AsyncLocalStorage<{ reqId: string }>();

/** The id of the request being handled, if any. */
export function currentRequestId(): string | undefined {
  return requestContext.getStore()?.reqId;
}

/** Nest's LoggerService over pino; each line gets the context name and the current request id. */
export class JsonLogger implements LoggerService {
  constructor(readonly pino: Pino) {}

  log(message: unknown, ...rest: unknown[]): void {
    this.write('info', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    // Nest's error(message, stack?, context?)
    this.write('error', message, rest, true);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.write('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.write('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.write('trace', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.write('fatal', message, rest, true);
  }

  private write(level: pino.Level, message: unknown, rest: unknown[], withStack = false): void {
    const params = [...rest];
    const context =
      params.length > 0 && typeof params[params.length - 1] === 'string'
        ? (params.pop() as string)
        : undefined;
    const fields: Record<string, unknown> = {};
    if (context) fields.context = context;
    const reqId = currentRequestId();
    if (reqId) fields.reqId = reqId;
    if (withStack && typeof params[0] === 'string' && params[0].includes('\n    at '))
      fields.stack = scrubMessage(params[0]);
    if (message instanceof Error) {
      this.pino[level]({ ...fields, err: message }, scrubMessage(message.message));
    } else if (message !== null && typeof message === 'object') {
      const { msg, message: text, ...data } = message as Record<string, unknown>;
      this.pino[level]({ ...data, ...fields }, scrubMessage(String(msg ?? text ?? '')));
    } else {
      this.pino[level](fields, scrubMessage(String(message)));
    }
  }
}

const PINO = Symbol('JSON_LOGGER_PINO');
/** Response headers worth an access line (the security headers are the same on every response). */
const RESPONSE_HEADERS = ['content-type', 'location', 'set-cookie', 'retry-after'];

function pickHeaders(headers: Record<string, unknown>, names: string[]): Record<string, unknown> {
  return Object.fromEntries(
    names.filter((n) => headers[n] !== undefined).map((n) => [n, headers[n]]),
  );
}
/** A client's X-Request-Id is kept only when it is this short and this plain; otherwise a new UUID. */
export const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** Longest query parameter value written in an access line. */
const MAX_QUERY_VALUE_LENGTH = 256;

/**
 * The query as logged: at most 50 parameters, each name and value bounded (Discord's `error` and
 * `error_description` reach the callback from anyone) and stripped of control characters.
 */
function boundedQuery(query: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(query).slice(0, 50)) {
    out[boundForLog(name)] =
      value === undefined ? undefined : boundForLog(value, MAX_QUERY_VALUE_LENGTH);
  }
  return out;
}

/**
 * What the middleware reads. Nest middleware gets Express's request on Express and Node's own on
 * Fastify, where @fastify/middie adds `originalUrl` and `ip` (the trusted-proxy setting applied)
 * but no parsed query.
 */
type LoggedRequest = IncomingMessage & {
  originalUrl?: string;
  ip?: string;
  query?: unknown;
  id?: string;
};

/**
 * Gives each request an id (an incoming `X-Request-Id` matching `REQUEST_ID` is kept, otherwise a new UUID),
 * sends it back in `X-Request-Id`, and writes one access line per response. Query parameters and
 * headers go through the redaction paths above; the path never carries a query string.
 */
@Injectable()
export class RequestIdMiddleware implements NestMiddleware {
  constructor(@Inject(PINO) private readonly log: Pino) {}

  use(req: LoggedRequest, res: ServerResponse, next: () => void): void {
    const incoming = req.headers['x-request-id'];
    const reqId =
      typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    req.id = reqId;
    res.setHeader('X-Request-Id', reqId);
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const [path, search = ''] = (req.originalUrl ?? req.url ?? '').split('?', 2);
      this.log.info(
        {
          reqId,
          req: {
            method: req.method,
            path,
            query: boundedQuery({
              ...((req.query as Record<string, unknown> | undefined) ?? parseQuery(search)),
            }),
            // The client's X-Request-Id is the reqId when accepted; otherwise it is not logged.
            headers: { ...req.headers, 'x-request-id': undefined },
            ip: req.ip,
          },
          res: {
            statusCode: res.statusCode,
            headers: pickHeaders(res.getHeaders(), RESPONSE_HEADERS),
          },
          responseTimeMs: Math.round(ms * 10) / 10,
        },
        'request completed',
      );
    });
    requestContext.run({ reqId }, next);
  }
}

/**
 * Installs the request-id middleware on every route. Import it in the root module; the
 * `JsonLogger` itself is given to Nest (`NestFactory.create(..., { logger })` or `app.useLogger`).
 */
@Module({})
export class JsonLoggingModule implements NestModule {
  static forRoot(log: Pino): DynamicModule {
    return {
      module: JsonLoggingModule,
      providers: [{ provide: PINO, useValue: log }, RequestIdMiddleware],
    };
  }

  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(RequestIdMiddleware).forRoutes('{*path}');
  }
}
