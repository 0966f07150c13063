import type { Server } from 'node:http';
import type { AbstractHttpAdapter } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';

/** The Nest HTTP adapters the app (and the module) run on. */
export const HTTP_ADAPTER_NAMES = ['fastify', 'express'] as const;
export type HttpAdapterName = (typeof HTTP_ADAPTER_NAMES)[number];

/** Request bodies above this size get a 413 (Express's default, so both adapters draw the line at the same place). */
export const BODY_LIMIT_BYTES = 100 * 1024;

/**
 * How long a client may take, the same on both adapters (Node's defaults are 5 minutes for a whole
 * request on Express and no limit at all on Fastify, so a body trickled a byte at a time would hold
 * a connection for as long as the client likes).
 */
export interface HttpTimeouts {
  /** The whole request, headers and body, must arrive within this (then 408 and the connection closes). */
  requestMs: number;
  /** The headers must arrive within this (at most `requestMs`). */
  headersMs: number;
  /** A connection with no traffic at all is closed after this. */
  idleMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveMs: number;
}

export const HTTP_TIMEOUTS: HttpTimeouts = {
  requestMs: 30_000,
  headersMs: 10_000,
  idleMs: 30_000,
  keepAliveMs: 5_000,
};

/**
 * `HTTP_ADAPTER`: `fastify` (the default: about three times Express's throughput here) or
 * `express`.
 *
 * @throws Error naming the variable and the accepted values for anything else.
 */
export function httpAdapterFromEnv(value: string | undefined): HttpAdapterName {
  if (value === undefined || value === '') return 'fastify';
  const name = value.trim().toLowerCase();
  if ((HTTP_ADAPTER_NAMES as readonly string[]).includes(name)) return name as HttpAdapterName;
  throw new Error(
    `Invalid configuration: HTTP_ADAPTER must be "fastify" or "express" (got "${value}"). Leave it unset for fastify.`,
  );
}

/**
 * The adapter, with one trusted proxy hop when `trustProxy` is set: the client address (rate
 * limit, logs) is then the one the proxy put in X-Forwarded-For, and https is read from
 * X-Forwarded-Proto (Secure cookies). Both get the same time limits (`timeouts`, default
 * `HTTP_TIMEOUTS`) and send no `X-Powered-By`.
 */
export function createHttpAdapter(
  name: HttpAdapterName,
  options: { trustProxy: boolean; timeouts?: HttpTimeouts },
): AbstractHttpAdapter {
  const timeouts = options.timeouts ?? HTTP_TIMEOUTS;
  if (name === 'fastify') {
    // (address, hop) => hop < 1 is what Express compiles `trust proxy: 1` to.
    const trustProxy = options.trustProxy ? (_address: string, hop: number) => hop < 1 : false;
    // JSON keys named __proto__ / constructor.prototype are dropped, as good as ignored on Express,
    // rather than failing the whole body with a 400 (Fastify's default). Routes match as on Express:
    // a trailing slash and the letters' case do not matter (`/discourse/sso/` reaches the endpoint).
    const adapter = new FastifyAdapter({
      trustProxy,
      bodyLimit: BODY_LIMIT_BYTES,
      onProtoPoisoning: 'remove',
      onConstructorPoisoning: 'remove',
      routerOptions: { ignoreTrailingSlash: true, caseSensitive: false },
      requestTimeout: timeouts.requestMs,
      connectionTimeout: timeouts.idleMs,
      keepAliveTimeout: timeouts.keepAliveMs,
    });
    applyServerTimeouts(adapter.getInstance().server, timeouts);
    return adapter;
  }
  const adapter = new ExpressAdapter();
  adapter.set('trust proxy', options.trustProxy ? 1 : false);
  adapter.getInstance().disable('x-powered-by');
  // Nest creates Express's HTTP server when it creates the app: the limits go on it then.
  const initHttpServer = adapter.initHttpServer.bind(adapter);
  adapter.initHttpServer = (serverOptions) => {
    initHttpServer(serverOptions);
    applyServerTimeouts(adapter.getHttpServer() as Server, timeouts);
  };
  return adapter;
}

/**
 * Node's own limits on the HTTP server (Fastify sets the first three from its options as well).
 * Node checks the request and header deadlines on a timer, every 30 s by default: it runs here at
 * a tenth of the request limit (at most every second), so a slow client is cut close to the limit.
 * Takes effect when the server starts listening.
 */
export function applyServerTimeouts(server: Server, timeouts: HttpTimeouts): void {
  server.requestTimeout = timeouts.requestMs;
  server.headersTimeout = Math.min(timeouts.headersMs, timeouts.requestMs);
  server.keepAliveTimeout = timeouts.keepAliveMs;
  server.setTimeout(timeouts.idleMs);
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval =
    Math.max(50, Math.min(1_000, Math.floor(timeouts.requestMs / 10)));
}
