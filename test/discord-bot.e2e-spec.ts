import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Injectable, type INestApplication, type LoggerService } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { Test } from '@nestjs/testing';
import {
  DiscordBotConnection,
  DiscourseConnectEvents,
  DiscourseConnectSyncQueue,
  type DiscordMemberEvent,
  type DiscordReconcileEvent,
  type DiscourseConnectModuleOptions,
  type StaffChangedEvent,
  UsersService,
} from 'nestjs-discourse-connect/internal';
import {
  DISCORD_FIXTURES,
  DiscordSimulator,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
} from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from './support/browser';
import { API_KEY, HTTP_ADAPTERS, startHarness, type Harness } from './support/harness';
import { waitFor } from './support/wait';

/** The simulated Discord's bot token (its default). */
const BOT_TOKEN = 'sandbox-bot-token';
const ROLE_MAP = {
  [SIM_GUILD_ROLES.member]: 'members',
  [SIM_GUILD_ROLES.moderator]: 'moderators',
};
const GROUP_MAP = Object.entries(ROLE_MAP)
  .map(([role, group]) => `${role}=${group}`)
  .join(',');
const { migrated, legacy } = DISCORD_FIXTURES;

jest.setTimeout(60_000);

/** Records the bot's events. */
@Injectable()
class BotEvents {
  members: { name: string; event: DiscordMemberEvent }[] = [];
  reconciles: DiscordReconcileEvent[] = [];
  staff: StaffChangedEvent[] = [];

  @OnEvent(DiscourseConnectEvents.DiscordMemberUpdated)
  updated(event: DiscordMemberEvent): void {
    this.members.push({ name: 'updated', event });
  }
  @OnEvent(DiscourseConnectEvents.DiscordMemberLeft)
  left(event: DiscordMemberEvent): void {
    this.members.push({ name: 'left', event });
  }
  @OnEvent(DiscourseConnectEvents.DiscordMemberBanned)
  banned(event: DiscordMemberEvent): void {
    this.members.push({ name: 'banned', event });
  }
  @OnEvent(DiscourseConnectEvents.DiscordMemberReturned)
  returned(event: DiscordMemberEvent): void {
    this.members.push({ name: 'returned', event });
  }
  @OnEvent(DiscourseConnectEvents.DiscordReconcileFinished)
  reconciled(event: DiscordReconcileEvent): void {
    this.reconciles.push(event);
  }
  @OnEvent(DiscourseConnectEvents.StaffChanged)
  staffChanged(event: StaffChangedEvent): void {
    this.staff.push(event);
  }
}

type LeaveAction = 'groups' | 'logout' | 'suspend';

/** The app's log lines (warnings and errors), to count them. */
class CapturingLogger implements LoggerService {
  lines: string[] = [];
  log(): void {}
  debug(): void {}
  verbose(): void {}
  warn(message: unknown): void {
    this.lines.push(String(message));
  }
  error(message: unknown): void {
    this.lines.push(String(message));
  }
}

/**
 * The app with the bot connection on the simulated Discord: env style (forRootAsync) or options
 * (forRoot), a reconcile every 5 s; `adminRoles` make their holders forum admins.
 */
function start(
  adapter: (typeof HTTP_ADAPTERS)[number],
  leaveAction: LeaveAction,
  style: 'forRoot' | 'forRootAsync',
  logger?: LoggerService,
  adminRoles: string[] = [],
): Promise<Harness> {
  return startHarness(style, {
    adapter,
    logger,
    providers: [BotEvents],
    forumOptions: { apiKey: API_KEY, apiRateLimitPerMinute: 0 },
    moduleOptions: (o: DiscourseConnectModuleOptions) => ({
      ...o,
      forums: o.forums.map((f) => ({ ...f, api: { key: API_KEY, timeoutMs: 2000 } })),
      sync: { ratePerMinute: 6000, pollIntervalMs: 50, backoffBaseMs: 50 },
      groups: { guildId: SIM_GUILD_ID, roleGroups: ROLE_MAP, adminRoles },
      bot: { token: BOT_TOKEN, reconcileSeconds: 5, leaveAction },
    }),
    env: {
      DISCOURSE_API_KEY: API_KEY,
      DISCOURSE_API_RATE_PER_MINUTE: '6000',
      DISCORD_GUILD_ID: SIM_GUILD_ID,
      DISCOURSE_GROUP_MAP: GROUP_MAP,
      DISCORD_BOT_TOKEN: BOT_TOKEN,
      DISCORD_RECONCILE_SECONDS: '5',
      DISCORD_GUILD_LEAVE_ACTION: leaveAction,
      ...(adminRoles.length > 0 ? { DISCOURSE_ADMIN_ROLES: adminRoles.join(',') } : {}),
    },
  });
}

