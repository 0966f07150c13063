import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { discourseConnectOptionsFromEnv } from './discourse-connect.config';
import { VANILLA_FORUM_ENV_ENTRIES } from './discourse-connect.schema';
import { DiscourseConnectSettings } from './discourse-connect.settings';
import type { DiscourseConnectModuleOptions } from '../discourse-connect-options.interface';
import { envBootError, oneForumEnvFixture, settingsFromEnv } from '../../test-support/fixtures';

const VANILLA_SECRET = 'vanilla-secret-0123456789';
const OTHER_SECRET = 'other-vanilla-secret-012345';

const oneVanilla = (): Record<string, string> => ({
  ...oneForumEnvFixture(),
  VANILLA_URL: 'https://community.example.com/',
  VANILLA_CLIENT_ID: 'client-1',
  VANILLA_SECRET,
});

const bootError = (env: Record<string, string>) =>
  envBootError(env, [VANILLA_SECRET, OTHER_SECRET]);

describe('Vanilla forums from the environment', () => {
  it('reads one forum with its defaults: HS256, the default sign-in method, role Member, no guests', () => {
    const settings = settingsFromEnv(oneVanilla());
    expect(settings.vanilla).toEqual({
      forums: [
        {
          name: 'community.example.com',
          url: 'https://community.example.com',
          origin: 'https://community.example.com',
          path: '',
          clientId: 'client-1',
          secret: VANILLA_SECRET,
          algorithm: 'HS256',
          roleMap: undefined,
          defaultSignIn: true,
        },
      ],
      defaultRole: 'Member',
      guests: false,
      sendUnverifiedEmail: false,
      signOutThroughForum: false,
    });
  });

  it.each([
    ['VANILLA_URL', 'https://community.example.com/discussions'],
    ['VANILLA_URL', 'https://community.example.com/forum/discussion/12/hello'],
    ['VANILLA_URL', 'https://community.example.com/entry/signin'],
    ['VANILLA_URL', 'https://community.example.com/index.php'],
    ['VANILLA_FORUM_TEAM_URL', 'https://team.example.com/categories/general'],
  ])('refuses %s pointing at a forum page (%s), naming the variable', (variable, url) => {
    const env: Record<string, string> =
      variable === 'VANILLA_URL'
        ? { ...oneVanilla(), VANILLA_URL: url }
        : {
            ...oneForumEnvFixture(),
            VANILLA_FORUM_TEAM_URL: url,
            VANILLA_FORUM_TEAM_CLIENT_ID: 'team',
            VANILLA_FORUM_TEAM_SECRET: OTHER_SECRET,
          };
    expect(bootError(env)).toContain(`${variable} points at a Vanilla forum page`);
  });

  it('accepts a forum in a subfolder', () => {
    const settings = settingsFromEnv({
      ...oneVanilla(),
      VANILLA_URL: 'https://example.com/community',
    });
    expect(settings.vanilla?.forums[0].url).toBe('https://example.com/community');
  });

  it('has no Vanilla settings without the variables', () => {
    expect(settingsFromEnv(oneForumEnvFixture()).vanilla).toBeUndefined();
  });

  it('reads the options of the single forum and the ones of every forum', () => {
    const settings = settingsFromEnv({
      ...oneVanilla(),
      DISCORD_GUILD_ID: '999',
      VANILLA_ROLE_MAP: '111=Member, 222=Super Moderator',
      VANILLA_ALGORITHM: 'HS512',
      VANILLA_DEFAULT_SIGN_IN: 'false',
      VANILLA_DEFAULT_ROLE: 'Applicant',
      VANILLA_GUESTS: 'true',
      VANILLA_SEND_UNVERIFIED_EMAIL: 'true',
      VANILLA_SIGN_OUT_THROUGH_FORUM: 'true',
    });
    expect(settings.afterLocalSignOutUrl).toBe(
      'https://community.example.com/entry/signout?target=http%3A%2F%2Flocalhost%3A3000%2F',
    );
    expect(settings.vanilla!.forums[0]).toMatchObject({
      roleMap: { 111: 'Member', 222: 'Super Moderator' },
      algorithm: 'HS512',
      defaultSignIn: false,
    });
    expect(settings.vanilla).toMatchObject({
      defaultRole: 'Applicant',
      guests: true,
      sendUnverifiedEmail: true,
    });
    // A Vanilla role map alone needs the Discord server, not a Discourse group map.
    expect(settings.groups).toMatchObject({ guildId: '999', roleGroups: {} });
    expect(settings.discord.scopes).toContain('guilds.members.read');
  });

  it('reads several forums from VANILLA_FORUM_<NAME>_*, the single one named default', () => {
    const options = discourseConnectOptionsFromEnv({
      ...oneVanilla(),
      DISCORD_GUILD_ID: '999',
      VANILLA_FORUM_STAFF_URL: 'https://staff.example.com',
      VANILLA_FORUM_STAFF_CLIENT_ID: 'client-2',
      VANILLA_FORUM_STAFF_SECRET: OTHER_SECRET,
      VANILLA_FORUM_STAFF_ROLE_MAP: '333=Staff',
      VANILLA_FORUM_STAFF_ALGORITHM: 'HS384',
      VANILLA_FORUM_STAFF_DEFAULT_SIGN_IN: 'false',
    });
    expect(options.vanilla!.forums).toEqual([
      {
        name: 'default',
        url: 'https://community.example.com/',
        clientId: 'client-1',
        secret: VANILLA_SECRET,
      },
      {
        name: 'staff',
        url: 'https://staff.example.com',
        clientId: 'client-2',
        secret: OTHER_SECRET,
        roleMap: { 333: 'Staff' },
        algorithm: 'HS384',
        defaultSignIn: false,
      },
    ]);
    const settings = new DiscourseConnectSettings(options);
    expect(settings.vanillaForumByName('staff')!.clientId).toBe('client-2');
    expect(settings.vanillaForumByName()!.name).toBe('default');
  });

  it('runs with Vanilla forums only, without any Discourse forum', () => {
    const { DISCOURSE_URL: _url, DISCOURSE_CONNECT_SECRET: _secret, ...env } = oneVanilla();
    const options = discourseConnectOptionsFromEnv(env);
    expect(options.forums).toEqual([]);
    const settings = new DiscourseConnectSettings(options);
    expect(settings.forums).toEqual([]);
    expect(settings.vanillaForumByName()!.clientId).toBe('client-1');
    // Neither kind of forum: the Discourse variables are missing.
    const { VANILLA_URL: _v, VANILLA_CLIENT_ID: _c, VANILLA_SECRET: _s, ...none } = env;
    expect(bootError(none)).toContain('DISCOURSE_URL is not set');
    expect(() => new DiscourseConnectSettings({ ...options, vanilla: undefined })).toThrow(
      'forums must list at least one Discourse forum',
    );
  });

  it('accepts VANILLA_FORUM_<NAME>_* forums alone', () => {
    const settings = settingsFromEnv({
      ...oneForumEnvFixture(),
      VANILLA_GUESTS: 'true',
      VANILLA_FORUM_ONE_URL: 'https://one.example.com',
      VANILLA_FORUM_ONE_CLIENT_ID: 'one',
      VANILLA_FORUM_ONE_SECRET: VANILLA_SECRET,
    });
    expect(settings.vanilla!.forums.map((f) => f.name)).toEqual(['one']);
    expect(settings.vanilla!.guests).toBe(true);
  });

  it.each([
    [
      'the connection variables without the secret',
      { ...oneForumEnvFixture(), VANILLA_URL: 'https://v.example.com', VANILLA_CLIENT_ID: 'c' },
      'VANILLA_SECRET is not set: VANILLA_URL, VANILLA_CLIENT_ID, VANILLA_SECRET go together',
    ],
    [
      'a role map without DISCORD_GUILD_ID',
      { ...oneVanilla(), VANILLA_ROLE_MAP: '1=Member' },
      'VANILLA_ROLE_MAP needs DISCORD_GUILD_ID',
    ],
    [
      "a forum's role map without DISCORD_GUILD_ID",
      {
        ...oneForumEnvFixture(),
        VANILLA_FORUM_A_URL: 'https://a.example.com',
        VANILLA_FORUM_A_CLIENT_ID: 'a',
        VANILLA_FORUM_A_SECRET: VANILLA_SECRET,
        VANILLA_FORUM_A_ROLE_MAP: '1=Member',
      },
      'VANILLA_FORUM_A_ROLE_MAP needs DISCORD_GUILD_ID',
    ],
    [
      'an unknown forum variable',
      { ...oneVanilla(), VANILLA_FORUM_A_API_KEY: 'x' },
      "VANILLA_FORUM_A_API_KEY is not a variable of this module: a Vanilla forum's variables are VANILLA_FORUM_<NAME>_URL",
    ],
    [
      'a forum without its secret',
      {
        ...oneForumEnvFixture(),
        VANILLA_FORUM_A_URL: 'https://a.example.com',
        VANILLA_FORUM_A_CLIENT_ID: 'a',
      },
      'VANILLA_FORUM_A_SECRET is not set',
    ],
    [
      'a global option without a forum',
      { ...oneForumEnvFixture(), VANILLA_GUESTS: 'true' },
      'VANILLA_GUESTS is set but no Vanilla forum is',
    ],
    [
      'an algorithm Vanilla signs with a key pair',
      { ...oneVanilla(), VANILLA_ALGORITHM: 'RS256' },
      'VANILLA_ALGORITHM is invalid: it must be HS256, HS384 or HS512',
    ],
    ['alg none', { ...oneVanilla(), VANILLA_ALGORITHM: 'none' }, 'VANILLA_ALGORITHM is invalid'],
    [
      'a short secret',
      { ...oneVanilla(), VANILLA_SECRET: 'short' },
      'VANILLA_SECRET is invalid: it must be',
    ],
    [
      'a role name with a comma in the map',
      { ...oneVanilla(), DISCORD_GUILD_ID: '9', VANILLA_ROLE_MAP: '1=Member,Staff' },
      'VANILLA_ROLE_MAP is invalid',
    ],
    [
      'two forums with one client id',
      {
        ...oneVanilla(),
        VANILLA_FORUM_B_URL: 'https://b.example.com',
        VANILLA_FORUM_B_CLIENT_ID: 'client-1',
        VANILLA_FORUM_B_SECRET: OTHER_SECRET,
      },
      'Vanilla forums "default" and "b" have the same client id',
    ],
  ])('stops the boot on %s', (_what, env, expected) => {
    expect(bootError(env)).toContain(expected);
  });

  it('stops forRoot options that break a rule, naming the option', () => {
    const base: DiscourseConnectModuleOptions = discourseConnectOptionsFromEnv(oneVanilla());
    const withVanilla = (vanilla: unknown) =>
      (() => new DiscourseConnectSettings({ ...base, vanilla } as DiscourseConnectModuleOptions))();
    const withOneForum = (forum: Record<string, unknown>) =>
      withVanilla({
        forums: [{ url: 'https://v.example.com', clientId: 'c', secret: VANILLA_SECRET, ...forum }],
      });
    expect(() => withVanilla({ forums: [] })).toThrow('vanilla.forums must list at least one');
    expect(() => withOneForum({ roleMap: { 1: 'Member' } })).toThrow(
      'vanilla.forums[0].roleMap needs groups',
    );
    expect(() => withOneForum({ algorithm: 'none' })).toThrow(
      'vanilla.forums[0].algorithm must be HS256, HS384 or HS512',
    );
    expect(() =>
      withVanilla({
        forums: [
          { url: 'https://v.example.com/a', clientId: 'c', secret: VANILLA_SECRET },
          { url: 'https://v.example.com/a/b', clientId: 'd', secret: OTHER_SECRET, name: 'b' },
        ],
      }),
    ).toThrow('overlap');
  });

  it('has one README row per Vanilla forum variable, and no row without one', () => {
    const readme = readFileSync(join(__dirname, '..', '..', '..', '..', 'README.md'), 'utf8');
    const table = readme
      .split(/\n\s*\n/)
      .find((block) => block.trimStart().startsWith('| Vanilla forum variable '))!
      .trim()
      .split('\n')
      .slice(2)
      .map((row) => row.split('|').slice(1, 3));
    const rows = table.map(([name, required]) => [
      /`VANILLA_FORUM_<NAME>_([A-Z_]+)`/.exec(name)![1],
      required.trim() === 'yes',
    ]);
    expect(rows.sort()).toEqual(
      VANILLA_FORUM_ENV_ENTRIES.map((f) => [f.suffix, f.required]).sort(),
    );
  });
});
