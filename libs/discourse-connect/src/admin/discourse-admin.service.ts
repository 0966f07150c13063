import { Injectable, Optional } from '@nestjs/common';
import { httpRequest, retryAfterSeconds } from '../common/http-request';
import { DiscourseConnectSettings, ResolvedForum } from '../config/discourse-connect.settings';
import type { DiscourseConnectPayload } from '../protocol';
import { AdminApiRateLimiter } from './rate-limiter';
import { DiscoursePayloadBuilder } from '../payload/discourse-payload.builder';
import type { StaffFlagPlan } from '../payload/staff-flags';
import type { LocalUser } from '../users/local-user.interface';
import {
  DiscourseApiError,
  DiscourseApiNotConfiguredError,
  DiscourseRateLimitError,
} from './discourse-api.errors';

/** The parts of a Discourse user this module reads. */
export interface DiscourseUser {
  id: number;
  username: string;
  [key: string]: unknown;
}

/**
 * What a lifecycle call (suspend, unsuspend, anonymize, delete) did: acted on the member's forum
 * account, or found none (`found: false`: the forum has no account for that external id; nothing
 * was done).
 */
export type DiscourseLifecycleResult =
  { found: true; forumUserId: number; username?: string } | { found: false };

const CACHE_LIMIT = 10_000;

type ApiForum = ResolvedForum & { api: NonNullable<ResolvedForum['api']> };

/**
 * A typed client for the Discourse admin API: `sync_sso`, users by external id, log-out, group
 * members. Sends `Api-Key`/`Api-Username`, times out, and turns every non-2xx answer into a
 * {@link DiscourseApiError} carrying Discourse's message (429 as {@link DiscourseRateLimitError} with
 * the wait Discourse asked for). The key never appears in a log or an error.
 */
@Injectable()
export class DiscourseAdminService {
  private readonly userIds = new Map<string, number>();
  private readonly groupIds = new Map<string, number>();

  constructor(
    protected readonly settings: DiscourseConnectSettings,
    protected readonly payloads: DiscoursePayloadBuilder,
    @Optional() protected readonly limiter?: AdminApiRateLimiter,
  ) {}

  /** Whether the forum has an admin API key configured. */
  isEnabled(forumName?: string): boolean {
    return Boolean(this.settings.forumByName(forumName)?.api);
  }

  /**
   * Creates or updates the forum user without a browser (`POST /admin/users/sync_sso`). Given a
   * local user, the payload goes through the same filters as a sign-in; `options.staff` carries
   * the staff flags to send (none without it).
   *
   * @throws MemberCannotBeSyncedError when no payload can be made for the user (no email, or one
   *   Discourse would not accept); DiscourseApiError when the forum refuses or cannot be reached.
   */
  async syncSso(
    subject: LocalUser | DiscourseConnectPayload,
    forumName?: string,
    options: { staff?: StaffFlagPlan } = {},
  ): Promise<DiscourseUser> {
    const forum = this.forum(forumName);
    const payload = isLocalUser(subject)
      ? await this.payloads.forSync(subject, forum, options.staff)
      : { ...subject };
    delete payload.nonce;
    if (!payload.external_id) throw new DiscourseApiError(422, 'sync_sso needs an external_id');
    const signed = this.payloads.sign(payload, forum);
    const user = (await this.request(forum, 'POST', '/admin/users/sync_sso', {
      sso: signed.sso,
      sig: signed.sig,
    })) as DiscourseUser;
    if (typeof user?.id === 'number')
      this.remember(this.userIds, `${forum.name}:${payload.external_id}`, user.id);
    return user;
  }

  /**
   * The forum user with this external id (the Discord id), or null. Not found: the remembered forum
   * id of that external id is dropped too (the account was deleted or detached).
   */
  async getUserByExternalId(externalId: string, forumName?: string): Promise<DiscourseUser | null> {
    const forum = this.forum(forumName);
    const key = `${forum.name}:${externalId}`;
    try {
      const body = (await this.request(
        forum,
        'GET',
        `/u/by-external/${encodeURIComponent(externalId)}.json`,
      )) as { user?: DiscourseUser };
      if (!body?.user || typeof body.user.id !== 'number') {
        this.userIds.delete(key);
        return null;
      }
      this.remember(this.userIds, key, body.user.id);
      return body.user;
    } catch (error) {
      if (error instanceof DiscourseApiError && error.status === 404) {
        this.userIds.delete(key);
        return null;
      }
      throw error;
    }
  }

