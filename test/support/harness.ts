import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  INestApplication,
  LoggerService,
  ModuleMetadata,
  NestApplicationOptions,
  Provider,
} from '@nestjs/common';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { RouterModule } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  DiscourseConnectModule,
  discourseConnectConfig,
  type DiscourseConnectModuleOptions,
} from 'nestjs-discourse-connect/internal';
import {
  DiscordSimulator,
  DiscourseSimulator,
  VanillaSimulator,
  type DiscourseSimulatorOptions,
  type VanillaSimulatorOptions,
} from 'nestjs-discourse-connect-simulators';
import { databaseOptions } from '../../src/database';
import { freePort } from './ports';
import { createHttpAdapter, type HttpTimeouts } from '../../src/http-adapter';

export type ModuleStyle = 'forRoot' | 'forRootAsync';
/** The Nest HTTP adapter the app runs on. */
export type HttpAdapterName = 'express' | 'fastify';
/** Both adapters, for `describe.each(HTTP_ADAPTERS)`. */
export const HTTP_ADAPTERS: HttpAdapterName[] = ['express', 'fastify'];

export const FORUM_SECRET = 'e2e-forum-secret-0123456789';
export const SESSION_SECRET = 'e2e-session-secret-0123456789abcdef0123';
/** The simulated forum's admin API key and webhook secret, when a test turns them on. */
export const API_KEY = 'e2e-admin-api-key-0123456789';
export const WEBHOOK_SECRET = 'e2e-webhook-secret-0123';
/** The simulated Vanilla forum's jsConnect connection, when a test starts one. */
export const VANILLA_CLIENT_ID = 'e2e-vanilla-client';
export const VANILLA_SECRET = 'e2e-vanilla-secret-0123456789';

export { freePort } from './ports';

