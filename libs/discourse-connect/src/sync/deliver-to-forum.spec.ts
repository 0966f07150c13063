import { Logger } from '@nestjs/common';
import type { DiscourseAdminService } from '../admin/discourse-admin.service';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectStaffFlags } from '../payload/staff-flags';
import { DiscourseConnectForumLinkEntity } from '../users/forum-link.entity';
import { memberFixture, migratedSqlite, settingsFixture } from '../../test-support/fixtures';
import { FORUM_LINK_NOT_FOUND_TTL_MS, ForumLinks, type ForumLink } from '../users/forum-links';
import type { UsersService } from '../users/users.service';
import { deliverToForum } from './deliver-to-forum';
import type { SyncJobKind } from './sync-job.entity';

const ID = '123456789012345678';

/** A linked member whose forum account is suspended for another minute, by the module or not. */
const suspendedLink = (suspendedByModule: boolean): Partial<ForumLink> => ({
  status: 'linked',
  checkedAt: 0,
  suspendedByModule,
  suspendedUntil: Date.now() + 60_000,
});

function setup(link: Partial<ForumLink> | null, forumUser: { id: number } | null = null) {
  const recorded: unknown[] = [];
  const links = {
    find: jest.fn(async () =>
      link
        ? ({
            forum: 'f',
            discordId: ID,
            forumUserId: null,
            forumUsername: null,
            ...link,
          } as ForumLink)
        : null,
    ),
    record: jest.fn(async (...args: unknown[]) => void recorded.push(args)),
    recordSuspension: jest.fn(async (...args: unknown[]) => void recorded.push(args)),
  } as unknown as ForumLinks;
  const admin = {
    getUserByExternalId: jest.fn(async () => (forumUser ? { ...forumUser, username: 'u' } : null)),
    syncSso: jest.fn(async () => ({ id: 7, username: 'u' })),
    logOutByExternalId: jest.fn(async () => true),
    suspend: jest.fn(async () => ({ found: true, forumUserId: 7 })),
    unsuspend: jest.fn(async () => ({ found: true, forumUserId: 7 })),
  };
  const users = {
    findByDiscordId: jest.fn(async () => ({ discordId: ID })),
  } as unknown as UsersService;
  const run = (kind: SyncJobKind) =>
    deliverToForum(
      { kind, discordId: ID, forum: 'f' },
      users,
      admin as unknown as DiscourseAdminService,
      links,
      { suspendReason: 'Banned on Discord', suspendDays: 2 },
    );
  return { admin, links, recorded, run };
}

describe('deliverToForum: only forums where the member has an account', () => {
  it('syncs a linked member without asking the forum', async () => {
    const s = setup({ status: 'linked', checkedAt: 0 });
    expect(await s.run('sync')).toEqual({ done: true });
    expect(s.admin.getUserByExternalId).not.toHaveBeenCalled();
    expect(s.admin.syncSso).toHaveBeenCalledTimes(1);
  });

  it('writes the link after a sync only when the forum answered another account or name', async () => {
    const same = setup({ status: 'linked', checkedAt: 0, forumUserId: 7, forumUsername: 'u' });
    expect(await same.run('sync')).toEqual({ done: true });
    expect(same.links.record).not.toHaveBeenCalled();
    const renamed = setup({ status: 'linked', checkedAt: 0, forumUserId: 7, forumUsername: 'old' });
    await renamed.run('sync');
    expect(renamed.recorded).toEqual([
      ['f', ID, { status: 'linked', account: { id: 7, username: 'u' } }],
    ]);
    const anonymized = setup({
      status: 'linked',
      checkedAt: 0,
      forumUserId: 7,
      forumUsername: 'u',
      anonymizedAt: 1,
    });
    await anonymized.run('sync');
    expect(anonymized.links.record).toHaveBeenCalledTimes(1);
  });

  it('asks once about an unknown member, records "not found" and writes nothing', async () => {
    const s = setup(null);
    expect(await s.run('sync')).toMatchObject({ skipped: true });
    expect(s.admin.getUserByExternalId).toHaveBeenCalledTimes(1);
    expect(s.admin.syncSso).not.toHaveBeenCalled();
    expect(s.recorded).toEqual([
      ['f', ID, { status: 'not_found' }, { askedAt: expect.any(Number) }],
    ]);
  });

  it('asks about an unknown member, records the account found, and syncs', async () => {
    const s = setup(null, { id: 9 });
    expect(await s.run('sync')).toEqual({ done: true });
    expect(s.recorded[0]).toEqual([
      'f',
      ID,
      { status: 'linked', account: { id: 9, username: 'u' } },
      { askedAt: expect.any(Number) },
    ]);
    expect(s.admin.syncSso).toHaveBeenCalledTimes(1);
  });

  it('trusts a "not found" for a day, then asks again', async () => {
    const fresh = setup({ status: 'not_found', checkedAt: Date.now() - 1000 });
    expect(await fresh.run('logout')).toMatchObject({ skipped: true });
    expect(fresh.admin.getUserByExternalId).not.toHaveBeenCalled();
    expect(fresh.admin.logOutByExternalId).not.toHaveBeenCalled();
    const old = setup({
      status: 'not_found',
      checkedAt: Date.now() - FORUM_LINK_NOT_FOUND_TTL_MS - 1,
    });
    await old.run('sync');
    expect(old.admin.getUserByExternalId).toHaveBeenCalledTimes(1);
  });

  it('a create job skips the check and records the account it made', async () => {
    const s = setup({ status: 'not_found', checkedAt: Date.now() });
    expect(await s.run('create')).toEqual({ done: true });
    expect(s.admin.getUserByExternalId).not.toHaveBeenCalled();
    expect(s.admin.syncSso).toHaveBeenCalledTimes(1);
    expect(s.recorded).toEqual([
      ['f', ID, { status: 'linked', account: { id: 7, username: 'u' } }],
    ]);
  });
});

