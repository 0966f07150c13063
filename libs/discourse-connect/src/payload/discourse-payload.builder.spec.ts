import { Logger } from '@nestjs/common';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import type {
  DiscourseConnectGroupsOptions,
  DiscourseConnectModuleOptions,
} from '../discourse-connect-options.interface';
import { decodePayload, verifySignature, type DiscourseConnectPayload } from '../protocol';
import { DiscoursePayloadBuilder, MemberCannotBeSyncedError } from './discourse-payload.builder';
import { HttpException } from '@nestjs/common';
import { FilterFailedError } from '../hooks/filter-failed.error';
import { filtersFixture, memberFixture } from '../../test-support/fixtures';

const SECRET = 'forum-secret-0123456789';
const ROLE_MOD = '111';
const ROLE_VIP = '222';
const ROLE_OTHER = '333';

function options(groups?: Partial<DiscourseConnectGroupsOptions>): DiscourseConnectModuleOptions {
  return {
    forums: [{ url: 'https://forum.example.com/', secret: SECRET, name: 'main' }],
    discord: { clientId: 'client-id', clientSecret: 'client-secret' },
    publicUrl: 'https://app.example.com/',
    session: { secret: 's'.repeat(32) },
    ...(groups
      ? {
          groups: {
            guildId: '999',
            roleGroups: { [ROLE_MOD]: 'moderators_club', [ROLE_VIP]: 'vip' },
            ...groups,
          },
        }
      : {}),
  };
}

function settings(groups?: Partial<DiscourseConnectGroupsOptions>): DiscourseConnectSettings {
  return new DiscourseConnectSettings(options(groups));
}

const newFilters = filtersFixture;
const user = memberFixture;

function setup(groups?: Partial<DiscourseConnectGroupsOptions>) {
  const s = settings(groups);
  const filters = newFilters();
  const builder = new DiscoursePayloadBuilder(s, filters);
  return { builder, filters, forum: s.forums[0] };
}

