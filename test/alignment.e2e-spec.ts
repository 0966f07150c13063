import { Controller, Post, Req } from '@nestjs/common';
import { DataSource } from 'typeorm';
import {
  SyncQueue,
  SyncToDiscourse,
  DatabaseSyncWorker,
  type DiscourseConnectModuleOptions,
  type LocalUser,
} from 'nestjs-discourse-connect/internal';
import {
  DISCORD_FIXTURES,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
} from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from './support/browser';
import {
  HTTP_ADAPTERS,
  startHarness,
  type Harness,
  type HttpAdapterName,
  type ModuleStyle,
  API_KEY,
  WEBHOOK_SECRET,
} from './support/harness';
import { waitFor } from './support/wait';
const ROLE_MAP = { [SIM_GUILD_ROLES.member]: 'members', [SIM_GUILD_ROLES.moderator]: 'moderators' };

/** A host route that opts in to "after this succeeds, sync this user". */
@Controller('account')
class AccountController {
  @Post('profile')
  @SyncToDiscourse()
  update(@Req() req: { user?: LocalUser }) {
    return { ok: Boolean(req.user) };
  }
}

const withApi =
  (sync: DiscourseConnectModuleOptions['sync'] = {}) =>
  (o: DiscourseConnectModuleOptions): DiscourseConnectModuleOptions => ({
    ...o,
    forums: o.forums.map((f) => ({
      ...f,
      api: { key: API_KEY, timeoutMs: 2000 },
      webhookSecret: WEBHOOK_SECRET,
    })),
    sync: {
      ratePerMinute: 6000,
      pollIntervalMs: 50,
      backoffBaseMs: 100,
      backoffMaxMs: 400,
      ...sync,
    },
    groups: { guildId: SIM_GUILD_ID, roleGroups: ROLE_MAP },
  });

const apiEnv = {
  DISCOURSE_API_KEY: API_KEY,
  DISCOURSE_API_RATE_PER_MINUTE: '6000',
  DISCOURSE_WEBHOOK_SECRET: WEBHOOK_SECRET,
  DISCORD_GUILD_ID: SIM_GUILD_ID,
  DISCOURSE_GROUP_MAP: Object.entries(ROLE_MAP)
    .map(([role, group]) => `${role}=${group}`)
    .join(','),
};

async function startAligned(
  adapter: HttpAdapterName,
  style: ModuleStyle,
  sync?: DiscourseConnectModuleOptions['sync'],
): Promise<Harness> {
  return startHarness(style, {
    adapter,
    forumOptions: {
      apiKey: API_KEY,
      apiRateLimitPerMinute: 0,
      authOverridesName: true,
      overridesAvatar: true,
    },
    moduleOptions: withApi(sync),
    env: apiEnv,
    imports: [],
    providers: [],
    controllers: [AccountController],
  } as Parameters<typeof startHarness>[1]);
}

const { migrated, legacy } = DISCORD_FIXTURES;

