import { discourseConnectOptionsFromEnv, findCutEnvValues } from './discourse-connect.config';
import { DiscourseConnectSettings } from './discourse-connect.settings';
import { appEnvFixture, envBootError, settingsFromEnv } from '../../test-support/fixtures';

const SECRET_A = 'alpha-secret-0123456789';
const SECRET_B = 'bravo-secret-0123456789';
const API_KEY_A = 'alpha-api-key-0123';

/** Two forums, ALPHA and BRAVO. */
const twoForums = (): Record<string, string> => ({
  ...appEnvFixture(),
  DISCOURSE_FORUM_ALPHA_URL: 'https://alpha.example.com',
  DISCOURSE_FORUM_ALPHA_SECRET: SECRET_A,
  DISCOURSE_FORUM_ALPHA_API_KEY: API_KEY_A,
  DISCOURSE_FORUM_ALPHA_API_USERNAME: 'sync-bot',
  DISCOURSE_FORUM_ALPHA_API_RATE_PER_MINUTE: '240',
  DISCOURSE_FORUM_ALPHA_WEBHOOK_SECRET: 'alpha-webhook-secret',
  DISCOURSE_FORUM_BRAVO_URL: 'https://example.com/bravo',
  DISCOURSE_FORUM_BRAVO_SECRET: SECRET_B,
  DISCOURSE_FORUM_BRAVO_API_KEY: 'bravo-api-key-0123',
});

const SECRETS = [SECRET_A, SECRET_B, API_KEY_A, 'alpha-webhook-secret', 'x'.repeat(32)];

/** The boot error of an environment: the settings as the module builds them. */
const bootError = (env: Record<string, string>) => envBootError(env, SECRETS);

