import { SIM_GUILD_ID, SIM_GUILD_ROLES, type SimDiscordUser } from './discord-fixtures';

/** Gateway intents the simulated gateway knows (bit values as Discord defines them). */
export const SIM_GATEWAY_INTENTS = {
  Guilds: 1 << 0,
  GuildMembers: 1 << 1,
  GuildModeration: 1 << 2,
  GuildPresences: 1 << 8,
  MessageContent: 1 << 15,
} as const;

/** A role of the simulated guild, as `GET /guilds/:id` lists it. */
export interface SimGuildRole {
  id: string;
  name: string;
  position: number;
  color: number;
}

/** Delivers a guild event to the gateway sessions holding `intent`. */
export type GuildEventSink = (event: string, data: Record<string, unknown>, intent: number) => void;

/** Ids of generated members start here (19-digit snowflakes, ascending with the creation order). */
const GENERATED_ID_BASE = 1300000000000000000n;
/** One millisecond apart in snowflake time. */
const GENERATED_ID_STEP = 1n << 22n;

/** The public part of a user, as embedded in other objects (no email, verified, mfa, locale). */
export function publicUserObject(u: SimDiscordUser): Record<string, unknown> {
  return {
    id: u.id,
    username: u.username,
    avatar: u.avatar,
    discriminator: u.discriminator,
    public_flags: u.flags ?? 0,
    flags: u.flags ?? 0,
    banner: null,
    accent_color: null,
    global_name: u.global_name,
    avatar_decoration_data: null,
    collectibles: null,
    banner_color: null,
    clan: null,
    primary_guild: null,
  };
}

/** Milliseconds since the epoch encoded in a snowflake. */
export function snowflakeTime(id: string): number {
  try {
    return Number((BigInt(id) >> 22n) + 1420070400000n);
  } catch {
    return Date.UTC(2020, 0, 1);
  }
}

/** Discord's timestamp format: ISO 8601 with microseconds and an explicit offset. */
export function discordTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '000+00:00');
}

