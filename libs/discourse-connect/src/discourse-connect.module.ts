import type { Repository } from 'typeorm';
import {
  DynamicModule,
  Inject,
  MiddlewareConsumer,
  Module,
  NestModule,
  Provider,
  Type,
} from '@nestjs/common';
import { DiscoveryModule, ModuleRef } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { getDataSourceToken, getRepositoryToken, TypeOrmModule } from '@nestjs/typeorm';
import { dataSourceOptionsFromUrl } from './config/database-url';
import { DISCOURSE_CONNECT_MIGRATIONS } from './migrations';
import { DiscourseConnectSettings } from './config/discourse-connect.settings';
import type {
  DiscourseConnectDatabaseOptions,
  DiscourseConnectModuleOptions,
} from './discourse-connect-options.interface';
import {
  ASYNC_OPTIONS_TYPE,
  ConfigurableModuleClass,
  DISCOURSE_CONNECT_OPTIONS,
  OPTIONS_TYPE,
} from './discourse-connect.module-definition';
import { AuthController } from './discord/auth.controller';
import { DiscordApiClient } from './discord/discord-api.client';
import { DiscordAuthGuard, DiscordCallbackGuard } from './discord/discord-auth.guard';
import { DiscordStrategy } from './discord/discord.strategy';
import { DiscourseConnectHealthController } from './health/health.controller';
import { DiscourseConnectActionsService } from './hooks/actions.service';
import { DiscourseConnectFiltersService } from './hooks/filters.service';
import { SameOriginGuard } from './http/same-origin.guard';
import { DiscourseConnectRateLimitGuard } from './http/rate-limit.guard';
import { DiscourseConnectSecurityHeadersMiddleware } from './http/security-headers.middleware';
import { SsoHandshakeShortcut } from './sso/handshake-shortcut';
import type { HandshakeShortcut } from './http/http-adapter-glue';
import { DiscourseConnectSessionEntity } from './session/discourse-connect-session.entity';
import { DiscourseConnectSessionMiddleware } from './session/session.middleware';
import { DiscourseConnectSessions } from './session/sessions';
import { HOST_SESSION_STORE } from './session/session-store.factory';
import { DiscourseConnectHttp } from './http/discourse-connect-http.service';
import { DiscourseConnectRoutes } from './http/discourse-connect-routes';
import { DiscourseConnectExceptionFilter } from './http/discourse-connect-exception.filter';
import {
  createDiscourseConnectPassport,
  DISCOURSE_CONNECT_PASSPORT,
} from './session/discourse-connect-passport';
import { SsoController } from './sso/sso.controller';
import { VanillaController } from './vanilla/vanilla.controller';
import { VanillaConnectService } from './vanilla/vanilla.service';
import { SsoService } from './sso/sso.service';
import { DiscourseConnectUserEntity } from './users/discourse-connect-user.entity';
import { TypeOrmUserStore } from './users/typeorm-user.store';
import { DiscourseConnectForumLinkEntity } from './users/forum-link.entity';
import { ForumLinks } from './users/forum-links';
import { UserStore } from './users/user-store.interface';
import { UsersService } from './users/users.service';
import { DiscourseConnectSignIn } from './discord/sign-in.service';
import { DiscourseConnectSignOut } from './http/sign-out';
import { DiscoursePayloadBuilder } from './payload/discourse-payload.builder';
import { DiscourseConnectStaffFlags } from './payload/staff-flags';
import { DiscourseAdminService } from './admin/discourse-admin.service';
import { AdminApiRateLimiter } from './admin/rate-limiter';
import { DiscourseConnectSyncJobEntity } from './sync/sync-job.entity';
import { SyncQueue } from './sync/sync-queue.service';
import {
  DiscourseConnectSyncDelivery,
  DiscourseConnectSyncQueue,
} from './sync/discourse-connect-sync-queue';
import { HostSyncQueue } from './sync/host-sync-queue';
import { DatabaseSyncQueue } from './sync/database-sync-queue';
import { BullMqSyncQueue } from './sync/bullmq-sync-queue';
import { RedisAdminApiRateLimiter } from './admin/redis-rate-limiter';
import { DiscourseConnectRedis } from './redis/discourse-connect-redis';
import { DatabaseSyncWorker } from './sync/database-sync.worker';
import { SyncOutboxRelay } from './sync/outbox-relay';
import { SyncDeliveryCore } from './sync/sync-delivery.core';
import { DiscourseLifecycleInterceptor } from './sync/discourse-lifecycle.interceptor';
import { DiscordBotConnection } from './bot/discord-bot';
import { DiscordMemberSync } from './bot/discord-member-sync';
import { DiscourseMemberLifecycle } from './lifecycle/member-lifecycle.service';
import { ForgetDiscourseMemberInterceptor } from './lifecycle/forget-member.interceptor';
import { DiscourseWebhooksController } from './webhooks/discourse-webhooks.controller';
import { DiscourseConnectWebhookEventEntity } from './webhooks/webhook-event.entity';
import {
  DiscourseConnectWebhookBodyEntity,
  DiscourseConnectWebhookUserEntity,
} from './webhooks/webhook-replay.entities';

