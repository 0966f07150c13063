import { Module } from '@nestjs/common';
import { AppModule } from '../app.module';
import { CheckCommand } from './check.command';
import { FailedCommand } from './failed.command';
import { LogoutCommand } from './logout.command';
import { ForgetCommand, SuspendCommand, UnsuspendCommand } from './member-lifecycle.commands';
import { SyncCommand } from './sync.command';

/** The command line: the host app's modules plus the commands. */
@Module({
  imports: [AppModule.forRoot({ databaseUrl: process.env.DATABASE_URL })],
  providers: [
    SyncCommand,
    LogoutCommand,
    CheckCommand,
    FailedCommand,
    SuspendCommand,
    UnsuspendCommand,
    ForgetCommand,
  ],
})
export class CliModule {}