/** Ascending snowflake order (numeric, without losing precision). */
export function compareSnowflakes(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

const defaultRoles = (): SimGuildRole[] => [
  { id: SIM_GUILD_ID, name: '@everyone', position: 0, color: 0 },
  { id: SIM_GUILD_ROLES.member, name: 'Member', position: 1, color: 0x3498db },
  { id: SIM_GUILD_ROLES.moderator, name: 'Moderator', position: 3, color: 0xe67e22 },
  { id: SIM_GUILD_ROLES.veteran, name: 'Veteran', position: 2, color: 0x9b59b6 },
];

/**
 * The simulated Discord server ({@link SIM_GUILD_ID}). Membership and roles live in each account's
 * `guildRoles[SIM_GUILD_ID]`, so the OAuth route (`/users/@me/guilds/:id/member`), the bot routes and the
 * gateway all see the same state. The driver functions change that state the way a server admin does on
 * Discord and dispatch the matching gateway events (member add/update/remove, ban add/remove).
 */
export class SimulatedGuild {
  readonly id = SIM_GUILD_ID;
  name = 'Sandbox Server';
  /** The server's owner (a fixture account). */
  ownerId = '293847561029384756';
  /** Roles, `@everyone` (id = the guild id) first. Role ids given to members need not be listed here. */
  roles: SimGuildRole[] = defaultRoles();
  /** Banned user id → the reason given. */
  readonly bans = new Map<string, string | null>();
  /** Ids of the accounts {@link createMembers} generated (left off the consent page's buttons). */
  readonly generatedIds = new Set<string>();

  private readonly joinedAt = new Map<string, number>();
  private generatedCount = 0;

  constructor(
    private readonly users: Map<string, SimDiscordUser>,
    private readonly sink: GuildEventSink,
    private readonly now: () => number,
  ) {}

  /** Bans, join times and generated accounts forgotten; roles back to the defaults. */
  reset(): void {
    this.bans.clear();
    this.joinedAt.clear();
    this.generatedIds.clear();
    this.generatedCount = 0;
    this.roles = defaultRoles();
    this.name = 'Sandbox Server';
  }

  /** The member's role ids, or undefined when the account is not in the server. */
  rolesOf(userId: string): string[] | undefined {
    return this.users.get(userId)?.guildRoles?.[this.id];
  }

  isMember(userId: string): boolean {
    return this.rolesOf(userId) !== undefined;
  }

  isBanned(userId: string): boolean {
    return this.bans.has(userId);
  }

  /** Every member's id, ascending (the order of `GET /guilds/:id/members`). */
  memberIds(after?: string): string[] {
    const ids: string[] = [];
    for (const u of this.users.values()) {
      if (u.guildRoles?.[this.id] === undefined) continue;
      if (after !== undefined && compareSnowflakes(u.id, after) <= 0) continue;
      ids.push(u.id);
    }
    return ids.sort(compareSnowflakes);
  }

  get memberCount(): number {
    let n = 0;
    for (const u of this.users.values()) if (u.guildRoles?.[this.id] !== undefined) n++;
    return n;
  }

  /** The guild member object Discord returns for `userId`, or undefined for a non-member. */
  memberObject(userId: string): Record<string, unknown> | undefined {
    const user = this.users.get(userId);
    const roles = user?.guildRoles?.[this.id];
    if (!user || !roles) return undefined;
    return {
      avatar: null,
      banner: null,
      communication_disabled_until: null,
      flags: 0,
      joined_at: discordTimestamp(this.joinedAt.get(userId) ?? snowflakeTime(userId) + 86_400_000),
      nick: null,
      pending: false,
      premium_since: null,
      roles: [...roles],
      user: publicUserObject(user),
      mute: false,
      deaf: false,
    };
  }

  /** Replaces a member's roles (GUILD_MEMBER_UPDATE). Returns false when nothing changed. */
  setRoles(userId: string, roles: readonly string[]): boolean {
    const user = this.requireMember(userId);
    const next = this.cleanRoles(roles);
    const current = user.guildRoles![this.id];
    if (sameSet(current, next)) return false;
    user.guildRoles![this.id] = next;
    this.dispatchUpdate(userId);
    return true;
  }

  /**
   * Adds an account to the server (GUILD_MEMBER_ADD), as a join or a rejoin. An id with no account
   * gets a generated one. Throws for a banned user or a current member.
   */
  addMember(userId: string, roles: readonly string[] = []): void {
    if (!/^\d{15,20}$/.test(userId))
      throw new Error(`SimulatedGuild: ${userId} is not a snowflake`);
    if (this.bans.has(userId)) throw new Error(`SimulatedGuild: ${userId} is banned`);
    if (this.isMember(userId)) throw new Error(`SimulatedGuild: ${userId} is already a member`);
    const user = this.users.get(userId) ?? this.generateUser(userId);
    user.guildRoles = { ...(user.guildRoles ?? {}), [this.id]: this.cleanRoles(roles) };
    this.joinedAt.set(userId, this.now());
    this.dispatchAdd(userId);
  }

  /** Removes a member from the server (GUILD_MEMBER_REMOVE). */
  kick(userId: string): void {
    const user = this.requireMember(userId);
    this.removeMembership(user);
  }

  /**
   * Bans an account: a member is removed first (GUILD_MEMBER_REMOVE), then GUILD_BAN_ADD, the order
   * Discord sends them in.
   */
  ban(userId: string, reason: string | null = null): void {
    const user = this.users.get(userId);
    if (!user) throw new Error(`SimulatedGuild: no account with id ${userId}`);
    if (this.bans.has(userId)) throw new Error(`SimulatedGuild: ${userId} is already banned`);
    if (this.isMember(userId)) this.removeMembership(user);
    this.bans.set(userId, reason);
    this.sink(
      'GUILD_BAN_ADD',
      { guild_id: this.id, user: publicUserObject(user) },
      SIM_GATEWAY_INTENTS.GuildModeration,
    );
  }

  /** Lifts a ban (GUILD_BAN_REMOVE); the account is not a member again until it rejoins. */
  unban(userId: string): void {
    if (!this.bans.delete(userId)) throw new Error(`SimulatedGuild: ${userId} is not banned`);
    const user = this.users.get(userId);
    const shown = user
      ? publicUserObject(user)
      : { id: userId, username: 'deleted_user', discriminator: '0', global_name: null };
    this.sink(
      'GUILD_BAN_REMOVE',
      { guild_id: this.id, user: shown },
      SIM_GATEWAY_INTENTS.GuildModeration,
    );
  }

  /**
   * Generates `count` accounts and adds them to the server with `roles` (one GUILD_MEMBER_ADD each,
   * when `dispatch` is not false). Ids ascend in creation order; returns them.
   */
  createMembers(
    count: number,
    options: { roles?: readonly string[]; dispatch?: boolean } = {},
  ): string[] {
    if (!Number.isInteger(count) || count < 0) throw new Error('SimulatedGuild: bad member count');
    const roles = this.cleanRoles(options.roles ?? [SIM_GUILD_ROLES.member]);
    const ids: string[] = [];
    const now = this.now();
    for (let i = 0; i < count; i++) {
      let id: string;
      do {
        this.generatedCount++;
        id = String(GENERATED_ID_BASE + BigInt(this.generatedCount) * GENERATED_ID_STEP);
      } while (this.users.has(id));
      const user = this.generateUser(id);
      user.guildRoles = { [this.id]: [...roles] };
      this.joinedAt.set(id, now);
      ids.push(id);
      if (options.dispatch !== false) this.dispatchAdd(id);
    }
    return ids;
  }

  /**
   * Called after an account's `guildRoles` were edited directly (`DiscordSimulator.updateUser` does)
   * with the roles it had before: dispatches the membership change, if any.
   */
  noteChange(userId: string, before: readonly string[] | undefined): void {
    const after = this.rolesOf(userId);
    if (before === undefined && after !== undefined) {
      this.joinedAt.set(userId, this.now());
      this.dispatchAdd(userId);
    } else if (before !== undefined && after === undefined) {
      const user = this.users.get(userId);
      if (user) this.dispatchRemove(user);
    } else if (before !== undefined && after !== undefined && !sameSet(before, after)) {
      this.dispatchUpdate(userId);
    }
  }

  private generateUser(id: string): SimDiscordUser {
    const n = this.generatedIds.size + 1;
    const user: SimDiscordUser = {
      id,
      username: `member_${id.slice(-6)}`,
      discriminator: '0',
      global_name: `Member ${n}`,
      avatar: null,
      email: `member.${id}@example.com`,
      verified: true,
      locale: 'en-US',
      mfa_enabled: false,
      flags: 0,
      premium_type: 0,
    };
    this.users.set(id, user);
    this.generatedIds.add(id);
    return user;
  }

  private requireMember(userId: string): SimDiscordUser {
    const user = this.users.get(userId);
    if (!user || user.guildRoles?.[this.id] === undefined)
      throw new Error(`SimulatedGuild: ${userId} is not a member`);
    return user;
  }

  private cleanRoles(roles: readonly string[]): string[] {
    const out: string[] = [];
    for (const r of roles) {
      if (!/^\d{15,20}$/.test(r)) throw new Error(`SimulatedGuild: ${r} is not a role id`);
      if (r !== this.id && !out.includes(r)) out.push(r);
    }
    return out;
  }

  private removeMembership(user: SimDiscordUser): void {
    const rest = { ...(user.guildRoles ?? {}) };
    delete rest[this.id];
    user.guildRoles = rest;
    this.joinedAt.delete(user.id);
    this.dispatchRemove(user);
  }

  private dispatchAdd(userId: string): void {
    this.sink(
      'GUILD_MEMBER_ADD',
      { ...this.memberObject(userId)!, guild_id: this.id },
      SIM_GATEWAY_INTENTS.GuildMembers,
    );
  }

  private dispatchUpdate(userId: string): void {
    const m = this.memberObject(userId)!;
    this.sink(
      'GUILD_MEMBER_UPDATE',
      {
        guild_id: this.id,
        roles: m.roles,
        user: m.user,
        nick: null,
        avatar: null,
        banner: null,
        joined_at: m.joined_at,
        premium_since: null,
        deaf: false,
        mute: false,
        pending: false,
        communication_disabled_until: null,
        flags: 0,
        avatar_decoration_data: null,
      },
      SIM_GATEWAY_INTENTS.GuildMembers,
    );
  }

  private dispatchRemove(user: SimDiscordUser): void {
    this.sink(
      'GUILD_MEMBER_REMOVE',
      { guild_id: this.id, user: publicUserObject(user) },
      SIM_GATEWAY_INTENTS.GuildMembers,
    );
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
