import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { EntityManager, Repository } from 'typeorm';
import { DiscourseAdminService } from '../admin/discourse-admin.service';
import { DISCORD_ID } from '../config/discourse-connect.schema';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import {
  DiscourseConnectEvents,
  type ForumUserLifecycleEvent,
  type MemberForgottenEvent,
} from '../hooks/discourse-connect.events';
import { DiscourseConnectSessionEntity } from '../session/discourse-connect-session.entity';
import { DiscourseConnectSessions } from '../session/sessions';
import { SyncQueue } from '../sync/sync-queue.service';
import { ForumLinks } from '../users/forum-links';
import { UsersService } from '../users/users.service';

/** A Discord id as the module keys members (a snowflake, digits only). */

/** What a suspension or its lifting did on one forum. */
export interface MemberSuspensionOutcome {
  forum: string;
  /** `done`; `no-account` (nothing there); `skipped` (not the module's suspension); `failed`. */
  outcome: 'done' | 'no-account' | 'skipped' | 'failed';
  error?: string;
}

/** What `forget` did: the local records, and each forum. */
export interface MemberForgetReport {
  discordId: string;
  /** The user record: `deleted`, `absent` (there was none), `kept` (the user store cannot delete). */
  userRecord: 'deleted' | 'absent' | 'kept';
  forums: MemberForgottenEvent['forums'];
}

/** A forum user named by a signed webhook body, with what the body says of its suspension. */
export interface ForumWebhookUser {
  id: number;
  username: string;
  /** The Discord id from the body's `external_id`, when it has a canonical one. */
  discordId: string | null;
  /** `suspended_till` of the body (epoch ms), null when the body has none. */
  suspendedTill: number | null;
}

/** Refusals of the lifecycle API (bad input): plain errors, turned into messages by the callers. */
export class MemberLifecycleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MemberLifecycleError';
  }
}

/**
 * The member lifecycle on the site side: suspend and unsuspend a member on the forums, forget a
 * member (local data gone; each forum account anonymized, deleted or left, by the `lifecycle`
 * options), and what the forums' user webhooks say of suspensions, deletions and anonymizations.
 * Background work: never throws HTTP exceptions.
 */
@Injectable()
export class DiscourseMemberLifecycle {
  private readonly logger = new Logger('DiscourseConnect');

  constructor(
    protected readonly settings: DiscourseConnectSettings,
    protected readonly admin: DiscourseAdminService,
    protected readonly links: ForumLinks,
    protected readonly users: UsersService,
    protected readonly queue: SyncQueue,
    protected readonly actions: DiscourseConnectActionsService,
    @InjectRepository(DiscourseConnectSessionEntity)
    protected readonly sessions: Repository<DiscourseConnectSessionEntity>,
    protected readonly sessionStores: DiscourseConnectSessions,
  ) {}

  /**
   * Suspends the member now on every forum with an admin API key (or the one named) where they have
   * an account, until `until` (default: `lifecycle.suspendDays` from now) with `reason` (default
   * `lifecycle.suspendReason`), recorded as the module's suspension (so `unsuspend` and the
   * `unsuspend` job may lift it).
   *
   * @throws MemberLifecycleError for an id that is not a Discord id or an `until` in the past.
   */
  async suspend(
    discordId: string,
    options: { until?: Date; reason?: string; forum?: string } = {},
  ): Promise<MemberSuspensionOutcome[]> {
    checkDiscordId(discordId);
    const until =
      options.until ??
      new Date(Date.now() + this.settings.lifecycle.suspendDays * 24 * 60 * 60 * 1000);
    if (!(until.getTime() > Date.now()))
      throw new MemberLifecycleError('The end of a suspension must be in the future.');
    const reason = options.reason?.trim() || this.settings.lifecycle.suspendReason;
    return this.eachForum(options.forum, async (forum) => {
      const result = await this.admin.suspend(discordId, until, reason, forum);
      if (!result.found) return 'no-account';
      await this.links.record(forum, discordId, {
        status: 'linked',
        ...(result.username
          ? { account: { id: result.forumUserId, username: result.username } }
          : {}),
      });
      await this.links.recordSuspension(forum, discordId, {
        until: until.getTime(),
        byModule: true,
      });
      this.emit(DiscourseConnectEvents.ForumUserSuspended, {
        forum,
        discordId,
        forumUserId: result.forumUserId,
        via: 'module',
        until: until.getTime(),
        byModule: true,
      });
      return 'done';
    });
  }

  /**
   * Lifts the member's suspension on every forum with an admin API key (or the one named) where the
   * module made it; a suspension made by the forum's staff stays (`skipped`).
   *
   * @throws MemberLifecycleError for an id that is not a Discord id.
   */
  async unsuspend(
    discordId: string,
    options: { forum?: string } = {},
  ): Promise<MemberSuspensionOutcome[]> {
    checkDiscordId(discordId);
    return this.eachForum(options.forum, async (forum) => {
      const link = await this.links.find(forum, discordId);
      if (!link?.suspendedByModule) return 'skipped';
      const result = await this.admin.unsuspend(discordId, forum);
      await this.links.recordSuspension(forum, discordId, { until: null });
      if (!result.found) return 'no-account';
      this.emit(DiscourseConnectEvents.ForumUserUnsuspended, {
        forum,
        discordId,
        forumUserId: result.forumUserId,
        via: 'module',
        byModule: true,
      });
      return 'done';
    });
  }

