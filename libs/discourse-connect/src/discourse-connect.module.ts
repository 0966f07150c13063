import { DynamicModule, Inject, MiddlewareConsumer, Module, NestModule, Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DiscourseConnectSettings } from './config/discourse-connect.settings';
import type { DiscourseConnectModuleOptions } from './discourse-connect-options.interface';
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
import { SameOriginGuard } from './common/same-origin.guard';
import { DiscourseConnectRateLimitGuard } from './common/rate-limit.guard';
import { DiscourseConnectSecurityHeadersMiddleware } from './common/security-headers.middleware';
import { DiscourseConnectSessionEntity } from './session/discourse-connect-session.entity';
import { DiscourseConnectSessionMiddleware } from './session/session.middleware';
import { DiscourseConnectHttp } from './http/discourse-connect-http.service';
import { DiscourseConnectExceptionFilter } from './common/discourse-connect-exception.filter';
import { createDiscourseConnectPassport, DISCOURSE_CONNECT_PASSPORT } from './session/discourse-connect-passport';
import { SsoController } from './sso/sso.controller';
import { SsoService } from './sso/sso.service';
import { DiscourseConnectUserEntity } from './users/discourse-connect-user.entity';
import { TypeOrmUserStore } from './users/typeorm-user.store';
import { UserStore } from './users/user-store.interface';
import { UsersService } from './users/users.service';
import { DiscourseAdminService } from './admin/discourse-admin.service';
import { AdminApiRateLimiter } from './sync/rate-limiter';
import { DiscourseConnectSyncJobEntity } from './sync/sync-job.entity';
import { SyncQueue } from './sync/sync-queue.service';
import { SyncWorker } from './sync/sync.worker';
import { DiscourseLifecycleInterceptor } from './sync/discourse-lifecycle.interceptor';
import { DiscourseWebhooksController } from './webhooks/discourse-webhooks.controller';
import { DiscourseConnectWebhookEventEntity } from './webhooks/webhook-event.entity';

/** The module's TypeORM entities; the host's DataSource loads them (`autoLoadEntities: true`). */
export const DISCOURSE_CONNECT_ENTITIES = [
  DiscourseConnectUserEntity,
  DiscourseConnectSessionEntity,
  DiscourseConnectSyncJobEntity,
  DiscourseConnectWebhookEventEntity,
];

const CONTROLLERS = [SsoController, AuthController, DiscourseConnectHealthController, DiscourseWebhooksController];

const providers: Provider[] = [
  {
    provide: DiscourseConnectSettings,
    useFactory: (options: DiscourseConnectModuleOptions) => new DiscourseConnectSettings(options),
    inject: [DISCOURSE_CONNECT_OPTIONS],
  },
  { provide: UserStore, useClass: TypeOrmUserStore },
  UsersService,
  { provide: DISCOURSE_CONNECT_PASSPORT, useFactory: createDiscourseConnectPassport, inject: [UsersService] },
  DiscourseConnectFiltersService,
  DiscourseConnectActionsService,
  DiscordApiClient,
  DiscordStrategy,
  DiscordAuthGuard,
  DiscordCallbackGuard,
  SameOriginGuard,
  DiscourseConnectRateLimitGuard,
  DiscourseConnectSecurityHeadersMiddleware,
  SsoService,
  DiscourseConnectSessionMiddleware,
  DiscourseConnectHttp,
  {
    provide: AdminApiRateLimiter,
    useFactory: (settings: DiscourseConnectSettings) => new AdminApiRateLimiter(settings.sync.ratePerMinute),
    inject: [DiscourseConnectSettings],
  },
  DiscourseAdminService,
  SyncQueue,
  SyncWorker,
  DiscourseLifecycleInterceptor,
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
  ) {
    super();
  }

  static forRoot(options: typeof OPTIONS_TYPE): DynamicModule {
    return withParts(super.forRoot(options));
  }

  static forRootAsync(options: typeof ASYNC_OPTIONS_TYPE): DynamicModule {
    return withParts(super.forRootAsync(options));
  }

  /**
   * Nest awaits this before it registers any route: sessions and passport for the adapter in use
   * (express-session middleware on Express, @fastify/session on Fastify), then the headers.
   */
  async configure(consumer: MiddlewareConsumer): Promise<void> {
    await this.http.install(consumer, { controllers: CONTROLLERS, filter: new DiscourseConnectExceptionFilter(this.http) });
    if (this.settings.securityHeaders) {
      consumer.apply(DiscourseConnectSecurityHeadersMiddleware).forRoutes(...CONTROLLERS);
    }
  }
}

function withParts(definition: DynamicModule): DynamicModule {
  return {
    ...definition,
    imports: [
      ...(definition.imports ?? []),
      DiscoveryModule,
      PassportModule.register({ session: true }),
      TypeOrmModule.forFeature(DISCOURSE_CONNECT_ENTITIES),
    ],
    controllers: CONTROLLERS,
    providers: [...(definition.providers ?? []), ...providers],
    exports: [
      DiscourseConnectSettings,
      UserStore,
      UsersService,
      DiscourseConnectFiltersService,
      SsoService,
      SameOriginGuard,
      DiscourseAdminService,
      SyncQueue,
      SyncWorker,
      AdminApiRateLimiter,
      DiscourseLifecycleInterceptor,
      DISCOURSE_CONNECT_OPTIONS,
    ],
  };
}
