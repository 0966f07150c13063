import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { EntityManager, Repository } from 'typeorm';
import { DiscourseConnectForumLinkEntity, type ForumLinkStatus } from './forum-link.entity';

/** How long a handshake's `linked` record stands in this process before a handshake writes it again. */
const HANDSHAKE_LINK_REFRESH_MS = 10 * 60_000;

/** End dates of a suspension this close (ms) are the same suspension (the forum rounds and re-reads it). */
const SAME_SUSPENSION_MS = 60_000;

/** How long a "no account on that forum" answer is trusted before the forum is asked again. */
export const FORUM_LINK_NOT_FOUND_TTL_MS = 24 * 60 * 60 * 1000;

/** A member's link to one forum, as recorded. */
export interface ForumLink {
  forum: string;
  discordId: string;
  forumUserId: number | null;
  forumUsername: string | null;
  status: ForumLinkStatus;
  checkedAt: number;
  /** The module made the forum account's current suspension (see the member lifecycle). */
  suspendedByModule?: boolean;
  /** Until when the forum account is suspended (epoch ms), as last learnt; null when not. */
  suspendedUntil?: number | null;
  /** When the forum was learnt to have anonymized the member's account (epoch ms). */
  anonymizedAt?: number | null;
}

/** The staff flags this module granted a member on one forum (and has not taken back). */
export interface StaffGrants {
  admin: boolean;
  moderator: boolean;
}

/** Staff flags granted: none (the columns' defaults). */
const NO_GRANTS = { adminGranted: false, moderatorGranted: false } as const;

/** The key of a member and forum in the recently-linked map. */
const linkKey = (forum: string, discordId: string) => `${forum}\u0000${discordId}`;

/** What was learnt about a member on one forum. */
export interface ForumLinkAnswer {
  status: ForumLinkStatus;
  /** The forum account, when known; a `linked` answer without it keeps the one recorded. */
  account?: { id: number; username: string };
}

/**
 * The per-member-per-forum links (`discourse_connect_forum_links`): which forums a member has an
 * account on. Written by a completed handshake, a signed webhook and a `by-external` lookup; read
 * by the sync delivery before it writes anything to a forum.
 */
@Injectable()
export class ForumLinks {
  /**
   * Pairs this process recorded as `linked` from a handshake, and until when that stands, so a
   * member's repeated handshakes write the link once (not on every handshake). Bounded.
   */
  private readonly recentlyLinked = new Map<string, number>();

  constructor(
    @InjectRepository(DiscourseConnectForumLinkEntity)
    protected readonly links: Repository<DiscourseConnectForumLinkEntity>,
  ) {}

  /** The link of this member to this forum, or null when nothing is known yet. */
  async find(forum: string, discordId: string): Promise<ForumLink | null> {
    return this.links.findOneBy({ forum, discordId });
  }

  /**
   * Records what was learnt, in one statement (an upsert on forum and Discord id), in the caller's
   * transaction when `manager` is given. A `linked` answer without an account keeps the account
   * already recorded.
   */
  async record(
    forum: string,
    discordId: string,
    answer: ForumLinkAnswer,
    options: { manager?: EntityManager; now?: number; askedAt?: number } = {},
  ): Promise<void> {
    if (answer.status !== 'linked') this.recentlyLinked.delete(linkKey(forum, discordId));
    const repo = this.repo(options.manager);
    if (answer.status === 'not_found' && options.askedAt !== undefined) {
      // A lookup's "not found" never overwrites a link recorded after the lookup was asked (a
      // handshake that completed meanwhile): insert it if nothing is recorded, else update only
      // an older record.
      const at = options.now ?? Date.now();
      await this.insertIfAbsent(repo, forum, discordId, 'not_found', at);
      await repo
        .createQueryBuilder()
        .update(DiscourseConnectForumLinkEntity)
        .set({
          status: 'not_found',
          checkedAt: at,
          forumUserId: null,
          forumUsername: null,
          ...NO_GRANTS,
        })
        .where('forum = :forum AND discord_id = :discordId AND checked_at < :askedAt', {
          forum,
          discordId,
          askedAt: options.askedAt,
        })
        .execute();
      return;
    }
    const overwrite =
      answer.status === 'not_found' || answer.account
        ? ['status', 'checked_at', 'forum_user_id', 'forum_username']
        : ['status', 'checked_at'];
    // No account there: nothing granted there either (a new account starts without staff flags).
    if (answer.status === 'not_found') overwrite.push('admin_granted', 'moderator_granted');
    // Member lifecycle: an account found again (a new one) clears the anonymized mark.
    if (answer.status === 'linked') overwrite.push('anonymized_at');
    await repo
      .createQueryBuilder()
      .insert()
      .into(DiscourseConnectForumLinkEntity)
      .values({
        forum,
        discordId,
        status: answer.status,
        checkedAt: options.now ?? Date.now(),
        forumUserId: answer.account?.id ?? null,
        forumUsername: answer.account?.username ?? null,
        ...NO_GRANTS,
        ...(answer.status === 'linked' ? { anonymizedAt: null } : {}),
      })
      .orUpdate(overwrite, ['forum', 'discord_id'])
      .updateEntity(false)
      .execute();
  }