  /**
   * Forgets a member. First each forum with an admin API key gets the forum action
   * (`lifecycle.forgetAction`: `anonymize`, `delete` or `none`); then, in one transaction, the
   * user record (through the user store's `delete`; a store without it keeps its record, and the
   * report and the log say so), forum links and waiting jobs go, and a forum that failed gets a job
   * that the queue retries (`pending` in the report), so nothing is lost track of. Then every
   * session of the member ends at once, on the module's table or in Redis (each instance's copy
   * too): their browser is signed out. A process that stops in between leaves the member in place,
   * or their sessions signing nobody in (no user record): repeating `forget` is harmless. Sessions in
   * a host's session store cannot be searched by member: they end with the user record.
   *
   * @throws MemberLifecycleError for an id that is not a Discord id.
   */
  async forget(discordId: string): Promise<MemberForgetReport> {
    checkDiscordId(discordId);
    const action = this.settings.lifecycle.forgetAction;
    const kind = action === 'none' ? undefined : action;
    const forums: MemberForgottenEvent['forums'] = await Promise.all(
      this.settings.apiForums.map(async ({ name: forum }) => {
        if (!kind) return { forum, action, outcome: 'done' as const };
        try {
          const result =
            kind === 'delete'
              ? await this.admin.deleteUser(discordId, forum)
              : await this.admin.anonymize(discordId, forum);
          return {
            forum,
            action,
            outcome: result.found ? ('done' as const) : ('no-account' as const),
          };
        } catch (error) {
          const message = (error as Error).message;
          this.logger.warn(
            `forget ${discordId}: ${kind} on ${forum} failed (${message}); a job keeps trying`,
          );
          return { forum, action, outcome: 'pending' as const, error: message };
        }
      }),
    );
    // A forum without an API key where the member has an account: said, since nothing can be done there.
    const apiForums = new Set(this.settings.apiForums.map((f) => f.name));
    for (const link of await this.links.forMember(discordId)) {
      if (kind && link.status === 'linked' && !apiForums.has(link.forum))
        forums.push({ forum: link.forum, action, outcome: 'no-api-key' });
    }
    const retry = kind ? forums.filter((f) => f.outcome === 'pending').map((f) => f.forum) : [];
    const userRecord = await this.users.inStoreTransaction(discordId, async (store, manager) => {
      const run = async (m: EntityManager) => {
        await this.queue.cancelPending(discordId, { manager: m });
        await this.links.removeMember(discordId, { manager: m });
        let record: MemberForgetReport['userRecord'] = 'kept';
        if (store.delete) record = (await store.delete(discordId)) ? 'deleted' : 'absent';
        for (const forum of retry)
          await this.queue.enqueue(kind!, discordId, { forum, manager: m });
        return record;
      };
      return manager ? run(manager) : this.sessions.manager.transaction((own) => run(own));
    });
    // Every session of the member ends now, this process's copies and other instances' included.
    const sessionsEnded = await this.sessionStores.destroyMember(discordId);
    if (userRecord === 'kept') {
      this.logger.error(
        `forget ${discordId}: NOT FORGOTTEN LOCALLY: the user store has no delete(), so its record of the member is kept; delete it in the host app`,
      );
    }
    if (sessionsEnded === null) {
      this.logger.warn(
        `forget ${discordId}: the host's session store cannot be searched by member; their sessions there end with their user record${userRecord === 'kept' ? ', which is kept: they may still be signed in' : ''}`,
      );
    }
    if (retry.length > 0) this.queue.notify();
    const report: MemberForgetReport = { discordId, userRecord, forums };
    this.actions.emit(DiscourseConnectEvents.MemberForgotten, {
      discordId,
      forums,
    } satisfies MemberForgottenEvent);
    return report;
  }

