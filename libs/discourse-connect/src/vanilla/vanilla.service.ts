import { Injectable } from '@nestjs/common';
import {
  BadSsoRequestException,
  DiscourseConnectHttpException,
  SsoForbiddenException,
} from '../common/discourse-connect.exceptions';
import {
  DiscourseConnectSettings,
  type ResolvedVanillaForum,
} from '../config/discourse-connect.settings';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents } from '../hooks/discourse-connect.events';
import { DiscourseConnectFiltersService } from '../hooks/filters.service';
import {
  buildJsConnectResponse,
  JsConnectProtocolError,
  verifyJsConnectRequest,
  type JsConnectClient,
  type JsConnectErrorCode,
  type JsConnectRequest,
  type JsConnectUser,
} from '../jsconnect';
import { discordAvatarUrl } from '../users/discord-profile';
import type { LocalUser } from '../users/local-user.interface';
import { vanillaUsername } from './vanilla-username';

/** A verified jsConnect request and the Vanilla forum that made it. */
export interface VanillaRequest extends JsConnectRequest {
  forum: ResolvedVanillaForum;
}

/** Refusals that are the request's fault (400) rather than a refused, well-formed one (403). */
const BAD_REQUEST: ReadonlySet<JsConnectErrorCode> = new Set([
  'missing_jwt',
  'malformed_jwt',
  'invalid_claims',
]);

/**
 * The site's side of Vanilla's jsConnect v3: checks what a Vanilla forum sent with the codec, and
 * answers it with the member (or a guest) signed with the forum's connection.
 */
@Injectable()
export class VanillaConnectService {
  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly filters: DiscourseConnectFiltersService,
    private readonly actions: DiscourseConnectActionsService,
  ) {}

  /** The Vanilla settings, or a 404 page when no Vanilla forum is configured. */
  get vanilla(): NonNullable<DiscourseConnectSettings['vanilla']> {
    const vanilla = this.settings.vanilla;
    if (!vanilla) {
      throw new DiscourseConnectHttpException(
        404,
        'No Vanilla forum here',
        'This site signs no Vanilla forum in.',
        'vanilla_not_configured',
      );
    }
    return vanilla;
  }

  /**
   * Verifies the `jwt` Vanilla sent to the authenticate URL: a configured connection's `kid`, its
   * algorithm, its secret, `exp`, and `rurl` on its forum.
   *
   * A `resumed` request (remembered before Discord sign-in) that expired meanwhile is not refused:
   * the answer is the forum's sign-in start instead, for a fresh request.
   *
   * @throws BadSsoRequestException (400) for a malformed request, SsoForbiddenException (403) for a
   *   refused one (unknown client, bad signature, expired, foreign return URL).
   */
  async verifyRequest(
    query: Record<string, unknown>,
    resumed = false,
  ): Promise<VanillaRequest | { restartUrl: string }> {
    const forums = this.vanilla.forums;
    const clients = forums.map((f): JsConnectClient => ({
      clientId: f.clientId,
      secret: f.secret,
      algorithms: [f.algorithm],
      forumUrl: f.url,
    }));
    try {
      const request = await verifyJsConnectRequest(query.jwt, clients);
      return { ...request, forum: forums[clients.indexOf(request.client)] };
    } catch (error) {
      if (!(error instanceof JsConnectProtocolError)) throw error;
      // Remembered before a Discord sign-in that outlasted it: the forum starts over with a fresh one.
      const forum = forums.find((f) => f.clientId === error.clientId);
      if (resumed && error.code === 'expired' && forum) {
        return { restartUrl: this.signInUrl(forum, '/') };
      }
      throw BAD_REQUEST.has(error.code)
        ? new BadSsoRequestException(error.message, `jsconnect_${error.code}`)
        : new SsoForbiddenException(error.message, `jsconnect_${error.code}`);
    }
  }

  /** The answer for a person who is not signed in here: a guest, `u: {}`. */
  guestResponseUrl(request: VanillaRequest): Promise<string> {
    return buildJsConnectResponse(request, {});
  }

  /**
   * The answer for a signed-in member: `rurl#jwt=…` with their jsConnect user after the
   * `vanilla.user` filters. Emits `VanillaSignedIn`.
   *
   * @throws SsoForbiddenException when Discord has no email, or an email it has not verified (unless
   *   `sendUnverifiedEmail`), for the account.
   */
  async memberResponseUrl(request: VanillaRequest, user: LocalUser): Promise<string> {
    const vanillaUser = await this.userFor(user, request.forum);
    const url = await buildJsConnectResponse(request, vanillaUser);
    this.actions.emit(DiscourseConnectEvents.VanillaSignedIn, {
      user,
      forum: request.forum.name,
      roles: vanillaUser.roles,
    });
    return url;
  }

  /**
   * The member as jsConnect describes them to this forum: `id` = Discord id, a Vanilla-valid
   * `name`, the email Discord verified, the avatar, and with a role map the full role list.
   */
  async userFor(user: LocalUser, forum: ResolvedVanillaForum): Promise<JsConnectUser> {
    const { sendUnverifiedEmail, defaultRole } = this.vanilla;
    if (!user.email) {
      throw new SsoForbiddenException(
        'The forum needs an email address for your account, and your Discord account has none. ' +
          'Add and verify an email in Discord (User Settings → My Account), then sign in again.',
        'discord_account_without_email',
        'An email address is needed',
      );
    }
    if (!user.emailVerified && !sendUnverifiedEmail) {
      throw new SsoForbiddenException(
        'The forum links accounts by email, so it needs an email Discord has verified. Verify your ' +
          "email in Discord (User Settings → My Account: use the link in Discord's email, or " +
          "'Resend verification'), then sign in here again and go back to the forum.",
        'discord_email_not_verified',
        'Please verify your email on Discord',
      );
    }
    const roles = user.metadata.roles ?? null;
    const base: JsConnectUser = {
      id: user.discordId,
      name: vanillaUsername(user.username, user.discordId),
      email: user.email,
      photo: discordAvatarUrl(user.metadata),
    };
    // jsConnect's roles replace the member's roles on the forum: sent only with a role map.
    if (forum.roleMap) {
      const mapped = (roles ?? []).map((r) => forum.roleMap![r]).filter(Boolean);
      base.roles = [...new Set([...mapped, defaultRole])];
    }
    const filtered = await this.filters.apply('vanilla.user', base, {
      user,
      forum: { name: forum.name, url: forum.url },
      roles,
    });
    return { ...filtered, id: user.discordId };
  }

  /**
   * Where the forum link sends a signed-in person: the forum's `/sso?target=` when the connection
   * is the forum's default sign-in method, else `/entry/jsconnect?client_id=&target=`.
   */
  signInUrl(forum: ResolvedVanillaForum, target: string): string {
    return forum.defaultSignIn
      ? `${forum.url}/sso?${new URLSearchParams({ target })}`
      : `${forum.url}/entry/jsconnect?${new URLSearchParams({ client_id: forum.clientId, target })}`;
  }
}
