import { EventEmitter2 } from '@nestjs/event-emitter';
import { DataSource, type Logger as TypeOrmLogger } from 'typeorm';
import type { DiscordApiClient } from './discord-api.client';
import { DiscordApiError } from './discord-api.error';
import type { DiscourseConnectModuleOptions } from '../discourse-connect-options.interface';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents } from '../hooks/discourse-connect.events';
import { DiscourseConnectFiltersService } from '../hooks/filters.service';
import { DatabaseSyncQueue } from '../sync/database-sync-queue';
import { DiscourseConnectSyncJobEntity } from '../sync/sync-job.entity';
import { DiscourseConnectUserEntity } from '../users/discourse-connect-user.entity';
import { InvalidDiscordProfileError, SignInRefusedError } from './sign-in.errors';
import { DiscourseConnectSignIn } from './sign-in.service';
import { TypeOrmUserStore } from '../users/typeorm-user.store';
import { UsersService } from '../users/users.service';
import {
  migratedSqlite,
  settingsFixture,
  discordProfileFixture,
} from '../../test-support/fixtures';

const DISCORD_ID = '293847561029384756';
const GUILD = '111111111111111111';

/** The raw `/users/@me` answer. */
const profile = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  ...discordProfileFixture({ id: DISCORD_ID }),
  ...over,
});

/** Every statement the DataSource runs, in order. */
class StatementLog implements TypeOrmLogger {
  readonly statements: string[] = [];
  logQuery(query: string): void {
    this.statements.push(query);
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}

  /** SELECTs on the users table since `from`. */
  userReads(from = 0): number {
    return this.statements
      .slice(from)
      .filter((q) => /^\s*SELECT\b/i.test(q) && /"discourse_connect_users"/.test(q)).length;
  }
}

interface Setup {
  signIn: DiscourseConnectSignIn;
  log: StatementLog;
  /** Statements and events, in the order they happened. */
  timeline: string[];
  filters: DiscourseConnectFiltersService;
  dataSource: DataSource;
  roles: { answer: string[] | null | Error };
  notified: number;
}

const dataSources: DataSource[] = [];

async function setup(options: Partial<DiscourseConnectModuleOptions> = {}): Promise<Setup> {
  const log = new StatementLog();
  const dataSource = await migratedSqlite({ logging: ['query'], logger: log });
  dataSources.push(dataSource);
  log.statements.length = 0;
  const settings = settingsFixture(options);
  const users = new UsersService(
    new TypeOrmUserStore(dataSource.getRepository(DiscourseConnectUserEntity)),
    settings,
  );
  const queue = new DatabaseSyncQueue(
    dataSource.getRepository(DiscourseConnectSyncJobEntity),
    settings,
  );
  const roles: Setup['roles'] = { answer: ['2', '1'] };
  const api = {
    get: async () => {
      if (roles.answer instanceof Error) throw roles.answer;
      if (roles.answer === null) throw new DiscordApiError(404, 'Unknown Member');
      return { roles: roles.answer };
    },
  } as unknown as DiscordApiClient;
  // The filters' discovery runs at module init only; `add` registers by code.
  const filters = new DiscourseConnectFiltersService(
    undefined as never,
    undefined as never,
    undefined as never,
  );
  const timeline: string[] = [];
  const originalLogQuery = log.logQuery.bind(log);
  log.logQuery = (query: string) => {
    originalLogQuery(query);
    timeline.push(query);
  };
  const actions = new DiscourseConnectActionsService(new EventEmitter2());
  const emit = actions.emit.bind(actions);
  actions.emit = (event: string, payload: object) => {
    timeline.push(`event ${event}`);
    emit(event, payload);
  };
  const result: Setup = {
    signIn: undefined as never,
    log,
    timeline,
    filters,
    dataSource,
    roles,
    notified: 0,
  };
  queue.onEnqueued(() => result.notified++);
  result.signIn = new DiscourseConnectSignIn(settings, api, users, filters, actions, queue);
  return result;
}

