import { Controller, HttpCode, Injectable, Post } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import {
  DiscourseAdminService,
  DiscourseConnectEvents,
  DiscourseConnectForumLinkEntity,
  DiscourseConnectSettings,
  DiscourseConnectUserEntity,
  DiscourseMemberLifecycle,
  TypeOrmUserStore,
  type DiscourseConnectUserData,
  type DiscourseConnectUserStore,
  ForgetDiscourseMember,
  SuspendOnDiscourse,
  SyncQueue,
  UnsuspendOnDiscourse,
  type DiscourseConnectModuleOptions,
  type ForumUserLifecycleEvent,
  type MemberForgottenEvent,
} from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from './support/browser';
import {
  API_KEY,
  HTTP_ADAPTERS,
  startHarness,
  WEBHOOK_SECRET,
  type Harness,
  type HttpAdapterName,
  type ModuleStyle,
} from './support/harness';
import { hmac, nextEventId } from './support/signing';
import { waitFor } from './support/wait';

/**
 * The member lifecycle on the site side: suspend/unsuspend jobs (the module lifts only its own
 * suspension), forgetting a member under each `forgetAction`, the route decorators, the forum's
 * user webhooks for suspension, deletion and anonymization (acting on the signed body, confirmed
 * through the admin API, never on the event-name header alone), and the sign-in policy after the
 * forum anonymized an account.
 */

const { migrated, legacy } = DISCORD_FIXTURES;
const DAY = 24 * 60 * 60 * 1000;

/** The lifecycle events the module fired, in order. */
const fired: { name: string; payload: ForumUserLifecycleEvent | MemberForgottenEvent }[] = [];

@Injectable()
class LifecycleListener {
  @OnEvent(DiscourseConnectEvents.ForumUserSuspended)
  suspended(p: ForumUserLifecycleEvent) {
    fired.push({ name: 'suspended', payload: p });
  }
  @OnEvent(DiscourseConnectEvents.ForumUserUnsuspended)
  unsuspended(p: ForumUserLifecycleEvent) {
    fired.push({ name: 'unsuspended', payload: p });
  }
  @OnEvent(DiscourseConnectEvents.ForumUserAnonymized)
  anonymized(p: ForumUserLifecycleEvent) {
    fired.push({ name: 'anonymized', payload: p });
  }
  @OnEvent(DiscourseConnectEvents.ForumUserDeleted)
  deleted(p: ForumUserLifecycleEvent) {
    fired.push({ name: 'deleted', payload: p });
  }
  @OnEvent(DiscourseConnectEvents.MemberForgotten)
  forgotten(p: MemberForgottenEvent) {
    fired.push({ name: 'forgotten', payload: p });
  }
}

/** The host's own admin pages: ban, unban and remove a member, with the module's decorators. */
@Controller('admin/members')
class MembersAdminController {
  @Post(':discordId/ban')
  @HttpCode(200)
  @SuspendOnDiscourse({ user: (req: { params: { discordId: string } }) => req.params.discordId })
  ban() {
    return { banned: true };
  }

  @Post(':discordId/unban')
  @HttpCode(200)
  @UnsuspendOnDiscourse({ user: (req: { params: { discordId: string } }) => req.params.discordId })
  unban() {
    return { unbanned: true };
  }

  @Post(':discordId/remove')
  @HttpCode(200)
  @ForgetDiscourseMember({ user: (req: { params: { discordId: string } }) => req.params.discordId })
  remove() {
    return { removed: true };
  }
}

const sync = { ratePerMinute: 6000, pollIntervalMs: 50, backoffBaseMs: 100, backoffMaxMs: 400 };

async function startLifecycle(
  adapter: HttpAdapterName,
  style: ModuleStyle,
  lifecycle: DiscourseConnectModuleOptions['lifecycle'],
  env: Record<string, string>,
  extra: Partial<Pick<DiscourseConnectModuleOptions, 'session' | 'userStore'>> = {},
): Promise<Harness> {
  return startHarness(style, {
    adapter,
    forumOptions: { apiKey: API_KEY, apiRateLimitPerMinute: 0 },
    moduleOptions: (o) => ({
      ...o,
      ...(extra.session ? { session: { ...o.session!, ...extra.session } } : {}),
      ...(extra.userStore ? { userStore: extra.userStore } : {}),
      forums: o.forums.map((f) => ({
        ...f,
        api: { key: API_KEY, timeoutMs: 2000 },
        webhookSecret: WEBHOOK_SECRET,
      })),
      sync,
      lifecycle,
    }),
    env: {
      DISCOURSE_API_KEY: API_KEY,
      DISCOURSE_API_RATE_PER_MINUTE: '6000',
      DISCOURSE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      ...env,
    },
    providers: [LifecycleListener],
    controllers: [MembersAdminController],
  });
}

