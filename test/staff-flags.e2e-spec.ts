import { Injectable } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { DataSource } from 'typeorm';
import {
  DiscourseConnectEvents,
  DiscourseConnectUserEntity,
  SyncQueue,
  UsersService,
  hashDiscordMetadata,
  type DiscourseConnectModuleOptions,
  type StaffChangedEvent,
} from 'nestjs-discourse-connect/internal';
import {
  DISCORD_FIXTURES,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
} from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from './support/browser';
import {
  API_KEY,
  HTTP_ADAPTERS,
  startHarness,
  type Harness,
  type HttpAdapterName,
  type ModuleStyle,
} from './support/harness';
import { waitFor } from './support/wait';

/** Holders of the fixtures' "moderator" role get admin, holders of "veteran" get moderator. */
const ADMIN_ROLE = SIM_GUILD_ROLES.moderator;
const MODERATOR_ROLE = SIM_GUILD_ROLES.veteran;

/** Listens to the staff-flag event. */
@Injectable()
class StaffListener {
  events: StaffChangedEvent[] = [];

  @OnEvent(DiscourseConnectEvents.StaffChanged)
  changed(event: StaffChangedEvent): void {
    this.events.push(event);
  }
}

function start(adapter: HttpAdapterName, style: ModuleStyle): Promise<Harness> {
  return startHarness(style, {
    adapter,
    providers: [StaffListener],
    forumOptions: { apiKey: API_KEY, apiRateLimitPerMinute: 0 },
    moduleOptions: (o: DiscourseConnectModuleOptions) => ({
      ...o,
      forums: o.forums.map((f) => ({ ...f, api: { key: API_KEY, timeoutMs: 2000 } })),
      sync: { ratePerMinute: 6000, pollIntervalMs: 50, backoffBaseMs: 50, maxAttempts: 2 },
      groups: { guildId: SIM_GUILD_ID, adminRoles: [ADMIN_ROLE], moderatorRoles: [MODERATOR_ROLE] },
    }),
    env: {
      DISCOURSE_API_KEY: API_KEY,
      DISCOURSE_API_RATE_PER_MINUTE: '6000',
      DISCORD_GUILD_ID: SIM_GUILD_ID,
      DISCOURSE_ADMIN_ROLES: ADMIN_ROLE,
      DISCOURSE_MODERATOR_ROLES: MODERATOR_ROLE,
    },
  });
}

const { migrated, legacy } = DISCORD_FIXTURES;
/** Both adapters, and both ways of configuring (options and environment variables). */
const COMBOS: [HttpAdapterName, ModuleStyle][] = [
  [HTTP_ADAPTERS[0], 'forRoot'],
  [HTTP_ADAPTERS[1], 'forRootAsync'],
];

