import { Injectable, Logger, Optional } from '@nestjs/common';
import {
  BadSsoRequestException,
  SsoForbiddenException,
} from '../common/discourse-connect.exceptions';
import { isThenable } from '../common/maybe-async';
import { isUnderForum } from '../common/urls';
import { DiscourseConnectSettings, ResolvedForum } from '../config/discourse-connect.settings';
import {
  appendSignedPayload,
  DiscourseConnectProtocolError,
  verifyProviderRequest,
  type DiscourseConnectErrorCode,
} from '../protocol';
import {
  DiscoursePayloadBuilder,
  MemberCannotBeSyncedError,
} from '../payload/discourse-payload.builder';
import type { LocalUser } from '../users/local-user.interface';
import { ForumLinks } from '../users/forum-links';
import { DiscourseConnectStaffFlags, type StaffFlagPlan } from '../payload/staff-flags';

/** A verified request from a forum. */
export interface SsoRequest {
  forum: ResolvedForum;
  nonce: string;
  returnSsoUrl: string;
}

/**
 * The reason logged for each refusal of the codec; a bad signature is a 403 (well-formed, but no
 * configured forum made it), everything else a 400.
 */
const REFUSALS: Record<DiscourseConnectErrorCode, { reason: string; forbidden?: true }> = {
  missing_payload: { reason: 'missing_sso' },
  missing_signature: { reason: 'missing_sig' },
  payload_too_long: { reason: 'sso_too_long' },
  malformed_signature: { reason: 'malformed_sig' },
  malformed_payload: { reason: 'malformed_payload' },
  bad_signature: { reason: 'bad_signature', forbidden: true },
  duplicate_field: { reason: 'malformed_payload' },
  invalid_field: { reason: 'malformed_payload' },
  missing_nonce: { reason: 'missing_nonce' },
  missing_return_sso_url: { reason: 'missing_return_sso_url' },
};

/**
 * The parameter the remembered request carries through Discord sign-in: when (epoch ms) it was
 * remembered. Not signed: a changed value can only make its holder sign in again through the forum.
 */
export const REMEMBERED_AT_PARAMETER = 'remembered_at';

/** Clock skew tolerated on `remembered_at` before a time in the future counts as made up. */
const FUTURE_TOLERANCE_MS = 60_000;

