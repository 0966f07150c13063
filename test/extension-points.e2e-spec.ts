import { Injectable } from '@nestjs/common';
import { MemoryStore } from 'express-session';
import { DataSource } from 'typeorm';
import {
  DiscourseConnectSettings,
  DiscourseConnectSyncDelivery,
  DiscourseConnectSyncQueue,
  type DiscourseConnectSyncJobKind,
  DiscourseConnectUserStore,
  type DiscourseConnectUser,
  type DiscourseConnectUserData,
  DiscourseMemberLifecycle,
} from 'nestjs-discourse-connect';
import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { DiscourseConnectSessions } from 'nestjs-discourse-connect/internal';
import { TestBrowser } from './support/browser';
import { HTTP_ADAPTERS, startHarness, type Harness, API_KEY } from './support/harness';

/** A host's own user store, given as a class: the module instantiates it, injecting its dependencies. */
@Injectable()
class MapUserStore implements DiscourseConnectUserStore {
  readonly users = new Map<string, DiscourseConnectUser>();

  constructor(readonly settings: DiscourseConnectSettings) {}

  async findByDiscordId(discordId: string): Promise<DiscourseConnectUser | null> {
    return this.users.get(discordId) ?? null;
  }

  async create(data: DiscourseConnectUserData): Promise<DiscourseConnectUser | null> {
    if (this.users.has(data.discordId)) return null;
    const user = { ...data, createdAt: new Date(), updatedAt: new Date() };
    this.users.set(data.discordId, user);
    return user;
  }

  async update(data: DiscourseConnectUserData): Promise<DiscourseConnectUser> {
    const user = { ...this.users.get(data.discordId)!, ...data, updatedAt: new Date() };
    this.users.set(data.discordId, user);
    return user;
  }

  /** Member lifecycle: `forget` removes the member through it. */
  async delete(discordId: string): Promise<boolean> {
    return this.users.delete(discordId);
  }
}

/** A host's session store, given as a class: any express-session store; this one counts its writes. */
@Injectable()
class CountingSessionStore extends MemoryStore {
  writes = 0;

  constructor(readonly settings: DiscourseConnectSettings) {
    super();
  }

  /** When set, every read fails, as a store that lost its database does. */
  failReads = false;

  override get(sid: string, callback: Parameters<MemoryStore['get']>[1]): void {
    if (this.failReads) return callback(new Error('the session database is unreachable'));
    super.get(sid, callback);
  }

  override set(
    sid: string,
    session: Parameters<MemoryStore['set']>[1],
    callback?: (err?: unknown) => void,
  ): void {
    this.writes++;
    super.set(sid, session, callback);
  }
}

describe.each(HTTP_ADAPTERS)('the userStore and session.store options (%s)', (adapter) => {
  const { migrated } = DISCORD_FIXTURES;
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness('forRoot', {
      adapter,
      moduleOptions: (options) => ({
        ...options,
        userStore: MapUserStore,
        session: { ...options.session, store: CountingSessionStore },
      }),
    });
  });

  afterAll(() => h.close());

  it('serves members from the host class the module instantiated, never from its own table', async () => {
    h.discord.knobs.autoApproveAs = migrated.id;
    const page = await new TestBrowser().visit(
      `${h.forum.baseUrl}/session/sso?return_path=%2Ft%2Fwelcome%2F1`,
    );
    expect({ status: page.status, url: page.url }).toEqual({
      status: 200,
      url: `${h.forum.baseUrl}/t/welcome/1`,
    });
    const store = h.app.get<MapUserStore>(DiscourseConnectUserStore);
    expect(store).toBeInstanceOf(MapUserStore);
    expect(store.settings).toBeInstanceOf(DiscourseConnectSettings); // its dependency was injected
    expect([...store.users.keys()]).toEqual([migrated.id]);
    expect(await h.app.get(DataSource).query('SELECT * FROM discourse_connect_users')).toEqual([]);
    // A signed-in handshake reads the member back from the same store.
    expect(h.forum.findByExternalId(migrated.id)).toMatchObject({ email: migrated.email });
  });

  it('a session store that fails gives a module route its error with the module security headers', async () => {
    h.discord.knobs.autoApproveAs = migrated.id;
    const browser = new TestBrowser();
    await browser.visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    const store = h.app.get(DiscourseConnectSessions).store as CountingSessionStore;
    store.failReads = true;
    try {
      const res = await browser.request(`${h.appUrl}/discourse/forum`, { redirect: 'manual' });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(await res.text()).not.toContain('unreachable');
    } finally {
      store.failReads = false;
    }
  });

  it('forget removes the member from the host store through its delete()', async () => {
    const store = h.app.get<MapUserStore>(DiscourseConnectUserStore);
    h.discord.knobs.autoApproveAs = migrated.id;
    await new TestBrowser().visit(`${h.forum.baseUrl}/session/sso?return_path=%2F`);
    expect(store.users.has(migrated.id)).toBe(true);
    const report = await h.app.get(DiscourseMemberLifecycle).forget(migrated.id);
    expect(report.userRecord).toBe('deleted');
    expect(store.users.has(migrated.id)).toBe(false);
  });

  it('keeps sessions in the host class the module instantiated, not in its own table', async () => {
    const store = h.app.get(DiscourseConnectSessions).store as CountingSessionStore;
    expect(store).toBeInstanceOf(CountingSessionStore);
    expect(store.settings).toBeInstanceOf(DiscourseConnectSettings);
    expect(store.writes).toBeGreaterThan(0);
    expect(await h.app.get(DataSource).query('SELECT * FROM discourse_connect_sessions')).toEqual(
      [],
    );
  });
});