  /**
   * Drops the remembered forum id of this external id (the forum said the account was deleted or
   * anonymized): the next call looks the member up again.
   */
  forgetForumUserId(externalId: string, forumName?: string): void {
    this.forget(externalId, forumName);
  }

  /** Ends every forum session of that forum user. */
  async logOut(discourseUserId: number, forumName?: string): Promise<void> {
    await this.request(this.forum(forumName), 'POST', `/admin/users/${discourseUserId}/log_out`);
  }

  /**
   * Logs the forum user with this external id out of the forum. Resolves to false when the forum
   * has no such user (nothing to do).
   */
  async logOutByExternalId(externalId: string, forumName?: string): Promise<boolean> {
    const forum = this.forum(forumName);
    const key = `${forum.name}:${externalId}`;
    let id = this.userIds.get(key);
    if (id === undefined) {
      const user = await this.getUserByExternalId(externalId, forum.name);
      if (!user) return false;
      id = user.id;
    }
    try {
      await this.logOut(id, forum.name);
      return true;
    } catch (error) {
      if (error instanceof DiscourseApiError && error.status === 404) {
        this.userIds.delete(key); // the cached id is stale: look it up once more
        const user = await this.getUserByExternalId(externalId, forum.name);
        if (!user) return false;
        await this.logOut(user.id, forum.name);
        return true;
      }
      throw error;
    }
  }

  // Member lifecycle: suspend, unsuspend, anonymize, delete (by external id).
  /**
   * Suspends the member's forum account until `until` (`PUT /admin/users/<id>/suspend`), with
   * `reason` (shown to the member). The forum ends their sessions. A member without an account there
   * resolves to `{ found: false }`.
   *
   * @throws DiscourseApiError when the forum refuses or cannot be reached.
   */
  suspend(
    externalId: string,
    until: Date,
    reason: string,
    forumName?: string,
  ): Promise<DiscourseLifecycleResult> {
    return this.onForumUser(externalId, forumName, async (forum, id) => {
      await this.request(forum, 'PUT', `/admin/users/${id}/suspend`, {
        suspend_until: until.toISOString(),
        reason,
      });
      return undefined;
    });
  }

  /** Lifts the suspension of the member's forum account (`PUT /admin/users/<id>/unsuspend`). */
  unsuspend(externalId: string, forumName?: string): Promise<DiscourseLifecycleResult> {
    return this.onForumUser(externalId, forumName, async (forum, id) => {
      await this.request(forum, 'PUT', `/admin/users/${id}/unsuspend`);
      return undefined;
    });
  }

  /**
   * Anonymizes the member's forum account (`PUT /admin/users/<id>/anonymize`): the forum renames it,
   * clears its profile and detaches it from the member (its DiscourseConnect record is removed, so
   * the same external id signs in to a new account). `username` is the anonymous name.
   *
   * @throws DiscourseApiError when the forum refuses (e.g. a staff account) or cannot be reached.
   */
  async anonymize(externalId: string, forumName?: string): Promise<DiscourseLifecycleResult> {
    const result = await this.onForumUser(externalId, forumName, async (forum, id) => {
      const body = (await this.request(forum, 'PUT', `/admin/users/${id}/anonymize`)) as
        { success?: unknown; username?: unknown } | undefined;
      if (body?.success !== 'OK') {
        throw new DiscourseApiError(
          422,
          `PUT /admin/users/${id}/anonymize: the forum did not anonymize the account`,
        );
      }
      return typeof body.username === 'string' ? body.username : undefined;
    });
    this.forget(externalId, forumName);
    return result;
  }

  /**
   * Deletes the member's forum account (`DELETE /admin/users/<id>.json`), with its posts unless
   * `deletePosts` is false (the forum then refuses an account that has posts).
   *
   * @throws DiscourseApiError when the forum refuses (a staff account, posts kept) or cannot be reached.
   */
  async deleteUser(
    externalId: string,
    forumName?: string,
    options: { deletePosts?: boolean } = {},
  ): Promise<DiscourseLifecycleResult> {
    const result = await this.onForumUser(externalId, forumName, async (forum, id) => {
      const body = (await this.request(forum, 'DELETE', `/admin/users/${id}.json`, {
        delete_posts: String(options.deletePosts ?? true),
      })) as { deleted?: unknown } | undefined;
      if (body?.deleted !== true) {
        throw new DiscourseApiError(
          422,
          `DELETE /admin/users/${id}.json: the forum did not delete the account`,
        );
      }
      return undefined;
    });
    this.forget(externalId, forumName);
    return result;
  }