describe('several forums from the environment (DISCOURSE_FORUM_<NAME>_*)', () => {
  it('reads each forum, named by <NAME> in lower case, with its own API budget and group map', () => {
    const options = discourseConnectOptionsFromEnv({
      ...twoForums(),
      DISCORD_GUILD_ID: '999',
      DISCOURSE_GROUP_MAP: '222=members',
      DISCOURSE_FORUM_ALPHA_GROUP_MAP: '111=alpha-members',
      DISCOURSE_API_RATE_PER_MINUTE: '30',
    });
    expect(options.forums).toEqual([
      {
        name: 'alpha',
        url: 'https://alpha.example.com',
        secret: SECRET_A,
        api: { key: API_KEY_A, username: 'sync-bot', ratePerMinute: 240 },
        groupMap: { 111: 'alpha-members' },
        webhookSecret: 'alpha-webhook-secret',
      },
      {
        name: 'bravo',
        url: 'https://example.com/bravo',
        secret: SECRET_B,
        api: { key: 'bravo-api-key-0123' },
      },
    ]);
    const settings = new DiscourseConnectSettings(options);
    expect(settings.forumByName('alpha')!.api!.ratePerMinute).toBe(240);
    // The global budget is the default of a forum that sets none.
    expect(settings.forumByName('bravo')!.api!.ratePerMinute).toBe(30);
    expect(settings.forumByName('alpha')!.groups).toEqual({
      roleGroups: { 111: 'alpha-members' },
      managed: ['alpha-members'],
    });
    expect(settings.forumByName('bravo')!.groups).toBeUndefined();
    expect(settings.groups!.roleGroups).toEqual({ 222: 'members' });
  });

  it('needs no shared group map when every forum has its own', () => {
    const env = {
      ...twoForums(),
      DISCORD_GUILD_ID: '999',
      DISCOURSE_FORUM_ALPHA_GROUP_MAP: '111=alpha-members',
      DISCOURSE_FORUM_BRAVO_GROUP_MAP: '333=bravo-members',
    };
    const settings = settingsFromEnv(env);
    expect(settings.forumByName('bravo')!.groups!.roleGroups).toEqual({ 333: 'bravo-members' });
    expect(bootError({ ...twoForums(), DISCOURSE_FORUM_BRAVO_GROUP_MAP: '1=x' })).toMatch(
      /GROUP_MAP needs DISCORD_GUILD_ID/,
    );
  });

  it('keeps the single-forum variables as the forum named default next to other forums', () => {
    const options = discourseConnectOptionsFromEnv({
      ...twoForums(),
      DISCOURSE_URL: 'https://forum.example.com',
      DISCOURSE_CONNECT_SECRET: 'default-secret-0123456789',
    });
    expect(options.forums.map((f) => [f.name, f.url])).toEqual([
      ['default', 'https://forum.example.com'],
      ['alpha', 'https://alpha.example.com'],
      ['bravo', 'https://example.com/bravo'],
    ]);
    // Alone, they describe the one forum as before (named after its host).
    const alone = discourseConnectOptionsFromEnv({
      ...appEnvFixture(),
      DISCOURSE_URL: 'https://forum.example.com',
      DISCOURSE_CONNECT_SECRET: 'default-secret-0123456789',
    });
    expect(alone.forums).toEqual([
      { url: 'https://forum.example.com', secret: 'default-secret-0123456789' },
    ]);
  });

  it('stops on a variable starting DISCOURSE_FORUM_ that is not one, listing the accepted ones', () => {
    for (const name of [
      'DISCOURSE_FORUM_ALPHA_API_SECRET',
      'DISCOURSE_FORUM_alpha_URL',
      'DISCOURSE_FORUM_ALPHA',
      'DISCOURSE_FORUM_AL_PHA_URL',
    ]) {
      const message = bootError({ ...twoForums(), [name]: 'some-value-0123456789' });
      expect(message).toContain(`  - ${name} is not a variable of this module`);
      for (const suffix of [
        'URL',
        'SECRET',
        'API_KEY',
        'API_USERNAME',
        'API_RATE_PER_MINUTE',
        'GROUP_MAP',
        'WEBHOOK_SECRET',
      ]) {
        expect(message).toContain(`DISCOURSE_FORUM_<NAME>_${suffix}`);
      }
      expect(message).not.toContain('some-value-0123456789');
    }
  });

  it("checks each forum's variables by the schema's rules, in the one message", () => {
    const env = twoForums();
    delete env.DISCOURSE_FORUM_BRAVO_URL;
    const message = bootError({
      ...env,
      DISCOURSE_FORUM_ALPHA_SECRET: 'short',
      DISCOURSE_FORUM_ALPHA_API_RATE_PER_MINUTE: 'lots',
      DISCOURSE_FORUM_ALPHA_GROUP_MAP: 'members',
      SESSION_SECRET: 'short',
    });
    expect(message).toContain('  - DISCOURSE_FORUM_BRAVO_URL is not set: it must be the forum');
    expect(message).toContain(
      '  - DISCOURSE_FORUM_ALPHA_SECRET is invalid: it must be at least 10 characters',
    );
    expect(message).toContain('  - DISCOURSE_FORUM_ALPHA_API_RATE_PER_MINUTE is invalid');
    expect(message).toContain('  - DISCOURSE_FORUM_ALPHA_GROUP_MAP is invalid');
    expect(message).toContain('  - SESSION_SECRET is invalid');
    // With forums of their own, the single-forum variables are not missing.
    expect(message).not.toContain('DISCOURSE_URL');
    expect(message).not.toMatch(/\bshort\b|lots/);
  });

  it('stops on the single-forum variables mixed with DISCOURSE_FORUM_DEFAULT_*', () => {
    const message = bootError({
      ...appEnvFixture(),
      DISCOURSE_URL: 'https://forum.example.com',
      DISCOURSE_CONNECT_SECRET: SECRET_A,
      DISCOURSE_FORUM_DEFAULT_URL: 'https://other.example.com',
      DISCOURSE_FORUM_DEFAULT_SECRET: SECRET_B,
    });
    expect(message).toMatch(
      /DISCOURSE_FORUM_DEFAULT_\* and the single-forum variables \(DISCOURSE_URL, DISCOURSE_CONNECT_SECRET, .*\) both describe the forum named default: keep one of the two sets/,
    );
  });

  it('stops on two forums with the same secret, saying to give each its own', () => {
    const message = bootError({ ...twoForums(), DISCOURSE_FORUM_BRAVO_SECRET: SECRET_A });
    expect(message).toMatch(
      /forums "alpha" and "bravo" have the same secret: give each forum its own discourse_connect_secret/,
    );
  });

  it.each([
    ['the same URL', 'https://alpha.example.com/'],
    ['a subfolder of the other', 'https://alpha.example.com/community'],
  ])('stops on two forums whose URLs overlap (%s), saying how to fix it', (_, url) => {
    const message = bootError({ ...twoForums(), DISCOURSE_FORUM_BRAVO_URL: url });
    expect(message).toMatch(
      /forums "alpha" \(https:\/\/alpha\.example\.com\) and "bravo" \(.*\) overlap/,
    );
    expect(message).toMatch(/Give each forum its own base URL/);
  });

  it('accepts sibling subfolders and other hosts', () => {
    const env = {
      ...twoForums(),
      DISCOURSE_FORUM_ALPHA_URL: 'https://example.com/bravo2',
      DISCOURSE_FORUM_BRAVO_URL: 'https://example.com/bravo',
    };
    expect(() => settingsFromEnv(env)).not.toThrow();
  });

  it('checks each forum URL for the mistakes forum admins make, naming its variable', () => {
    expect(
      bootError({ ...twoForums(), DISCOURSE_FORUM_BRAVO_URL: 'https://bravo.example.com/latest' }),
    ).toMatch(/DISCOURSE_FORUM_BRAVO_URL points at a forum page/);
  });

  it('looks for values cut at # in the per-forum variables of a .env file', () => {
    expect(findCutEnvValues('DISCOURSE_FORUM_ALPHA_SECRET=abc#def')).toHaveLength(1);
  });
});

