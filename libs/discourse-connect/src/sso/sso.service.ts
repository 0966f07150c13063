import { Injectable, Logger } from '@nestjs/common';
import {
  BadSsoRequestException,
  SsoForbiddenException,
} from '../common/discourse-connect.exceptions';
import { isUnderForum } from '../common/urls';
import { DiscourseConnectSettings, ResolvedForum } from '../config/discourse-connect.settings';
import { DiscourseConnectFiltersService } from '../hooks/filters.service';
import {
  appendSignedPayload,
  buildSignedPayload,
  decodePayload,
  DiscourseConnectPayload,
  isValidSignature,
  BASE64_TEXT,
  SIGNATURE,
  type SignedPayload,
} from '../protocol';
import { discordAvatarUrl } from '../users/discord-profile';
import type { LocalUser } from '../users/local-user.interface';

/** A verified request from a forum. */
export interface SsoRequest {
  forum: ResolvedForum;
  nonce: string;
  returnSsoUrl: string;
}

const MAX_SSO_LENGTH = 4096;
const NONCE = /^[A-Za-z0-9_-]{1,128}$/;

/** The provider side of DiscourseConnect: verify what a forum sent, answer with a signed payload. */
@Injectable()
export class SsoService {
  private readonly logger = new Logger('DiscourseConnect');

  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly filters: DiscourseConnectFiltersService,
  ) {}

  /**
   * Checks an incoming `sso`/`sig` pair against every configured forum's secret and the
   * `return_sso_url` against that forum's URL.
   *
   * @throws BadSsoRequestException (400) for a malformed request, SsoForbiddenException (403) for a
   *   signature no forum made or a return URL off the forum.
   */
  verifyRequest(query: Record<string, unknown>): SsoRequest {
    const sso = single(query, 'sso');
    const sig = single(query, 'sig');
    if (sso.length > MAX_SSO_LENGTH)
      throw new BadSsoRequestException('The sso parameter is too long.', 'sso_too_long');
    if (!SIGNATURE.test(sig)) {
      throw new BadSsoRequestException(
        'The sig parameter must be 64 lowercase hexadecimal characters.',
        'malformed_sig',
      );
    }
    if (!BASE64_TEXT.test(sso)) {
      throw new BadSsoRequestException(
        'The sso parameter is not base64. If a "+" became a space, the link was damaged on the way.',
        'malformed_sso',
      );
    }
    const forum = this.settings.forums.find((f) => isValidSignature(sso, sig, f.secret));
    if (!forum) {
      throw new SsoForbiddenException(
        'The signature of this sign-in request does not match. The forum and this site must share the same DiscourseConnect secret.',
        'bad_signature',
      );
    }
    let fields: Record<string, string>;
    try {
      fields = decodePayload(sso);
    } catch (error) {
      throw new BadSsoRequestException((error as Error).message, 'malformed_payload');
    }
    const nonce = fields.nonce;
    if (!nonce || !NONCE.test(nonce)) {
      throw new BadSsoRequestException('The sign-in request has no valid nonce.', 'missing_nonce');
    }
    const returnSsoUrl = fields.return_sso_url;
    if (!returnSsoUrl) {
      throw new BadSsoRequestException(
        'The sign-in request does not say where to return.',
        'missing_return_sso_url',
      );
    }
    if (!isUnderForum(returnSsoUrl, forum)) {
      throw new SsoForbiddenException(
        `The sign-in request asks to return somewhere other than the forum at ${forum.url}.`,
        'foreign_return_sso_url',
      );
    }
    return { forum, nonce, returnSsoUrl };
  }

  /**
   * The signed redirect back to the forum for a signed-in user.
   *
   * @throws SsoForbiddenException when the Discord account has no email, or a filter refuses.
   */
  async buildResponseUrl(request: SsoRequest, user: LocalUser): Promise<string> {
    const payload = await this.payloadFor(user, request.forum, request.nonce);
    return appendSignedPayload(request.returnSsoUrl, this.sign(payload, request.forum));
  }

  /**
   * The payload that describes `user` to `forum`, after the `sso.payload` filters, with the
   * invariants no filter may break: the right external_id (and nonce), and `require_activation`
   * whenever Discord has not verified the email.
   *
   * @throws SsoForbiddenException when the Discord account has no email, or a filter refuses.
   */
  async payloadFor(
    user: LocalUser,
    forum: ResolvedForum,
    nonce?: string,
  ): Promise<DiscourseConnectPayload> {
    if (!user.email) {
      throw new SsoForbiddenException(
        'The forum needs an email address to create your account, and your Discord account has none. ' +
          'Add and verify an email in Discord (User Settings → My Account), then sign in again.',
        'discord_account_without_email',
        'An email address is needed',
      );
    }
    const base: DiscourseConnectPayload = {
      nonce,
      external_id: user.discordId,
      email: user.email,
      username: user.username,
      name: user.displayName,
      avatar_url: discordAvatarUrl(user.metadata),
      // Discourse links an existing forum account by email unless activation is required: an email
      // Discord has not verified must never be trusted for that.
      require_activation: user.emailVerified ? undefined : true,
    };
    Object.assign(base, await this.groupFields(user, forum));
    const filtered = await this.filters.apply('sso.payload', base, {
      user,
      forum: { name: forum.name, url: forum.url },
    });
    const payload: DiscourseConnectPayload = { ...filtered, nonce, external_id: user.discordId };
    if (!user.emailVerified && payload.email && payload.require_activation !== true) {
      this.logger.warn(
        'an sso.payload filter dropped require_activation for an unverified email; it was put back',
      );
      payload.require_activation = true;
    }
    return payload;
  }

  /**
   * Group fields from the role map: the wanted groups are added and the other managed groups
   * removed; groups the module does not manage are never touched. With `fullGroupList`, the whole
   * list goes in `groups` instead.
   */
  protected async groupFields(
    user: LocalUser,
    forum: ResolvedForum,
  ): Promise<DiscourseConnectPayload> {
    const config = this.settings.groups;
    if (!config) return {};
    const roles = user.metadata.roles ?? null;
    const fromRoles = [...new Set((roles ?? []).map((r) => config.roleGroups[r]).filter(Boolean))];
    const wanted = await this.filters.apply('discourse.groups', fromRoles, {
      user,
      roles,
      managed: config.managed,
      forum: { name: forum.name, url: forum.url },
    });
    const wantedSet = new Set(wanted.map((g) => g.toLowerCase()));
    if (config.fullGroupList) return { groups: [...wanted].sort() };
    const remove = config.managed.filter((g) => !wantedSet.has(g.toLowerCase()));
    return {
      add_groups: wanted.length ? [...wanted].sort() : undefined,
      remove_groups: remove.length ? remove : undefined,
    };
  }

  /**
   * Signs a payload with the forum's secret.
   *
   * @throws SsoForbiddenException when a filter produced a payload Discourse would not accept.
   */
  sign(payload: DiscourseConnectPayload, forum: ResolvedForum): SignedPayload {
    try {
      return buildSignedPayload(payload, forum.secret);
    } catch (error) {
      this.logger.error(`the SSO payload could not be built: ${(error as Error).message}`);
      throw new SsoForbiddenException(
        'This site produced a sign-in the forum would not accept. Nothing was sent; please contact the site owner.',
        'invalid_payload',
      );
    }
  }
}

function single(query: Record<string, unknown>, name: string): string {
  const value = query[name];
  if (value === undefined || value === '') {
    throw new BadSsoRequestException(
      `The ${name} parameter is missing. Start signing in from the forum's "Log In" button.`,
      `missing_${name}`,
    );
  }
  if (typeof value !== 'string') {
    throw new BadSsoRequestException(
      `The ${name} parameter must be given exactly once.`,
      `repeated_${name}`,
    );
  }
  return value;
}