describe('deliverToForum: staff flags (real SQLite record)', () => {
  async function staffSetup(syncSso: () => Promise<unknown>) {
    const dataSource = await migratedSqlite();
    const links = new ForumLinks(dataSource.getRepository(DiscourseConnectForumLinkEntity));
    const settings = settingsFixture({
      groups: { guildId: '999', adminRoles: ['501'], staffRequireMfa: false },
    });
    const forum = settings.forums[0].name;
    const actions = new DiscourseConnectActionsService();
    const emitted: unknown[] = [];
    jest.spyOn(actions, 'emit').mockImplementation((_e, payload) => void emitted.push(payload));
    const staff = new DiscourseConnectStaffFlags(settings, actions, links);
    const member = memberFixture({}, []);
    const users = { findByDiscordId: async () => member } as unknown as UsersService;
    const admin = { syncSso: jest.fn(syncSso) };
    await links.changeStaffGrant(forum, member.discordId, 'admin', true);
    const run = () =>
      deliverToForum(
        { kind: 'sync', discordId: member.discordId, forum },
        users,
        admin as unknown as DiscourseAdminService,
        links,
        undefined,
        staff,
      );
    const grants = () => links.staffGrants(forum, member.discordId);
    return { dataSource, admin, run, grants, emitted };
  }

  beforeEach(() => jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined));
  afterEach(() => jest.restoreAllMocks());

  it('a role gone: sends admin=false and clears the record once the forum accepted it', async () => {
    const s = await staffSetup(async () => ({ id: 7, username: 'u' }));
    try {
      await s.run();
      expect(s.admin.syncSso).toHaveBeenCalledWith(expect.anything(), expect.any(String), {
        staff: expect.objectContaining({ fields: { admin: false } }),
      });
      expect(await s.grants()).toEqual({ admin: false, moderator: false });
      expect(s.emitted).toEqual([expect.objectContaining({ flag: 'admin', granted: false })]);
    } finally {
      await s.dataSource.destroy();
    }
  });

  it('a failed sync_sso keeps the grant recorded, so the retry takes it back', async () => {
    const s = await staffSetup(async () => {
      throw new Error('forum down');
    });
    try {
      await expect(s.run()).rejects.toThrow('forum down');
      expect(await s.grants()).toEqual({ admin: true, moderator: false });
      expect(s.emitted).toEqual([]);
    } finally {
      await s.dataSource.destroy();
    }
  });
});

// Member lifecycle: suspend / unsuspend jobs.
describe('deliverToForum: suspend and unsuspend jobs', () => {
  it("suspends for the configured days with the configured reason, recorded as the module's", async () => {
    const s = setup({ status: 'linked', checkedAt: 0 });
    const before = Date.now();
    expect(await s.run('suspend')).toEqual({ done: true });
    const [externalId, until, reason, forum] = s.admin.suspend.mock.calls[0] as unknown as [
      string,
      Date,
      string,
      string,
    ];
    expect([externalId, reason, forum]).toEqual([ID, 'Banned on Discord', 'f']);
    const days = (until.getTime() - before) / 86_400_000;
    expect(days).toBeGreaterThanOrEqual(2);
    expect(days).toBeLessThan(2.01);
    expect(s.recorded).toEqual([['f', ID, { until: until.getTime(), byModule: true }]]);
  });

  it('leaves a running suspension made by the forum staff alone', async () => {
    const s = setup(suspendedLink(false));
    expect(await s.run('suspend')).toMatchObject({ skipped: true });
    expect(s.admin.suspend).not.toHaveBeenCalled();
  });

  it('lifts only a suspension the module made', async () => {
    const staff = setup(suspendedLink(false));
    expect(await staff.run('unsuspend')).toMatchObject({ skipped: true });
    expect(staff.admin.unsuspend).not.toHaveBeenCalled();

    const own = setup(suspendedLink(true));
    expect(await own.run('unsuspend')).toEqual({ done: true });
    expect(own.admin.unsuspend).toHaveBeenCalledWith(ID, 'f');
    expect(own.recorded).toEqual([['f', ID, { until: null }]]);
  });

  it('does nothing for a member without an account on that forum', async () => {
    const s = setup({ status: 'not_found', checkedAt: Date.now() });
    expect(await s.run('suspend')).toMatchObject({ skipped: true });
    expect(s.admin.suspend).not.toHaveBeenCalled();
  });
});
