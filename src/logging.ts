import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import { DynamicModule, Inject, LoggerService, Module, NestModule } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Application, Request, Response } from 'express';
import type { FastifyInstance } from 'fastify';
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

/** What a redacted value is written as. */
const CENSOR = '[Redacted]';

/**
 * The access line's redactions: the REDACTED_PATHS under `req.headers`, `req.query` and
 * `res.headers`, applied while the line is built (see `logRequest`) rather than by pino on each
 * line, which costs more than the rest of the line.
 */
const ACCESS_REDACTIONS = accessRedactions(REDACTED_PATHS);

function accessRedactions(paths: readonly string[]): Record<string, ReadonlySet<string>> {
  const found: Record<string, Set<string>> = {
    'req.headers': new Set(),
    'req.query': new Set(),
    'res.headers': new Set(),
  };
  for (const path of paths) {
    const m = /^(req\.headers|req\.query|res\.headers)(?:\.([\w-]+)|\["([^"]+)"\])$/.exec(path);
    if (m) found[m[1]].add(m[2] ?? m[3]);
  }
  return found;
}

/** `fields` with the values of the names in `redacted` replaced by the censor. */
function redacted(
  fields: Record<string, unknown>,
  names: ReadonlySet<string>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(fields)) {
    const value = fields[name];
    out[name] = value !== undefined && names.has(name) ? CENSOR : value;
  }
  return out;
}

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
      redact: { paths: REDACTED_PATHS, censor: CENSOR },
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

/** The request fields an access line reads (Node's request; Express's extends it). */
type LoggedRequest = IncomingMessage & { originalUrl?: string; ip?: string };

/**
 * Gives each request an id (an incoming `X-Request-Id` matching `REQUEST_ID` is kept, otherwise
 * a new UUID), sends it back in `X-Request-Id`, runs the rest of the request with that id (so
 * every line logged meanwhile carries it), and writes one access line when the response has been
 * sent. Query parameters and headers are redacted by the paths above as the line is built (so
 * `log` need not redact it); the path never carries a query string. `ip`: the client address as the framework decided it (its trusted-proxy setting).
 */
function logRequest(
  log: Pino,
  req: LoggedRequest,
  res: ServerResponse,
  ip: () => string | undefined,
  next: () => void,
): void {
  const incoming = req.headers['x-request-id'];
  const reqId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader('X-Request-Id', reqId);
  const started = process.hrtime.bigint();
  const url = req.originalUrl ?? req.url ?? '';
  res.once('finish', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const query = url.indexOf('?');
    log.info(
      {
        reqId,
        req: {
          method: req.method,
          path: query === -1 ? url : url.slice(0, query),
          query: redacted(
            boundedQuery(query === -1 ? {} : { ...parseQuery(url.slice(query + 1)) }),
            ACCESS_REDACTIONS['req.query'],
          ),
          // The client's X-Request-Id is the reqId when accepted; otherwise it is not logged.
          headers: {
            ...redacted(req.headers, ACCESS_REDACTIONS['req.headers']),
            'x-request-id': undefined,
          },
          ip: ip(),
        },
        res: {
          statusCode: res.statusCode,
          headers: redacted(
            pickHeaders(res.getHeaders(), RESPONSE_HEADERS),
            ACCESS_REDACTIONS['res.headers'],
          ),
        },
        responseTimeMs: Math.round(ms * 10) / 10,
      },
      'request completed',
    );
  });
  requestContext.run({ reqId }, next);
}

/**
 * Request ids and access lines for every request of the app, installed on the HTTP adapter itself
 * (a Fastify `onRequest` hook, or an Express middleware) from this module's `configure()`, which
 * Nest runs before it registers any middleware or route. Not Nest middleware: on Fastify that
 * would run every request through `@fastify/middie`, which costs as much as the rest of a
 * handshake. Import it in the root module BEFORE `DiscourseConnectModule` (modules imported side
 * by side are configured in their order): the module answers a signed-in handshake from its own
 * Fastify hook, and this one must have run by then. The `JsonLogger` itself is given to Nest
 * (`NestFactory.create(..., { logger })` or `app.useLogger`).
 */
@Module({})
export class JsonLoggingModule implements NestModule {
  static forRoot(log: Pino): DynamicModule {
    return { module: JsonLoggingModule, providers: [{ provide: PINO, useValue: log }] };
  }

  constructor(
    @Inject(PINO) private readonly log: Pino,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  configure(): void {
    // Access lines are built redacted (REDACTED_PATHS, see `logRequest`): pino need not redact them again.
    const log = this.log.child({}, { redact: { paths: [], censor: CENSOR } });
    const adapter = this.adapterHost.httpAdapter;
    if (adapter.getType() === 'fastify') {
      const fastify = adapter.getInstance<FastifyInstance>();
      fastify.addHook('onRequest', (request, reply, done) =>
        logRequest(log, request.raw, reply.raw, () => request.ip, done),
      );
    } else {
      const express = adapter.getInstance<Application>();
      express.use((req: Request, res: Response, next: () => void) =>
        logRequest(log, req, res, () => req.ip, next),
      );
    }
  }
}
