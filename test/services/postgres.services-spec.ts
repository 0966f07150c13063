import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import {
  DiscourseConnectSettings,
  pickDiscordMetadata,
  SyncQueue,
  DatabaseSyncWorker,
  UserStore,
  UsersService,
  type DiscourseConnectModuleOptions,
} from 'nestjs-discourse-connect/internal';
import {
  DISCORD_FIXTURES,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
} from 'nestjs-discourse-connect-simulators';
import { TestBrowser } from '../support/browser';
import { startHarness, type Harness } from '../support/harness';
import { createDatabase, describeWithServices } from './support/services';
import { API_KEY, waitFor } from './support/flows';

const { migrated, legacy, bigId } = DISCORD_FIXTURES;

/**
 * The module on a real PostgreSQL (the embedded queue, sessions in the database): the same
 * migrations, bigint epoch columns, ON CONFLICT coalescing, a unique violation inside a
 * transaction, numeric counts.
 */
describeWithServices('on PostgreSQL', () => {
  jest.setTimeout(60_000);
  let h: Harness;
  let db: Awaited<ReturnType<typeof createDatabase>>;
  const sql = <T = any>(text: string, params: unknown[] = []) =>
    h.app.get(DataSource).query(text, params) as Promise<T[]>;

  beforeAll(async () => {
    db = await createDatabase('pg');
    h = await startHarness('forRoot', {
      databaseUrl: db.url,
      forumOptions: { apiKey: API_KEY, apiRateLimitPerMinute: 0, authOverridesName: true },
      moduleOptions: (o: DiscourseConnectModuleOptions) => ({
        ...o,
        forums: o.forums.map((f) => ({
          ...f,
          api: { key: API_KEY, timeoutMs: 2000 },
          webhookSecret: 'forum-webhook-secret-0123',
        })),
        sync: {
          ratePerMinute: 6000,
          pollIntervalMs: 50,
          backoffBaseMs: 100,
          backoffMaxMs: 400,
          maxAttempts: 3,
        },
        groups: { guildId: SIM_GUILD_ID, roleGroups: { [SIM_GUILD_ROLES.member]: 'members' } },
      }),
    });
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });
  beforeEach(async () => {
    h.discord.reset();
    h.forum.reset();
    await sql('DELETE FROM discourse_connect_sync_jobs');
  });

  const signInOnSite = async (id: string) => {
    h.discord.knobs.autoApproveAs = id;
    const browser = new TestBrowser();
    const page = await browser.visit(`${h.appUrl}/auth/discord`);
    expect(page.url).toBe(`${h.appUrl}/`);
    return browser;
  };
  /** A first sign-in through the forum: the member has an account there, so syncs reach it. */
  const signInOnForum = async (id: string) => {
    h.discord.knobs.autoApproveAs = id;
    const page = await new TestBrowser().visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(page.url).toBe(`${h.forum.baseUrl}/`);
  };
  const idle = () =>
    waitFor(async () => {
      const c = await h.app.get(SyncQueue).counts();
      return c.pending + c.running === 0;
    }, 'an empty queue');

  it('ran the migrations on PostgreSQL: the tables and their column types', async () => {
    expect((await sql(`SELECT version() AS v`))[0].v).toMatch(/^PostgreSQL/);
    const tables = (
      await sql(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
      )
    ).map((r) => r.table_name);
    expect(tables).toEqual(
      expect.arrayContaining([
        'discourse_connect_users',
        'discourse_connect_sessions',
        'discourse_connect_sync_jobs',
        'discourse_connect_webhook_events',
        'migrations',
      ]),
    );
    const types = await sql(
      `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE column_name IN ('expires_at', 'run_at', 'discord_id', 'received_at')`,
    );
    expect(
      types
        .filter((t) => t.column_name === 'discord_id')
        .every((t) => t.data_type === 'character varying'),
    ).toBe(true);
    expect(
      types.filter((t) => t.column_name !== 'discord_id').every((t) => t.data_type === 'bigint'),
    ).toBe(true);
  });

  it('signs in through the forum with the session in PostgreSQL, keeps a snowflake above 2^53 exact', async () => {
    h.discord.knobs.autoApproveAs = bigId.id;
    const browser = new TestBrowser();
    const page = await browser.visit(
      `${h.forum.baseUrl}/session/sso?return_path=%2Ft%2Fwelcome%2F1`,
    );
    expect(page.url).toBe(`${h.forum.baseUrl}/t/welcome/1`);
    expect(h.forum.stats.lastPayload!.external_id).toBe('1234567890123456789');
    const [user] = await sql(`SELECT * FROM discourse_connect_users WHERE discord_id = $1`, [
      bigId.id,
    ]);
    expect(user).toMatchObject({ discord_id: '1234567890123456789', email_verified: true });
    const sessions = await sql(`SELECT sid, expires_at FROM discourse_connect_sessions`);
    expect(sessions.length).toBeGreaterThan(0);
    // bigint comes back from pg as a string; the entity's transformer makes it a number.
    expect(Number(sessions[0].expires_at)).toBeGreaterThan(Date.now());
    // A second handshake (the forum forgot its session) uses the stored session: no new Discord sign-in.
    browser.cookies.get('127.0.0.1')!.delete('_forum_session');
    const again = await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(again.hops.some((hop) => new URL(hop.url).pathname === '/oauth2/authorize')).toBe(false);
    expect(h.forum.stats.ssoLogins).toBe(2);
  });

  it('writes nothing on an unchanged sign-in; a change and its sync job commit together, coalesced per user', async () => {
    await signInOnForum(legacy.id);
    await idle();
    const before = (
      await sql(`SELECT updated_at FROM discourse_connect_users WHERE discord_id = $1`, [legacy.id])
    )[0];
    await signInOnSite(legacy.id);
    expect(
      (
        await sql(`SELECT updated_at FROM discourse_connect_users WHERE discord_id = $1`, [
          legacy.id,
        ])
      )[0],
    ).toEqual(before);
    expect(h.forum.stats.syncSsoCalls).toBe(0);

    h.forum.knobs.apiFailure = { status: 503 };
    h.discord.updateUser(legacy.id, { global_name: 'first' });
    await signInOnSite(legacy.id);
    h.discord.updateUser(legacy.id, { global_name: 'second' });
    await signInOnSite(legacy.id); // absorbed by the waiting job (ON CONFLICT DO NOTHING inside the transaction)
    await waitFor(
      async () =>
        (await sql(`SELECT attempts FROM discourse_connect_sync_jobs`)).some(
          (j) => j.attempts >= 1,
        ),
      'a failed attempt',
    );
    expect(await sql(`SELECT kind, status FROM discourse_connect_sync_jobs`)).toHaveLength(1);
    const [{ run_at }] = await sql(`SELECT run_at FROM discourse_connect_sync_jobs`);
    expect(typeof run_at).toBe('string'); // the raw pg bigint...
    const counts = await h.app.get(SyncQueue).counts();
    expect(counts).toEqual({ pending: expect.any(Number), running: expect.any(Number), failed: 0 }); // ...and counts are numbers
    const calls = h.forum.stats.syncSsoCalls;
    h.forum.knobs.apiFailure = null;
    await idle();
    expect(h.forum.stats.syncSsoCalls).toBe(calls + 1);
    expect(h.forum.findByExternalId(legacy.id)!.name).toBe('second');
  });

  it('a parallel first sign-in of one user creates one row without aborting a transaction', async () => {
    await sql(`DELETE FROM discourse_connect_users WHERE discord_id = $1`, [migrated.id]);
    const users = h.app.get(UsersService);
    const meta = pickDiscordMetadata({ ...migrated, global_name: 'Parallel' } as unknown as Record<
      string,
      unknown
    >);
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, () => users.signInFromDiscord(meta)),
    );
    expect(outcomes.filter((o) => o.created)).toHaveLength(1);
    expect(
      await sql(`SELECT discord_id FROM discourse_connect_users WHERE discord_id = $1`, [
        migrated.id,
      ]),
    ).toHaveLength(1);
  });

  it('a first sign-in that loses the insert race to another instance continues in the same transaction', async () => {
    // The module's own store also runs transactions (not part of the public store interface).
    const store = h.app.get(UserStore) as UserStore & {
      transaction<T>(work: (tx: UserStore) => Promise<T>): Promise<T>;
    };
    const data = {
      discordId: '4000000000000000001',
      username: 'racer',
      displayName: 'Racer',
      email: null,
      emailVerified: false,
      avatarHash: null,
      metadata: {} as any,
      metadataHash: 'a'.repeat(64),
    };
    await store.transaction(async (tx) => {
      // Another instance commits the same user between our read and our insert.
      await sql(
        `INSERT INTO discourse_connect_users (discord_id, username, display_name, metadata, metadata_hash) VALUES ($1, 'other', 'Other', '{}', $2)`,
        [data.discordId, 'b'.repeat(64)],
      );
      expect(await tx.create(data)).toBeNull();
      // PostgreSQL would refuse this with "current transaction is aborted" if the insert had failed outright.
      expect((await tx.findByDiscordId(data.discordId))?.username).toBe('other');
    });
  });

  it('keeps a job as failed on PostgreSQL and delivers it when retried; survives a restart', async () => {
    await signInOnForum(migrated.id);
    await idle();
    h.forum.knobs.apiFailure = { status: 500 };
    h.discord.updateUser(migrated.id, { global_name: 'kept' });
    await signInOnSite(migrated.id);
    await waitFor(
      async () => (await h.app.get(SyncQueue).counts()).failed === 1,
      'the job to fail',
      30_000, // a bound for a loaded CI machine, not a timing assertion (3 attempts, ≤ 400 ms apart)
    );
    const [failed] = await h.app.get(SyncQueue).failed();
    expect(failed).toMatchObject({ kind: 'sync', discordId: migrated.id, attempts: 3 });
    await h.restart();
    h.forum.knobs.apiFailure = null;
    expect(await h.app.get(SyncQueue).retryFailed()).toBe(1);
    await h.app.get(DatabaseSyncWorker).drain();
    await idle();
    expect(h.forum.findByExternalId(migrated.id)!.name).toBe('kept');
  });

  it('refuses a replayed webhook with 409 (unique violation on PostgreSQL)', async () => {
    h.forum.webhooks = {
      url: `${h.appUrl}/discourse/webhooks`,
      secret: 'forum-webhook-secret-0123',
    };
    h.discord.knobs.autoApproveAs = legacy.id;
    await new TestBrowser().visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    await h.forum.flushWebhooks();
    const delivered = h.forum.stats.webhookDeliveries.find((d) => d.status === 200)!;
    expect(delivered).toBeDefined();
    h.forum.redeliverWebhook(delivered.id);
    await h.forum.flushWebhooks();
    expect(h.forum.stats.webhookDeliveries.at(-1)).toMatchObject({ id: delivered.id, status: 409 });
    h.forum.webhooks = undefined;
  });

  it('npm run migration:run applies the migrations to a fresh PostgreSQL database once', async () => {
    const fresh = await createDatabase('migrate');
    const run = () =>
      execFileSync(
        process.execPath,
        [
          '-r',
          join(__dirname, 'support', 'ts-register.js'),
          join(__dirname, '..', '..', 'src', 'migrate.ts'),
        ],
        {
          env: { ...process.env, DATABASE_URL: fresh.url },
          cwd: join(__dirname, '..', '..'),
          encoding: 'utf8',
        },
      );
    try {
      expect(run()).toContain(
        'Applied 6 migration(s): DiscourseConnectInitial1732406400000, DiscourseConnectSync1732492800000, DiscourseConnectWebhookReplay1732665600000, DiscourseConnectForumLinks1733011200000, DiscourseConnectMemberLifecycle1764720000000, DiscourseConnectStaffFlags1764806400000.',
      );
      expect(run()).toContain('The database is up to date.');
    } finally {
      await fresh.drop();
    }
  });

  it('writes a sync job already claimed with the forum link read in the same statement; a waiting job absorbs it', async () => {
    const queue = h.app.get(SyncQueue);
    const discordId = '4000000000000000002';
    const forum = h.app.get(DiscourseConnectSettings).apiForums[0].name;
    await sql(
      `INSERT INTO discourse_connect_forum_links (forum, discord_id, status, checked_at, forum_user_id, forum_username) VALUES ($1, $2, 'linked', $3, 41, 'claimed')`,
      [forum, discordId, Date.now()],
    );
    const claim = () =>
      h.app.get(DataSource).transaction((m) => queue.enqueueClaimed('sync', discordId, m));
    const claimed = await claim();
    expect(claimed).toEqual([
      expect.objectContaining({
        forum,
        status: 'running',
        dedupeKey: null,
        link: expect.objectContaining({
          status: 'linked',
          forumUserId: 41,
          forumUsername: 'claimed',
          suspendedByModule: false,
          anonymizedAt: null,
        }),
      }),
    ]);
    expect(await sql(`SELECT id, status FROM discourse_connect_sync_jobs`)).toEqual([
      { id: claimed![0].id, status: 'running' },
    ]);
    await sql('DELETE FROM discourse_connect_sync_jobs');
    // A job waiting for its next try absorbs the new one.
    await sql(
      `INSERT INTO discourse_connect_sync_jobs (discord_id, forum, kind, status, dedupe_key, attempts, run_at) VALUES ($1, $2, 'sync', 'pending', $3, 1, $4)`,
      [discordId, forum, `sync:${forum}:${discordId}`, Date.now() + 600_000],
    );
    expect(await claim()).toEqual([]);
    expect(await sql(`SELECT status FROM discourse_connect_sync_jobs`)).toEqual([
      { status: 'pending' },
    ]);
    await sql('DELETE FROM discourse_connect_sync_jobs');
    await sql(`DELETE FROM discourse_connect_forum_links WHERE discord_id = $1`, [discordId]);
  });

  it('reports numeric queue counts on /health', async () => {
    const res = await fetch(`${h.appUrl}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      status: 'ok',
      checks: { database: 'up' },
      queue: { pending: 0, running: 0, failed: 0 },
    });
  });
});