/** A host user store without `delete`: `forget` keeps its record of the member. */
@Injectable()
class KeepingUserStore implements DiscourseConnectUserStore {
  private readonly inner: TypeOrmUserStore;

  constructor(
    @InjectRepository(DiscourseConnectUserEntity) users: Repository<DiscourseConnectUserEntity>,
  ) {
    this.inner = new TypeOrmUserStore(users);
  }

  findByDiscordId(discordId: string) {
    return this.inner.findByDiscordId(discordId);
  }

  create(data: DiscourseConnectUserData) {
    return this.inner.create(data);
  }

  update(data: DiscourseConnectUserData) {
    return this.inner.update(data);
  }
}

/** Test helpers over one harness. */
function helpers(get: () => Harness) {
  const db = () => get().app.get(DataSource);
  const link = (discordId = legacy.id) =>
    db()
      .getRepository(DiscourseConnectForumLinkEntity)
      .findOneBy({ forum: get().app.get(DiscourseConnectSettings).forums[0].name, discordId });
  const idle = () =>
    waitFor(async () => {
      const c = await get().app.get(SyncQueue).counts();
      return c.pending + c.running === 0;
    }, 'an empty queue');
  /** Signs the member in on the forum through the module (the forum account is created). */
  const signIn = async (id = legacy.id) => {
    const h = get();
    h.discord.knobs.autoApproveAs = id;
    const browser = new TestBrowser();
    const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    return { browser, page };
  };
  const reset = async () => {
    const h = get();
    h.discord.reset();
    h.forum.reset();
    h.forum.webhooks = { url: `${h.appUrl}/discourse/webhooks`, secret: WEBHOOK_SECRET };
    for (const table of [
      'discourse_connect_sync_jobs',
      'discourse_connect_forum_links',
      'discourse_connect_users',
      'discourse_connect_sessions',
      // The simulated forum numbers its users and deliveries from 1 again after a reset.
      'discourse_connect_webhook_events',
      'discourse_connect_webhook_bodies',
      'discourse_connect_webhook_users',
    ])
      await db().query(`DELETE FROM ${table}`);
    fired.length = 0;
  };
  /** Posts a webhook delivery signed with the forum's webhook secret. */
  const deliver = async (body: unknown, event: string) => {
    const h = get();
    const raw = JSON.stringify(body);
    const res = await fetch(`${h.appUrl}/discourse/webhooks`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-discourse-instance': h.forum.baseUrl,
        'x-discourse-event-type': 'user',
        'x-discourse-event': event,
        'x-discourse-event-id': nextEventId(),
        'x-discourse-event-signature': `sha256=${hmac(raw, WEBHOOK_SECRET)}`,
      },
      body: raw,
    });
    return res.status;
  };
  const sessionsOf = async (id: string) =>
    (
      (await db().query(
        `SELECT COUNT(*) AS n FROM discourse_connect_sessions WHERE data LIKE '%"user":"${id}"%'`,
      )) as { n: number | string }[]
    ).map((r) => Number(r.n))[0];
  return { db, link, idle, signIn, reset, deliver, sessionsOf };
}

