import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { Strategy, type StrategyOptions } from 'passport-discord';
import { DiscordSignInException } from '../common/discourse-connect.exceptions';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents } from '../hooks/discourse-connect.events';
import { DiscourseConnectFiltersService } from '../hooks/filters.service';
import { pickDiscordMetadata } from '../users/discord-profile';
import type { LocalUser } from '../users/local-user.interface';
import { UsersService } from '../users/users.service';
import { SyncQueue } from '../sync/sync-queue.service';
import { DiscordApiClient } from './discord-api.client';
import { DiscordApiError } from './discord-api.error';

/** passport-discord's options plus the passport-oauth2 ones its typings lack. */
type DiscordStrategyOptions = StrategyOptions & {
  pkce: boolean;
  state: boolean;
  customHeaders: Record<string, string>;
};

/**
 * Discord sign-in: OAuth2 with `state` and PKCE, the profile read from `DISCORD_BASE_URL/api/v10`,
 * and the local user created or updated only after Discord answered and the `user.canSignIn`
 * filter agreed, so a failure never leaves a half-created user.
 */
@Injectable()
export class DiscordStrategy extends PassportStrategy(Strategy, 'discord') {
  constructor(
    private readonly settingsRef: DiscourseConnectSettings,
    private readonly api: DiscordApiClient,
    private readonly users: UsersService,
    private readonly filters: DiscourseConnectFiltersService,
    private readonly actions: DiscourseConnectActionsService,
    private readonly queue: SyncQueue,
  ) {
    const options: DiscordStrategyOptions = {
      clientID: settingsRef.discord.clientId,
      clientSecret: settingsRef.discord.clientSecret,
      callbackURL: settingsRef.discord.callbackUrl,
      authorizationURL: settingsRef.discord.authorizationUrl,
      tokenURL: settingsRef.discord.tokenUrl,
      scope: settingsRef.discord.scopes,
      state: true,
      pkce: true,
      customHeaders: { 'User-Agent': settingsRef.discord.userAgent },
    };
    super(options);
  }

  /**
   * Replaces passport-discord's profile fetch (hard-coded to the unversioned production API, and
   * with a double-callback bug on guild/connection fetches). Only the raw user object is passed on;
   * the access token never leaves this method.
   */
  override userProfile(
    accessToken: string,
    done: (err?: Error | null, profile?: unknown) => void,
  ): void {
    this.api.get<Record<string, unknown>>('/users/@me', accessToken).then(
      (raw) => done(null, raw),
      (error: Error) => done(error),
    );
  }

  /** Role ids in the guild (sorted), or null when the user is not a member. Once per sign-in. */
  private async guildRoles(accessToken: string, guildId: string): Promise<string[] | null> {
    try {
      const member = await this.api.get<{ roles?: unknown }>(
        `/users/@me/guilds/${guildId}/member`,
        accessToken,
      );
      return Array.isArray(member.roles)
        ? member.roles.filter((r): r is string => typeof r === 'string').sort()
        : [];
    } catch (error) {
      // Unknown Guild / Unknown Member: not a member. Anything else fails the sign-in (never guess).
      if (error instanceof DiscordApiError && error.status === 404) return null;
      throw error;
    }
  }

  async validate(
    accessToken: string,
    _refreshToken: string,
    raw: Record<string, unknown>,
  ): Promise<LocalUser> {
    const discord = pickDiscordMetadata(raw);
    const groups = this.settingsRef.groups;
    if (groups) {
      discord.roles = await this.guildRoles(accessToken, groups.guildId);
      if (discord.roles === null && groups.requireMembership) {
        throw new DiscordSignInException(
          403,
          'Server membership needed',
          'Only members of our Discord server can sign in. Join the server, then sign in again.',
          'not_a_guild_member',
        );
      }
    }
    const existing = await this.users.findByDiscordId(discord.id);
    const verdict = await this.filters.apply('user.canSignIn', true, { discord, existing });
    if (verdict !== true) {
      throw new DiscordSignInException(
        403,
        'Sign-in not allowed',
        typeof verdict === 'string' && verdict
          ? verdict
          : 'This Discord account is not allowed to sign in here.',
        'sign_in_refused_by_filter',
      );
    }
    const { onFirstSignIn } = this.settingsRef.sync;
    // A changed profile reaches the forum without a browser round trip: the sync job is written in
    // the same transaction as the change, and delivered by the worker.
    const outcome = await this.users.signInFromDiscord(discord, async (o, manager) => {
      if (o.changed || (o.created && onFirstSignIn))
        await this.queue.enqueue('sync', o.user.discordId, { manager });
    });
    if (outcome.changed || outcome.created) this.queue.notify();
    if (outcome.created)
      this.actions.emit(DiscourseConnectEvents.UserCreated, { user: outcome.user });
    if (outcome.changed && outcome.previous) {
      this.actions.emit(DiscourseConnectEvents.ProfileChanged, {
        user: outcome.user,
        previous: outcome.previous,
      });
    }
    this.actions.emit(DiscourseConnectEvents.SignedIn, {
      user: outcome.user,
      created: outcome.created,
      changed: outcome.changed,
    });
    return outcome.user;
  }
}