describe.each(COMBOS)('staff flags from Discord roles (%s, %s)', (adapter, style) => {
  let h: Harness;
  let listener: StaffListener;

  /** Signs in through the forum in a new browser (so Discord is asked again). */
  async function signInOnForum(as: string): Promise<void> {
    h.discord.knobs.autoApproveAs = as;
    const page = await new TestBrowser().visit(
      `${h.forum.baseUrl}/session/sso?return_path=%2Flatest`,
    );
    expect(page.url).toBe(`${h.forum.baseUrl}/latest`);
  }

  /** Signs in on the site only, in a new browser: the forum hears of it through `sync_sso`. */
  async function signInOnSite(as: string): Promise<void> {
    h.discord.knobs.autoApproveAs = as;
    await new TestBrowser().visit(`${h.mountUrl}/auth/discord`);
  }

  const forumUser = (discordId: string) => h.forum.users.find((u) => u.externalId === discordId)!;
  const discordUser = (discordId: string) => h.discord.users.get(discordId)!;

  beforeAll(async () => {
    h = await start(adapter, style);
    listener = h.app.get(StaffListener);
  });
  afterAll(async () => h.close());
  beforeEach(async () => {
    h.discord.reset();
    h.forum.reset();
    listener.events = [];
    // Each test starts with members the site and the forum have never seen.
    const db = h.app.get(DataSource);
    await db.query('DELETE FROM discourse_connect_forum_links');
    await db.query('DELETE FROM discourse_connect_sync_jobs');
    await db.query('DELETE FROM discourse_connect_users');
    for (const id of [migrated.id, legacy.id]) h.app.get(UsersService).forget(id);
  });

  it('a member with the role and two-factor authentication on becomes admin on the forum, and the event fires', async () => {
    await signInOnForum(migrated.id);
    expect(h.forum.stats.lastPayload).toMatchObject({ admin: 'true' });
    expect(h.forum.stats.lastPayload).not.toHaveProperty('moderator');
    expect(forumUser(migrated.id)).toMatchObject({ admin: true, moderator: false });
    expect(listener.events).toEqual([
      {
        forum: expect.any(String),
        discordId: migrated.id,
        flag: 'admin',
        granted: true,
        via: 'handshake',
      },
    ]);
    // Signing in again grants nothing new: no second event.
    await signInOnForum(migrated.id);
    expect(forumUser(migrated.id).admin).toBe(true);
    expect(listener.events).toHaveLength(1);
  });

  it('a role removed on Discord is taken back by the sync job of the next site sign-in, without a forum visit', async () => {
    await signInOnForum(migrated.id);
    expect(forumUser(migrated.id).admin).toBe(true);
    discordUser(migrated.id).guildRoles![SIM_GUILD_ID] = [SIM_GUILD_ROLES.member];
    const logins = h.forum.stats.ssoLogins;
    await signInOnSite(migrated.id);
    await waitFor(() => !forumUser(migrated.id).admin, 'admin taken back by sync_sso');
    expect(h.forum.stats.ssoLogins).toBe(logins);
    await waitFor(() => listener.events.length === 2, 'the take-back event');
    expect(listener.events[1]).toEqual({
      forum: expect.any(String),
      discordId: migrated.id,
      flag: 'admin',
      granted: false,
      via: 'sync',
    });
  });

  it('a role removed while the member is away (stored roles changed in the background) is taken back by a sync job', async () => {
    await signInOnForum(migrated.id);
    expect(forumUser(migrated.id).admin).toBe(true);
    // What a background role update does: the stored roles change, and a `sync` job is queued.
    const repo = h.app.get(DataSource).getRepository(DiscourseConnectUserEntity);
    const row = (await repo.findOneBy({ discordId: migrated.id }))!;
    const metadata = { ...row.metadata, roles: [SIM_GUILD_ROLES.member] };
    await repo.update(
      { discordId: migrated.id },
      { metadata, metadataHash: hashDiscordMetadata(metadata) },
    );
    h.app.get(UsersService).forget(migrated.id);
    await h.app.get(SyncQueue).enqueue('sync', migrated.id);
    await waitFor(() => !forumUser(migrated.id).admin, 'admin taken back by the sync job');
    await waitFor(() => listener.events.some((e) => !e.granted), 'the take-back event');
    // Nothing is left to take back: a second sync sends no staff flag at all.
    const calls = h.forum.stats.syncSsoCalls;
    forumUser(migrated.id).admin = true; // the forum's own admins make them admin again
    await h.app.get(SyncQueue).enqueue('sync', migrated.id);
    await waitFor(() => h.forum.stats.syncSsoCalls > calls, 'the second sync');
    expect(forumUser(migrated.id).admin).toBe(true);
  });

  it('an admin the forum made is never demoted, at sign-in or by a sync', async () => {
    h.forum.addUser({
      username: 'oldtimer',
      email: legacy.email!,
      externalId: legacy.id,
      admin: true,
      moderator: true,
    });
    // legacy holds no admin role, and its moderator role does not count without two-factor.
    await signInOnForum(legacy.id);
    expect(h.forum.stats.lastPayload).not.toHaveProperty('admin');
    expect(h.forum.stats.lastPayload).not.toHaveProperty('moderator');
    const calls = h.forum.stats.syncSsoCalls;
    await h.app.get(SyncQueue).enqueue('sync', legacy.id);
    await waitFor(() => h.forum.stats.syncSsoCalls > calls, 'the sync');
    expect(forumUser(legacy.id)).toMatchObject({ admin: true, moderator: true });
    expect(listener.events).toEqual([]);
  });

  it('no two-factor authentication, no flag; turned on it grants, turned off again it takes back at the next sign-in', async () => {
    await signInOnForum(legacy.id);
    expect(forumUser(legacy.id).moderator).toBe(false);
    expect(h.forum.stats.lastPayload).not.toHaveProperty('moderator');

    discordUser(legacy.id).mfa_enabled = true;
    await signInOnForum(legacy.id);
    expect(forumUser(legacy.id).moderator).toBe(true);

    // Turned off: the sign-in takes it back (in the handshake's payload, or the sync job the
    // change queued, whichever comes first; one of them reports it).
    discordUser(legacy.id).mfa_enabled = false;
    await signInOnForum(legacy.id);
    await waitFor(() => !forumUser(legacy.id).moderator, 'moderator taken back');
    await waitFor(() => listener.events.length === 2, 'the take-back event');
    expect(forumUser(legacy.id).admin).toBe(false);
    expect(listener.events.map((e) => [e.flag, e.granted])).toEqual([
      ['moderator', true],
      ['moderator', false],
    ]);
  });
});