const jobs = (s: Setup) => s.dataSource.getRepository(DiscourseConnectSyncJobEntity).find();
const events = (s: Setup) => s.timeline.filter((t) => t.startsWith('event '));

afterEach(async () => {
  for (const ds of dataSources.splice(0)) await ds.destroy();
});

describe('DiscourseConnectSignIn (real SQLite)', () => {
  it('creates a new member: one read, one insert, events after the commit', async () => {
    const s = await setup({ sync: { onFirstSignIn: true } });
    const user = await s.signIn.signIn(profile(), 'token');
    expect(user).toMatchObject({ discordId: DISCORD_ID, username: 'ava', displayName: 'Ava' });
    expect(s.log.userReads()).toBe(1); // the read before; the inserted row is known without a read
    expect(await jobs(s)).toEqual([
      expect.objectContaining({ discordId: DISCORD_ID, kind: 'create' }),
    ]);
    expect(s.notified).toBe(1);
    expect(events(s)).toEqual([
      `event ${DiscourseConnectEvents.UserCreated}`,
      `event ${DiscourseConnectEvents.SignedIn}`,
    ]);
  });

  it('two-factor turned off: stored, no profile change; a sync job only where roles grant staff flags', async () => {
    const withStaff = await setup({ groups: { guildId: GUILD, adminRoles: ['1'] } });
    await withStaff.signIn.signIn(profile({ mfa_enabled: true }), 'token');
    const user = await withStaff.signIn.signIn(profile({ mfa_enabled: false }), 'token');
    expect(user.mfaEnabled).toBe(false);
    expect(await jobs(withStaff)).toEqual([
      expect.objectContaining({ discordId: DISCORD_ID, kind: 'sync' }),
    ]);
    expect(events(withStaff)).not.toContain(`event ${DiscourseConnectEvents.ProfileChanged}`);

    const without = await setup({ groups: { guildId: GUILD } });
    await without.signIn.signIn(profile({ mfa_enabled: true }), 'token');
    const again = await without.signIn.signIn(profile({ mfa_enabled: false }), 'token');
    expect(again.mfaEnabled).toBe(false);
    expect(await jobs(without)).toEqual([]);
  });

  it('an unchanged re-login reads the user once and writes nothing', async () => {
    const s = await setup();
    await s.signIn.signIn(profile(), 'token');
    const from = s.log.statements.length;
    s.timeline.length = 0;
    const user = await s.signIn.signIn(profile(), 'token');
    expect(user.username).toBe('ava');
    const statements = s.log.statements.slice(from);
    expect(s.log.userReads(from)).toBe(1);
    expect(statements.filter((q) => !/^\s*SELECT\b/i.test(q))).toEqual([]);
    expect(await jobs(s)).toEqual([]);
    expect(events(s)).toEqual([`event ${DiscourseConnectEvents.SignedIn}`]);
  });

  it('a changed re-login reads the users table once and writes the change and its sync job together', async () => {
    const s = await setup();
    await s.signIn.signIn(profile(), 'token');
    const from = s.log.statements.length;
    s.timeline.length = 0;
    const user = await s.signIn.signIn(profile({ username: 'ava.renamed' }), 'token');
    expect(user.username).toBe('ava.renamed');
    expect(s.log.userReads(from)).toBe(1); // the read before; the update's answer is built from it
    const tail = s.timeline.filter((t) => !/^\s*SELECT\b/i.test(t));
    const begin = tail.findIndex((t) => /^BEGIN/i.test(t));
    const commit = tail.findIndex((t) => /^COMMIT/i.test(t));
    expect(begin).toBeGreaterThanOrEqual(0);
    const inTransaction = tail.slice(begin + 1, commit);
    expect(inTransaction.some((q) => /^UPDATE "discourse_connect_users"/i.test(q))).toBe(true);
    expect(inTransaction.some((q) => /INSERT.*"discourse_connect_sync_jobs"/i.test(q))).toBe(true);
    expect(tail.slice(commit + 1)).toEqual([
      `event ${DiscourseConnectEvents.ProfileChanged}`,
      `event ${DiscourseConnectEvents.SignedIn}`,
    ]);
    expect(await jobs(s)).toEqual([
      expect.objectContaining({ discordId: DISCORD_ID, kind: 'sync' }),
    ]);
  });

  it('gives the filter the stored user and writes nothing when it refuses', async () => {
    const s = await setup();
    await s.signIn.signIn(profile(), 'token');
    const seen: unknown[] = [];
    s.filters.add('user.canSignIn', (_value, context) => {
      seen.push(context.existing?.username);
      return 'Banned here.';
    });
    const from = s.log.statements.length;
    s.timeline.length = 0;
    const error = await s.signIn.signIn(profile({ username: 'ava.renamed' }), 'token').then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SignInRefusedError);
    expect(error).toMatchObject({ code: 'sign_in_refused_by_filter', message: 'Banned here.' });
    expect(seen).toEqual(['ava']);
    expect(s.log.userReads(from)).toBe(1);
    expect(s.log.statements.slice(from).filter((q) => !/^\s*SELECT\b/i.test(q))).toEqual([]);
    expect(events(s)).toEqual([]);
  });

  it('refuses a non-member when membership is required, before reading or writing the user', async () => {
    const s = await setup({
      groups: { guildId: GUILD, roleGroups: { '1': 'members' }, requireMembership: true },
    });
    s.roles.answer = null;
    await expect(s.signIn.signIn(profile(), 'token')).rejects.toMatchObject({
      name: 'SignInRefusedError',
      code: 'not_a_guild_member',
    });
    expect(s.log.statements).toEqual([]);
    expect(events(s)).toEqual([]);
  });

  it('lets a non-member in without roles when membership is not required, and keeps sorted roles of members', async () => {
    const s = await setup({ groups: { guildId: GUILD, roleGroups: { '1': 'members' } } });
    s.roles.answer = null;
    expect((await s.signIn.signIn(profile(), 'token')).metadata.roles).toBeNull();
    s.roles.answer = ['2', '1'];
    expect((await s.signIn.signIn(profile(), 'token')).metadata.roles).toEqual(['1', '2']);
  });

  it('fails without writing when Discord fails while the roles are read', async () => {
    const s = await setup({ groups: { guildId: GUILD, roleGroups: { '1': 'members' } } });
    s.roles.answer = new DiscordApiError(500, 'Discord is down');
    await expect(s.signIn.signIn(profile(), 'token')).rejects.toBeInstanceOf(DiscordApiError);
    expect(s.log.statements).toEqual([]);
  });

  it('refuses an unreadable Discord profile with its own error type', async () => {
    const s = await setup();
    await expect(
      s.signIn.signIn(profile({ id: 'not-a-snowflake' }), 'token'),
    ).rejects.toBeInstanceOf(InvalidDiscordProfileError);
    expect(s.log.statements).toEqual([]);
  });

  it('emits nothing and keeps nothing when the transaction fails', async () => {
    const s = await setup();
    await s.signIn.signIn(profile(), 'token');
    s.timeline.length = 0;
    // The sync job cannot be written: the transaction (user update + job) rolls back.
    await s.dataSource.query('DROP TABLE "discourse_connect_sync_jobs"');
    await expect(s.signIn.signIn(profile({ username: 'ava.renamed' }), 'token')).rejects.toThrow();
    expect(events(s)).toEqual([]);
    const stored = await s.dataSource
      .getRepository(DiscourseConnectUserEntity)
      .findOneByOrFail({ discordId: DISCORD_ID });
    expect(stored.username).toBe('ava');
  });
});
