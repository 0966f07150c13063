import { discourseConnectOptionsFromEnv } from './discourse-connect.config';
import { DiscourseConnectSettings } from './discourse-connect.settings';
import type { DiscourseConnectModuleOptions } from '../discourse-connect-options.interface';

const GUILD = '223456789012345678';
const TOKEN = 'bot-token-0123456789abcdef';
const base: DiscourseConnectModuleOptions = {
  forums: [{ url: 'https://forum.example.com', secret: 'forum-secret-0123456789' }],
  discord: { clientId: 'client-id', clientSecret: 'client-secret' },
  publicUrl: 'https://app.example.com',
  session: { secret: 's'.repeat(32) },
  groups: { guildId: GUILD, roleGroups: { '123': 'members' } },
};
const env = {
  DISCOURSE_URL: 'https://forum.example.com',
  DISCOURSE_CONNECT_SECRET: 'forum-secret-0123456789',
  DISCORD_CLIENT_ID: 'client-id',
  DISCORD_CLIENT_SECRET: 'client-secret',
  PUBLIC_URL: 'https://app.example.com',
  SESSION_SECRET: 's'.repeat(32),
  DISCORD_GUILD_ID: GUILD,
  DISCOURSE_GROUP_MAP: '123=members',
};

describe('the bot options', () => {
  it('default to a reconcile every hour, the logout action, the gateway on and a 30 s lease', () => {
    expect(new DiscourseConnectSettings({ ...base, bot: { token: TOKEN } }).bot).toEqual({
      token: TOKEN,
      guildId: GUILD,
      reconcileSeconds: 3600,
      leaveAction: 'logout',
      gateway: true,
      leaseMs: 30_000,
    });
    expect(new DiscourseConnectSettings(base).bot).toBeUndefined();
  });

  it('come from DISCORD_BOT_TOKEN, DISCORD_RECONCILE_SECONDS and DISCORD_GUILD_LEAVE_ACTION', () => {
    const options = discourseConnectOptionsFromEnv({
      ...env,
      DISCORD_BOT_TOKEN: TOKEN,
      DISCORD_RECONCILE_SECONDS: '5',
      DISCORD_GUILD_LEAVE_ACTION: 'suspend',
    });
    expect(options.bot).toEqual({ token: TOKEN, reconcileSeconds: 5, leaveAction: 'suspend' });
    expect(new DiscourseConnectSettings(options).bot).toMatchObject({
      guildId: GUILD,
      reconcileSeconds: 5,
      leaveAction: 'suspend',
    });
    // Without the token, the bot's other variables change nothing.
    expect(
      discourseConnectOptionsFromEnv({ ...env, DISCORD_RECONCILE_SECONDS: '60' }).bot,
    ).toBeUndefined();
  });

  it.each([
    [{ DISCORD_RECONCILE_SECONDS: '4' }, /DISCORD_RECONCILE_SECONDS is invalid/],
    [{ DISCORD_RECONCILE_SECONDS: '1.5' }, /DISCORD_RECONCILE_SECONDS is invalid/],
    [
      { DISCORD_GUILD_LEAVE_ACTION: 'ban' },
      /DISCORD_GUILD_LEAVE_ACTION is invalid: it must be groups, logout or suspend/,
    ],
    [{ DISCORD_BOT_TOKEN: 'short' }, /DISCORD_BOT_TOKEN is invalid/],
  ])('refuse %j, naming the variable', (extra, message) => {
    expect(() =>
      discourseConnectOptionsFromEnv({ ...env, DISCORD_BOT_TOKEN: TOKEN, ...extra }),
    ).toThrow(message);
  });

  it('DISCORD_BOT_TOKEN needs DISCORD_GUILD_ID, and the token never shows in the message', () => {
    const { DISCORD_GUILD_ID: _guild, DISCOURSE_GROUP_MAP: _map, ...noGuild } = env;
    const load = () => discourseConnectOptionsFromEnv({ ...noGuild, DISCORD_BOT_TOKEN: TOKEN });
    expect(load).toThrow(/DISCORD_BOT_TOKEN needs DISCORD_GUILD_ID/);
    expect(() =>
      discourseConnectOptionsFromEnv({ ...env, DISCORD_BOT_TOKEN: 'short' }),
    ).not.toThrow(/short/);
  });

  it.each([
    [{ bot: { token: TOKEN }, groups: undefined }, /bot needs groups: \{ guildId \}/],
    [
      { bot: { token: TOKEN, reconcileSeconds: 4 } },
      /bot\.reconcileSeconds must be a whole number of seconds, 5 or more/,
    ],
    [
      { bot: { token: TOKEN, leaveAction: 'kick' as never } },
      /bot\.leaveAction must be groups, logout or suspend/,
    ],
    [
      { bot: { token: TOKEN, leaseMs: 10 } },
      /bot\.leaseMs must be a whole number of milliseconds, 1000 or more/,
    ],
    [{ bot: { token: '' } }, /bot\.token/],
  ])('refuse the options %j', (extra, message) => {
    expect(() => new DiscourseConnectSettings({ ...base, ...extra })).toThrow(message);
  });
});
