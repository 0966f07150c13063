import { Logger } from '@nestjs/common';
import type { REST } from '@discordjs/rest';
import type { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { loadDiscordRest } from './discord-libraries';
import { rolesOf } from './member-roles';

/** The most members Discord lists in one call. */
export const GUILD_MEMBERS_PAGE = 1000;

/** A member of the server: their user id and role ids (sorted). */
export interface GuildMember {
  id: string;
  roles: string[];
}

/** Where the reconcile reads the server's members from. */
export interface GuildMemberSource {
  /** Members with an id above `after` (ascending), at most `limit`. */
  listMembers(after: string | null, limit: number): Promise<GuildMember[]>;
  /** One member, or null when not in the server. */
  getMember(userId: string): Promise<GuildMember | null>;
}

/**
 * The server's members through Discord's REST API with the bot token, by `@discordjs/rest`, which
 * honours Discord's rate limits: a `429` waits `retry_after` (the global limit too), and the
 * `X-RateLimit-*` buckets pace the calls before Discord has to refuse one.
 */
export class DiscordGuildMembers implements GuildMemberSource {
  private readonly logger = new Logger('DiscourseConnect');
  /**
   * The REST client, shared with the gateway connection (which asks it for the gateway's address).
   * @internal
   */
  readonly rest: REST;
  /** Calls made to Discord (each page, each single member), for the reconcile's report. */
  calls = 0;

  constructor(
    settings: Pick<DiscourseConnectSettings, 'discord'>,
    private readonly bot: { token: string; guildId: string },
  ) {
    const { REST } = loadDiscordRest();
    this.rest = new REST({
      api: `${settings.discord.baseUrl}/api`,
      version: '10',
      timeout: settings.discord.timeoutMs,
      userAgentAppendix: settings.discord.userAgent,
    }).setToken(bot.token);
    this.rest.on('rateLimited', (info) =>
      this.logger.debug(
        `Discord rate limit on ${info.method} ${info.route}: waiting ${info.retryAfter} ms${info.global ? ' (global)' : ''}`,
      ),
    );
  }

  /** Stops the REST client's timers. */
  close(): void {
    this.rest.clearHashSweeper();
    this.rest.clearHandlerSweeper();
  }

  async listMembers(after: string | null, limit: number): Promise<GuildMember[]> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (after !== null) query.set('after', after);
    this.calls++;
    const members = (await this.rest.get(`/guilds/${this.bot.guildId}/members`, {
      query,
    })) as unknown;
    if (!Array.isArray(members)) throw new Error('Discord listed the members in an unknown form');
    return members.flatMap((m: { user?: { id?: unknown }; roles?: unknown }) =>
      typeof m?.user?.id === 'string' ? [{ id: m.user.id, roles: rolesOf(m) }] : [],
    );
  }

  async getMember(userId: string): Promise<GuildMember | null> {
    this.calls++;
    try {
      const member = (await this.rest.get(`/guilds/${this.bot.guildId}/members/${userId}`)) as {
        roles?: unknown;
      };
      return { id: userId, roles: rolesOf(member) };
    } catch (error) {
      // Unknown Member / Unknown User: not in the server.
      if ((error as { status?: number }).status === 404) return null;
      throw error;
    }
  }
}