describe.each(HTTP_ADAPTERS)('member lifecycle, default options (%s, forRoot)', (adapter) => {
  let h: Harness;
  const t = helpers(() => h);

  beforeAll(async () => {
    h = await startLifecycle(
      adapter,
      'forRoot',
      { suspendReason: 'Banned from the Discord server.', suspendDays: 30 },
      {},
    );
  });
  afterAll(async () => h?.close());
  beforeEach(() => t.reset());

  describe('suspend and unsuspend jobs', () => {
    it('a suspend job suspends for the configured days and reason; unsuspend lifts it', async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      const before = Date.now();
      await h.app.get(SyncQueue).enqueue('suspend', legacy.id);
      await t.idle();
      expect(account.suspendReason).toBe('Banned from the Discord server.');
      const days = (account.suspendedTill! - before) / DAY;
      expect(days).toBeGreaterThanOrEqual(30);
      expect(days).toBeLessThan(30.01);
      expect(await t.link()).toMatchObject({ suspendedByModule: true });

      await h.app.get(SyncQueue).enqueue('unsuspend', legacy.id);
      await t.idle();
      expect(h.forum.isSuspended(account)).toBe(false);
      expect(await t.link()).toMatchObject({ suspendedByModule: false, suspendedUntil: null });
    });

    it('an unsuspend job leaves a suspension made by the forum staff alone', async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      const res = await fetch(`${h.forum.baseUrl}/admin/users/${account.id}/suspend`, {
        method: 'PUT',
        headers: { 'Api-Key': API_KEY, 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          suspend_until: new Date(Date.now() + DAY).toISOString(),
          reason: 'Spam',
        }).toString(),
      });
      expect(res.status).toBe(200);
      await h.forum.flushWebhooks();
      await h.app.get(SyncQueue).enqueue('unsuspend', legacy.id);
      await t.idle();
      expect(h.forum.isSuspended(account)).toBe(true);
      expect(h.forum.stats.apiLifecycleCalls.map((c) => c.action)).toEqual(['suspend']);
    });

    it("the forum staff replacing the module's suspension with their own keeps theirs on unsuspend", async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      await h.forum.flushWebhooks();
      await h.app.get(SyncQueue).enqueue('suspend', legacy.id);
      await t.idle();
      await h.forum.flushWebhooks();
      expect(await t.link()).toMatchObject({ suspendedByModule: true });
      // The staff suspend the account again, for a week, over the module's suspension.
      const res = await fetch(`${h.forum.baseUrl}/admin/users/${account.id}/suspend`, {
        method: 'PUT',
        headers: { 'Api-Key': API_KEY, 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          suspend_until: new Date(Date.now() + 7 * DAY).toISOString(),
          reason: 'Spam',
        }).toString(),
      });
      expect(res.status).toBe(200);
      await h.forum.flushWebhooks();
      await waitFor(
        async () => (await t.link())?.suspendedByModule === false,
        "the staff's suspension recorded",
      );
      await h.app.get(SyncQueue).enqueue('unsuspend', legacy.id); // the member rejoined Discord
      await t.idle();
      expect(h.forum.isSuspended(account)).toBe(true);
      expect(account.suspendReason).toBe('Spam');
    });
  });

  describe('route decorators on the host admin pages', () => {
    it('ban / unban suspend and lift; remove forgets the member', async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      const post = (path: string) =>
        fetch(`${h.appUrl}/admin/members/${legacy.id}/${path}`, { method: 'POST' });

      expect(await (await post('ban')).json()).toEqual({ banned: true });
      await t.idle();
      expect(h.forum.isSuspended(account)).toBe(true);

      expect(await (await post('unban')).json()).toEqual({ unbanned: true });
      await t.idle();
      expect(h.forum.isSuspended(account)).toBe(false);

      expect(await (await post('remove')).json()).toEqual({ removed: true });
      expect(await t.db().query('SELECT * FROM discourse_connect_users')).toEqual([]);
      expect(account.externalId).toBeNull();
      expect(account.username).toMatch(/^anon\d+$/);
    });
  });

  describe('forget (anonymize, the default)', () => {
    it('removes the local data and anonymizes the forum account; the same Discord id gets a new account', async () => {
      await t.signIn();
      await t.signIn(migrated.id);
      const account = h.forum.findByExternalId(legacy.id)!;
      expect(await t.sessionsOf(legacy.id)).toBeGreaterThan(0);
      await h.app.get(SyncQueue).enqueue('sync', legacy.id); // work for the member, waiting or running

      const report = await h.app.get(DiscourseMemberLifecycle).forget(legacy.id);
      expect(report).toEqual({
        discordId: legacy.id,
        userRecord: 'deleted',
        forums: [{ forum: expect.any(String), action: 'anonymize', outcome: 'done' }],
      });
      const rows = async (table: string) =>
        (await t
          .db()
          .query(`SELECT * FROM ${table} WHERE discord_id = '${legacy.id}'`)) as unknown[];
      await t.idle();
      expect(await rows('discourse_connect_users')).toEqual([]);
      expect(await rows('discourse_connect_forum_links')).toEqual([]);
      expect(await rows('discourse_connect_sync_jobs')).toEqual([]);
      expect(await t.sessionsOf(legacy.id)).toBe(0);
      // The other member is untouched.
      expect(await t.sessionsOf(migrated.id)).toBeGreaterThan(0);
      expect(h.forum.findByExternalId(migrated.id)).toBeDefined();

      expect(account).toMatchObject({ externalId: null, name: null });
      expect(account.username).toMatch(/^anon\d+$/);
      expect(fired.map((e) => e.name)).toEqual(['forgotten']);

      // Signing in again makes a new forum account (the default policy).
      await t.signIn();
      const fresh = h.forum.findByExternalId(legacy.id)!;
      expect(fresh.id).not.toBe(account.id);
    });

    it('a forum that fails keeps a job that finishes the work later', async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      h.forum.knobs.apiFailure = { status: 503 };
      const report = await h.app.get(DiscourseMemberLifecycle).forget(legacy.id);
      expect(report.forums).toEqual([
        expect.objectContaining({
          action: 'anonymize',
          outcome: 'pending',
          error: expect.any(String),
        }),
      ]);
      expect(
        await t
          .db()
          .query(`SELECT kind FROM discourse_connect_sync_jobs WHERE discord_id = '${legacy.id}'`),
      ).toEqual([{ kind: 'anonymize' }]);
      expect(account.externalId).toBe(legacy.id);
      h.forum.knobs.apiFailure = null;
      await t.idle();
      expect(account.externalId).toBeNull();
      expect(account.username).toMatch(/^anon\d+$/);
    });

    it('refuses an id that is not a Discord id, and a member unknown everywhere is harmless', async () => {
      await expect(h.app.get(DiscourseMemberLifecycle).forget('not-an-id')).rejects.toThrow(
        'Discord id',
      );
      const report = await h.app.get(DiscourseMemberLifecycle).forget('123');
      expect(report).toMatchObject({
        userRecord: 'absent',
        forums: [expect.objectContaining({ outcome: 'no-account' })],
      });
    });
  });

  describe('forum webhooks', () => {
    it('a suspension and its lifting by the forum staff reach the link and fire events', async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      const admin = (path: string, form: Record<string, string> = {}) =>
        fetch(`${h.forum.baseUrl}/admin/users/${account.id}/${path}`, {
          method: 'PUT',
          headers: { 'Api-Key': API_KEY, 'Content-Type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(form).toString(),
        });
      const until = Date.now() + 3 * DAY;
      await admin('suspend', { suspend_until: new Date(until).toISOString(), reason: 'Spam' });
      await h.forum.flushWebhooks();
      await waitFor(async () => (await t.link())?.suspendedUntil === until, 'the suspension');
      expect(await t.link()).toMatchObject({ suspendedByModule: false });
      await admin('unsuspend');
      await h.forum.flushWebhooks();
      await waitFor(async () => (await t.link())?.suspendedUntil === null, 'the lifting');
      expect(fired.map((e) => [e.name, (e.payload as ForumUserLifecycleEvent).via])).toEqual([
        ['suspended', 'webhook'],
        ['unsuspended', 'webhook'],
      ]);
    });

    it('a deletion on the forum is confirmed through the admin API', async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      await fetch(`${h.forum.baseUrl}/admin/users/${account.id}.json`, {
        method: 'DELETE',
        headers: { 'Api-Key': API_KEY },
      });
      await h.forum.flushWebhooks();
      await waitFor(async () => fired.some((e) => e.name === 'deleted'), 'the deleted event');
      expect(await t.link()).toMatchObject({ status: 'not_found', forumUserId: null });
    });

    it('an anonymization on the forum is found from a later body without the external id', async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      await h.forum.flushWebhooks();
      await waitFor(async () => (await t.link())?.forumUserId === account.id, 'the linked account');
      const res = await fetch(`${h.forum.baseUrl}/admin/users/${account.id}/anonymize`, {
        method: 'PUT',
        headers: { 'Api-Key': API_KEY },
      });
      expect(res.status).toBe(200);
      // Any later user event about that forum user carries the anonymous name and no external_id.
      expect(
        await t.deliver(
          {
            user: {
              id: account.id,
              username: account.username,
              external_id: null,
              updated_at: new Date().toISOString(),
            },
          },
          'user_updated',
        ),
      ).toBe(200);
      expect(await t.link()).toMatchObject({
        status: 'not_found',
        anonymizedAt: expect.any(Number),
      });
      expect(fired.map((e) => e.name)).toEqual(['anonymized']);

      // The default policy: signing in again makes a fresh account and clears the mark.
      const { page } = await t.signIn();
      expect(page.status).toBe(200);
      expect(h.forum.findByExternalId(legacy.id)!.id).not.toBe(account.id);
      expect(await t.link()).toMatchObject({ status: 'linked', anonymizedAt: null });
    });

    it('a forged event-name header on a signed unrelated body changes nothing', async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      await h.forum.flushWebhooks();
      await waitFor(async () => (await t.link())?.forumUserId === account.id, 'the linked account');
      const before = await t.link();
      fired.length = 0;
      const body = { user: { id: account.id, username: account.username, external_id: legacy.id } };
      for (const event of ['user_destroyed', 'user_suspended', 'user_unsuspended']) {
        expect(await t.deliver({ ...body, user: { ...body.user, name: event } }, event)).toBe(200);
      }
      expect(await t.link()).toEqual(before);
      expect(fired).toEqual([]);
      expect(h.forum.findByExternalId(legacy.id)).toBe(account);
    });

    it('a late body saying "suspended" after the forum lifted it is checked with the forum', async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      await h.forum.flushWebhooks();
      await waitFor(async () => (await t.link())?.forumUserId === account.id, 'the linked account');
      fired.length = 0;
      const stale = {
        user: {
          id: account.id,
          username: account.username,
          external_id: legacy.id,
          suspended_till: new Date(Date.now() + DAY).toISOString(),
        },
      };
      expect(await t.deliver(stale, 'user_suspended')).toBe(200);
      expect(await t.link()).toMatchObject({ suspendedUntil: null });
      expect(fired).toEqual([]);
    });
  });
});

