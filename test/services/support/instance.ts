import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  DiscourseConnectModule,
  type DiscourseConnectModuleOptions,
} from 'nestjs-discourse-connect/internal';
import { databaseOptions } from '../../../src/database';

/**
 * One app instance as its own process, for the multi-instance test: the module with the options
 * in DC_INSTANCE_OPTIONS (JSON), on DATABASE_URL, listening on PORT. Prints READY when listening.
 */
async function main(): Promise<void> {
  const options = JSON.parse(
    process.env.DC_INSTANCE_OPTIONS ?? '{}',
  ) as DiscourseConnectModuleOptions;
  @Module({
    imports: [
      EventEmitterModule.forRoot(),
      TypeOrmModule.forRoot(databaseOptions(process.env.DATABASE_URL)),
      DiscourseConnectModule.forRoot(options),
    ],
  })
  class InstanceModule {}
  const app = await NestFactory.create(InstanceModule, {
    logger: ['error', 'warn'],
    rawBody: true,
  });
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT), '127.0.0.1');
  process.stdout.write('READY\n');
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