/** The module's TypeORM entities; the host's DataSource loads them (`autoLoadEntities: true`). */
export const DISCOURSE_CONNECT_ENTITIES = [
  DiscourseConnectUserEntity,
  DiscourseConnectSessionEntity,
  DiscourseConnectSyncJobEntity,
  DiscourseConnectWebhookEventEntity,
  DiscourseConnectWebhookBodyEntity,
  DiscourseConnectWebhookUserEntity,
  DiscourseConnectForumLinkEntity,
];

const CONTROLLERS = [
  SsoController,
  AuthController,
  DiscourseConnectHealthController,
  DiscourseWebhooksController,
  VanillaController,
];

const providers: Provider[] = [
  {
    provide: DiscourseConnectSettings,
    useFactory: (options: DiscourseConnectModuleOptions) => new DiscourseConnectSettings(options),
    inject: [DISCOURSE_CONNECT_OPTIONS],
  },
  {
    // The host's store (`userStore`: a class or an instance), else the module's TypeORM table.
    provide: UserStore,
    useFactory: async (
      options: DiscourseConnectModuleOptions,
      moduleRef: ModuleRef,
      users: Repository<DiscourseConnectUserEntity>,
    ): Promise<UserStore> =>
      (await hostExtension(options.userStore, moduleRef)) ?? new TypeOrmUserStore(users),
    inject: [DISCOURSE_CONNECT_OPTIONS, ModuleRef, getRepositoryToken(DiscourseConnectUserEntity)],
  },
  {
    // The host's session store (`session.store`: a class or an instance), else null: the module's own.
    provide: HOST_SESSION_STORE,
    useFactory: (options: DiscourseConnectModuleOptions, moduleRef: ModuleRef) =>
      hostExtension(options.session?.store, moduleRef),
    inject: [DISCOURSE_CONNECT_OPTIONS, ModuleRef],
  },
  UsersService,
  ForumLinks,
  {
    provide: DISCOURSE_CONNECT_PASSPORT,
    useFactory: createDiscourseConnectPassport,
    inject: [UsersService],
  },
  DiscourseConnectFiltersService,
  DiscourseConnectActionsService,
  DiscordApiClient,
  DiscourseConnectSignIn,
  DiscourseConnectSignOut,
  DiscordStrategy,
  DiscordAuthGuard,
  DiscordCallbackGuard,
  SameOriginGuard,
  DiscourseConnectRateLimitGuard,
  DiscourseConnectSecurityHeadersMiddleware,
  SsoService,
  VanillaConnectService,
  DiscoursePayloadBuilder,
  DiscourseConnectStaffFlags,
  DiscourseConnectSessions,
  DiscourseConnectSessionMiddleware,
  DiscourseConnectHttp,
  DiscourseConnectRoutes,
  {
    // One Redis connection setup when `redis` is configured (null otherwise); closed at shutdown.
    provide: DiscourseConnectRedis,
    useFactory: (settings: DiscourseConnectSettings) =>
      settings.redis ? new DiscourseConnectRedis(settings.redis.url, settings.redis.prefix) : null,
    inject: [DiscourseConnectSettings],
  },
  {
    // One admin API budget per forum; with Redis, shared by every instance, otherwise per process.
    provide: AdminApiRateLimiter,
    useFactory: (settings: DiscourseConnectSettings, redis: DiscourseConnectRedis | null) => {
      const rates = Object.fromEntries(
        settings.apiForums.map((f) => [f.name, f.api!.ratePerMinute] as const),
      );
      return redis
        ? new RedisAdminApiRateLimiter(
            redis.client,
            redis.prefix,
            settings.sync.ratePerMinute,
            rates,
          )
        : new AdminApiRateLimiter(settings.sync.ratePerMinute, rates);
    },
    inject: [DiscourseConnectSettings, DiscourseConnectRedis],
  },
  DiscourseAdminService,
  // Member lifecycle.
  DiscourseMemberLifecycle,
  ForgetDiscourseMemberInterceptor,
  {
    // The internal queue: the host's (`syncQueue`) behind a wrapper, else BullMQ in Redis with
    // `redis`, else the database. The public token below is an alias of it.
    provide: SyncQueue,
    useFactory: async (
      jobs: Repository<DiscourseConnectSyncJobEntity>,
      settings: DiscourseConnectSettings,
      redis: DiscourseConnectRedis | null,
      delivery: SyncDeliveryCore,
      options: DiscourseConnectModuleOptions,
      moduleRef: ModuleRef,
    ): Promise<SyncQueue> => {
      const host = await hostExtension(options.syncQueue, moduleRef);
      if (host)
        return new HostSyncQueue(host, typeof options.syncQueue === 'function', jobs, settings);
      return redis
        ? new BullMqSyncQueue(jobs, settings, redis, delivery)
        : new DatabaseSyncQueue(jobs, settings);
    },
    inject: [
      getRepositoryToken(DiscourseConnectSyncJobEntity),
      DiscourseConnectSettings,
      DiscourseConnectRedis,
      SyncDeliveryCore,
      DISCOURSE_CONNECT_OPTIONS,
      ModuleRef,
    ],
  },
  { provide: DiscourseConnectSyncQueue, useExisting: SyncQueue },
  SyncDeliveryCore,
  DiscourseConnectSyncDelivery,
  DatabaseSyncWorker,
  SyncOutboxRelay,
  DiscourseLifecycleInterceptor,
  DiscordMemberSync,
  DiscordBotConnection,
  SsoHandshakeShortcut,
];