/** Signs in on the forum through the app: the local member, the forum account and its link. */
async function signIn(h: Harness, id: string): Promise<void> {
  h.discord.knobs.autoApproveAs = id;
  const page = await new TestBrowser().visit(
    `${h.forum.baseUrl}/session/sso?return_path=%2Flatest`,
  );
  expect(page.url).toBe(`${h.forum.baseUrl}/latest`);
}

const forumUser = (h: Harness, id: string) => h.forum.users.find((u) => u.externalId === id)!;
const groupsOf = (h: Harness, id: string) => [...forumUser(h, id).groups].sort();

/** Waits until the queue has nothing pending or running. */
async function queueSettled(h: Harness): Promise<void> {
  const queue = h.app.get(DiscourseConnectSyncQueue);
  await waitFor(async () => {
    const c = await queue.counts();
    return c.pending + c.running === 0;
  }, 'the sync queue to settle');
}

async function gatewayOpen(h: Harness): Promise<void> {
  await waitFor(() => h.discord.gateway.openSessions === 1, 'the bot on the gateway');
}

/** The app with the bot on the gateway and one member signed in, their forum work done. */
async function startWithMember(
  adapter: (typeof HTTP_ADAPTERS)[number],
  leaveAction: LeaveAction,
  style: 'forRoot' | 'forRootAsync',
): Promise<Harness> {
  const h = await start(adapter, leaveAction, style);
  try {
    await gatewayOpen(h);
    await signIn(h, migrated.id);
    await queueSettled(h);
  } catch (error) {
    await h.close(); // the suite's afterAll has no harness to close
    throw error;
  }
  return h;
}