  /**
   * A completed handshake: the member has an account on that forum. Written once per member and
   * forum per 10 minutes in this process; the handshakes in between write nothing.
   */
  async recordHandshake(forum: string, discordId: string, now = Date.now()): Promise<void> {
    const key = linkKey(forum, discordId);
    if ((this.recentlyLinked.get(key) ?? 0) > now) return;
    await this.record(forum, discordId, { status: 'linked' }, { now });
    this.recentlyLinked.delete(key);
    this.recentlyLinked.set(key, now + HANDSHAKE_LINK_REFRESH_MS);
    if (this.recentlyLinked.size > 10_000) {
      const oldest = this.recentlyLinked.keys().next().value;
      if (oldest !== undefined) this.recentlyLinked.delete(oldest);
    }
  }

  /** The staff flags the module granted this member on this forum; none when nothing is recorded. */
  async staffGrants(
    forum: string,
    discordId: string,
    manager?: EntityManager,
  ): Promise<StaffGrants> {
    const repo = this.repo(manager);
    const link = await repo.findOneBy({ forum, discordId });
    return { admin: link?.adminGranted ?? false, moderator: link?.moderatorGranted ?? false };
  }

  /**
   * Records that the module granted (`to` true) or took back (`to` false) a staff flag of this
   * member on this forum. Resolves to whether this call changed the record: of two deliveries
   * racing for the same change, one reports it. Only a handshake or a `sync_sso` writes it, so a
   * member without a link row is `linked`.
   */
  async changeStaffGrant(
    forum: string,
    discordId: string,
    flag: 'admin' | 'moderator',
    to: boolean,
    options: { manager?: EntityManager; now?: number } = {},
  ): Promise<boolean> {
    const repo = this.repo(options.manager);
    if (to) await this.insertIfAbsent(repo, forum, discordId, 'linked', options.now ?? Date.now());
    const column = flag === 'admin' ? 'adminGranted' : 'moderatorGranted';
    const result = await repo
      .createQueryBuilder()
      .update(DiscourseConnectForumLinkEntity)
      .set({ [column]: to })
      // As a condition, not a bound boolean: portable across SQLite (0/1) and PostgreSQL.
      .where(`forum = :forum AND discord_id = :discordId AND ${to ? 'NOT ' : ''}${flag}_granted`, {
        forum,
        discordId,
      })
      .execute();
    return (result.affected ?? 0) > 0;
  }

  // Member lifecycle: suspensions, anonymized and deleted accounts, forgetting a member.
  /** Every forum link of a member. */
  async forMember(discordId: string): Promise<ForumLink[]> {
    return this.links.find({ where: { discordId }, order: { forum: 'ASC' } });
  }

  /** The link naming this forum user (from a handshake, lookup or webhook), or null. */
  async findByForumUserId(forum: string, forumUserId: number): Promise<ForumLink | null> {
    return this.links.findOneBy({ forum, forumUserId });
  }

