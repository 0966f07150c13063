import { Module } from '@nestjs/common';
import { ConfigModule, type ConfigType } from '@nestjs/config';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  DISCOURSE_CONNECT_MIGRATIONS,
  DiscourseConnectModule,
  discourseConnectConfig,
} from 'nestjs-discourse-connect';
import { InMemoryUserStore } from './in-memory-user.store';
import { MeController } from './me.controller';

/** The host's own store, shared by its controllers and the module (given as an instance). */
const memoryStore = new InMemoryUserStore();

/** A host app as the README's "Add it to your Nest app" shows it, plus a user-store variant. */
@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true, load: [discourseConnectConfig] }),
    EventEmitterModule.forRoot(),
    TypeOrmModule.forRoot({
      type: 'better-sqlite3',
      database: process.env.DATABASE_FILE ?? './app.sqlite',
      autoLoadEntities: true,
      migrations: DISCOURSE_CONNECT_MIGRATIONS,
      migrationsRun: true,
    }),
    DiscourseConnectModule.forRootAsync({
      inject: [discourseConnectConfig.KEY],
      useFactory: (options: ConfigType<typeof discourseConnectConfig>) =>
        process.env.USER_STORE === 'memory' ? { ...options, userStore: memoryStore } : options,
    }),
  ],
  providers: [{ provide: InMemoryUserStore, useValue: memoryStore }],
  controllers: [MeController],
})
export class AppModule {}
