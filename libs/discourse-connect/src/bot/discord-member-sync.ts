import { Injectable, Logger } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import type { DiscordGuildLeaveAction } from '../discourse-connect-options.interface';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents, type DiscordMemberEvent } from '../hooks/discourse-connect.events';
import type { SyncJobKind } from '../sync/sync-job.entity';
import { SyncQueue } from '../sync/sync-queue.service';
import type { LocalUser } from '../users/local-user.interface';
import { UsersService } from '../users/users.service';
import { roleTransition } from './member-roles';

/** What applying Discord's word on a member did. */
export type MemberChange =
  /** Not a local member: nothing to do. */
  | 'unknown'
  | 'unchanged'
  /** A newer gateway event about the member came in after this was observed: left to it. */
  | 'superseded'
  | 'updated'
  | 'left'
  | 'returned';

/** Where the news about a member came from. */
export type MemberChangeSource = DiscordMemberEvent['source'];

/** The jobs beyond the groups' `sync` that each leave action adds. */
const LEAVE_JOBS: Record<DiscordGuildLeaveAction, SyncJobKind[]> = {
  groups: [],
  logout: ['logout'],
  suspend: ['suspend'],
};
/** Lifts a suspension the module set (the job leaves any other suspension alone). */
const RETURN_JOBS: SyncJobKind[] = ['unsuspend'];

/**
 * Turns what Discord says about a member of the server (a gateway event, or the reconcile's
 * listing) into the member's stored roles and the forum jobs it causes, through the same durable
 * queue as a sign-in: the stored roles are part of the metadata hash, so a changed role set updates
 * the member and records a `sync` job (its payload adds and removes the managed groups) in one
 * transaction. Leaving adds the leave action's job (`logout` or `suspend`), returning lifts the
 * module's suspension. Only local members are touched; the queue's forum links keep the jobs to the
 * forums where the member has an account. One member's changes are applied one at a time.
 */