  /**
   * Records the forum account's suspension: `until` (epoch ms) or null when it was lifted. `byModule`
   * true: the module made it; false: the forum's (or lifted); left out (a webhook telling what the
   * forum says): unchanged while `until` is the end date recorded (within a minute), otherwise false,
   * since the forum's staff replaced the suspension with their own, which the module must not lift.
   */
  async recordSuspension(
    forum: string,
    discordId: string,
    suspension: { until: number | null; byModule?: boolean },
    options: { manager?: EntityManager } = {},
  ): Promise<void> {
    const repo = this.repo(options.manager);
    const byModule = suspension.until === null ? false : suspension.byModule;
    if (byModule === undefined && suspension.until !== null) {
      await repo
        .createQueryBuilder()
        .update()
        .set({ suspendedByModule: false })
        .where(
          'forum = :forum AND discord_id = :discordId AND (suspended_until IS NULL OR suspended_until < :lo OR suspended_until > :hi)',
          {
            forum,
            discordId,
            lo: suspension.until - SAME_SUSPENSION_MS,
            hi: suspension.until + SAME_SUSPENSION_MS,
          },
        )
        .execute();
    }
    await repo.update(
      { forum, discordId },
      {
        suspendedUntil: suspension.until,
        ...(byModule === undefined ? {} : { suspendedByModule: byModule }),
      },
    );
  }

  /**
   * The forum anonymized the member's account: it is detached from the member (a `not_found` link,
   * so background work skips that forum), with the time, for the anonymized sign-in policy.
   */
  async recordAnonymized(
    forum: string,
    discordId: string,
    options: { manager?: EntityManager; now?: number } = {},
  ): Promise<void> {
    this.recentlyLinked.delete(linkKey(forum, discordId));
    const now = options.now ?? Date.now();
    await this.recordAccountGone(forum, discordId, { ...options, now }, { anonymizedAt: now });
  }

  /** The anonymized mark is cleared (the member is allowed a new account on that forum). */
  async clearAnonymized(forum: string, discordId: string): Promise<void> {
    await this.links.update({ forum, discordId }, { anonymizedAt: null });
  }

  /** The forum account is gone (deleted on the forum): recorded as `not_found`. */
  async recordDeleted(
    forum: string,
    discordId: string,
    options: { manager?: EntityManager; now?: number } = {},
  ): Promise<void> {
    await this.recordAccountGone(forum, discordId, options);
  }

  /** Removes the links of a member (all, or to `forum`); in the caller's transaction with `manager`. */
  async removeMember(
    discordId: string,
    options: { manager?: EntityManager; forum?: string } = {},
  ): Promise<void> {
    const repo = this.repo(options.manager);
    for (const key of [...this.recentlyLinked.keys()])
      if (key.endsWith(`\u0000${discordId}`)) this.recentlyLinked.delete(key);
    await repo.delete(options.forum ? { discordId, forum: options.forum } : { discordId });
  }
  // End of member lifecycle.

  /** The links table, in the caller's transaction when `manager` is given. */
  private repo(manager?: EntityManager): Repository<DiscourseConnectForumLinkEntity> {
    return manager ? manager.getRepository(DiscourseConnectForumLinkEntity) : this.links;
  }

  /** Inserts a link row without an account unless one is recorded (a recorded row is untouched). */
  private async insertIfAbsent(
    repo: Repository<DiscourseConnectForumLinkEntity>,
    forum: string,
    discordId: string,
    status: ForumLinkStatus,
    checkedAt: number,
  ): Promise<void> {
    await repo
      .createQueryBuilder()
      .insert()
      .into(DiscourseConnectForumLinkEntity)
      .values({ forum, discordId, status, checkedAt, forumUserId: null, forumUsername: null })
      .orIgnore()
      .updateEntity(false)
      .execute();
  }

  /** The forum account is gone: recorded as `not_found`, no suspension left, plus `mark`. */
  private async recordAccountGone(
    forum: string,
    discordId: string,
    options: { manager?: EntityManager; now?: number },
    mark: { anonymizedAt?: number } = {},
  ): Promise<void> {
    await this.record(forum, discordId, { status: 'not_found' }, options);
    await this.repo(options.manager).update(
      { forum, discordId },
      { ...mark, suspendedByModule: false, suspendedUntil: null },
    );
  }

  /** Whether a `not_found` answer checked at `checkedAt` is still trusted at `now`. */
  static notFoundIsFresh(link: ForumLink, now = Date.now()): boolean {
    return link.status === 'not_found' && now - link.checkedAt < FORUM_LINK_NOT_FOUND_TTL_MS;
  }
}