describe.each(HTTP_ADAPTERS)('Discord bot connection, leave action logout (%s)', (adapter) => {
  let h: Harness;
  let events: BotEvents;
  const logs = new CapturingLogger();
  beforeAll(async () => {
    h = await start(adapter, 'logout', 'forRootAsync', logs);
    events = h.app.get(BotEvents);
    await gatewayOpen(h);
    await signIn(h, migrated.id);
    await signIn(h, legacy.id);
    await queueSettled(h);
  });
  afterAll(async () => h.close());

  it('one gateway session, identified with the member and moderation intents; /health shows it', async () => {
    expect(h.discord.gateway.stats.identifies).toBe(1);
    expect(h.discord.gateway.openSessions).toBe(1);
    expect(groupsOf(h, migrated.id)).toEqual(['members', 'moderators']);
    await waitFor(() => events.reconciles.length > 0, 'the reconcile at boot');
    const health = (await (await fetch(`${h.appUrl}/health`)).json()) as { discord: unknown };
    expect(health.discord).toEqual({
      gateway: 'held',
      connected: true,
      lastReconcile: {
        finishedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        complete: true,
        updated: expect.any(Number),
        left: 0,
      },
    });
  });

  it('a role change in Discord reaches the forum through the gateway', async () => {
    h.discord.guild.setRoles(migrated.id, [SIM_GUILD_ROLES.member]);
    await waitFor(
      () => groupsOf(h, migrated.id).join() === 'members',
      'the moderators group removed',
    );
    expect(events.members.at(-1)).toMatchObject({
      name: 'updated',
      event: {
        discordId: migrated.id,
        roles: [SIM_GUILD_ROLES.member],
        previousRoles: [SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.moderator].sort(),
        source: 'gateway',
      },
    });
    h.discord.guild.setRoles(migrated.id, [SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.moderator]);
    await waitFor(
      () => groupsOf(h, migrated.id).join() === 'members,moderators',
      'the moderators group back',
    );
  });

  it('a reconcile that finds no change makes no forum call', async () => {
    await queueSettled(h);
    const before = h.forum.stats.apiRequests;
    const result = await h.app.get(DiscordBotConnection).reconcile();
    expect(result).toMatchObject({ updated: 0, left: 0, returned: 0, complete: true });
    await queueSettled(h);
    expect(h.forum.stats.apiRequests).toBe(before);
  });

  it('with the gateway down, the reconcile catches a role change; the failing gateway is logged once', async () => {
    const gatewayLines = () => logs.lines.filter((l) => l.includes('Discord gateway'));
    expect(gatewayLines()).toEqual([]);
    h.discord.gateway.down();
    const reconcilesBefore = events.reconciles.length;
    h.discord.guild.setRoles(legacy.id, [SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.moderator]);
    await waitFor(
      () => groupsOf(h, legacy.id).includes('moderators'),
      'the reconcile to give the moderators group',
      20_000,
    );
    // Caught while the gateway still refused every connection, by a reconcile.
    expect(h.discord.gateway.refusing).toBe(true);
    await waitFor(() => h.discord.gateway.stats.refused >= 2, 'a second connection attempt');
    // Every refused attempt failed the same way: one line (the next in 10 minutes at the earliest).
    expect(gatewayLines()).toHaveLength(1);
    expect(logs.lines.filter((l) => l.includes(BOT_TOKEN))).toEqual([]);
    expect(events.reconciles.length).toBeGreaterThan(reconcilesBefore);
    expect(events.members.at(-1)).toMatchObject({
      name: 'updated',
      event: { discordId: legacy.id, source: 'reconcile' },
    });
    h.discord.gateway.up();
    await gatewayOpen(h);
  });

  it("Discord's 429s during a reconcile are waited out", async () => {
    h.discord.resetBotCalls();
    h.discord.forceRateLimit(2, { route: 'GET /guilds/:guild/members', retryAfter: 0.2 });
    h.discord.guild.setRoles(legacy.id, [SIM_GUILD_ROLES.member]);
    const result = await h.app.get(DiscordBotConnection).reconcile();
    expect(result).toMatchObject({ complete: true });
    expect(h.discord.stats.botRateLimited).toBeGreaterThanOrEqual(2);
    await waitFor(
      () => !groupsOf(h, legacy.id).includes('moderators'),
      'the moderators group removed',
    );
  });

  it('a kick removes every managed group and logs the member out of the forum, and nothing else', async () => {
    await queueSettled(h);
    const user = forumUser(h, migrated.id);
    user.groups.push('veterans'); // not managed by the module
    const otherGroups = groupsOf(h, legacy.id);
    const logOuts = h.forum.stats.apiLogOuts;
    h.discord.guild.kick(migrated.id);
    await waitFor(() => h.forum.stats.apiLogOuts === logOuts + 1, 'the forum log-out');
    await waitFor(
      () => groupsOf(h, migrated.id).join() === 'veterans',
      'the managed groups removed',
    );
    await queueSettled(h);
    expect(groupsOf(h, legacy.id)).toEqual(otherGroups);
    expect(h.forum.isSuspended(forumUser(h, migrated.id))).toBe(false);
    expect(h.forum.stats.apiLifecycleCalls).toEqual([]);
    expect(events.members.at(-1)).toMatchObject({
      name: 'left',
      event: { discordId: migrated.id, roles: null, action: 'logout', source: 'gateway' },
    });
  });
});

