import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { DiscourseConnectModuleOptions } from '../discourse-connect-options.interface';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents } from '../hooks/discourse-connect.events';
import { DiscourseConnectForumLinkEntity } from '../users/forum-link.entity';
import { ForumLinks } from '../users/forum-links';
import type { LocalUser } from '../users/local-user.interface';
import {
  filtersFixture,
  memberFixture,
  migratedSqlite,
  settingsFixture,
} from '../../test-support/fixtures';
import { DiscoursePayloadBuilder } from './discourse-payload.builder';
import { DiscourseConnectStaffFlags, NO_STAFF_GRANTS, planStaffFlags } from './staff-flags';

const ADMIN_ROLE = '501';
const MOD_ROLE = '502';
const OTHER_ROLE = '503';

function settings(groups: Partial<NonNullable<DiscourseConnectModuleOptions['groups']>> = {}) {
  return settingsFixture({
    groups: { guildId: '999', adminRoles: [ADMIN_ROLE], moderatorRoles: [MOD_ROLE], ...groups },
  });
}

/** A member holding `roles`, with two-factor authentication on unless `mfa` is false. */
function member(roles: string[], mfa = true): LocalUser {
  return memberFixture({ mfaEnabled: mfa }, roles);
}

describe('planStaffFlags (the staff-flag policy)', () => {
  const forum = settings().forums[0];

  it('grants the flag of a role the member holds, with two-factor authentication on', () => {
    const plan = planStaffFlags(member([ADMIN_ROLE]), forum, true, NO_STAFF_GRANTS);
    expect(plan.fields).toEqual({ admin: true });
    expect(plan.grants).toEqual({ admin: true, moderator: false });
    expect(plan.changes).toEqual([{ flag: 'admin', granted: true }]);
  });

  it('keeps sending a flag it granted while the role stays, with no change to report', () => {
    const plan = planStaffFlags(member([MOD_ROLE]), forum, true, {
      admin: false,
      moderator: true,
    });
    expect(plan.fields).toEqual({ moderator: true });
    expect(plan.changes).toEqual([]);
  });

  it('takes back only a flag it granted: false for its own, nothing for the other', () => {
    const plan = planStaffFlags(member([OTHER_ROLE]), forum, true, {
      admin: true,
      moderator: false,
    });
    expect(plan.fields).toEqual({ admin: false });
    expect(plan.grants).toEqual({ admin: false, moderator: false });
    expect(plan.changes).toEqual([{ flag: 'admin', granted: false }]);
  });

  it('never sends false to staff the forum made: without a recorded grant the fields are left out', () => {
    const plan = planStaffFlags(member([]), forum, true, NO_STAFF_GRANTS);
    expect(plan.fields).toEqual({});
    expect('admin' in plan.fields || 'moderator' in plan.fields).toBe(false);
    expect(plan.changes).toEqual([]);
  });

  it('without two-factor authentication: no flag, and a granted one is taken back', () => {
    // Off, and unknown (a host's user store without the field).
    for (const user of [member([ADMIN_ROLE], false), memberFixture({}, [ADMIN_ROLE])]) {
      expect(planStaffFlags(user, forum, true, NO_STAFF_GRANTS).fields).toEqual({});
    }
    const revoked = planStaffFlags(member([ADMIN_ROLE, MOD_ROLE], false), forum, true, {
      admin: true,
      moderator: true,
    });
    expect(revoked.fields).toEqual({ admin: false, moderator: false });
  });

  it('with the requirement off, roles alone grant the flags', () => {
    const plan = planStaffFlags(
      member([ADMIN_ROLE, MOD_ROLE], false),
      forum,
      false,
      NO_STAFF_GRANTS,
    );
    expect(plan.fields).toEqual({ admin: true, moderator: true });
  });

  it("a forum's own role lists replace the shared ones", () => {
    const s = settingsFixture({
      forums: [
        { url: 'https://a.example.com', secret: 'forum-secret-aaaaaaaa', name: 'a' },
        {
          url: 'https://b.example.com',
          secret: 'forum-secret-bbbbbbbb',
          name: 'b',
          adminRoles: [OTHER_ROLE],
        },
      ],
      groups: { guildId: '999', adminRoles: [ADMIN_ROLE], moderatorRoles: [MOD_ROLE] },
    });
    const [a, b] = s.forums;
    expect(b.staffRoles).toEqual({ admin: [OTHER_ROLE], moderator: [MOD_ROLE] });
    expect(planStaffFlags(member([ADMIN_ROLE]), a, true, NO_STAFF_GRANTS).fields).toEqual({
      admin: true,
    });
    expect(planStaffFlags(member([ADMIN_ROLE]), b, true, NO_STAFF_GRANTS).fields).toEqual({});
  });
});