describe.each(HTTP_ADAPTERS)(
  'member lifecycle from the environment: delete, refuse (%s, forRootAsync)',
  (adapter) => {
    let h: Harness;
    const t = helpers(() => h);

    beforeAll(async () => {
      h = await startLifecycle(adapter, 'forRootAsync', undefined, {
        DISCOURSE_FORGET_ACTION: 'delete',
        DISCOURSE_ANONYMIZED_SIGN_IN: 'refuse',
        DISCOURSE_SUSPEND_REASON: 'Left the server.',
        DISCOURSE_SUSPEND_DAYS: '2',
      });
    });
    afterAll(async () => h?.close());
    beforeEach(() => t.reset());

    it('suspends with the reason and length from the environment', async () => {
      await t.signIn();
      const before = Date.now();
      await h.app.get(SyncQueue).enqueue('suspend', legacy.id);
      await t.idle();
      const account = h.forum.findByExternalId(legacy.id)!;
      expect(account.suspendReason).toBe('Left the server.');
      expect(Math.floor((account.suspendedTill! - before) / DAY)).toBe(2);
    });

    it('forget deletes the forum account', async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      const report = await h.app.get(DiscourseMemberLifecycle).forget(legacy.id);
      expect(report.forums).toEqual([
        expect.objectContaining({ action: 'delete', outcome: 'done' }),
      ]);
      expect(h.forum.users.find((u) => u.id === account.id)).toBeUndefined();
      await h.forum.flushWebhooks(); // user_destroyed for a forgotten member leaves nothing behind
      await waitFor(
        async () => h.forum.stats.webhookDeliveries.length > 0,
        'the user_destroyed delivery',
      );
      expect(
        await t
          .db()
          .query(`SELECT * FROM discourse_connect_forum_links WHERE discord_id = '${legacy.id}'`),
      ).toEqual([]);
    });

    it('acts on the account the forum names now: an account it anonymized since survives forget', async () => {
      h.forum.webhooks = undefined; // the module hears nothing of the anonymization
      await t.signIn();
      const old = h.forum.findByExternalId(legacy.id)!;
      const admin = h.app.get(DiscourseAdminService);
      expect(await admin.getUserByExternalId(legacy.id)).toMatchObject({ id: old.id }); // remembered
      const res = await fetch(`${h.forum.baseUrl}/admin/users/${old.id}/anonymize`, {
        method: 'PUT',
        headers: { 'Api-Key': API_KEY },
      });
      expect(res.status).toBe(200);

      // No account for the member now: nothing is deleted, the anonymized one stays.
      const report = await h.app.get(DiscourseMemberLifecycle).suspend(legacy.id);
      expect(report).toEqual([expect.objectContaining({ outcome: 'no-account' })]);
      expect(old.suspendedTill ?? null).toBeNull();

      // The member signs in again (a new account): suspend and forget act on that one.
      await t.signIn();
      const fresh = h.forum.findByExternalId(legacy.id)!;
      expect(fresh.id).not.toBe(old.id);
      await h.app.get(DiscourseMemberLifecycle).suspend(legacy.id);
      expect(fresh.suspendedTill).toEqual(expect.any(Number));
      expect(old.suspendedTill ?? null).toBeNull();
      const forgotten = await h.app.get(DiscourseMemberLifecycle).forget(legacy.id);
      expect(forgotten.forums).toEqual([
        expect.objectContaining({ action: 'delete', outcome: 'done' }),
      ]);
      expect(h.forum.users.find((u) => u.id === fresh.id)).toBeUndefined();
      expect(h.forum.users.find((u) => u.id === old.id)).toBe(old); // anonymized, kept
      expect(h.forum.stats.apiLifecycleCalls).not.toContainEqual(
        expect.objectContaining({ userId: old.id, action: 'delete' }),
      );
    });

    it('refuses a sign-in after the forum anonymized the account, with a clear 403 page', async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      await h.forum.flushWebhooks();
      await waitFor(async () => (await t.link())?.forumUserId === account.id, 'the linked account');
      await fetch(`${h.forum.baseUrl}/admin/users/${account.id}/anonymize`, {
        method: 'PUT',
        headers: { 'Api-Key': API_KEY },
      });
      await t.deliver(
        {
          user: {
            id: account.id,
            username: account.username,
            external_id: null,
            updated_at: new Date().toISOString(),
          },
        },
        'user_updated',
      );
      expect(await t.link()).toMatchObject({ anonymizedAt: expect.any(Number) });

      const { page } = await t.signIn();
      expect(page.status).toBe(403);
      expect(page.body).toContain('anonymized');
      expect(page.body).not.toMatch(/at .*\.js:\d+/); // no stack trace
      expect(h.forum.findByExternalId(legacy.id)).toBeUndefined(); // no new account
      // A create job (sync --create) makes none either.
      await h.app.get(SyncQueue).enqueue('create', legacy.id);
      await t.idle();
      expect(h.forum.findByExternalId(legacy.id)).toBeUndefined();
    });
  },
);

