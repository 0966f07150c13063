import { Injectable } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import {
  DiscourseConnectEvents,
  DiscourseConnectFilter,
  type DiscourseConnectModuleOptions,
  type GroupsContext,
} from 'nestjs-discourse-connect/internal';
import {
  DISCORD_FIXTURES,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
} from 'nestjs-discourse-connect-simulators';
import { TestBrowser, logOutOnForum } from './support/browser';
import {
  API_KEY,
  HTTP_ADAPTERS,
  startHarness,
  type Harness,
  type ModuleStyle,
} from './support/harness';
import { waitFor } from './support/wait';

/** Role map of these tests: member → members, moderator → moderators, veteran → veterans. */
const ROLE_MAP = {
  [SIM_GUILD_ROLES.member]: 'members',
  [SIM_GUILD_ROLES.moderator]: 'moderators',
  [SIM_GUILD_ROLES.veteran]: 'veterans',
};

/** A host plugin: a `discourse.groups` filter and listeners of the events no other test listens to. */
@Injectable()
class GroupsPlugin {
  extraGroup: string | null = null;
  contexts: GroupsContext[] = [];
  events: { name: string; payload: any }[] = [];

  @DiscourseConnectFilter('discourse.groups')
  groups(groups: string[], context: GroupsContext): string[] {
    this.contexts.push(context);
    return this.extraGroup ? [...groups, this.extraGroup] : groups;
  }

  @OnEvent(DiscourseConnectEvents.SignedOut)
  signedOut(payload: unknown): void {
    this.events.push({ name: 'signed-out', payload });
  }

  @OnEvent(DiscourseConnectEvents.SyncSucceeded)
  synced(payload: unknown): void {
    this.events.push({ name: 'sync-succeeded', payload });
  }

  @OnEvent(DiscourseConnectEvents.SyncFailed)
  failed(payload: unknown): void {
    this.events.push({ name: 'sync-failed', payload });
  }
}

const groupMap = Object.entries(ROLE_MAP)
  .map(([role, group]) => `${role}=${group}`)
  .join(',');

async function start(
  adapter: (typeof HTTP_ADAPTERS)[number],
  style: ModuleStyle,
  groups: { fullGroupList?: boolean; requireMembership?: boolean } = {},
): Promise<Harness> {
  return startHarness(style, {
    adapter,
    providers: [GroupsPlugin],
    // Full-group-list mode is for a forum with discourse_connect_overrides_groups on.
    forumOptions: {
      apiKey: API_KEY,
      apiRateLimitPerMinute: 0,
      overridesGroups: groups.fullGroupList ?? false,
    },
    moduleOptions: (o: DiscourseConnectModuleOptions) => ({
      ...o,
      forums: o.forums.map((f) => ({ ...f, api: { key: API_KEY, timeoutMs: 2000 } })),
      sync: { ratePerMinute: 6000, pollIntervalMs: 50, backoffBaseMs: 50, maxAttempts: 1 },
      groups: { guildId: SIM_GUILD_ID, roleGroups: ROLE_MAP, ...groups },
    }),
    env: {
      DISCOURSE_API_KEY: API_KEY,
      DISCOURSE_API_RATE_PER_MINUTE: '6000',
      DISCORD_GUILD_ID: SIM_GUILD_ID,
      DISCOURSE_GROUP_MAP: groupMap,
      ...(groups.fullGroupList ? { DISCOURSE_GROUPS_FULL_LIST: 'true' } : {}),
      ...(groups.requireMembership ? { DISCORD_REQUIRE_GUILD_MEMBERSHIP: 'true' } : {}),
    },
  });
}

const { migrated, legacy } = DISCORD_FIXTURES;
const STYLES: ModuleStyle[] = ['forRoot', 'forRootAsync'];
const COMBOS = HTTP_ADAPTERS.flatMap((a) => STYLES.map((s) => [a, s] as const));