describe('the payload builder with staff flags', () => {
  beforeEach(() => jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined));
  afterEach(() => jest.restoreAllMocks());

  it("carries the plan's flags, and an sso.payload filter cannot change them on a forum with staff roles", async () => {
    const s = settings();
    const filters = filtersFixture();
    filters.add('sso.payload', (p) => ({ ...p, admin: false, moderator: true }));
    const builder = new DiscoursePayloadBuilder(s, filters);
    const forum = s.forums[0];
    const plan = planStaffFlags(member([ADMIN_ROLE]), forum, true, NO_STAFF_GRANTS);
    const payload = await builder.forSync(member([ADMIN_ROLE]), forum, plan);
    expect(payload.admin).toBe(true);
    expect('moderator' in payload).toBe(false);
    expect((await builder.forSignIn(member([]), forum, 'n'.repeat(32))).admin).toBeUndefined();
  });

  it('leaves a filter its flags on a forum without staff roles', async () => {
    const s = settingsFixture();
    const filters = filtersFixture();
    filters.add('sso.payload', (p) => ({ ...p, moderator: true }));
    const builder = new DiscoursePayloadBuilder(s, filters);
    const plan = planStaffFlags(member([]), s.forums[0], true, NO_STAFF_GRANTS);
    expect((await builder.forSync(member([]), s.forums[0], plan)).moderator).toBe(true);
  });
});

describe('DiscourseConnectStaffFlags (the record of granted flags, real SQLite)', () => {
  let dataSource: DataSource;
  let links: ForumLinks;
  let emitted: { event: string; payload: object }[];
  let staff: DiscourseConnectStaffFlags;
  const s = settings();
  const forum = s.forums[0];
  const id = memberFixture().discordId;

  beforeEach(async () => {
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    dataSource = await migratedSqlite();
    links = new ForumLinks(dataSource.getRepository(DiscourseConnectForumLinkEntity));
    emitted = [];
    const actions = new DiscourseConnectActionsService();
    jest.spyOn(actions, 'emit').mockImplementation((event, payload) => {
      emitted.push({ event, payload });
    });
    staff = new DiscourseConnectStaffFlags(s, actions, links);
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await dataSource.destroy();
  });

  it('a handshake records grants and take-backs before the payload leaves, and reports each', async () => {
    const granted = await staff.plan(member([ADMIN_ROLE, MOD_ROLE]), forum);
    expect(await staff.recordHandshake(granted)).toBe(true);
    expect(await links.staffGrants(forum.name, id)).toEqual({ admin: true, moderator: true });
    expect(await links.find(forum.name, id)).toMatchObject({ status: 'linked' });

    const revoked = await staff.plan(member([MOD_ROLE]), forum);
    expect(revoked.fields).toEqual({ admin: false, moderator: true });
    await staff.recordHandshake(revoked);
    expect(await links.staffGrants(forum.name, id)).toEqual({ admin: false, moderator: true });
    const changed = (flag: 'admin' | 'moderator', granted: boolean) => ({
      event: DiscourseConnectEvents.StaffChanged,
      payload: { forum: forum.name, discordId: id, flag, granted, via: 'handshake' },
    });
    expect(emitted).toEqual([
      changed('admin', true),
      changed('moderator', true),
      changed('admin', false),
    ]);
    // The next sign-in with no role left sends false only for the flag still recorded.
    expect((await staff.plan(member([]), forum)).fields).toEqual({ moderator: false });
  });

  it('a sync records a grant before the call, and clears a take-back only after the forum accepted it', async () => {
    await links.changeStaffGrant(forum.name, id, 'admin', true);
    const plan = await staff.plan(member([MOD_ROLE]), forum);
    expect(plan.fields).toEqual({ admin: false, moderator: true });
    const granted = await staff.beforeSync(plan);
    // Before the forum answered: the new grant is recorded, the flag being taken back still is.
    expect(await links.staffGrants(forum.name, id)).toEqual({ admin: true, moderator: true });
    expect(emitted).toEqual([]);
    await staff.afterSync(plan, granted);
    expect(await links.staffGrants(forum.name, id)).toEqual({ admin: false, moderator: true });
    expect(emitted.map((e) => e.payload)).toEqual([
      { forum: forum.name, discordId: id, flag: 'moderator', granted: true, via: 'sync' },
      { forum: forum.name, discordId: id, flag: 'admin', granted: false, via: 'sync' },
    ]);
  });

  it('of two deliveries making the same change, one reports it', async () => {
    await links.changeStaffGrant(forum.name, id, 'admin', true);
    const first = await staff.plan(member([]), forum);
    const second = await staff.plan(member([]), forum);
    await staff.recordHandshake(first);
    await staff.afterSync(second, await staff.beforeSync(second));
    expect(emitted.map((e) => e.payload)).toEqual([
      { forum: forum.name, discordId: id, flag: 'admin', granted: false, via: 'handshake' },
    ]);
    expect(await links.staffGrants(forum.name, id)).toEqual({ admin: false, moderator: false });
  });

  it('a sign-in that cannot record the grant reports failure, so no flag goes out', async () => {
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    jest.spyOn(links, 'changeStaffGrant').mockRejectedValue(new Error('database is locked'));
    const plan = await staff.plan(member([ADMIN_ROLE]), forum);
    expect(await staff.recordHandshake(plan)).toBe(false);
    expect(emitted).toEqual([]);
  });

  it('reads no record when no forum has staff roles', async () => {
    const off = new DiscourseConnectStaffFlags(
      settingsFixture(),
      new DiscourseConnectActionsService(),
      links,
    );
    const read = jest.spyOn(links, 'staffGrants');
    expect(off.enabled).toBe(false);
    expect(
      await off.planFor(member([ADMIN_ROLE]), settingsFixture().forums[0].name),
    ).toBeUndefined();
    expect(read).not.toHaveBeenCalled();
  });
});
