import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule, type ConfigType } from '@nestjs/config';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Logger as Pino } from 'pino';
import { DiscourseConnectModule, discourseConnectConfig } from 'nestjs-discourse-connect';
import { databaseOptions } from './database';
import { ForumPlugin } from './forum.plugin';
import { HomeController } from './home.controller';
import { JsonLoggingModule } from './logging';

/** The host app: env-backed configuration, the embedded database, the module and one plugin. */
@Module({})
export class AppModule {
  /**
   * `log`: the JSON logger; with it every request gets an id and an access line. `discordGateway:
   * false` keeps the Discord bot connection (gateway and reconcile) out of this process, as the
   * command line does.
   */
  static forRoot(
    options: { databaseUrl?: string; log?: Pino; discordGateway?: boolean } = {},
  ): DynamicModule {
    const discordGateway = options.discordGateway ?? true;
    return {
      module: AppModule,
      imports: [
        ...(options.log ? [JsonLoggingModule.forRoot(options.log)] : []),
        ConfigModule.forRoot({
          isGlobal: true,
          ignoreEnvFile: true,
          load: [discourseConnectConfig],
        }),
        EventEmitterModule.forRoot(),
        TypeOrmModule.forRoot(databaseOptions(options.databaseUrl)),
        // Global, so host routes anywhere can use @SyncToDiscourse() / @LogOutOfDiscourse().
        DiscourseConnectModule.forRootAsync({
          imports: [ConfigModule.forFeature(discourseConnectConfig)],
          useFactory: (config: ConfigType<typeof discourseConnectConfig>) =>
            config.bot && !discordGateway
              ? { ...config, bot: { ...config.bot, gateway: false } }
              : config,
          inject: [discourseConnectConfig.KEY],
          isGlobal: true,
        }),
      ],
      controllers: [HomeController],
      providers: [ForumPlugin],
    };
  }
}
