import { DataSource } from 'typeorm';
import {
  DiscourseConnectRedis,
  DiscourseMemberLifecycle,
  SyncQueue,
  type DiscourseConnectModuleOptions,
} from 'nestjs-discourse-connect/internal';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { startHarness, type Harness } from '../support/harness';
import { createDatabase, describeWithServices, redisUrl, uniquePrefix } from './support/services';
import { API_KEY, waitFor } from './support/flows';

const { legacy, migrated } = DISCORD_FIXTURES;
const WEBHOOK = 'forum-webhook-secret-0123';

/**
 * The member lifecycle on PostgreSQL with the BullMQ queue in Redis: the forum-link columns of the
 * lifecycle migration, suspend/unsuspend jobs through BullMQ (the module lifts only its own
 * suspension), `forget` removing rows in one transaction and ending the member's sessions in Redis,
 * and a suspension reported by the forum's webhook.
 */
describeWithServices('member lifecycle on PostgreSQL and BullMQ', () => {
  jest.setTimeout(60_000);
  let h: Harness;
  let db: Awaited<ReturnType<typeof createDatabase>>;
  const sql = <T = Record<string, unknown>>(text: string, params: unknown[] = []) =>
    h.app.get(DataSource).query(text, params) as Promise<T[]>;

  beforeAll(async () => {
    db = await createDatabase('lifecycle');
    h = await startHarness('forRoot', {
      databaseUrl: db.url,
      redis: { url: redisUrl(), prefix: uniquePrefix('lifecycle') },
      forumOptions: { apiKey: API_KEY, apiRateLimitPerMinute: 0 },
      moduleOptions: (o: DiscourseConnectModuleOptions) => ({
        ...o,
        forums: o.forums.map((f) => ({
          ...f,
          api: { key: API_KEY, timeoutMs: 2000 },
          webhookSecret: WEBHOOK,
        })),
        sync: { ratePerMinute: 6000, pollIntervalMs: 50, backoffBaseMs: 100, backoffMaxMs: 400 },
        lifecycle: { suspendReason: 'Banned.', suspendDays: 7 },
      }),
    });
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });

  const idle = () =>
    waitFor(async () => {
      const c = await h.app.get(SyncQueue).counts();
      return c.pending + c.running === 0;
    }, 'an empty queue');
  const signIn = async (id: string) => {
    h.discord.knobs.autoApproveAs = id;
    await new TestBrowser().visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    return h.forum.findByExternalId(id)!;
  };
  const linkOf = async (id: string) =>
    (
      await sql<{ suspended_by_module: boolean; suspended_until: string | null }>(
        'SELECT suspended_by_module, suspended_until FROM discourse_connect_forum_links WHERE discord_id = $1',
        [id],
      )
    )[0];

  it('suspend and unsuspend jobs through BullMQ; a suspension the forum made stays', async () => {
    const account = await signIn(legacy.id);
    await h.app.get(SyncQueue).enqueue('suspend', legacy.id);
    // The outcome itself: a job moving from the outbox to BullMQ can be between the two counts.
    await waitFor(() => account.suspendReason === 'Banned.', 'the suspension on the forum');
    await idle();
    expect(account.suspendReason).toBe('Banned.');
    expect(await linkOf(legacy.id)).toMatchObject({ suspended_by_module: true });
    await h.app.get(SyncQueue).enqueue('unsuspend', legacy.id);
    await waitFor(() => !h.forum.isSuspended(account), 'the suspension lifted');
    await idle();
    expect(h.forum.isSuspended(account)).toBe(false);
    expect(await linkOf(legacy.id)).toEqual({ suspended_by_module: false, suspended_until: null });

    // The forum's staff suspend; the webhook tells the module, which will not lift it.
    h.forum.webhooks = { url: `${h.appUrl}/discourse/webhooks`, secret: WEBHOOK };
    const until = new Date(Date.now() + 86_400_000);
    await fetch(`${h.forum.baseUrl}/admin/users/${account.id}/suspend`, {
      method: 'PUT',
      headers: { 'Api-Key': API_KEY, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ suspend_until: until.toISOString(), reason: 'Spam' }).toString(),
    });
    await h.forum.flushWebhooks();
    expect(await linkOf(legacy.id)).toEqual({
      suspended_by_module: false,
      suspended_until: String(until.getTime()),
    });
    await h.app.get(SyncQueue).enqueue('unsuspend', legacy.id);
    await idle();
    expect(h.forum.isSuspended(account)).toBe(true);
    h.forum.webhooks = undefined;
  });

  /** The member's sessions in Redis (the module's session keys whose JSON names them). */
  const redisSessionsOf = async (id: string) => {
    const redis = h.app.get(DiscourseConnectRedis);
    const keys = await redis.client.keys(`${redis.prefix}sess:*`);
    const values = keys.length > 0 ? await redis.client.mget(...keys) : [];
    return values.filter((v) => v?.includes(`"passport":{"user":"${id}"}`)).length;
  };

  it('forget removes the member in one transaction on PostgreSQL and anonymizes the account', async () => {
    h.discord.knobs.autoApproveAs = migrated.id;
    const browser = new TestBrowser();
    await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    const account = h.forum.findByExternalId(migrated.id)!;
    expect(await redisSessionsOf(migrated.id)).toBe(1);
    const sessions = () =>
      sql<{ n: string }>(
        `SELECT COUNT(*) AS n FROM discourse_connect_sessions WHERE data LIKE $1`,
        [`%"passport":{"user":"${migrated.id}"}%`],
      );
    // Sessions are in Redis here (the redis option): forget leaves nothing of the member in the
    // database, and ends their sessions in Redis.
    const report = await h.app.get(DiscourseMemberLifecycle).forget(migrated.id);
    expect(report).toMatchObject({
      userRecord: 'deleted',
      forums: [{ action: 'anonymize', outcome: 'done' }],
    });
    for (const table of [
      'discourse_connect_users',
      'discourse_connect_forum_links',
      'discourse_connect_sync_jobs',
    ]) {
      expect(await sql(`SELECT * FROM ${table} WHERE discord_id = $1`, [migrated.id])).toEqual([]);
    }
    expect((await sessions())[0].n).toBe('0');
    expect(account.externalId).toBeNull();
    // Their session in Redis ended at once: their browser's next handshake goes to Discord sign-in.
    expect(await redisSessionsOf(migrated.id)).toBe(0);
    h.discord.knobs.autoApproveAs = null;
    const page = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(new URL(page.url).pathname).toBe('/oauth2/authorize');
    expect(h.forum.findByExternalId(migrated.id)).toBeUndefined();
  });
});
