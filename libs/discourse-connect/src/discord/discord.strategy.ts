import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { Strategy, type StrategyOptions } from 'passport-discord';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import type { LocalUser } from '../users/local-user.interface';
import { DiscourseConnectSignIn } from './sign-in.service';
import { DiscordApiClient } from './discord-api.client';

/** passport-discord's options plus the passport-oauth2 ones its typings lack. */
type DiscordStrategyOptions = StrategyOptions & {
  pkce: boolean;
  state: boolean;
  customHeaders: Record<string, string>;
};

/**
 * Discord sign-in: OAuth2 with `state` and PKCE, the profile read from `DISCORD_BASE_URL/api/v10`,
 * and the local user created or updated ({@link DiscourseConnectSignIn}) only after Discord
 * answered and the `user.canSignIn` filter agreed, so a failure never leaves a half-created user.
 */
@Injectable()
export class DiscordStrategy extends PassportStrategy(Strategy, 'discord') {
  constructor(
    settings: DiscourseConnectSettings,
    private readonly api: DiscordApiClient,
    private readonly signIn: DiscourseConnectSignIn,
  ) {
    const options: DiscordStrategyOptions = {
      clientID: settings.discord.clientId,
      clientSecret: settings.discord.clientSecret,
      callbackURL: settings.discord.callbackUrl,
      authorizationURL: settings.discord.authorizationUrl,
      tokenURL: settings.discord.tokenUrl,
      scope: settings.discord.scopes,
      state: true,
      pkce: true,
      customHeaders: { 'User-Agent': settings.discord.userAgent },
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

  /** Discord answered: the sign-in itself is {@link DiscourseConnectSignIn}'s. */
  validate(
    accessToken: string,
    _refreshToken: string,
    raw: Record<string, unknown>,
  ): Promise<LocalUser> {
    return this.signIn.signIn(raw, accessToken);
  }
}
