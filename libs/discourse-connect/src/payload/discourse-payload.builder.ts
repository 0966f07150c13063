import { Injectable, Logger } from '@nestjs/common';
import { DiscourseConnectSettings, ResolvedForum } from '../config/discourse-connect.settings';
import { isThenable, type MaybePromise } from '../common/maybe-async';
import { DiscourseConnectFiltersService } from '../hooks/filters.service';
import { buildSignedPayload, type DiscourseConnectPayload, type SignedPayload } from '../protocol';
import { discordAvatarUrl } from '../users/discord-profile';
import { discourseUsername } from './discourse-username';
import type { StaffFlagPlan } from './staff-flags';
import type { LocalUser } from '../users/local-user.interface';

/** Why no payload could be made for a member. */
export type DiscoursePayloadErrorCode =
  /** The Discord account has no email address, and the forum needs one. */
  | 'discord_account_without_email'
  /** The payload (after the filters) is one Discourse would not accept; nothing was sent. */
  | 'invalid_payload';

/**
 * A member who cannot be described to the forum. A domain error: the SSO endpoint turns it into a
 * page for the person, a sync job records its message for the operator. Never worth retrying.
 */
export class MemberCannotBeSyncedError extends Error {
  readonly retryable = false;

  constructor(
    readonly code: DiscoursePayloadErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'MemberCannotBeSyncedError';
  }
}

/**
 * Turns a local user into the DiscourseConnect fields that describe them to a forum, the one way
 * for both the browser sign-in (with the forum's nonce) and the admin API's `sync_sso` (without).
 * The username follows Discourse's rules (`discourse-username.ts`).
 * The `sso.payload` filters run last, and cannot break the invariants: the right external_id
 * (and nonce), `require_activation` whenever Discord has not verified the email, and the staff
 * flags of the policy (`staff-flags.ts`) on a forum whose roles grant them.
 */