describe.each(HTTP_ADAPTERS)('Discord bot connection, leave action suspend (%s)', (adapter) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startWithMember(adapter, 'suspend', 'forRoot');
  });
  afterAll(async () => h.close());

  it('a ban suspends the forum account; the unban lifts it; rejoining gives the groups back', async () => {
    h.discord.guild.ban(migrated.id, 'spam');
    await waitFor(() => h.forum.isSuspended(forumUser(h, migrated.id)), 'the suspension');
    await waitFor(() => groupsOf(h, migrated.id).length === 0, 'the managed groups removed');

    h.discord.guild.unban(migrated.id);
    await waitFor(() => !h.forum.isSuspended(forumUser(h, migrated.id)), 'the suspension lifted');
    // Unbanned is not back in the server: no group yet.
    expect(groupsOf(h, migrated.id)).toEqual([]);

    h.discord.guild.addMember(migrated.id, [SIM_GUILD_ROLES.member]);
    await waitFor(() => groupsOf(h, migrated.id).join() === 'members', 'the members group back');
    await queueSettled(h);
    // The leave and the ban each record a suspension (the second may find the first delivered).
    const actions = h.forum.stats.apiLifecycleCalls.map((c) => c.action);
    expect([...new Set(actions)]).toEqual(['suspend', 'unsuspend']);
    expect(actions.at(-1)).toBe('unsuspend');
    const seen = h.app.get(BotEvents).members.map((m) => [m.name, m.event.source, m.event.action]);
    // Discord removes a banned member first (a leave), then bans; the unban and the return follow.
    expect(seen).toEqual([
      ['left', 'gateway', 'suspend'],
      ['banned', 'gateway', 'suspend'],
      ['returned', 'gateway', undefined],
      ['returned', 'gateway', undefined],
    ]);
  });

  it('leaving suspends too; joining again lifts it and gives the groups back', async () => {
    const calls = h.forum.stats.apiLifecycleCalls.length;
    h.discord.guild.kick(migrated.id);
    await waitFor(() => h.forum.isSuspended(forumUser(h, migrated.id)), 'the suspension');
    await waitFor(() => groupsOf(h, migrated.id).length === 0, 'the managed groups removed');
    h.discord.guild.addMember(migrated.id, [SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.moderator]);
    await waitFor(() => !h.forum.isSuspended(forumUser(h, migrated.id)), 'the suspension lifted');
    await waitFor(
      () => groupsOf(h, migrated.id).join() === 'members,moderators',
      'the groups back',
    );
    expect(h.forum.stats.apiLifecycleCalls.slice(calls).map((c) => c.action)).toEqual([
      'suspend',
      'unsuspend',
    ]);
  });
});

describe.each(HTTP_ADAPTERS)('Discord bot connection, leave action groups (%s)', (adapter) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startWithMember(adapter, 'groups', 'forRootAsync');
  });
  afterAll(async () => h.close());

  it('leaving removes the managed groups only: no log-out, no suspension', async () => {
    const logOuts = h.forum.stats.apiLogOuts;
    h.discord.guild.kick(migrated.id);
    await waitFor(() => groupsOf(h, migrated.id).length === 0, 'the managed groups removed');
    await queueSettled(h);
    expect(h.forum.stats.apiLogOuts).toBe(logOuts);
    expect(h.forum.isSuspended(forumUser(h, migrated.id))).toBe(false);
  });
});

describe.each(HTTP_ADAPTERS)('Discord bot connection and staff flags (%s)', (adapter) => {
  /** The fixtures' "moderator" role makes its holders forum admins (with two-factor on). */
  const ADMIN_ROLE = SIM_GUILD_ROLES.moderator;
  let h: Harness;
  let events: BotEvents;
  beforeAll(async () => {
    h = await start(adapter, 'groups', 'forRootAsync', undefined, [ADMIN_ROLE]);
    events = h.app.get(BotEvents);
    await gatewayOpen(h);
    await signIn(h, migrated.id); // two-factor on, holds the admin role
    await queueSettled(h);
  });
  afterAll(async () => h.close());

  /** Waits for the forum sync a role change seen by the bot causes, and for the queue to settle. */
  async function roleChangeSynced(roles: string[], calls: number): Promise<void> {
    h.discord.guild.setRoles(migrated.id, roles);
    await waitFor(() => h.forum.stats.syncSsoCalls > calls, 'the sync of the role change');
    await queueSettled(h);
  }

  it('a role change seen by the bot keeps the stored two-factor flag and the admin flag the module granted', async () => {
    expect(forumUser(h, migrated.id).admin).toBe(true);
    expect(events.staff.map((e) => [e.flag, e.granted])).toEqual([['admin', true]]);
    const calls = h.forum.stats.syncSsoCalls;
    await roleChangeSynced(
      [SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.moderator, SIM_GUILD_ROLES.veteran],
      calls,
    );
    expect((await h.app.get(UsersService).findByDiscordId(migrated.id))!.mfaEnabled).toBe(true);
    expect(forumUser(h, migrated.id).admin).toBe(true);
    expect(events.staff.map((e) => [e.flag, e.granted])).toEqual([['admin', true]]);
  });

  it('the admin role taken away and given back through the bot takes the flag back and grants it again', async () => {
    await roleChangeSynced([SIM_GUILD_ROLES.member], h.forum.stats.syncSsoCalls);
    expect(forumUser(h, migrated.id).admin).toBe(false);
    await roleChangeSynced([SIM_GUILD_ROLES.member, ADMIN_ROLE], h.forum.stats.syncSsoCalls);
    expect((await h.app.get(UsersService).findByDiscordId(migrated.id))!.mfaEnabled).toBe(true);
    expect(forumUser(h, migrated.id).admin).toBe(true);
    expect(events.staff.map((e) => [e.flag, e.granted, e.via])).toEqual([
      ['admin', true, 'handshake'],
      ['admin', false, 'sync'],
      ['admin', true, 'sync'],
    ]);
  });
});