export interface Harness {
  app: INestApplication;
  adapter: HttpAdapterName;
  appUrl: string;
  /** Where the module's routes are: `appUrl` plus any global prefix and RouterModule path. */
  mountUrl: string;
  /** The forum URL the app is configured with (the simulator's base URL plus any `forumPath`). */
  forumUrl: string;
  discord: DiscordSimulator;
  forum: DiscourseSimulator;
  /** The simulated Vanilla forum, when `vanilla` was given. */
  vanilla?: VanillaSimulator;
  databaseFile: string;
  /** Rebuilds the app on the same database and port (a restart). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The real app on real HTTP, with simulated Discord and Discourse on their own ports, configured
 * through `forRoot` (options object) or `forRootAsync` (the env-backed config).
 */
export async function startHarness(
  style: ModuleStyle,
  extra: {
    /** The HTTP adapter: `express` (default) or `fastify`. */
    adapter?: HttpAdapterName;
    /** Trust one proxy hop (X-Forwarded-For / -Proto), as TRUST_PROXY=true does in the bundled app. */
    trustProxy?: boolean;
    /** The HTTP time limits (default: the bundled app's, 30 s for a request); short ones to test them. */
    timeouts?: HttpTimeouts;
    providers?: Provider[];
    controllers?: ModuleMetadata['controllers'];
    imports?: ModuleMetadata['imports'];
    /** Host modules imported before DiscourseConnectModule (so configured first, as the bundled app imports its logging). */
    importsBefore?: ModuleMetadata['imports'];
    /** Configure the forum as installed in a subfolder of the simulator's origin, e.g. `/forum`. */
    forumPath?: string;
    /** Extra options of the simulated forum (admin API key, rate limit, group settings…). */
    forumOptions?: Partial<DiscourseSimulatorOptions>;
    /** Changes to the module options (forRoot) … */
    moduleOptions?: (options: DiscourseConnectModuleOptions) => DiscourseConnectModuleOptions;
    /**
     * … and the equivalent environment variables (forRootAsync); `undefined` leaves out one of the
     * harness's own (e.g. DISCOURSE_URL, to configure forums with DISCOURSE_FORUM_<NAME>_* only).
     */
    env?: Record<string, string | undefined>;
    /**
     * The module's per-IP limit on sign-in and SSO routes. Off by default here, since every test
     * request comes from 127.0.0.1; give `{ limit, requestLimit, ttlSeconds }` to test it (forRootAsync reads only
     * the limit, from DISCOURSE_CONNECT_RATE_LIMIT, per 60 s).
     */
    rateLimit?: false | { limit: number; requestLimit?: number; ttlSeconds?: number };
    /** The app's logger (e.g. the JSON logger); default: silent unless E2E_LOGS is set. */
    logger?: LoggerService;
    /** `postgres://…` to run on PostgreSQL (see test/services); default a fresh SQLite file. */
    databaseUrl?: string;
    /**
     * No TypeORM connection in the host: the module keeps its own DataSource on the test's SQLite
     * file (the `database` option; forRoot only).
     */
    ownDatabase?: boolean;
    /** `redis://…`: sessions and the sync queue in Redis (both styles); default none. */
    redis?: { url: string; prefix?: string };
    /** `app.setGlobalPrefix(prefix, options)` before the app listens. */
    globalPrefix?: string | { prefix: string; exclude?: string[] };
    /** Mounts the module under `RouterModule.register([{ path, module: DiscourseConnectModule }])`. */
    routerPath?: string;
    /**
     * A simulated Vanilla forum too (its options; `{}` for the defaults), configured as the module's
     * Vanilla forum: `vanilla.forums` (forRoot) or `VANILLA_URL`… (forRootAsync).
     */
    vanilla?: Partial<VanillaSimulatorOptions>;
  } = {},
): Promise<Harness> {
  const adapter = extra.adapter ?? 'express';
  const discord = new DiscordSimulator();
  const forum = new DiscourseSimulator({ ...extra.forumOptions, secret: FORUM_SECRET });
  const discordUrl = await discord.listen(0);
  const forumUrl = (await forum.listen(0)) + (extra.forumPath ?? '');
  const vanilla = extra.vanilla
    ? new VanillaSimulator({
        ...extra.vanilla,
        clientId: VANILLA_CLIENT_ID,
        secret: VANILLA_SECRET,
      })
    : undefined;
  if (vanilla) await vanilla.listen(0);
  const port = await freePort();
  const appUrl = `http://127.0.0.1:${port}`;
  const globalPrefix =
    typeof extra.globalPrefix === 'string' ? { prefix: extra.globalPrefix } : extra.globalPrefix;
  const mountUrl = [appUrl, globalPrefix?.prefix, extra.routerPath]
    .filter(Boolean)
    .map((p) => p!.replace(/^\/+|\/+$/g, ''))
    .join('/');
  discord.redirectUris = [`${mountUrl}/auth/discord/callback`];
  forum.connectUrl = `${mountUrl}/discourse/sso`;
  forum.logoutRedirect = `${mountUrl}/discourse/logout`;
  if (vanilla) {
    vanilla.authenticateUrl = `${mountUrl}/vanilla/connect`;
    vanilla.signOutUrl = `${mountUrl}/vanilla/logout`;
    vanilla.trustedOrigins.push(appUrl);
  }
  const dir = mkdtempSync(join(tmpdir(), 'dc-e2e-'));
  const databaseFile = join(dir, 'app.sqlite');

  const baseOptions: DiscourseConnectModuleOptions = {
    forums: [{ url: forumUrl, secret: FORUM_SECRET }],
    discord: {
      clientId: 'sandbox-client-id',
      clientSecret: 'sandbox-client-secret',
      baseUrl: discordUrl,
    },
    publicUrl: appUrl,
    session: { secret: SESSION_SECRET },
    rateLimit: extra.rateLimit ?? false,
  };
  if (extra.redis) baseOptions.redis = extra.redis;
  if (vanilla) {
    baseOptions.vanilla = {
      forums: [
        {
          url: vanilla.forumRootUrl,
          clientId: VANILLA_CLIENT_ID,
          secret: VANILLA_SECRET,
          algorithm: vanilla.algorithm,
          defaultSignIn: vanilla.defaultConnection,
        },
      ],
    };
  }
  const options = extra.moduleOptions ? extra.moduleOptions(baseOptions) : baseOptions;
  const env: Record<string, string | undefined> = {
    DISCOURSE_URL: forumUrl,
    DISCOURSE_CONNECT_SECRET: FORUM_SECRET,
    DISCORD_CLIENT_ID: 'sandbox-client-id',
    DISCORD_CLIENT_SECRET: 'sandbox-client-secret',
    DISCORD_BASE_URL: discordUrl,
    PUBLIC_URL: appUrl,
    SESSION_SECRET,
    DISCOURSE_CONNECT_RATE_LIMIT: extra.rateLimit ? String(extra.rateLimit.limit) : 'off',
    ...(extra.redis
      ? { REDIS_URL: extra.redis.url, DISCOURSE_CONNECT_REDIS_PREFIX: extra.redis.prefix ?? '' }
      : {}),
    ...(vanilla
      ? {
          VANILLA_URL: vanilla.forumRootUrl,
          VANILLA_CLIENT_ID,
          VANILLA_SECRET,
          VANILLA_ALGORITHM: vanilla.algorithm,
          VANILLA_DEFAULT_SIGN_IN: String(vanilla.defaultConnection),
        }
      : {}),
    ...extra.env,
  };

  const build = async (): Promise<INestApplication> => {
    for (const key of Object.keys(process.env)) {
      if (/^(DISCOURSE|DISCORD|VANILLA)_|^REDIS_URL$/.test(key)) delete process.env[key];
    }
    for (const [key, value] of Object.entries(env))
      if (value !== undefined) process.env[key] = value;
    const moduleRef = await Test.createTestingModule({
      imports: [
        ...(extra.importsBefore ?? []),
        EventEmitterModule.forRoot(),
        ...(extra.ownDatabase
          ? []
          : [
              TypeOrmModule.forRoot(databaseOptions(extra.databaseUrl ?? `sqlite:${databaseFile}`)),
            ]),
        style === 'forRoot'
          ? DiscourseConnectModule.forRoot(
              extra.ownDatabase
                ? { ...options, database: { url: `sqlite:${databaseFile}` } }
                : options,
            )
          : DiscourseConnectModule.forRootAsync(discourseConnectConfig.asProvider()),
        ...(extra.routerPath
          ? [RouterModule.register([{ path: extra.routerPath, module: DiscourseConnectModule }])]
          : []),
        ...(extra.imports ?? []),
      ],
      providers: extra.providers ?? [],
      controllers: extra.controllers ?? [],
    }).compile();
    const appOptions: NestApplicationOptions = {
      rawBody: true,
      logger: extra.logger ?? (process.env.E2E_LOGS ? undefined : false),
    };
    // The bundled app's adapter setup (same body limit and time limits on both; one trusted proxy hop when asked).
    const httpAdapter = createHttpAdapter(adapter, {
      trustProxy: extra.trustProxy ?? false,
      timeouts: extra.timeouts,
    });
    const app = moduleRef.createNestApplication(httpAdapter, appOptions);
    if (globalPrefix) app.setGlobalPrefix(globalPrefix.prefix, { exclude: globalPrefix.exclude });
    await app.listen(port, '127.0.0.1');
    return app;
  };

  const harness: Harness = {
    app: await build(),
    adapter,
    appUrl,
    mountUrl,
    forumUrl,
    discord,
    forum,
    vanilla,
    databaseFile,
    restart: async () => {
      await harness.app.close();
      harness.app = await build();
    },
    close: async () => {
      await harness.app.close();
      await Promise.all([discord.close(), forum.close(), vanilla?.close()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return harness;
}