describe.each(HTTP_ADAPTERS)(
  'member lifecycle: forget leaves the forum account (%s)',
  (adapter) => {
    let h: Harness;
    const t = helpers(() => h);

    beforeAll(async () => {
      h = await startLifecycle(adapter, 'forRoot', { forgetAction: 'none' }, {});
    });
    afterAll(async () => h?.close());
    beforeEach(() => t.reset());

    it('removes the local data only', async () => {
      await t.signIn();
      const account = h.forum.findByExternalId(legacy.id)!;
      const report = await h.app.get(DiscourseMemberLifecycle).forget(legacy.id);
      expect(report).toMatchObject({
        userRecord: 'deleted',
        forums: [{ action: 'none', outcome: 'done' }],
      });
      expect(await t.db().query('SELECT * FROM discourse_connect_users')).toEqual([]);
      expect(h.forum.findByExternalId(legacy.id)).toBe(account);
      expect(h.forum.stats.apiLifecycleCalls).toEqual([]);
    });
  },
);

describe.each(HTTP_ADAPTERS)(
  'member lifecycle: forget signs the member out at once (%s)',
  (adapter) => {
    let h: Harness;
    const t = helpers(() => h);

    beforeAll(async () => {
      // A host user store that keeps the record, and session copies that answer for a minute: a
      // session that outlived `forget` would still sign the member in.
      h = await startLifecycle(
        adapter,
        'forRoot',
        undefined,
        {},
        {
          session: { secret: 's'.repeat(32), readCacheMs: 60_000 },
          userStore: KeepingUserStore,
        },
      );
    });
    afterAll(async () => h?.close());
    beforeEach(() => t.reset());

    it('the next handshake of their browser goes to Discord sign-in, and makes no forum account', async () => {
      const { browser, page: first } = await t.signIn();
      expect(first.status).toBe(200);
      const account = h.forum.findByExternalId(legacy.id)!;
      const paths = (page: { hops: { url: string }[] }) =>
        page.hops.map((hop) => new URL(hop.url).pathname);

      const report = await h.app.get(DiscourseMemberLifecycle).forget(legacy.id);
      expect(report.userRecord).toBe('kept');
      expect(account.externalId).toBeNull(); // anonymized on the forum
      h.discord.knobs.autoApproveAs = null; // Discord shows its sign-in page instead of approving
      const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
      expect(paths(page)).toContain('/discourse/sso');
      expect(new URL(page.url).pathname).toBe('/oauth2/authorize');
      expect(h.forum.findByExternalId(legacy.id)).toBeUndefined();
    });
  },
);