describe.each(
  HTTP_ADAPTERS.flatMap((adapter) =>
    (['forRoot', 'forRootAsync'] as ModuleStyle[]).map((style) => [adapter, style] as const),
  ),
)('keeping the forum aligned (%s, %s)', (adapter, style) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startAligned(adapter, style);
  });
  afterAll(async () => h.close());
  beforeEach(async () => {
    h.discord.reset();
    h.forum.reset();
    await h.app.get(DataSource).query('DELETE FROM discourse_connect_sync_jobs');
    await h.app.get(DataSource).query('DELETE FROM discourse_connect_users');
  });

  const idle = async () => {
    await waitFor(async () => {
      const c = await h.app.get(SyncQueue).counts();
      return c.pending + c.running === 0;
    }, 'an empty queue');
  };

  async function signInOnForum(as: string, browser = new TestBrowser()) {
    h.discord.knobs.autoApproveAs = as;
    await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    return browser;
  }

  async function signInOnSite(as: string, browser = new TestBrowser()) {
    h.discord.knobs.autoApproveAs = as;
    const page = await browser.visit(`${h.appUrl}/auth/discord`);
    expect(page.url).toBe(`${h.appUrl}/`);
    return browser;
  }

  it('sends exactly one sync_sso for a changed profile and none for an unchanged sign-in', async () => {
    await signInOnForum(legacy.id);
    expect(h.forum.findByExternalId(legacy.id)?.name).toBe(legacy.username);
    await signInOnSite(legacy.id);
    await idle();
    expect(h.forum.stats.syncSsoCalls).toBe(0);

    h.discord.updateUser(legacy.id, {
      global_name: 'Old Timer',
      avatar: '0123456789abcdef0123456789abcdef',
    });
    await signInOnSite(legacy.id);
    await waitFor(() => h.forum.stats.syncSsoCalls === 1, 'one sync_sso');
    await idle();
    expect(h.forum.stats.syncSsoCalls).toBe(1);
    const forumUser = h.forum.findByExternalId(legacy.id)!;
    expect(forumUser.name).toBe('Old Timer');
    expect(forumUser.avatarUrl).toContain('0123456789abcdef0123456789abcdef');

    await signInOnSite(legacy.id);
    await idle();
    expect(h.forum.stats.syncSsoCalls).toBe(1);
  });

  it('logs the user out of the forum when they sign out on the site', async () => {
    const browser = await signInOnForum(migrated.id);
    const current = () =>
      browser.request(`${h.forum.baseUrl}/session/current.json`).then((r) => r.status);
    expect(await current()).toBe(200);
    const out = await browser.request(`${h.appUrl}/auth/logout`, {
      method: 'POST',
      headers: { origin: h.appUrl, 'sec-fetch-site': 'same-origin' },
    });
    expect(out.status).toBe(303);
    await waitFor(() => h.forum.stats.apiLogOuts === 1, 'the forum log-out');
    expect(await current()).toBe(404);
  });

  it('moves the user between mapped groups from Discord roles and never touches unmapped ones', async () => {
    await signInOnForum(migrated.id);
    const forumUser = h.forum.findByExternalId(migrated.id)!;
    expect([...forumUser.groups].sort()).toEqual(['members', 'moderators']);
    expect(h.forum.stats.lastPayload).toMatchObject({ add_groups: 'members,moderators' });
    forumUser.groups.push('veterans'); // given on the forum by hand: not managed here

    h.discord.updateUser(migrated.id, {
      guildRoles: { [SIM_GUILD_ID]: [SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.veteran] },
    });
    await signInOnSite(migrated.id);
    await waitFor(() => h.forum.stats.syncSsoCalls === 1, 'the group sync');
    await idle();
    expect([...h.forum.findByExternalId(migrated.id)!.groups].sort()).toEqual([
      'members',
      'veterans',
    ]);
  });

  it('syncs after a host route that opts in with @SyncToDiscourse()', async () => {
    const browser = await signInOnForum(migrated.id);
    const res = await browser.request(`${h.appUrl}/account/profile`, {
      method: 'POST',
      headers: { origin: h.appUrl },
    });
    expect(res.status).toBe(201);
    await waitFor(() => h.forum.stats.syncSsoCalls === 1, 'the opted-in sync');
  });

  it('receives signed forum webhooks, stores the forum account and refuses replays and forgeries', async () => {
    h.forum.webhooks = { url: `${h.appUrl}/discourse/webhooks`, secret: WEBHOOK_SECRET };
    await signInOnForum(migrated.id);
    await h.forum.flushWebhooks();
    const created = h.forum.stats.webhookDeliveries.find((d) => d.event === 'user_created')!;
    expect(created.status).toBe(200);
    const forumUser = h.forum.findByExternalId(migrated.id)!;
    const [row] = await h.app
      .get(DataSource)
      .query(
        'SELECT forum_user_id, forum_username FROM discourse_connect_users WHERE discord_id = ?',
        [migrated.id],
      );
    expect(row).toEqual({ forum_user_id: forumUser.id, forum_username: forumUser.username });

    h.forum.redeliverWebhook(created.id);
    await h.forum.flushWebhooks();
    expect(h.forum.stats.webhookDeliveries.at(-1)).toMatchObject({ id: created.id, status: 409 });

    const body = JSON.stringify({
      user: { id: 99, username: 'mallory', external_id: migrated.id },
    });
    const forged = await fetch(`${h.appUrl}/discourse/webhooks`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-discourse-instance': h.forum.baseUrl,
        'x-discourse-event': 'user_updated',
        'x-discourse-event-id': '987654',
        'x-discourse-event-signature': `sha256=${'0'.repeat(64)}`,
      },
      body,
    });
    expect(forged.status).toBe(403);
    const [after] = await h.app
      .get(DataSource)
      .query('SELECT forum_username FROM discourse_connect_users WHERE discord_id = ?', [
        migrated.id,
      ]);
    expect(after.forum_username).toBe(forumUser.username);
    h.forum.webhooks = undefined;
  });

  it('reports queue counts on /health', async () => {
    const res = await fetch(`${h.appUrl}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      status: 'ok',
      queue: { pending: 0, running: 0, failed: 0 },
    });
  });
});

describe.each(HTTP_ADAPTERS)('delivery through faults (%s, forRoot)', (adapter) => {
  jest.setTimeout(20_000);
  let h: Harness;
  beforeAll(async () => {
    h = await startAligned(adapter, 'forRoot', { maxAttempts: 4, onFirstSignIn: true });
  });
  afterAll(async () => h.close());
  beforeEach(async () => {
    h.discord.reset();
    h.forum.reset();
    await h.app.get(DataSource).query('DELETE FROM discourse_connect_sync_jobs');
    await h.app.get(DataSource).query('DELETE FROM discourse_connect_users');
  });

  const jobs = () => h.app.get(DataSource).query('SELECT * FROM discourse_connect_sync_jobs');

  async function changeAndSignIn(id: string, name: string) {
    h.discord.updateUser(id, { global_name: name });
    h.discord.knobs.autoApproveAs = id;
    const page = await new TestBrowser().visit(`${h.appUrl}/auth/discord`);
    expect(page.url).toBe(`${h.appUrl}/`);
  }

  it('waits out a forum outage and delivers each change once', async () => {
    await changeAndSignIn(legacy.id, 'first');
    await waitFor(() => h.forum.stats.syncSsoCalls === 1, 'the first sync');
    h.forum.knobs.apiFailure = { status: 503 };
    await changeAndSignIn(legacy.id, 'second');
    await changeAndSignIn(legacy.id, 'third'); // coalesced with the waiting job
    await waitFor(async () => (await jobs()).some((j: any) => j.attempts >= 1), 'a failed attempt');
    const calls = h.forum.stats.syncSsoCalls;
    h.forum.knobs.apiFailure = null;
    await waitFor(async () => (await jobs()).length === 0, 'delivery after the outage');
    expect(h.forum.stats.syncSsoCalls).toBe(calls + 1);
    expect(h.forum.findByExternalId(legacy.id)!.name).toBe('third');
  });

  it('honours a 429 wait before calling the forum again', async () => {
    await changeAndSignIn(migrated.id, 'before');
    await waitFor(() => h.forum.stats.syncSsoCalls === 1, 'the first sync');
    h.forum.knobs.apiFailure = { status: 429, retryAfter: 1 };
    const started = Date.now();
    await changeAndSignIn(migrated.id, 'after');
    await waitFor(() => h.forum.stats.apiRequests >= 2, 'the rate-limited call');
    h.forum.knobs.apiFailure = null;
    const before = h.forum.stats.apiRequests;
    await waitFor(async () => (await jobs()).length === 0, 'delivery after the wait');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(h.forum.stats.apiRequests).toBe(before + 1);
    expect(h.forum.findByExternalId(migrated.id)!.name).toBe('after');
  });

  it('keeps a job as failed after its retries, and delivers it when retried', async () => {
    await changeAndSignIn(legacy.id, 'one');
    await waitFor(() => h.forum.stats.syncSsoCalls === 1, 'the first sync');
    h.forum.knobs.apiFailure = { status: 500 };
    await changeAndSignIn(legacy.id, 'two');
    await waitFor(
      async () => (await jobs()).some((j: any) => j.status === 'failed'),
      'the job to fail',
      10_000,
    );
    const [failed] = await jobs();
    expect(failed).toMatchObject({ status: 'failed', attempts: 4, kind: 'sync' });
    expect(failed.last_error).toContain('500');
    expect(failed.last_error).not.toContain(API_KEY);
    h.forum.knobs.apiFailure = null;
    expect(await h.app.get(SyncQueue).retryFailed()).toBe(1);
    await waitFor(async () => (await jobs()).length === 0, 'the retried delivery');
    expect(h.forum.findByExternalId(legacy.id)!.name).toBe('two');
  });

  it('survives a restart, including a job that was mid-delivery when the app died', async () => {
    await changeAndSignIn(legacy.id, 'one');
    await waitFor(() => h.forum.stats.syncSsoCalls === 1, 'the first sync');
    h.forum.knobs.apiFailure = { status: 503 };
    await changeAndSignIn(legacy.id, 'two');
    await changeAndSignIn(migrated.id, 'm-two');
    await waitFor(async () => (await jobs()).length === 2, 'two waiting jobs');
    await h.restart();
    // As if the process died while delivering: the job is still marked running, its lease long gone.
    await h.app
      .get(DataSource)
      .query(
        `UPDATE discourse_connect_sync_jobs SET status = 'running', locked_until = 1, dedupe_key = NULL WHERE discord_id = ?`,
        [migrated.id],
      );
    const calls = h.forum.stats.syncSsoCalls;
    h.forum.knobs.apiFailure = null;
    await h.app.get(DatabaseSyncWorker).drain();
    await waitFor(async () => (await jobs()).length === 0, 'delivery after the restart');
    expect(h.forum.stats.syncSsoCalls).toBe(calls + 2);
    expect(h.forum.findByExternalId(legacy.id)!.name).toBe('two');
    expect(h.forum.findByExternalId(migrated.id)!.name).toBe('m-two');
  });
});