/**
 * Makes the host app the DiscourseConnect provider of one or more Discourse forums, with Discord as
 * the sign-in. Needs a TypeORM connection in the host (`TypeOrmModule.forRoot({ autoLoadEntities:
 * true, migrations: DISCOURSE_CONNECT_MIGRATIONS, migrationsRun: true, ... })`).
 *
 * @example
 * DiscourseConnectModule.forRootAsync(discourseConnectConfig.asProvider())
 */
@Module({})
export class DiscourseConnectModule extends ConfigurableModuleClass implements NestModule {
  constructor(
    @Inject(DiscourseConnectSettings) private readonly settings: DiscourseConnectSettings,
    @Inject(DiscourseConnectHttp) private readonly http: DiscourseConnectHttp,
    @Inject(DiscourseConnectSecurityHeadersMiddleware)
    private readonly headers: DiscourseConnectSecurityHeadersMiddleware,
    @Inject(DiscourseConnectRoutes) routes: DiscourseConnectRoutes,
    // Typed by its interface: the class's declarations reach the optional ioredis types.
    @Inject(SsoHandshakeShortcut) private readonly handshake: HandshakeShortcut,
  ) {
    super();
    // A RouterModule path is registered on this class; links follow it.
    routes.attachModule(this.constructor as Type);
  }

  static forRoot(options: typeof OPTIONS_TYPE): DynamicModule {
    return completeDefinition(super.forRoot(options), options.database);
  }

  static forRootAsync(options: typeof ASYNC_OPTIONS_TYPE): DynamicModule {
    return completeDefinition(super.forRootAsync(options), options.database);
  }

