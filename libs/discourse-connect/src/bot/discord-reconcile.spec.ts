import { Logger } from '@nestjs/common';
import type { DataSource, Logger as TypeOrmLogger, Repository } from 'typeorm';
import { memberFixture, migratedSqlite, settingsFixture } from '../../test-support/fixtures';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents } from '../hooks/discourse-connect.events';
import { DatabaseSyncQueue } from '../sync/database-sync-queue';
import { DiscourseConnectSyncJobEntity } from '../sync/sync-job.entity';
import { hashDiscordMetadata } from '../users/discord-profile';
import { DiscourseConnectUserEntity } from '../users/discourse-connect-user.entity';
import { TypeOrmUserStore } from '../users/typeorm-user.store';
import type { UserStore } from '../users/user-store.interface';
import { UsersService } from '../users/users.service';
import { DiscordMemberSync } from './discord-member-sync';
import { DiscordReconcile } from './discord-reconcile';
import { GUILD_MEMBERS_PAGE, type GuildMember, type GuildMemberSource } from './guild-members';
import { roleTransition, sameRoles } from './member-roles';

const GUILD = '223456789012345678';
const ROLE = { member: '300000000000000001', mod: '300000000000000002' };

/** The server's member list as Discord pages it: ascending ids (as numbers), `after` exclusive. */
class ListedServer implements GuildMemberSource {
  members = new Map<string, string[]>();
  calls = 0;
  /** Members to add to the server just after the page that ends before them was read. */
  lateJoiners: GuildMember[] = [];

  add(id: string, roles: string[]): void {
    this.members.set(id, roles);
  }

  async listMembers(after: string | null, limit: number): Promise<GuildMember[]> {
    this.calls++;
    return [...this.members]
      .filter(([id]) => after === null || BigInt(id) > BigInt(after))
      .sort(([a], [b]) => (BigInt(a) < BigInt(b) ? -1 : 1))
      .slice(0, limit)
      .map(([id, roles]) => ({ id, roles: [...roles].sort() }));
  }

  async getMember(userId: string): Promise<GuildMember | null> {
    this.calls++;
    const roles = this.members.get(userId);
    return roles ? { id: userId, roles } : null;
  }
}