@Injectable()
export class DiscordMemberSync {
  private readonly logger = new Logger('DiscourseConnect');
  private readonly chains = new Map<string, Promise<unknown>>();
  /** When the gateway last reported on each member, so an older listing never undoes it. */
  private readonly lastEventAt = new Map<string, number>();
  private readonly reconciles = new Set<symbol>();

  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly users: UsersService,
    private readonly queue: SyncQueue,
    private readonly actions: DiscourseConnectActionsService,
  ) {}

  private get leaveAction(): DiscordGuildLeaveAction {
    return this.settings.bot?.leaveAction ?? 'logout';
  }

  /**
   * A gateway event about this member arrived now (call it before applying the event). Kept only
   * while a reconcile runs: a listing that starts later already sees what the event said.
   */
  noteEvent(discordId: string): void {
    if (this.reconciles.size > 0) this.lastEventAt.set(discordId, Date.now());
  }

  /** A reconcile starts; the returned function ends it (and forgets what only it needed). */
  reconcileStarted(): () => void {
    const token = Symbol('reconcile');
    this.reconciles.add(token);
    return () => {
      this.reconciles.delete(token);
      if (this.reconciles.size === 0) this.lastEventAt.clear();
    };
  }

  /**
   * Applies the member's roles (`null`: not in the server) as observed at `observedAt` (default:
   * now); skipped when a gateway event about the member arrived since. `known` is the member as the
   * caller read them, re-read before any write.
   */
  applyRoles(
    discordId: string,
    roles: string[] | null,
    source: MemberChangeSource,
    options: { observedAt?: number } = {},
  ): Promise<MemberChange> {
    return this.oneAtATime(discordId, async () => {
      if (options.observedAt !== undefined && this.newerEvent(discordId, options.observedAt))
        return 'superseded';
      const user = await this.users.findByDiscordId(discordId);
      if (!user) return 'unknown';
      return this.write(user, roles, source);
    });
  }

  /**
   * The member was banned: out of the server (every managed group removed) and the leave action,
   * even when they had already left (a ban is at least a leave).
   */
  banned(discordId: string, source: MemberChangeSource = 'gateway'): Promise<MemberChange> {
    return this.oneAtATime(discordId, async () => {
      const user = await this.users.findByDiscordId(discordId);
      if (!user) return 'unknown';
      const change = await this.write(user, null, source, { quiet: true });
      // Not just now marked as gone (already out of the server): the leave action all the same.
      if (change !== 'left') {
        for (const kind of LEAVE_JOBS[this.leaveAction]) await this.queue.enqueue(kind, discordId);
      }
      this.emit(DiscourseConnectEvents.DiscordMemberBanned, {
        discordId,
        roles: null,
        previousRoles: user.metadata.roles,
        source,
        action: this.leaveAction,
      });
      return change;
    });
  }

  /**
   * The member was unbanned: the module's suspension is lifted, and `roles` (null when they are
   * not back in the server) apply as usual.
   */
  unbanned(
    discordId: string,
    roles: string[] | null,
    source: MemberChangeSource = 'gateway',
  ): Promise<MemberChange> {
    return this.oneAtATime(discordId, async () => {
      const user = await this.users.findByDiscordId(discordId);
      if (!user) return 'unknown';
      const change = await this.write(user, roles, source);
      if (change !== 'returned') {
        for (const kind of RETURN_JOBS) await this.queue.enqueue(kind, discordId);
        this.emit(DiscourseConnectEvents.DiscordMemberReturned, {
          discordId,
          roles,
          previousRoles: user.metadata.roles,
          source,
        });
      }
      return change;
    });
  }

  /** Writes the roles when they differ, with the jobs they cause, in one transaction; then the event. */
  private async write(
    user: LocalUser,
    roles: string[] | null,
    source: MemberChangeSource,
    options: { quiet?: boolean } = {},
  ): Promise<MemberChange> {
    const previousRoles = user.metadata.roles;
    const transition = roleTransition(previousRoles, roles);
    if (transition === 'unchanged') return 'unchanged';
    const jobs: SyncJobKind[] = [
      'sync',
      ...(transition === 'left' ? LEAVE_JOBS[this.leaveAction] : []),
      ...(transition === 'returned' ? RETURN_JOBS : []),
    ];
    const outcome = await this.users.updateDiscordRoles(
      user,
      roles,
      async (_o, manager?: EntityManager) => {
        for (const kind of jobs) await this.queue.enqueue(kind, user.discordId, { manager });
      },
    );
    if (!outcome.changed) return 'unchanged';
    this.queue.notify();
    this.logger.debug(
      `Discord member ${user.discordId}: ${transition} (${source}); ${jobs.join(', ')} recorded`,
    );
    if (options.quiet) return transition;
    const event: DiscordMemberEvent = {
      discordId: user.discordId,
      roles,
      previousRoles,
      source,
    };
    if (transition === 'left') {
      this.emit(DiscourseConnectEvents.DiscordMemberLeft, { ...event, action: this.leaveAction });
    } else if (transition === 'returned') {
      this.emit(DiscourseConnectEvents.DiscordMemberReturned, event);
    } else {
      this.emit(DiscourseConnectEvents.DiscordMemberUpdated, event);
    }
    return transition;
  }

  private newerEvent(discordId: string, observedAt: number): boolean {
    return (this.lastEventAt.get(discordId) ?? -Infinity) >= observedAt;
  }

  private emit(name: string, event: DiscordMemberEvent): void {
    this.actions.emit(name, event);
  }

  /** Runs one member's work after the work already queued for that member. */
  private oneAtATime<T>(discordId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(discordId) ?? Promise.resolve();
    const next = previous.then(work, work);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.chains.set(discordId, tail);
    void tail.then(() => {
      if (this.chains.get(discordId) === tail) this.chains.delete(discordId);
    });
    return next;
  }
}