  /**
   * Nest awaits this before it registers any route: sessions and passport for the adapter in use
   * (express-session middleware on Express, @fastify/session on Fastify), then the headers.
   */
  async configure(consumer: MiddlewareConsumer): Promise<void> {
    await this.http.install(consumer, {
      filter: new DiscourseConnectExceptionFilter(this.http),
      securityHeaders: this.settings.securityHeaders
        ? (req, res, next) => this.headers.use(req, res, next)
        : undefined,
      handshake: this.handshake,
    });
    // On Express, Nest middleware on the module's routes; on Fastify, a hook of each module route
    // (set by the glue), so an app without middleware of its own never runs @fastify/middie.
    if (this.settings.securityHeaders && this.http.glue.name === 'express') {
      consumer.apply(DiscourseConnectSecurityHeadersMiddleware).forRoutes(...CONTROLLERS);
    }
  }
}

/**
 * An extension point given in the options: an instance is used as it is; a class is instantiated
 * by the module (`ModuleRef.create`), its constructor dependencies injected from the module's scope.
 */
async function hostExtension<T extends object>(
  given: T | Type<T> | undefined,
  moduleRef: ModuleRef,
): Promise<T | null> {
  if (!given) return null;
  return typeof given === 'function' ? moduleRef.create(given as Type<T>) : given;
}

/** Name of the module's own DataSource (the `database` option). */
const OWN_DATA_SOURCE = 'discourse-connect';

/**
 * The module's tables: on the host's default DataSource, or, with `database`, on a DataSource of
 * the module's own (migrated at boot) whose repositories and DataSource stand in for the default
 * ones inside the module, so its classes inject them the same way.
 */
function databaseParts(
  database?: DiscourseConnectDatabaseOptions,
): Pick<DynamicModule, 'imports' | 'providers'> {
  if (!database)
    return { imports: [TypeOrmModule.forFeature(DISCOURSE_CONNECT_ENTITIES)], providers: [] };
  return {
    imports: [
      TypeOrmModule.forRootAsync({
        name: OWN_DATA_SOURCE,
        useFactory: () => ({
          ...dataSourceOptionsFromUrl(database.url),
          entities: DISCOURSE_CONNECT_ENTITIES,
          migrations: DISCOURSE_CONNECT_MIGRATIONS,
          migrationsRun: true,
          synchronize: false,
        }),
      }),
      TypeOrmModule.forFeature(DISCOURSE_CONNECT_ENTITIES, OWN_DATA_SOURCE),
    ],
    providers: [
      { provide: getDataSourceToken(), useExisting: getDataSourceToken(OWN_DATA_SOURCE) },
      ...DISCOURSE_CONNECT_ENTITIES.map((entity) => ({
        provide: getRepositoryToken(entity),
        useExisting: getRepositoryToken(entity, OWN_DATA_SOURCE),
      })),
    ],
  };
}

/** The definition Nest built from the options, completed with the module's imports, controllers, providers and exports. */
function completeDefinition(
  definition: DynamicModule,
  database?: DiscourseConnectDatabaseOptions,
): DynamicModule {
  const data = databaseParts(database);
  return {
    ...definition,
    imports: [
      ...(definition.imports ?? []),
      DiscoveryModule,
      PassportModule.register({ session: true }),
      ...(data.imports ?? []),
    ],
    controllers: CONTROLLERS,
    providers: [...(definition.providers ?? []), ...(data.providers ?? []), ...providers],
    exports: [
      DiscourseConnectSettings,
      DiscourseConnectRoutes,
      UserStore,
      UsersService,
      ForumLinks,
      DiscourseConnectFiltersService,
      SsoService,
      VanillaConnectService,
      SameOriginGuard,
      DiscourseAdminService,
      SyncQueue,
      DiscourseConnectSyncQueue,
      DiscourseConnectSyncDelivery,
      DatabaseSyncWorker,
      SyncOutboxRelay,
      AdminApiRateLimiter,
      DiscourseConnectRedis,
      DiscourseLifecycleInterceptor,
      DiscordBotConnection,
      // Member lifecycle.
      DiscourseMemberLifecycle,
      ForgetDiscourseMemberInterceptor,
      DISCOURSE_CONNECT_OPTIONS,
    ],
  };
}
