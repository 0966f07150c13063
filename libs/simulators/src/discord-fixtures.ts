/** A Discord account as the simulator stores it; `guildRoles` feeds the guild-member route. */
export interface SimDiscordUser {
  id: string;
  username: string;
  discriminator: string;
  global_name: string | null;
  avatar: string | null;
  email: string | null;
  verified: boolean;
  locale: string;
  mfa_enabled: boolean;
  flags?: number;
  premium_type?: number;
  /** Guild id → role ids, for `GET /users/@me/guilds/:guildId/member`. */
  guildRoles?: Record<string, string[]>;
}

/** The guild the fixtures are members of (some of them). */
export const SIM_GUILD_ID = '1098765432109876543';

/** The simulated application's bot user (a member of {@link SIM_GUILD_ID}, not listed among its members). */
export const SIM_BOT_USER_ID = '1098765432109876500';

/** Role ids in {@link SIM_GUILD_ID}. */
export const SIM_GUILD_ROLES = {
  member: '1098765432109876601',
  moderator: '1098765432109876602',
  veteran: '1098765432109876603',
} as const;

export type DiscordFixtureName =
  'migrated' | 'legacy' | 'animated' | 'unverified' | 'noEmail' | 'bigId' | 'changing';

function deepFreeze<T extends object>(value: T): T {
  for (const v of Object.values(value)) {
    if (v && typeof v === 'object' && !Object.isFrozen(v)) deepFreeze(v as object);
  }
  return Object.freeze(value);
}

/**
 * Accounts covering the shapes Discord really returns. Frozen: simulators work on copies.
 * Every email is distinct, so forum accounts never collide by accident.
 */
export const DISCORD_FIXTURES: Readonly<Record<DiscordFixtureName, SimDiscordUser>> = deepFreeze({
  /** Post-2023 account: discriminator "0" and a display name. */
  migrated: {
    id: '293847561029384756',
    username: 'ava.migrated',
    discriminator: '0',
    global_name: 'Ava Migrated',
    avatar: '4f2c1b9e8d7a6c5b4a3f2e1d0c9b8a7f',
    email: 'ava@example.com',
    verified: true,
    locale: 'en-US',
    mfa_enabled: true,
    flags: 64,
    premium_type: 0,
    guildRoles: { [SIM_GUILD_ID]: [SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.moderator] },
  },
  /** Pre-migration account: a four-digit discriminator, no display name, default avatar. */
  legacy: {
    id: '81384788765712384',
    username: 'OldTimer',
    discriminator: '1337',
    global_name: null,
    avatar: null,
    email: 'oldtimer@example.com',
    verified: true,
    locale: 'en-GB',
    mfa_enabled: false,
    flags: 0,
    premium_type: 0,
    guildRoles: { [SIM_GUILD_ID]: [SIM_GUILD_ROLES.member, SIM_GUILD_ROLES.veteran] },
  },
  /** Animated avatar (hash starts with `a_`) and a non-ASCII display name. */
  animated: {
    id: '417823410945277952',
    username: 'sparkle',
    discriminator: '0',
    global_name: 'Spärkle ✨',
    avatar: 'a_0f1e2d3c4b5a69788796a5b4c3d2e1f0',
    email: 'sparkle@example.com',
    verified: true,
    locale: 'de',
    mfa_enabled: false,
    flags: 0,
    premium_type: 0,
    guildRoles: { [SIM_GUILD_ID]: [] },
  },
  /** Email present but not verified by Discord: must not be trusted for account linking. */
  unverified: {
    id: '612345678901234567',
    username: 'ursula_unverified',
    discriminator: '0',
    global_name: 'Ursula',
    avatar: '9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d',
    email: 'ursula@example.com',
    verified: false,
    locale: 'fr',
    mfa_enabled: false,
    flags: 0,
    premium_type: 0,
  },
  /** No email on the account (e.g. phone-only registration). */
  noEmail: {
    id: '798765432109876543',
    username: 'no_mail_nico',
    discriminator: '0',
    global_name: 'Nico',
    avatar: null,
    email: null,
    verified: false,
    locale: 'es-ES',
    mfa_enabled: false,
    flags: 0,
    premium_type: 0,
  },
  /** 19-digit snowflake: loses precision if anything parses it as a JS number. */
  bigId: {
    id: '1234567890123456789',
    username: 'big.snowflake',
    discriminator: '0',
    global_name: 'Big Snowflake',
    avatar: 'c0ffee00c0ffee00c0ffee00c0ffee00',
    email: 'big.snowflake@example.com',
    verified: true,
    locale: 'en-US',
    mfa_enabled: false,
    flags: 0,
    premium_type: 0,
    guildRoles: { [SIM_GUILD_ID]: [SIM_GUILD_ROLES.member] },
  },
  /** Its global_name and avatar change on every successful code exchange (profile-change detection). */
  changing: {
    id: '934857610293847561',
    username: 'shapeshifter',
    discriminator: '0',
    global_name: 'Shapeshifter',
    avatar: '0123456789abcdef0123456789abcdef',
    email: 'shapeshifter@example.com',
    verified: true,
    locale: 'en-US',
    mfa_enabled: false,
    flags: 0,
    premium_type: 0,
    guildRoles: { [SIM_GUILD_ID]: [SIM_GUILD_ROLES.member] },
  },
});

/** A deep, mutable copy of a user. */
export function cloneDiscordUser(user: SimDiscordUser): SimDiscordUser {
  const copy: SimDiscordUser = { ...user };
  if (user.guildRoles) {
    copy.guildRoles = Object.fromEntries(
      Object.entries(user.guildRoles).map(([g, r]) => [g, [...r]]),
    );
  }
  return copy;
}