describe.each(HTTP_ADAPTERS)('a Discord that refuses the bot (%s)', (adapter) => {
  let h: Harness;
  const logs = new CapturingLogger();
  beforeAll(async () => {
    h = await start(adapter, 'logout', 'forRootAsync', logs);
    await gatewayOpen(h);
  });
  afterAll(async () => h.close());

  it('the Server Members intent turned off: retried with a growing delay, logged once, the app serves on', async () => {
    h.discord.knobs.serverMembersIntent = false;
    h.discord.gateway.invalidateSessions();
    const refusals = () => h.discord.gateway.stats.closeCodes.filter((c) => c === 4014).length;
    await waitFor(() => refusals() >= 2, 'two refused identifies', 20_000);
    const reconcile = await h.app.get(DiscordBotConnection).reconcile();
    expect(reconcile).toBeUndefined(); // Discord refuses the listing too
    expect(logs.lines.filter((l) => l.includes('refused the bot'))).toHaveLength(1);
    expect(logs.lines.filter((l) => l.includes('Discord reconcile failed'))).toHaveLength(1);
    expect(logs.lines.filter((l) => l.includes(BOT_TOKEN))).toEqual([]);
    const health = await fetch(`${h.appUrl}/health`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { discord: unknown }).discord).toMatchObject({
      gateway: 'held',
      connected: false,
    });

    h.discord.knobs.serverMembersIntent = true;
    await gatewayOpen(h);
    expect(await h.app.get(DiscordBotConnection).reconcile()).toMatchObject({ complete: true });
  });
});

describe('the command line and the Discord bot', () => {
  const discord = new DiscordSimulator();
  let app: INestApplication | undefined;
  let dir: string;
  const saved = { ...process.env };
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dc-cli-bot-'));
    const discordUrl = await discord.listen(0);
    Object.assign(process.env, {
      DATABASE_URL: `sqlite:${join(dir, 'cli.sqlite')}`,
      DISCOURSE_URL: 'http://127.0.0.1:9',
      DISCOURSE_CONNECT_SECRET: 'cli-connect-secret-0123',
      DISCORD_CLIENT_ID: 'sandbox-client-id',
      DISCORD_CLIENT_SECRET: 'sandbox-client-secret',
      DISCORD_BASE_URL: discordUrl,
      PUBLIC_URL: 'http://127.0.0.1:3999',
      SESSION_SECRET: 'cli-session-secret-0123456789abcdef0123',
      DISCORD_GUILD_ID: SIM_GUILD_ID,
      DISCOURSE_GROUP_MAP: GROUP_MAP,
      DISCORD_BOT_TOKEN: BOT_TOKEN,
    });
  });
  afterAll(async () => {
    await app?.close();
    await discord.close();
    process.env = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  it('never opens the gateway nor lists members', async () => {
    // Loaded once the environment is set: the command line's module reads it when loaded.
    type CliModuleFile = typeof import('../src/cli/cli.module');
    const { CliModule } =
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded after the environment is set
      require('../src/cli/cli.module') as CliModuleFile;
    const moduleRef = await Test.createTestingModule({ imports: [CliModule] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(app.get(DiscordBotConnection).isHolder).toBe(false);
    expect(discord.gateway.stats.connections).toBe(0);
    expect(discord.stats.botCalls).toEqual({});
  });
});