async function signInOnForum(h: Harness, as: string) {
  h.discord.knobs.autoApproveAs = as;
  const browser = new TestBrowser();
  const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2Flatest`);
  return { browser, page };
}

describe.each(COMBOS)('groups from Discord roles (%s, %s)', (adapter, style) => {
  let h: Harness;
  let plugin: GroupsPlugin;
  beforeAll(async () => {
    h = await start(adapter, style);
    plugin = h.app.get(GroupsPlugin);
  });
  afterAll(async () => h.close());
  beforeEach(() => {
    h.discord.reset();
    h.forum.reset();
    plugin.extraGroup = null;
    plugin.contexts = [];
  });

  it('the discourse.groups filter sees the roles and managed groups, and its answer is what the forum gets', async () => {
    plugin.extraGroup = 'veterans';
    const { page } = await signInOnForum(h, migrated.id);
    expect(page.url).toBe(`${h.forum.baseUrl}/latest`);
    const context = plugin.contexts.at(-1)!;
    expect(context.roles).toEqual(
      expect.arrayContaining([SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.moderator]),
    );
    expect(context.managed).toEqual(['members', 'moderators', 'veterans']);
    expect(context.user.discordId).toBe(migrated.id);
    expect(context.forum.url).toBe(h.forumUrl);
    const user = h.forum.users.find((u) => u.externalId === migrated.id)!;
    expect([...user.groups].sort()).toEqual(['members', 'moderators', 'veterans']);
  });

  it('without the filter adding anything, managed groups the roles do not give are removed', async () => {
    const forumUser = h.forum.addUser({ username: 'legacy_user', email: legacy.email! });
    forumUser.groups.push('moderators', 'unmanaged-club');
    await signInOnForum(h, legacy.id);
    const user = h.forum.users.find((u) => u.externalId === legacy.id)!;
    expect(user.groups).toContain('members');
    expect(user.groups).toContain('veterans');
    expect(user.groups).not.toContain('moderators');
  });

  it('SignedOut fires on a local sign-out and on the forum logout redirect', async () => {
    plugin.events = [];
    const { browser } = await signInOnForum(h, migrated.id);
    const out = await browser.request(`${h.appUrl}/auth/logout`, {
      method: 'POST',
      headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
    });
    expect(out.status).toBe(303);
    await waitFor(() => plugin.events.some((e) => e.name === 'signed-out'), 'SignedOut');
    expect(plugin.events.find((e) => e.name === 'signed-out')!.payload).toEqual({
      discordId: migrated.id,
      via: 'local',
    });

    plugin.events = [];
    const again = await signInOnForum(h, migrated.id);
    // Signing out on the forum sends the browser to logout_redirect, coming from the forum.
    await logOutOnForum(again.browser, h.forum.baseUrl);
    await waitFor(() => plugin.events.some((e) => e.name === 'signed-out'), 'SignedOut (forum)');
    expect(plugin.events.find((e) => e.name === 'signed-out')!.payload).toEqual({
      discordId: migrated.id,
      via: 'forum',
    });
  });

  it('SyncSucceeded and SyncFailed fire for the delivery of a sign-out to the forum', async () => {
    plugin.events = [];
    const { browser } = await signInOnForum(h, migrated.id);
    await browser.request(`${h.appUrl}/auth/logout`, {
      method: 'POST',
      headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
    });
    await waitFor(() => plugin.events.some((e) => e.name === 'sync-succeeded'), 'SyncSucceeded');
    expect(plugin.events.find((e) => e.name === 'sync-succeeded')!.payload).toMatchObject({
      kind: 'logout',
      discordId: migrated.id,
    });

    // SyncFailed: a job kept as failed after its last attempt (maxAttempts 1 in the options; the
    // environment has no variable for it).
    if (style !== 'forRoot') return;
    plugin.events = [];
    const second = await signInOnForum(h, migrated.id);
    h.forum.knobs.apiFailure = { status: 500 };
    await second.browser.request(`${h.appUrl}/auth/logout`, {
      method: 'POST',
      headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
    });
    await waitFor(() => plugin.events.some((e) => e.name === 'sync-failed'), 'SyncFailed');
    expect(plugin.events.find((e) => e.name === 'sync-failed')!.payload).toMatchObject({
      kind: 'logout',
      discordId: migrated.id,
    });
    h.forum.knobs.apiFailure = null;
  }, 30_000);
});

describe.each(COMBOS)('full-group-list mode (%s, %s)', (adapter, style) => {
  let h: Harness;
  beforeAll(async () => {
    h = await start(adapter, style, { fullGroupList: true });
  });
  afterAll(async () => h.close());

  it('sends the whole list in groups (overrides_groups on the forum): the forum user ends with exactly the mapped groups', async () => {
    const forumUser = h.forum.addUser({ username: 'legacy_user', email: legacy.email! });
    forumUser.groups.push('moderators');
    const { page } = await signInOnForum(h, legacy.id);
    expect(page.url).toBe(`${h.forum.baseUrl}/latest`);
    const user = h.forum.users.find((u) => u.externalId === legacy.id)!;
    expect([...user.groups].sort()).toEqual(['members', 'veterans']);
    expect(h.forum.stats.lastPayload?.groups).toBe('members,veterans');
    expect(h.forum.stats.lastPayload?.add_groups).toBeUndefined();
    expect(h.forum.stats.lastPayload?.remove_groups).toBeUndefined();
  });
});

describe.each(COMBOS)('DISCORD_REQUIRE_GUILD_MEMBERSHIP (%s, %s)', (adapter, style) => {
  let h: Harness;
  beforeAll(async () => {
    h = await start(adapter, style, { requireMembership: true });
  });
  afterAll(async () => h.close());

  it('refuses a Discord user who is not a member of the server, with a readable page', async () => {
    const outsider = {
      ...migrated,
      id: '555000000000000001',
      username: 'outsider',
      email: 'outsider@example.com',
    };
    delete (outsider as { guildRoles?: unknown }).guildRoles;
    h.discord.users.set(outsider.id, outsider);
    const { page } = await signInOnForum(h, outsider.id);
    expect(page.status).toBe(403);
    expect(page.body).toContain('Only members of our Discord server can sign in');
    expect(h.forum.users.find((u) => u.externalId === outsider.id)).toBeUndefined();
  });

  it('lets a member in', async () => {
    const { page } = await signInOnForum(h, migrated.id);
    expect(page.url).toBe(`${h.forum.baseUrl}/latest`);
  });
});

describe.each(HTTP_ADAPTERS)('the ?forum= selector of /discourse/forum (%s)', (adapter) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('forRoot', {
      adapter,
      moduleOptions: (o) => ({
        ...o,
        forums: [
          { ...o.forums[0], name: 'main' },
          {
            url: 'https://second.forum.example',
            secret: 'second-forum-secret-0123',
            name: 'second',
          },
        ],
      }),
    });
  });
  afterAll(async () => h.close());

  const location = async (query: string, browser = new TestBrowser()) => {
    const res = await browser.request(`${h.appUrl}/discourse/forum${query}`);
    return { status: res.status, location: res.headers.get('location') };
  };

  it('goes to the first forum without ?forum=, to the named one with it', async () => {
    expect(await location('?return_path=%2Ft%2F1')).toEqual({
      status: 302,
      location: `${h.forum.baseUrl}/t/1`,
    });
    expect(await location('?forum=second&return_path=%2Ft%2F2')).toEqual({
      status: 302,
      location: 'https://second.forum.example/t/2',
    });
    expect(await location('?forum=main')).toEqual({ status: 302, location: `${h.forum.baseUrl}/` });
  });

  it("signed in, goes through the named forum's /session/sso", async () => {
    h.discord.knobs.autoApproveAs = migrated.id;
    const browser = new TestBrowser();
    await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(await location('?forum=second&return_path=%2Ft%2F2', browser)).toEqual({
      status: 302,
      location: 'https://second.forum.example/session/sso?return_path=%2Ft%2F2',
    });
  });

  it('answers 400 for an unknown forum or a repeated parameter', async () => {
    expect((await location('?forum=nope')).status).toBe(400);
    expect((await location('?forum=main&forum=second')).status).toBe(400);
  });
});