describe('DiscoursePayloadBuilder', () => {
  beforeEach(() => {
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });
  afterEach(() => jest.restoreAllMocks());

  it('describes a member with a verified email: external_id, email, names, avatar, the nonce', async () => {
    const { builder, forum } = setup();
    const payload = await builder.forSignIn(user(), forum, 'cb68251eefb5211e58c00ff1395f0c0b');
    expect(payload).toEqual({
      nonce: 'cb68251eefb5211e58c00ff1395f0c0b',
      external_id: '80351110224678912',
      email: 'nelly@example.com',
      username: 'nelly',
      name: 'Nelly',
      avatar_url: expect.stringMatching(/^https:\/\/cdn\.discordapp\.com\//),
      require_activation: undefined,
    });
  });

  it("sends a username Discourse accepts, the same at every sign-in and sync, within the forum's lengths", async () => {
    const { builder, forum } = setup();
    const member = user({ username: 'Ünïcødé 🔥 name with thirty-two ch' });
    const first = await builder.forSignIn(member, forum, 'n1');
    expect(first.username).toMatch(/^Unicde_name_wit_[0-9a-z]{4}$/);
    expect((await builder.forSignIn(member, forum, 'n2')).username).toBe(first.username);
    expect((await builder.forSync(member, forum)).username).toBe(first.username);

    const s = new DiscourseConnectSettings({
      ...options(),
      sso: { minUsernameLength: 6, maxUsernameLength: 10 },
    });
    const short = new DiscoursePayloadBuilder(s, newFilters());
    expect((await short.forSignIn(user(), s.forums[0], 'n1')).username).toMatch(
      /^nelly_[0-9a-z]{4}$/,
    );
    expect(
      (await short.forSignIn(user({ username: 'averylongname' }), s.forums[0], 'n1')).username,
    ).toMatch(/^avery_[0-9a-z]{4}$/);
  });

  it('lets an sso.payload filter choose the username', async () => {
    const { builder, filters, forum } = setup();
    filters.add('sso.payload', (p, ctx) => ({ ...p, username: `member_${ctx.user.discordId}` }));
    expect((await builder.forSignIn(user(), forum, 'n1')).username).toBe(
      'member_80351110224678912',
    );
  });

  it('a sync payload has no nonce at all, and the same fields otherwise', async () => {
    const { builder, forum } = setup();
    const sync = await builder.forSync(user(), forum);
    expect('nonce' in sync).toBe(false);
    const { nonce, ...signIn } = await builder.forSignIn(user(), forum, 'n1');
    expect(nonce).toBe('n1');
    expect(sync).toEqual(signIn);
    expect(decodePayload(builder.sign(sync, forum).sso)).not.toHaveProperty('nonce');
  });

  it.each(['forSignIn', 'forSync'] as const)(
    '%s: an unverified email always goes out with require_activation=true',
    async (path) => {
      const { builder, forum } = setup();
      const member = user({ emailVerified: false });
      const payload =
        path === 'forSignIn'
          ? await builder.forSignIn(member, forum, 'n1')
          : await builder.forSync(member, forum);
      expect(payload.require_activation).toBe(true);
      expect(decodePayload(builder.sign(payload, forum).sso).require_activation).toBe('true');
    },
  );

  it.each([
    ['deletes it', (p: DiscourseConnectPayload) => ({ ...p, require_activation: undefined })],
    ['sets it to false', (p: DiscourseConnectPayload) => ({ ...p, require_activation: false })],
    ['rewrites the email', (p: DiscourseConnectPayload) => ({ ...p, email: 'other@example.com' })],
  ])(
    'an sso.payload filter that %s cannot drop require_activation for an unverified email',
    async (_n, filter) => {
      const { builder, filters, forum } = setup();
      filters.add('sso.payload', filter);
      for (const payload of [
        await builder.forSignIn(user({ emailVerified: false }), forum, 'n1'),
        await builder.forSync(user({ emailVerified: false }), forum),
      ]) {
        expect(payload.require_activation).toBe(true);
      }
    },
  );

  it('filters cannot change the external_id or the nonce, nor add a nonce to a sync', async () => {
    const { builder, filters, forum } = setup();
    filters.add('sso.payload', (p) => ({ ...p, external_id: '1', nonce: 'forged', title: 'T' }));
    expect(await builder.forSignIn(user(), forum, 'n1')).toMatchObject({
      external_id: '80351110224678912',
      nonce: 'n1',
      title: 'T',
    });
    const sync = await builder.forSync(user(), forum);
    expect(sync).toMatchObject({ external_id: '80351110224678912', title: 'T' });
    expect('nonce' in sync).toBe(false);
  });

  it('runs the discourse.groups filters before the sso.payload ones, each in priority order, with their contexts', async () => {
    const { builder, filters, forum } = setup({});
    const calls: string[] = [];
    filters.add(
      'sso.payload',
      (p, context) => {
        calls.push(`payload:late:${context.forum.name}`);
        return { ...p, title: `${p.title ?? ''}B` };
      },
      20,
    );
    filters.add(
      'sso.payload',
      (p) => {
        calls.push('payload:early');
        expect(p.add_groups).toEqual(['extra', 'vip']);
        return { ...p, title: 'A' };
      },
      5,
    );
    filters.add('discourse.groups', (groups, context) => {
      calls.push(`groups:${context.roles?.join(',')}:${context.managed.join(',')}`);
      return [...groups, 'extra'];
    });
    const payload = await builder.forSignIn(user({}, [ROLE_VIP]), forum, 'n1');
    expect(calls).toEqual(['groups:222:moderators_club,vip', 'payload:early', 'payload:late:main']);
    expect(payload.title).toBe('AB');
  });

  describe('groups from roles', () => {
    it('adds the wanted groups and removes the other managed ones, never unmanaged groups', async () => {
      const { builder, forum } = setup({});
      const payload = await builder.forSync(user({}, [ROLE_VIP, ROLE_OTHER]), forum);
      expect(payload.add_groups).toEqual(['vip']);
      expect(payload.remove_groups).toEqual(['moderators_club']);
      expect(payload.groups).toBeUndefined();
    });

    it('a member with no mapped role (or not in the guild) is removed from every managed group', async () => {
      const { builder, forum } = setup({});
      for (const roles of [[ROLE_OTHER], null]) {
        const payload = await builder.forSync(user({}, roles), forum);
        expect(payload.add_groups).toBeUndefined();
        expect(payload.remove_groups).toEqual(['moderators_club', 'vip']);
      }
    });

    it('a member with every mapped role is removed from none', async () => {
      const { builder, forum } = setup({});
      const payload = await builder.forSync(user({}, [ROLE_VIP, ROLE_MOD]), forum);
      expect(payload.add_groups).toEqual(['moderators_club', 'vip']);
      expect(payload.remove_groups).toBeUndefined();
    });

    it('with fullGroupList, sends the whole sorted list in groups instead', async () => {
      const { builder, forum } = setup({ fullGroupList: true });
      const payload = await builder.forSync(user({}, [ROLE_VIP, ROLE_MOD]), forum);
      expect(payload).toMatchObject({ groups: ['moderators_club', 'vip'] });
      expect(payload.add_groups).toBeUndefined();
      expect(payload.remove_groups).toBeUndefined();
      expect(decodePayload(builder.sign(payload, forum).sso).groups).toBe('moderators_club,vip');
    });

    it('without a groups configuration, sends no group field', async () => {
      const { builder, forum } = setup();
      const payload = await builder.forSync(user({}, [ROLE_VIP]), forum);
      expect(payload).not.toHaveProperty('groups');
      expect(payload).not.toHaveProperty('add_groups');
      expect(payload).not.toHaveProperty('remove_groups');
    });

    it('matches the filtered groups to the managed ones case-insensitively', async () => {
      const { builder, filters, forum } = setup({});
      filters.add('discourse.groups', () => ['VIP']);
      const payload = await builder.forSync(user({}, []), forum);
      expect(payload.add_groups).toEqual(['VIP']);
      expect(payload.remove_groups).toEqual(['moderators_club']);
    });
  });

  it('a member without an email cannot be described: a domain error, not an HTTP one', async () => {
    const { builder, forum } = setup();
    for (const attempt of [
      () => builder.forSync(user({ email: null }), forum),
      () => builder.forSignIn(user({ email: null }), forum, 'n1'),
    ]) {
      const error = await attempt().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MemberCannotBeSyncedError);
      expect(error).toMatchObject({
        code: 'discord_account_without_email',
        retryable: false,
        name: 'MemberCannotBeSyncedError',
      });
      expect(Object.getPrototypeOf(MemberCannotBeSyncedError.prototype)).toBe(Error.prototype);
      expect((error as Error).message).not.toMatch(/User Settings/);
    }
  });

  it('a host filter that throws stops a sync with a domain error, not a page', async () => {
    const { builder, forum, filters } = setup();
    filters.add('sso.payload', () => {
      throw new Error('plugin bug');
    });
    const error = await builder.forSync(user(), forum).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FilterFailedError);
    expect(error).not.toBeInstanceOf(HttpException);
  });

  it('signs with the forum secret, and refuses a payload Discourse would not accept with a domain error', async () => {
    const { builder, filters, forum } = setup();
    const signed = builder.sign(await builder.forSync(user(), forum), forum);
    expect(() => verifySignature(signed.sso, signed.sig, SECRET)).not.toThrow();

    filters.add('sso.payload', (p) => ({ ...p, add_groups: ['a,b'] }));
    const bad = await builder.forSync(user(), forum);
    let error: unknown;
    try {
      builder.sign(bad, forum);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MemberCannotBeSyncedError);
    expect(error).toMatchObject({ code: 'invalid_payload' });
  });
});