  /**
   * What a signed user webhook body says of the member's forum account, applied to their link:
   *
   * - its `suspended_till` (present: suspended until then; absent: not suspended), when it differs
   *   from what the link records, confirmed through the admin API (`GET /u/by-external/<id>.json`)
   *   when the forum has a key, since a delivery may arrive late;
   * - a `user_destroyed` header, or a body that renames a linked account without its external id
   *   (what an anonymized account looks like), only makes the module ask the forum: the member's
   *   `by-external` lookup 404 and the body's username gone → deleted; that username still naming
   *   the forum user → anonymized (detached from the member). The unsigned header alone never changes anything.
   *
   * Failures are logged: a webhook is never refused for them.
   */
  async applyForumWebhook(forum: string, event: string, user: ForumWebhookUser): Promise<void> {
    try {
      const link = user.discordId
        ? await this.links.find(forum, user.discordId)
        : await this.links.findByForumUserId(forum, user.id);
      const discordId = user.discordId ?? link?.discordId;
      if (!discordId || !link) return;
      const renamed =
        !user.discordId &&
        link.forumUserId === user.id &&
        link.forumUsername !== null &&
        link.forumUsername !== user.username;
      if (event === 'user_destroyed' || renamed) {
        await this.confirmAccount(forum, discordId, user.id, user.username);
        return;
      }
      await this.applySuspension(forum, discordId, user, link.suspendedUntil ?? null);
    } catch (error) {
      this.logger.warn(
        `webhook from ${forum} for forum user ${user.id}: could not apply it (${(error as Error).message})`,
      );
    }
  }

  private async applySuspension(
    forum: string,
    discordId: string,
    user: ForumWebhookUser,
    known: number | null,
  ): Promise<void> {
    const now = Date.now();
    const said =
      user.suspendedTill !== null && user.suspendedTill > now ? user.suspendedTill : null;
    const was = known !== null && known > now ? known : null;
    if (said === was) return;
    let until = said;
    if (this.admin.isEnabled(forum)) {
      // A delivery may be late: the forum says where the account is now (`users: show` scope).
      const current = await this.admin.getUserByExternalId(discordId, forum);
      if (!current || current.id !== user.id) {
        return this.confirmAccount(forum, discordId, user.id, user.username);
      }
      const till =
        typeof current.suspended_till === 'string' ? Date.parse(current.suspended_till) : NaN;
      until = Number.isFinite(till) && till > now ? till : null;
      if (until === was) return;
    }
    await this.links.recordSuspension(forum, discordId, { until });
    this.emit(
      until === null
        ? DiscourseConnectEvents.ForumUserUnsuspended
        : DiscourseConnectEvents.ForumUserSuspended,
      {
        forum,
        discordId,
        forumUserId: user.id,
        via: 'webhook',
        ...(until === null ? {} : { until }),
      },
    );
  }

  /**
   * Asks the forum whether the member's account `forumUserId` is still theirs: found by external id
   * → the link is updated; not found, and the body's username no longer names that forum user →
   * deleted; still names it → anonymized (the forum kept the account and detached it). Both asked
   * through `GET /u/…` (the `users: show` scope). A member without a local record (forgotten) keeps
   * no link either way.
   */
  private async confirmAccount(
    forum: string,
    discordId: string,
    forumUserId: number,
    username: string,
  ): Promise<void> {
    if (!this.admin.isEnabled(forum)) return; // nothing to confirm with: the body alone is not enough
    const found = await this.admin.getUserByExternalId(discordId, forum);
    if (found) {
      await this.links.record(forum, discordId, {
        status: 'linked',
        account: { id: found.id, username: found.username },
      });
      return;
    }
    // Deleted or detached: the forum id remembered for the member names them no more.
    this.admin.forgetForumUserId(discordId, forum);
    const named = await this.admin.getUserByUsername(username, forum);
    const kept = named?.id === forumUserId;
    const known = await this.users.findByDiscordId(discordId);
    if (!known) {
      await this.links.removeMember(discordId, { forum });
      return;
    }
    const link = await this.links.find(forum, discordId);
    if (kept) {
      if (link?.anonymizedAt) return;
      await this.links.recordAnonymized(forum, discordId);
      this.emit(DiscourseConnectEvents.ForumUserAnonymized, {
        forum,
        discordId,
        forumUserId,
        via: 'webhook',
      });
    } else {
      if (link?.status === 'not_found' && !link.anonymizedAt) return;
      await this.links.recordDeleted(forum, discordId);
      this.emit(DiscourseConnectEvents.ForumUserDeleted, {
        forum,
        discordId,
        forumUserId,
        via: 'webhook',
      });
    }
  }

  /** Runs `work` on each forum with an admin API key (or the one named); a failure is reported. */
  private async eachForum(
    only: string | undefined,
    work: (forum: string) => Promise<MemberSuspensionOutcome['outcome']>,
  ): Promise<MemberSuspensionOutcome[]> {
    const forums = this.settings.apiForums.filter((f) => !only || f.name === only);
    if (only && forums.length === 0)
      throw new MemberLifecycleError(`No forum named "${only}" has an admin API key.`);
    return Promise.all(
      forums.map(async ({ name }) => {
        try {
          return { forum: name, outcome: await work(name) };
        } catch (error) {
          return { forum: name, outcome: 'failed' as const, error: (error as Error).message };
        }
      }),
    );
  }

  private emit(event: string, payload: ForumUserLifecycleEvent): void {
    this.actions.emit(event, payload);
  }
}

function checkDiscordId(discordId: string): void {
  if (typeof discordId !== 'string' || !DISCORD_ID.test(discordId))
    throw new MemberLifecycleError('Give the Discord id (digits only) of the member.');
}