@Injectable()
export class DiscoursePayloadBuilder {
  private readonly logger = new Logger('DiscourseConnect');

  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly filters: DiscourseConnectFiltersService,
  ) {}

  /**
   * The payload answering a forum's sign-in request.
   *
   * @throws MemberCannotBeSyncedError when the Discord account has no email. A refusing filter
   *   throws what the filters service throws.
   */
  async forSignIn(
    user: LocalUser,
    forum: ResolvedForum,
    nonce: string,
    staff?: StaffFlagPlan,
  ): Promise<DiscourseConnectPayload> {
    return this.build(user, forum, nonce, staff);
  }

  /**
   * {@link forSignIn} without a promise when nothing needs waiting for (no asynchronous filter):
   * the payload, or a promise of it. Throws (or rejects) as `forSignIn` does.
   */
  forSignInNow(
    user: LocalUser,
    forum: ResolvedForum,
    nonce: string,
    staff?: StaffFlagPlan,
  ): MaybePromise<DiscourseConnectPayload> {
    return this.build(user, forum, nonce, staff);
  }

  /**
   * The payload of a `sync_sso` call: the same fields, never a nonce. `staff` (both methods): the
   * staff flags to send (`DiscourseConnectStaffFlags.plan`); without it none are sent.
   *
   * @throws MemberCannotBeSyncedError when the Discord account has no email.
   */
  async forSync(
    user: LocalUser,
    forum: ResolvedForum,
    staff?: StaffFlagPlan,
  ): Promise<DiscourseConnectPayload> {
    const payload = await this.build(user, forum, undefined, staff);
    delete payload.nonce;
    return payload;
  }

  /**
   * Signs a payload with the forum's secret.
   *
   * @throws MemberCannotBeSyncedError (`invalid_payload`) when the payload is one Discourse would
   *   not accept (a filter put a comma in a group name, say).
   */
  sign(payload: DiscourseConnectPayload, forum: ResolvedForum): SignedPayload {
    try {
      return buildSignedPayload(payload, forum.secret);
    } catch (error) {
      this.logger.error(`the SSO payload could not be built: ${(error as Error).message}`);
      throw new MemberCannotBeSyncedError(
        'invalid_payload',
        `The DiscourseConnect payload is not one Discourse accepts: ${(error as Error).message}`,
      );
    }
  }

  private build(
    user: LocalUser,
    forum: ResolvedForum,
    nonce: string | undefined,
    staff: StaffFlagPlan | undefined,
  ): MaybePromise<DiscourseConnectPayload> {
    if (!user.email) {
      throw new MemberCannotBeSyncedError(
        'discord_account_without_email',
        `The Discord account ${user.discordId} has no email address, and the forum needs one.`,
      );
    }
    const base: DiscourseConnectPayload = {
      nonce,
      external_id: user.discordId,
      email: user.email,
      // The Discord username when Discourse accepts it, otherwise one made to its rules (stable
      // between sign-ins); an sso.payload filter may choose another.
      username: discourseUsername(user.username, user.discordId, {
        min: this.settings.sso.minUsernameLength,
        max: this.settings.sso.maxUsernameLength,
      }),
      name: user.displayName,
      avatar_url: discordAvatarUrl(user.metadata),
      // Discourse links an existing forum account by email unless activation is required: an email
      // Discord has not verified must never be trusted for that.
      require_activation: user.emailVerified ? undefined : true,
    };
    const groups = this.groupFieldsNow(user, forum);
    if (isThenable(groups))
      return groups.then((fields) => this.filtered(base, fields, user, forum, nonce, staff));
    return this.filtered(base, groups, user, forum, nonce, staff);
  }

  /** The payload from its base fields and group fields: through the filters, then the invariants. */
  private filtered(
    base: DiscourseConnectPayload,
    groups: DiscourseConnectPayload,
    user: LocalUser,
    forum: ResolvedForum,
    nonce: string | undefined,
    staff: StaffFlagPlan | undefined,
  ): MaybePromise<DiscourseConnectPayload> {
    Object.assign(base, groups);
    const filtered = this.filters.applyNow('sso.payload', base, {
      user,
      forum: { name: forum.name, url: forum.url },
    });
    if (isThenable(filtered))
      return filtered.then((payload) => this.enforced(payload, user, forum, nonce, staff));
    return this.enforced(filtered, user, forum, nonce, staff);
  }

  /** The filtered payload with what no filter may change put back. */
  private enforced(
    filtered: DiscourseConnectPayload,
    user: LocalUser,
    forum: ResolvedForum,
    nonce: string | undefined,
    staff: StaffFlagPlan | undefined,
  ): DiscourseConnectPayload {
    const payload: DiscourseConnectPayload = { ...filtered, nonce, external_id: user.discordId };
    // A flag granted by roles on this forum follows the policy and its record only: a filter can
    // neither grant nor take it back.
    for (const flag of ['admin', 'moderator'] as const) {
      const planned = staff?.fields[flag];
      if (forum.staffRoles[flag].length === 0 && planned === undefined) continue;
      delete payload[flag];
      if (planned !== undefined) payload[flag] = planned;
    }
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
  private groupFieldsNow(
    user: LocalUser,
    forum: ResolvedForum,
  ): MaybePromise<DiscourseConnectPayload> {
    const shared = this.settings.groups;
    if (!shared) return {};
    // The forum's own map, when it has one, wins over the shared one.
    const config = { ...shared, ...forum.groups };
    // Only staff roles configured (no group map): groups are not managed.
    if (Object.keys(config.roleGroups).length === 0) return {};
    return this.groupFields(user, forum, config);
  }

  /** {@link groupFieldsNow} of a forum whose groups are managed. */
  private async groupFields(
    user: LocalUser,
    forum: ResolvedForum,
    config: NonNullable<DiscourseConnectSettings['groups']>,
  ): Promise<DiscourseConnectPayload> {
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
}