describe('staff roles and the role-based variables from the environment', () => {
  it('reads the shared and per-forum staff role lists and the two-factor requirement', () => {
    const settings = settingsFromEnv({
      ...twoForums(),
      DISCORD_GUILD_ID: '999',
      DISCOURSE_ADMIN_ROLES: '101, 102',
      DISCOURSE_MODERATOR_ROLES: '201',
      DISCOURSE_FORUM_BRAVO_ADMIN_ROLES: '301',
      DISCOURSE_STAFF_REQUIRE_MFA: 'false',
    });
    expect(settings.forumByName('alpha')!.staffRoles).toEqual({
      admin: ['101', '102'],
      moderator: ['201'],
    });
    expect(settings.forumByName('bravo')!.staffRoles).toEqual({
      admin: ['301'],
      moderator: ['201'],
    });
    expect(settings.groups).toMatchObject({ staffRequireMfa: false, roleGroups: {}, managed: [] });
  });

  it('requires two-factor authentication for staff flags unless told otherwise', () => {
    const settings = settingsFromEnv({
      ...twoForums(),
      DISCORD_GUILD_ID: '999',
      DISCOURSE_MODERATOR_ROLES: '201',
    });
    expect(settings.groups!.staffRequireMfa).toBe(true);
    expect(settings.forums[0].staffRoles.admin).toEqual([]);
  });

  it('asks for DISCORD_GUILD_ID with any role-based variable, naming each one set', () => {
    expect(bootError({ ...twoForums(), DISCOURSE_ADMIN_ROLES: '101' })).toContain(
      'DISCOURSE_ADMIN_ROLES needs DISCORD_GUILD_ID',
    );
    expect(
      bootError({
        ...twoForums(),
        DISCOURSE_MODERATOR_ROLES: '201',
        DISCOURSE_FORUM_ALPHA_ADMIN_ROLES: '301',
      }),
    ).toContain(
      'DISCOURSE_MODERATOR_ROLES, DISCOURSE_FORUM_ALPHA_ADMIN_ROLES need DISCORD_GUILD_ID',
    );
    // A guild id alone is fine (roles read, membership may be required), without a group map.
    const alone = settingsFromEnv({
      ...twoForums(),
      DISCORD_GUILD_ID: '999',
      DISCORD_REQUIRE_GUILD_MEMBERSHIP: 'true',
    });
    expect(alone.groups).toMatchObject({ guildId: '999', requireMembership: true, managed: [] });
  });

  it('refuses role lists that are not Discord role ids', () => {
    expect(
      bootError({ ...twoForums(), DISCORD_GUILD_ID: '999', DISCOURSE_ADMIN_ROLES: 'admins' }),
    ).toContain('DISCOURSE_ADMIN_ROLES is invalid');
    expect(
      bootError({
        ...twoForums(),
        DISCORD_GUILD_ID: '999',
        DISCOURSE_FORUM_BRAVO_MODERATOR_ROLES: '1,,2',
      }),
    ).toContain('DISCOURSE_FORUM_BRAVO_MODERATOR_ROLES is invalid');
  });

  it('in the options, a forum with staff roles needs groups: { guildId }', () => {
    const base = discourseConnectOptionsFromEnv(twoForums());
    expect(
      () =>
        new DiscourseConnectSettings({
          ...base,
          forums: base.forums.map((f, i) => (i === 0 ? { ...f, adminRoles: ['1'] } : f)),
        }),
    ).toThrow(/adminRoles and moderatorRoles need groups/);
    expect(
      () =>
        new DiscourseConnectSettings({
          ...base,
          groups: { guildId: '999', moderatorRoles: ['not-a-role'] },
        }),
    ).toThrow(/groups.moderatorRoles must list Discord role ids/);
  });
});