/** A host's own sync queue, given as a class: jobs land here; the host's worker delivers them. */
@Injectable()
class ArraySyncQueue extends DiscourseConnectSyncQueue {
  readonly jobs: { kind: DiscourseConnectSyncJobKind; discordId: string; forum?: string }[] = [];
  initialised = false;

  constructor(readonly delivery: DiscourseConnectSyncDelivery) {
    super();
  }

  onModuleInit(): void {
    this.initialised = true;
  }

  async enqueue(
    kind: DiscourseConnectSyncJobKind,
    discordId: string,
    options?: { forum?: string },
  ) {
    this.jobs.push({ kind, discordId, forum: options?.forum });
  }

  async counts() {
    return { pending: this.jobs.length, running: 0, failed: 0 };
  }

  async failed() {
    return [];
  }

  async retryFailed() {
    return 0;
  }

  /** The host's worker: delivers every job to each forum, with the module's delivery. */
  async drain(forum: string): Promise<void> {
    for (const job of this.jobs.splice(0))
      await this.delivery.deliver({ ...job, forum: job.forum ?? forum });
  }
}

describe.each(HTTP_ADAPTERS)('the syncQueue option (%s)', (adapter) => {
  const { migrated } = DISCORD_FIXTURES;
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness('forRoot', {
      adapter,
      forumOptions: { apiKey: API_KEY, apiRateLimitPerMinute: 0 },
      moduleOptions: (options) => ({
        ...options,
        forums: options.forums.map((f) => ({ ...f, api: { key: API_KEY } })),
        sync: { onFirstSignIn: true },
        syncQueue: ArraySyncQueue,
      }),
    });
  });

  afterAll(() => h.close());

  it('sends jobs to the host queue, whose worker delivers them; the module queue stays empty', async () => {
    const queue = h.app.get<{ host: ArraySyncQueue }>(DiscourseConnectSyncQueue).host;
    expect(queue).toBeInstanceOf(ArraySyncQueue);
    expect(queue.initialised).toBe(true); // the module ran the lifecycle hooks of the class it created
    h.discord.knobs.autoApproveAs = migrated.id;
    const page = await new TestBrowser().visit(
      `${h.forum.baseUrl}/session/sso?return_path=%2Ft%2Fwelcome%2F1`,
    );
    expect(page.status).toBe(200);
    // sync.onFirstSignIn: the first sign-in creates the forum account (a create job).
    expect(queue.jobs).toEqual([{ kind: 'create', discordId: migrated.id, forum: undefined }]);
    expect(await h.app.get(DiscourseConnectSyncQueue).counts()).toEqual({
      pending: 1,
      running: 0,
      failed: 0,
    });
    expect(await h.app.get(DataSource).query('SELECT * FROM discourse_connect_sync_jobs')).toEqual(
      [],
    );
    const before = h.forum.stats.syncSsoCalls;
    await queue.drain(h.app.get(DiscourseConnectSettings).forums[0].name);
    expect(h.forum.stats.syncSsoCalls).toBe(before + 1);
  });
});