  /**
   * Runs `call` on the forum user with this external id, looked up afresh
   * (`GET /u/by-external/<id>.json`, never the remembered id: these calls change or destroy an
   * account, and the one remembered may since have been anonymized, detached and kept by the forum,
   * or replaced by a new one). No such user: `{ found: false }`.
   */
  private async onForumUser(
    externalId: string,
    forumName: string | undefined,
    call: (forum: ApiForum, id: number) => Promise<string | undefined>,
  ): Promise<DiscourseLifecycleResult> {
    const forum = this.forum(forumName);
    const user = await this.getUserByExternalId(externalId, forum.name);
    if (!user) return { found: false };
    const username = await call(forum, user.id);
    return { found: true, forumUserId: user.id, ...usernameOf(username ?? user.username) };
  }

  /**
   * The forum user with this username (`GET /u/<username>.json`, the `users: show` scope; its
   * `suspended_till` is there while suspended), or null when the forum has no such user.
   */
  async getUserByUsername(username: string, forumName?: string): Promise<DiscourseUser | null> {
    try {
      const body = (await this.request(
        this.forum(forumName),
        'GET',
        `/u/${encodeURIComponent(username)}.json`,
      )) as { user?: DiscourseUser } | undefined;
      return typeof body?.user?.id === 'number' ? body.user : null;
    } catch (error) {
      if (error instanceof DiscourseApiError && error.status === 404) return null;
      throw error;
    }
  }

  /** Drops the cached forum user id of this external id (the account was anonymized or deleted). */
  private forget(externalId: string, forumName?: string): void {
    const forum = this.settings.forumByName(forumName);
    if (forum) this.userIds.delete(`${forum.name}:${externalId}`);
  }
  // End of member lifecycle.

  /** Adds forum users to a group by name. Users who are members already are not an error. */
  async addGroupMembers(groupName: string, usernames: string[], forumName?: string): Promise<void> {
    if (usernames.length === 0) return;
    const forum = this.forum(forumName);
    const id = await this.groupId(forum, groupName);
    try {
      await this.request(forum, 'PUT', `/groups/${id}/members.json`, {
        usernames: usernames.join(','),
      });
    } catch (error) {
      // Discourse answers 422 when every user given is a member already.
      if (error instanceof DiscourseApiError && error.status === 422) return;
      throw error;
    }
  }

  /** Removes forum users from a group by name. */
  async removeGroupMembers(
    groupName: string,
    usernames: string[],
    forumName?: string,
  ): Promise<void> {
    if (usernames.length === 0) return;
    const forum = this.forum(forumName);
    const id = await this.groupId(forum, groupName);
    await this.request(forum, 'DELETE', `/groups/${id}/members.json`, {
      usernames: usernames.join(','),
    });
  }

  /**
   * Whether the forum shares our DiscourseConnect secret, without creating anything. Discourse
   * answers every sync_sso it cannot parse, a bad signature included, with a 422 and its translated
   * login-error text, and a signed payload with a blank external_id with a 422 and another text. So
   * two probes, both with a blank external_id: one with a deliberately wrong signature (the forum's
   * login-error answer) and one signed with our secret. The same answer twice: our signature was
   * refused too (mismatch); a different 422 (the blank-id one) or a 403 (the record was checked):
   * it was accepted (match). 404: DiscourseConnect is off. Anything else: unknown.
   */
  async checkSharedSecret(
    forumName?: string,
  ): Promise<'match' | 'mismatch' | 'disabled' | 'unknown'> {
    const forum = this.forum(forumName);
    const signed = this.payloads.sign(
      { external_id: '', email: 'secret-check@invalid.example' },
      forum,
    );
    type Answer = { status: number; message: string; error?: DiscourseApiError };
    const probe = async (sig: string): Promise<Answer> => {
      try {
        await this.request(forum, 'POST', '/admin/users/sync_sso', { sso: signed.sso, sig });
        return { status: 200, message: '' };
      } catch (error) {
        if (!(error instanceof DiscourseApiError)) throw error;
        return { status: error.status, message: error.discourseMessage ?? '', error };
      }
    };
    const wrongSig = signed.sig === '0'.repeat(64) ? '1'.repeat(64) : '0'.repeat(64);
    const refused = await probe(wrongSig);
    if (refused.status === 404) return 'disabled';
    if (refused.status !== 422) {
      const { status } = refused;
      if (status === 0 || status >= 500 || status === 401 || status === 403) throw refused.error;
      return 'unknown';
    }
    const ours = await probe(signed.sig);
    if (ours.status === 404) return 'disabled';
    if (ours.status === 403) return 'match';
    if (ours.status !== 422 || !refused.message || !ours.message) return 'unknown';
    return ours.message === refused.message ? 'mismatch' : 'match';
  }