/** The provider side of DiscourseConnect: verify what a forum sent, answer with a signed payload. */
@Injectable()
export class SsoService {
  private readonly logger = new Logger('DiscourseConnect');
  /** The forums' secrets, in the order of `settings.forums` (read again if that list is replaced). */
  private secrets: readonly string[] = [];
  private secretsOf?: readonly ResolvedForum[];

  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly payloads: DiscoursePayloadBuilder,
    @Optional() private readonly links?: ForumLinks,
    @Optional() private readonly staffFlags?: DiscourseConnectStaffFlags,
  ) {}

  /**
   * Checks an incoming `sso`/`sig` pair with the codec against every configured forum's secret,
   * then the `return_sso_url` against that forum's URL.
   *
   * @throws BadSsoRequestException (400) for a malformed request, SsoForbiddenException (403) for a
   *   signature no forum made or a return URL off the forum.
   */
  verifyRequest(query: Record<string, unknown>): SsoRequest {
    const sso = single(query, 'sso');
    const sig = single(query, 'sig');
    const forums = this.settings.forums;
    let verified: ReturnType<typeof verifyProviderRequest>;
    try {
      if (this.secretsOf !== forums) {
        this.secrets = forums.map((f) => f.secret);
        this.secretsOf = forums;
      }
      verified = verifyProviderRequest(sso, sig, this.secrets);
    } catch (error) {
      if (!(error instanceof DiscourseConnectProtocolError)) throw error;
      const refusal = REFUSALS[error.code];
      throw refusal.forbidden
        ? new SsoForbiddenException(error.message, refusal.reason)
        : new BadSsoRequestException(error.message, refusal.reason);
    }
    const forum = forums[verified.secretIndex];
    const { nonce, returnSsoUrl } = verified;
    if (!isUnderForum(returnSsoUrl, forum)) {
      throw new SsoForbiddenException(
        `The sign-in request asks to return somewhere other than the forum at ${forum.url}.`,
        'foreign_return_sso_url',
      );
    }
    return { forum, nonce, returnSsoUrl };
  }

  /**
   * The request to resume after Discord sign-in: this endpoint's `path` with the forum's `sso` and
   * `sig`, and the time it was first remembered (kept when the request already carries one).
   */
  resumeTarget(path: string, query: Record<string, unknown>, now = Date.now()): string {
    const earlier = rememberedAt(query);
    const at = earlier !== undefined && earlier <= now ? earlier : now;
    return `${path}?${new URLSearchParams({
      sso: query.sso as string,
      sig: query.sig as string,
      [REMEMBERED_AT_PARAMETER]: String(at),
    })}`;
  }

  /**
   * Where to send a signed-in person instead of answering, when the request was remembered before
   * Discord sign-in longer ago than `sso.resumeWithinSeconds`: its nonce may be dead on the forum
   * ("Account login timed out"), so the forum's `/session/sso` starts over with a fresh one. The
   * forum keeps the page the person came from with the old nonce, out of this app's sight: the new
   * request asks for the forum's home page. Undefined for a request to answer as it is.
   */
  restartUrl(
    request: SsoRequest,
    query: Record<string, unknown>,
    now = Date.now(),
  ): string | undefined {
    if (query[REMEMBERED_AT_PARAMETER] === undefined) return undefined;
    const at = rememberedAt(query);
    const fresh =
      at !== undefined &&
      at <= now + FUTURE_TOLERANCE_MS &&
      now - at <= this.settings.sso.resumeWithinSeconds * 1000;
    if (fresh) return undefined;
    const home = `${new URL(request.forum.url).pathname.replace(/\/+$/, '')}/`;
    return `${request.forum.url}/session/sso?${new URLSearchParams({ return_path: home })}`;
  }

  /**
   * The signed redirect back to the forum for a signed-in user. Records that the member has an
   * account on that forum (the handshake creates or signs in to it), so that later syncs reach it.
   *
   * @throws SsoForbiddenException when the Discord account has no email, the payload cannot be
   *   signed, or a filter refuses.
   */
  async buildResponseUrl(request: SsoRequest, user: LocalUser): Promise<string> {
    // Each step awaited only when it has something to wait for (the default costs no promise).
    if (this.settings.lifecycle.anonymizedSignIn === 'refuse' && this.links)
      await this.refuseAnonymized(request.forum.name, user.discordId);
    try {
      const staff = this.staffFlags?.enabled
        ? await this.staffPlan(user, request.forum)
        : undefined;
      const built = this.payloads.forSignInNow(user, request.forum, request.nonce, staff);
      const payload = isThenable(built) ? await built : built;
      // Recorded before the payload leaves (the forum never answers a handshake); when that fails
      // no staff flag goes out, and the member still gets to the forum.
      if (staff && !(await this.staffFlags!.recordHandshake(staff))) {
        for (const flag of Object.keys(staff.fields)) delete payload[flag as keyof typeof payload];
      }
      const url = appendSignedPayload(
        request.returnSsoUrl,
        this.payloads.sign(payload, request.forum),
      );
      if (this.links) await this.recordLink(request.forum.name, user.discordId);
      return url;
    } catch (error) {
      if (error instanceof MemberCannotBeSyncedError) throw refusalPage(error);
      throw error;
    }
  }

  /** The staff flags of this handshake; none when their record cannot be read (logged). */
  private async staffPlan(
    user: LocalUser,
    forum: ResolvedForum,
  ): Promise<StaffFlagPlan | undefined> {
    if (!this.staffFlags?.enabled) return undefined;
    try {
      return await this.staffFlags.plan(user, forum);
    } catch (error) {
      this.logger.warn(
        `could not read the staff flags of ${user.discordId} on ${forum.name}, none sent: ${(error as Error).message}`,
      );
      return undefined;
    }
  }

  /**
   * Member lifecycle: with `lifecycle.anonymizedSignIn: 'refuse'`, a member whose account on this
   * forum the forum anonymized gets a 403 page instead of a new account. (With `new-account`, the
   * default, the forum makes a fresh account and the handshake clears the mark.) Read only with
   * `refuse`: the default costs the handshake nothing.
   *
   * @throws SsoForbiddenException for such a member under `refuse`.
   */
  private async refuseAnonymized(forum: string, discordId: string): Promise<void> {
    if (this.settings.lifecycle.anonymizedSignIn !== 'refuse' || !this.links) return;
    const link = await this.links.find(forum, discordId);
    if (!link?.anonymizedAt) return;
    throw new SsoForbiddenException(
      'Your account on this forum was anonymized, so signing in to it again is not possible. Ask the forum’s staff if you think this is a mistake.',
      'anonymized_account',
    );
  }

  /** A failure to record the link is logged: the member still gets to the forum. */
  private async recordLink(forum: string, discordId: string): Promise<void> {
    if (!this.links) return;
    try {
      await this.links.recordHandshake(forum, discordId);
    } catch (error) {
      this.logger.warn(
        `could not record the forum link of ${discordId} to ${forum}: ${(error as Error).message}`,
      );
    }
  }
}

/** The page a person sees when no payload could be made for them. */
function refusalPage(error: MemberCannotBeSyncedError): SsoForbiddenException {
  switch (error.code) {
    case 'discord_account_without_email':
      return new SsoForbiddenException(
        'The forum needs an email address to create your account, and your Discord account has none. ' +
          'Add and verify an email in Discord (User Settings → My Account), then sign in again.',
        'discord_account_without_email',
        'An email address is needed',
      );
    case 'invalid_payload':
      return new SsoForbiddenException(
        'This site produced a sign-in the forum would not accept. Nothing was sent; please contact the site owner.',
        'invalid_payload',
      );
  }
}

/** The `remembered_at` time of a resumed request, or undefined when absent or not a time. */
function rememberedAt(query: Record<string, unknown>): number | undefined {
  const value = query[REMEMBERED_AT_PARAMETER];
  if (typeof value !== 'string' || !/^[0-9]{1,15}$/.test(value)) return undefined;
  return Number(value);
}

/**
 * The parameter as given once, or '' when absent (the codec says it is missing).
 *
 * @throws BadSsoRequestException when given more than once (an array or object from the parser).
 */
function single(query: Record<string, unknown>, name: string): string {
  const value = query[name];
  if (value === undefined) return '';
  if (typeof value !== 'string') {
    throw new BadSsoRequestException(
      `The ${name} parameter must be given exactly once.`,
      `repeated_${name}`,
    );
  }
  return value;
}
