import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DiscourseConnectModule, discourseConnectConfig } from '../libs/discourse-connect/src';
import { databaseOptions } from './database';
import { ForumPlugin } from './forum.plugin';
import { HomeController } from './home.controller';

/** The host app: env-backed configuration, the embedded database, the module and one plugin. */
@Module({})
export class AppModule {
  static forRoot(options: { databaseUrl?: string } = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, load: [discourseConnectConfig] }),
        EventEmitterModule.forRoot(),
        TypeOrmModule.forRoot(databaseOptions(options.databaseUrl)),
        // Global, so host routes anywhere can use @SyncToDiscourse() / @LogOutOfDiscourse().
        DiscourseConnectModule.forRootAsync({ ...discourseConnectConfig.asProvider(), isGlobal: true }),
      ],
      controllers: [HomeController],
      providers: [ForumPlugin],
    };
  }
}
