import { EventEmitter2 } from '@nestjs/event-emitter';
import type { DataSource } from 'typeorm';
import { migratedSqlite, settingsFixture } from '../../test-support/fixtures';
import type { DiscourseAdminService } from '../admin/discourse-admin.service';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents } from '../hooks/discourse-connect.events';
import { DiscourseConnectSessionEntity } from '../session/discourse-connect-session.entity';
import { DiscourseConnectSessions } from '../session/sessions';
import { DatabaseSyncQueue } from '../sync/database-sync-queue';
import { DiscourseConnectSyncJobEntity } from '../sync/sync-job.entity';
import { DiscourseConnectForumLinkEntity } from '../users/forum-link.entity';
import { ForumLinks } from '../users/forum-links';
import { DiscourseConnectUserEntity } from '../users/discourse-connect-user.entity';
import { TypeOrmUserStore } from '../users/typeorm-user.store';
import { UsersService } from '../users/users.service';
import { DiscourseMemberLifecycle, MemberLifecycleError } from './member-lifecycle.service';

/**
 * The lifecycle service on a real (migrated SQLite) database, with a forum whose admin API is
 * switched off: what a webhook body alone may change, and the input it refuses.
 */
describe('DiscourseMemberLifecycle', () => {
  const ID = '123456789012345678';
  const FORUM = 'forum.example.com';
  let db: DataSource;
  let links: ForumLinks;
  let lifecycle: DiscourseMemberLifecycle;
  let sessions: DiscourseConnectSessions;
  const events: [string, unknown][] = [];

  /** Without `api`, the forum has no admin API key (the module cannot act on it). */
  let api = true;

  beforeEach(async () => {
    db = await migratedSqlite();
    // Session copies answer for a minute: a session that outlives `forget` in them would be seen.
    const session = { secret: 's'.repeat(32), readCacheMs: 60_000 };
    const settings = api
      ? settingsFixture({ session })
      : settingsFixture({
          session,
          forums: [{ url: 'https://forum.example.com/', secret: 'forum-secret-0123456789' }],
        });
    links = new ForumLinks(db.getRepository(DiscourseConnectForumLinkEntity));
    const emitter = new EventEmitter2();
    emitter.onAny((event, payload) => events.push([String(event), payload]));
    events.length = 0;
    const admin = {
      isEnabled: () => false,
      getUserByExternalId: jest.fn(),
      getUserByUsername: jest.fn(),
    } as unknown as DiscourseAdminService;
    lifecycle = new DiscourseMemberLifecycle(
      settings,
      admin,
      links,
      new UsersService(new TypeOrmUserStore(db.getRepository(DiscourseConnectUserEntity))),
      new DatabaseSyncQueue(db.getRepository(DiscourseConnectSyncJobEntity), settings),
      new DiscourseConnectActionsService(emitter),
      db.getRepository(DiscourseConnectSessionEntity),
      (sessions = new DiscourseConnectSessions(
        settings,
        db.getRepository(DiscourseConnectSessionEntity),
        null,
      )),
    );
    await links.record(FORUM, ID, { status: 'linked', account: { id: 7, username: 'nelly' } });
  });
  afterEach(async () => {
    sessions.onModuleDestroy();
    await db.destroy();
  });

  const body = (extra: Partial<{ suspendedTill: number | null; discordId: string | null }>) => ({
    id: 7,
    username: 'nelly',
    discordId: ID,
    suspendedTill: null,
    ...extra,
  });

  it("without an admin API to ask, a body's suspended_till is recorded, and its absence lifts it", async () => {
    const until = Date.now() + 60_000;
    await lifecycle.applyForumWebhook(FORUM, 'user_updated', body({ suspendedTill: until }));
    expect(await links.find(FORUM, ID)).toMatchObject({
      suspendedUntil: until,
      suspendedByModule: false,
    });
    await lifecycle.applyForumWebhook(FORUM, 'user_suspended', body({}));
    expect(await links.find(FORUM, ID)).toMatchObject({ suspendedUntil: null });
    expect(events.map(([name]) => name)).toEqual([
      DiscourseConnectEvents.ForumUserSuspended,
      DiscourseConnectEvents.ForumUserUnsuspended,
    ]);
  });

  it('a suspended_till in the past is no suspension', async () => {
    await lifecycle.applyForumWebhook(FORUM, 'user_suspended', body({ suspendedTill: 1000 }));
    expect(await links.find(FORUM, ID)).toMatchObject({ suspendedUntil: null });
    expect(events).toEqual([]);
  });

  it('a user_destroyed header or an anonymous-looking body cannot be confirmed: nothing changes', async () => {
    const before = await links.find(FORUM, ID);
    await lifecycle.applyForumWebhook(FORUM, 'user_destroyed', body({}));
    await lifecycle.applyForumWebhook(
      FORUM,
      'user_updated',
      body({ discordId: null, suspendedTill: null, ...{ username: 'anon123' } }),
    );
    expect(await links.find(FORUM, ID)).toEqual(before);
    expect(events).toEqual([]);
  });

  describe('on a forum without an admin API key', () => {
    beforeAll(() => (api = false));
    afterAll(() => (api = true));

    it('forget says the account there was left, and still removes the local data', async () => {
      const report = await lifecycle.forget(ID);
      expect(report).toEqual({
        discordId: ID,
        userRecord: 'absent',
        forums: [{ forum: FORUM, action: 'anonymize', outcome: 'no-api-key' }],
      });
      expect(await links.find(FORUM, ID)).toBeNull();
    });

    it("forget signs the member out at once: their sessions and this process's copies of them end", async () => {
      const store = sessions.store;
      const cookie = { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) };
      const put = (sid: string, user: string) =>
        new Promise<void>((done, fail) =>
          store.set(sid, { cookie, passport: { user } } as never, (e) => (e ? fail(e) : done())),
        );
      const read = (sid: string) =>
        new Promise<unknown>((done, fail) =>
          store.get(sid, (e, data) => (e ? fail(e) : done(data ?? null))),
        );
      await put('mine-1', ID);
      await put('mine-2', ID);
      await put('other', '223456789012345678');
      expect(await read('mine-1')).toMatchObject({ passport: { user: ID } });
      expect(sessions.cachedMember('mine-1')).toBe(ID);

      await lifecycle.forget(ID);
      expect(sessions.cachedMember('mine-1')).toBeUndefined();
      expect(await read('mine-1')).toBeNull();
      expect(await read('mine-2')).toBeNull();
      expect(await read('other')).toMatchObject({ passport: { user: '223456789012345678' } });
      expect(await db.getRepository(DiscourseConnectSessionEntity).count()).toBe(1);
    });
  });

  it('refuses what is not a Discord id, and a suspension ending in the past', async () => {
    await expect(lifecycle.forget('12ab')).rejects.toBeInstanceOf(MemberLifecycleError);
    await expect(lifecycle.unsuspend('')).rejects.toBeInstanceOf(MemberLifecycleError);
    await expect(lifecycle.suspend(ID, { until: new Date(Date.now() - 1000) })).rejects.toThrow(
      'in the future',
    );
  });
});