  /** Raw JSON GET, for checks such as the CLI's `check`. */
  async get<T = unknown>(path: string, forumName?: string): Promise<T> {
    return (await this.request(this.forum(forumName), 'GET', path)) as T;
  }

  private async groupId(forum: ApiForum, name: string): Promise<number> {
    const key = `${forum.name}:${name.toLowerCase()}`;
    const cached = this.groupIds.get(key);
    if (cached !== undefined) return cached;
    const body = (await this.request(forum, 'GET', `/groups/${encodeURIComponent(name)}.json`)) as {
      group?: { id?: number };
    };
    const id = body?.group?.id;
    if (typeof id !== 'number')
      throw new DiscourseApiError(404, `The forum has no group named "${name}".`);
    this.remember(this.groupIds, key, id);
    return id;
  }

  private forum(name?: string): ApiForum {
    const forum = this.settings.forumByName(name);
    if (!forum) throw new DiscourseApiError(0, `No forum named "${name}" is configured.`);
    if (!forum.api) throw new DiscourseApiNotConfiguredError(forum.url);
    return forum as ApiForum;
  }

  private async request(
    forum: ApiForum,
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    form?: Record<string, string>,
  ): Promise<unknown> {
    const what = `${method} ${path}`;
    // Each forum has its own admin API budget.
    const limiter = this.limiter?.forForum(forum.name);
    await limiter?.acquire();
    const response = await httpRequest(`${forum.url}${path}`, {
      method,
      headers: {
        'Api-Key': forum.api.key,
        'Api-Username': forum.api.username,
        Accept: 'application/json',
        'User-Agent': this.settings.discord.userAgent,
      },
      form,
      timeoutMs: forum.api.timeoutMs,
      redirect: 'manual',
    });
    if (!response.reached) {
      throw new DiscourseApiError(
        0,
        `${what}: the forum ${response.timedOut ? 'did not answer in time' : 'could not be reached'}`,
      );
    }
    const text = response.text;
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (response.ok) return body;
    const message = discourseMessage(body, text);
    if (response.status === 429) {
      const wait = waitSecondsOf(response.headers, body, text);
      limiter?.pause(wait);
      throw new DiscourseRateLimitError(
        `${what}: the forum is rate limiting the admin API; wait ${wait}s`,
        wait,
      );
    }
    throw new DiscourseApiError(
      response.status,
      `${what}: the forum answered ${response.status}${message ? ` (${message})` : ''}`,
      message,
    );
  }

  private remember(map: Map<string, number>, key: string, value: number): void {
    if (map.size >= CACHE_LIMIT) map.delete(map.keys().next().value!);
    map.set(key, value);
  }
}

const usernameOf = (value: string | undefined): { username?: string } =>
  value === undefined ? {} : { username: value };

function isLocalUser(subject: LocalUser | DiscourseConnectPayload): subject is LocalUser {
  return typeof (subject as LocalUser).discordId === 'string' && 'metadataHash' in subject;
}

/** Discourse's own words: `errors[]`, `message`, `error` or `failed`; short and single-line. */
function discourseMessage(body: unknown, text: string): string | undefined {
  const b = body as
    { errors?: unknown; message?: unknown; error?: unknown; failed?: unknown } | undefined;
  const raw = Array.isArray(b?.errors)
    ? b!.errors.join('; ')
    : typeof b?.message === 'string'
      ? b.message
      : typeof b?.error === 'string'
        ? b.error
        : typeof b?.failed === 'string'
          ? b.failed
          : body === undefined && text && text.length < 200 && !text.includes('<')
            ? text
            : undefined;
  return raw?.replace(/\s+/g, ' ').slice(0, 300);
}

/** `Retry-After` first, then the JSON `extras.wait_seconds`, then a number in a plain-text body. */
export function waitSecondsOf(headers: Headers, body: unknown, text: string): number {
  const header = retryAfterSeconds(headers);
  if (header !== undefined) return header;
  const extras = (body as { extras?: { wait_seconds?: unknown } } | undefined)?.extras;
  if (typeof extras?.wait_seconds === 'number' && extras.wait_seconds > 0)
    return Math.ceil(extras.wait_seconds);
  const match = /(\d+)\s*seconds?/i.exec(text);
  if (match) return Number(match[1]);
  return 10;
}
