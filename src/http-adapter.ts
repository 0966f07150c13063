import type { AbstractHttpAdapter } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';

/** The Nest HTTP adapters the app (and the module) run on. */
export const HTTP_ADAPTER_NAMES = ['fastify', 'express'] as const;
export type HttpAdapterName = (typeof HTTP_ADAPTER_NAMES)[number];

/** Request bodies above this size get a 413 (Express's default, so both adapters draw the line at the same place). */
export const BODY_LIMIT_BYTES = 100 * 1024;

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
  throw new Error(`Invalid configuration: HTTP_ADAPTER must be "fastify" or "express" (got "${value}"). Leave it unset for fastify.`);
}

/**
 * The adapter, with one trusted proxy hop when `trustProxy` is set: the client address (rate
 * limit, logs) is then the one the proxy put in X-Forwarded-For, and https is read from
 * X-Forwarded-Proto (Secure cookies).
 */
export function createHttpAdapter(name: HttpAdapterName, options: { trustProxy: boolean }): AbstractHttpAdapter {
  if (name === 'fastify') {
    // (address, hop) => hop < 1 is what Express compiles `trust proxy: 1` to.
    const trustProxy = options.trustProxy ? (_address: string, hop: number) => hop < 1 : false;
    // JSON keys named __proto__ / constructor.prototype are dropped, as good as ignored on Express,
    // rather than failing the whole body with a 400 (Fastify's default). Routes match as on Express:
    // a trailing slash and the letters' case do not matter (`/discourse/sso/` reaches the endpoint).
    return new FastifyAdapter({
      trustProxy,
      bodyLimit: BODY_LIMIT_BYTES,
      onProtoPoisoning: 'remove',
      onConstructorPoisoning: 'remove',
      ignoreTrailingSlash: true,
      caseSensitive: false,
    });
  }
  const adapter = new ExpressAdapter();
  adapter.set('trust proxy', options.trustProxy ? 1 : false);
  return adapter;
}