/** Writes seen by the database (INSERT/UPDATE/DELETE), to prove a quiet reconcile writes nothing. */
class WriteCounter implements TypeOrmLogger {
  writes: string[] = [];
  logQuery(query: string): void {
    if (/^\s*(INSERT|UPDATE|DELETE)/i.test(query)) this.writes.push(query);
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

/** A snowflake for member n, of varying length (17 to 19 digits), so text order ≠ number order. */
const snowflake = (n: number): string => String(BigInt(10) ** BigInt(16 + (n % 3)) + BigInt(n));

describe('Discord reconcile and member changes (real SQLite)', () => {
  let dataSource: DataSource;
  let writes: WriteCounter;
  let users: UsersService;
  let jobs: Repository<DiscourseConnectSyncJobEntity>;
  let server: ListedServer;
  let sync: DiscordMemberSync;
  let events: { name: string; payload: any }[];
  let leaveAction: 'groups' | 'logout' | 'suspend';

  const settings = () =>
    settingsFixture({
      groups: { guildId: GUILD, roleGroups: { [ROLE.member]: 'members', [ROLE.mod]: 'mods' } },
      bot: { token: 'bot-token-0123456789abcdef', leaveAction },
    });
  const actions = (): DiscourseConnectActionsService => {
    const service = new DiscourseConnectActionsService();
    service.emit = (name: string, payload: object) => void events.push({ name, payload });
    return service;
  };
  const build = (store?: UserStore) => {
    const s = settings();
    const queue = new DatabaseSyncQueue(jobs, s);
    users = new UsersService(
      store ?? new TypeOrmUserStore(dataSource.getRepository(DiscourseConnectUserEntity)),
      s,
    );
    const act = actions();
    sync = new DiscordMemberSync(s, users, queue, act);
    return new DiscordReconcile(server, users, sync, act);
  };
  /** A local member with these stored roles (`undefined`: never read). */
  const local = async (id: string, roles: string[] | null | undefined) => {
    const m = memberFixture({ discordId: id }, roles).metadata;
    const metadata = { ...m, id };
    await dataSource.getRepository(DiscourseConnectUserEntity).insert({
      ...memberFixture({ discordId: id }),
      metadata,
      metadataHash: hashDiscordMetadata(metadata),
    });
  };
  const jobList = async () =>
    (await jobs.find({ order: { id: 'ASC' } })).map((j) => `${j.kind}:${j.discordId}`);
  const storedRoles = async (id: string) => (await users.findByDiscordId(id))!.metadata.roles;
  /** A host user store over the module's table, one member at a time; `canList` lets it list ids. */
  const hostStore = (canList: boolean): UserStore => {
    const store = new TypeOrmUserStore(dataSource.getRepository(DiscourseConnectUserEntity));
    return {
      findByDiscordId: (id) => store.findByDiscordId(id),
      create: (data) => store.create(data),
      update: (data, current) => store.update(data, current),
      ...(canList ? { listDiscordIds: (after, limit) => store.listDiscordIds(after, limit) } : {}),
    };
  };

  beforeEach(async () => {
    writes = new WriteCounter();
    dataSource = await migratedSqlite({ logging: ['query'], logger: writes });
    jobs = dataSource.getRepository(DiscourseConnectSyncJobEntity);
    server = new ListedServer();
    events = [];
    leaveAction = 'logout';
    jest.spyOn(Logger.prototype, 'debug').mockImplementation(() => undefined);
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await dataSource.destroy();
  });

  it('compares roles as sets, and tells a leave and a return from an update', () => {
    expect(sameRoles(['2', '1'], ['1', '2'])).toBe(true);
    expect(sameRoles(undefined, [])).toBe(false);
    expect(sameRoles(null, null)).toBe(true);
    expect(sameRoles([], null)).toBe(false);
    expect(roleTransition(['1'], null)).toBe('left');
    expect(roleTransition(null, [])).toBe('returned');
    expect(roleTransition(['1'], ['2'])).toBe('updated');
    // Never read before: stored at once, but neither a leave nor a return.
    expect(roleTransition(undefined, null)).toBe('updated');
    expect(roleTransition(undefined, ['1'])).toBe('updated');
  });

  it('pages 2500 members, updates the one whose roles changed, takes the absent one for gone', async () => {
    for (let n = 1; n <= 2500; n++) server.add(snowflake(n), [ROLE.member]);
    const same = snowflake(7);
    const changed = snowflake(1500);
    const gone = snowflake(9000);
    const neverMember = snowflake(9001);
    server.add(changed, [ROLE.member, ROLE.mod]);
    await local(same, [ROLE.member]);
    await local(changed, [ROLE.member]);
    await local(gone, [ROLE.member]);
    await local(neverMember, null);
    const reconcile = build();

    const result = await reconcile.run();

    expect(result).toMatchObject({
      listed: 2500,
      updated: 1,
      left: 1,
      returned: 0,
      complete: true,
    });
    // 1000 + 1000 + 500: the short page ends the listing.
    expect(result.discordCalls).toBe(3);
    expect(await storedRoles(changed)).toEqual([ROLE.member, ROLE.mod].sort());
    expect(await storedRoles(gone)).toBeNull();
    expect(await storedRoles(same)).toEqual([ROLE.member]);
    expect(await jobList()).toEqual([`sync:${changed}`, `sync:${gone}`, `logout:${gone}`]);
    expect(events.map((e) => e.name)).toEqual([
      DiscourseConnectEvents.DiscordMemberUpdated,
      DiscourseConnectEvents.DiscordMemberLeft,
      DiscourseConnectEvents.DiscordReconcileFinished,
    ]);
    expect(events[1].payload).toMatchObject({
      discordId: gone,
      roles: null,
      previousRoles: [ROLE.member],
      source: 'reconcile',
      action: 'logout',
    });
  });

  it('finds nothing to change: no database write, no job; with the member count, no empty last page', async () => {
    for (let n = 1; n <= 2000; n++) server.add(snowflake(n), [ROLE.member]);
    for (let n = 1; n <= 2000; n += 50) await local(snowflake(n), [ROLE.member]);
    await local(snowflake(5000), null);
    const reconcile = build();
    writes.writes = [];

    const withCount = await reconcile.run({ memberCount: 2000 });
    const withoutCount = await reconcile.run();

    expect(writes.writes).toEqual([]);
    expect(await jobList()).toEqual([]);
    expect(withCount).toMatchObject({ discordCalls: 2, updated: 0, left: 0, complete: true });
    expect(withoutCount).toMatchObject({ discordCalls: 3, updated: 0, left: 0, complete: true });
  });

  it('an out-of-date member count never makes a listed member look gone', async () => {
    for (let n = 1; n <= 1500; n++) server.add(snowflake(n), []);
    const late = snowflake(1400);
    await local(late, []);
    const reconcile = build();

    // The count says 1000: the listing stops after one page, but someone is missing, so it goes on.
    const result = await reconcile.run({ memberCount: 1000 });

    expect(result).toMatchObject({ discordCalls: 2, left: 0, complete: true });
    expect(await storedRoles(late)).toEqual([]);
    expect(await jobList()).toEqual([]);
  });

  it('a member who comes back is updated as returned; one who was never read is stored without a leave', async () => {
    const back = snowflake(3);
    const unread = snowflake(4);
    server.add(back, [ROLE.member]);
    await local(back, null);
    await local(unread, undefined);
    const result = await build().run();

    expect(result).toMatchObject({ returned: 1, left: 0, updated: 1 });
    expect(await storedRoles(unread)).toBeNull();
    // The unsuspend job lifts only a suspension the module set.
    expect(await jobList()).toEqual([`sync:${back}`, `unsuspend:${back}`, `sync:${unread}`]);
  });

  it('a gateway event newer than the listing wins over it', async () => {
    const id = snowflake(11);
    server.add(id, [ROLE.member]);
    await local(id, [ROLE.member]);
    const reconcile = build();
    const listMembers = server.listMembers.bind(server);
    // While the page is on its way, the member gets the mod role (the event comes in and is applied).
    server.listMembers = async (after, limit) => {
      const page = await listMembers(after, limit);
      sync.noteEvent(id);
      await sync.applyRoles(id, [ROLE.member, ROLE.mod].sort(), 'gateway');
      return page;
    };

    const result = await reconcile.run();

    expect(result.updated).toBe(0);
    expect(await storedRoles(id)).toEqual([ROLE.member, ROLE.mod].sort());
  });

  it('a member who signs in for the first time while the listing goes on is not taken for gone', async () => {
    for (let n = 1; n <= 1500; n++) server.add(snowflake(n), [ROLE.member]);
    // Listed in the first page before they had a local record; signs in before the second page.
    const firstTimer = snowflake(10);
    // Joins the server (an id below the first page's last one, so never listed) and signs in meanwhile.
    const joinedLate = String(BigInt(10) ** BigInt(16) + BigInt(1));
    const gone = snowflake(9000);
    await local(gone, [ROLE.member]);
    const reconcile = build();
    const listMembers = server.listMembers.bind(server);
    server.listMembers = async (after, limit) => {
      const page = await listMembers(after, limit);
      if (after === null) {
        server.add(joinedLate, [ROLE.member]);
        for (const id of [firstTimer, joinedLate]) {
          const metadata = { ...memberFixture({ discordId: id }, [ROLE.member]).metadata, id };
          await users.signInFromDiscord(metadata, undefined, undefined, false);
        }
      }
      return page;
    };

    const result = await reconcile.run();

    expect(result).toMatchObject({ listed: 1500, left: 1, complete: true });
    expect(await storedRoles(firstTimer)).toEqual([ROLE.member]);
    expect(await storedRoles(joinedLate)).toEqual([ROLE.member]);
    expect(await storedRoles(gone)).toBeNull();
    expect(await jobList()).toEqual([`sync:${gone}`, `logout:${gone}`]);
    expect(events.filter((e) => e.name === DiscourseConnectEvents.DiscordMemberLeft)).toEqual([
      expect.objectContaining({ payload: expect.objectContaining({ discordId: gone }) }),
    ]);
  });

  it('events: unknown members are ignored, an unchanged role set writes nothing, the groups action adds no job', async () => {
    leaveAction = 'groups';
    const id = snowflake(21);
    await local(id, [ROLE.member]);
    build();
    writes.writes = [];

    expect(await sync.applyRoles(snowflake(22), [ROLE.mod], 'gateway')).toBe('unknown');
    expect(await sync.applyRoles(id, [ROLE.member], 'gateway')).toBe('unchanged');
    expect(writes.writes).toEqual([]);
    expect(await sync.applyRoles(id, null, 'gateway')).toBe('left');
    expect(await jobList()).toEqual([`sync:${id}`]);
    expect(events.at(-1)).toMatchObject({
      name: DiscourseConnectEvents.DiscordMemberLeft,
      payload: { action: 'groups', source: 'gateway' },
    });
  });

  it('a ban is at least the leave action, even for a member who had already left', async () => {
    const id = snowflake(31);
    await local(id, null);
    build();

    expect(await sync.banned(id)).toBe('unchanged');
    expect(await jobList()).toEqual([`logout:${id}`]);
    expect(events.at(-1)).toMatchObject({
      name: DiscourseConnectEvents.DiscordMemberBanned,
      payload: { discordId: id, action: 'logout' },
    });
  });

  it('with the suspend action, leaving suspends and coming back (or an unban) lifts it', async () => {
    leaveAction = 'suspend';
    const id = snowflake(35);
    await local(id, [ROLE.member]);
    build();

    expect(await sync.applyRoles(id, null, 'gateway')).toBe('left');
    expect(await jobList()).toEqual([`sync:${id}`, `suspend:${id}`]);
    await jobs.clear();
    expect(await sync.banned(id)).toBe('unchanged');
    expect(await jobList()).toEqual([`suspend:${id}`]);
    await jobs.clear();
    // Unbanned but not back in the server: only the suspension is lifted.
    expect(await sync.unbanned(id, null)).toBe('unchanged');
    expect(await jobList()).toEqual([`unsuspend:${id}`]);
    await jobs.clear();
    expect(await sync.applyRoles(id, [ROLE.member], 'gateway')).toBe('returned');
    expect(await jobList()).toEqual([`sync:${id}`, `unsuspend:${id}`]);
    expect(events.map((e) => e.name)).toEqual([
      DiscourseConnectEvents.DiscordMemberLeft,
      DiscourseConnectEvents.DiscordMemberBanned,
      DiscourseConnectEvents.DiscordMemberReturned,
      DiscourseConnectEvents.DiscordMemberReturned,
    ]);
  });

  it('one member’s changes apply one at a time, in order', async () => {
    const id = snowflake(41);
    await local(id, []);
    build();
    const sets = [[ROLE.member], [ROLE.member, ROLE.mod].sort(), [ROLE.mod], []];
    await Promise.all(sets.map((roles) => sync.applyRoles(id, roles, 'gateway')));
    expect(await storedRoles(id)).toEqual([]);
    expect(
      events.filter((e) => e.name === DiscourseConnectEvents.DiscordMemberUpdated).length,
    ).toBe(4);
  });

  it('works with a host user store that reads one member at a time', async () => {
    const id = snowflake(51);
    server.add(id, [ROLE.mod]);
    await local(id, [ROLE.member]);
    await local(snowflake(52), [ROLE.member]);

    const result = await build(hostStore(true)).run();

    expect(result).toMatchObject({ updated: 1, left: 1 });
    expect(await storedRoles(id)).toEqual([ROLE.mod]);
  });

  it('with a host user store that cannot list its users, listed members are still compared', async () => {
    const id = snowflake(61);
    server.add(id, [ROLE.mod]);
    await local(id, [ROLE.member]);
    await local(snowflake(62), [ROLE.member]);

    const result = await build(hostStore(false)).run();

    expect(result).toMatchObject({ updated: 1, left: 0 });
    expect(await storedRoles(snowflake(62))).toEqual([ROLE.member]);
  });

  it('pages of exactly 1000 members need the empty page after them (or the count)', async () => {
    for (let n = 1; n <= GUILD_MEMBERS_PAGE; n++) server.add(snowflake(n), []);
    const result = await build().run();
    expect(result).toMatchObject({ listed: 1000, discordCalls: 2, complete: true });
  });
});
