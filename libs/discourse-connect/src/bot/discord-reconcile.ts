import type { DiscourseConnectActionsService } from '../hooks/actions.service';
import {
  DiscourseConnectEvents,
  type DiscordReconcileEvent,
} from '../hooks/discourse-connect.events';
import type { LocalUser } from '../users/local-user.interface';
import type { UsersService } from '../users/users.service';
import type { DiscordMemberSync, MemberChange } from './discord-member-sync';
import { GUILD_MEMBERS_PAGE, type GuildMember, type GuildMemberSource } from './guild-members';
import { laterSnowflake, sameRoles } from './member-roles';

/** How many local members are read at a time while looking for the ones no longer listed. */
const LOCAL_PAGE = 500;

/** What one reconcile needs besides the members: a hint of how many there are, and when to stop. */
export interface ReconcileOptions {
  /**
   * The server's member count, when known (the gateway's `GUILD_CREATE`): the listing stops once
   * it has seen that many, saving the last, empty page.
   */
  memberCount?: number;
  /** Asked between pages: true ends the reconcile early (shutdown, lost gateway lease). */
  shouldStop?: () => boolean;
}

/**
 * Compares every local member's stored roles with Discord's listing of the server, and applies the
 * differences the way a gateway event would ({@link DiscordMemberSync}): the catch-up for events
 * missed while the gateway was down. Reads Discord in pages of 1000 (ascending ids, `after` the
 * last one) and the local members in pages too; a page is compared when it arrives. A listing
 * that ran to its end is complete, and only then are local members missing from it treated as gone
 * (not one whose record was created or written after the reconcile started: the listing is older).
 * Finds nothing to change: no database write and no forum call.
 */
export class DiscordReconcile {
  constructor(
    private readonly source: GuildMemberSource,
    private readonly users: UsersService,
    private readonly members: DiscordMemberSync,
    private readonly actions: DiscourseConnectActionsService,
  ) {}

  async run(options: ReconcileOptions = {}): Promise<DiscordReconcileEvent> {
    const finished = this.members.reconcileStarted();
    try {
      return await this.reconcile(options);
    } finally {
      finished();
    }
  }

  private async reconcile(options: ReconcileOptions): Promise<DiscordReconcileEvent> {
    const startedAt = Date.now();
    const stop = options.shouldStop ?? (() => false);
    const state = { listed: 0, calls: 0, after: null as string | null, seen: new Set<string>() };
    const counts = { updated: 0, left: 0, returned: 0 };
    const count = (change: MemberChange): void => {
      if (change === 'updated' || change === 'left' || change === 'returned') counts[change]++;
    };

    /** One page: listed, compared; resolves to whether it was the last one. */
    const page = async (): Promise<boolean> => {
      const observedAt = Date.now();
      const members = await this.source.listMembers(state.after, GUILD_MEMBERS_PAGE);
      state.calls++;
      state.listed += members.length;
      for (const m of members) state.after = laterSnowflake(state.after, m.id);
      for (const change of await this.comparePage(members, observedAt, state.seen)) count(change);
      return members.length < GUILD_MEMBERS_PAGE;
    };

    let complete = false;
    let stoppedByCount = false;
    while (!stop()) {
      if (await page()) {
        complete = true;
        break;
      }
      if (options.memberCount !== undefined && state.listed >= options.memberCount) {
        stoppedByCount = true;
        break;
      }
    }
    if (complete || stoppedByCount) {
      let gone = await this.unlisted(state.seen, startedAt);
      // The count may be out of date: before anyone is taken for gone, the listing runs to its end.
      if (gone.length > 0 && stoppedByCount) {
        while (!stop() && !complete) complete = await page();
        gone = gone.filter((id) => !state.seen.has(id));
      } else {
        complete = true;
      }
      if (complete) {
        for (const id of gone) {
          if (stop()) break;
          count(await this.members.applyRoles(id, null, 'reconcile', { observedAt: startedAt }));
        }
      }
    }
    const result: DiscordReconcileEvent = {
      listed: state.listed,
      ...counts,
      complete,
      discordCalls: state.calls,
      durationMs: Date.now() - startedAt,
    };
    this.actions.emit(DiscourseConnectEvents.DiscordReconcileFinished, result);
    return result;
  }

  /** Compares one page with the stored roles of its local members; applies the differences. */
  private async comparePage(
    members: GuildMember[],
    observedAt: number,
    seen: Set<string>,
  ): Promise<MemberChange[]> {
    const local = new Map(
      (await this.users.findManyByDiscordIds(members.map((m) => m.id))).map((u) => [
        u.discordId,
        u,
      ]),
    );
    const changes: MemberChange[] = [];
    for (const member of members) {
      // Every listed id, local or not: one who signs in here for the first time while the listing
      // goes on is still a member.
      seen.add(member.id);
      const user = local.get(member.id);
      if (!user) continue;
      if (sameRoles(user.metadata.roles, member.roles)) continue;
      changes.push(
        await this.members.applyRoles(member.id, member.roles, 'reconcile', { observedAt }),
      );
    }
    return changes;
  }

  /**
   * Local members not in the listing who were (or may have been) in the server. A record created or
   * written since the reconcile started (a sign-in while it ran, after the listing passed that id)
   * is newer than the listing: it is left to the gateway's events and the next reconcile. A user
   * store that cannot list its users leaves this to the gateway's events.
   */
  private async unlisted(seen: Set<string>, startedAt: number): Promise<string[]> {
    const gone: string[] = [];
    if (!this.users.canListUsers) return gone;
    for await (const ids of this.users.allDiscordIds(LOCAL_PAGE)) {
      const absent = ids.filter((id) => !seen.has(id));
      for (const user of await this.users.findManyByDiscordIds(absent)) {
        if (user.metadata.roles !== null && !writtenSince(user, startedAt))
          gone.push(user.discordId);
      }
    }
    return gone;
  }
}

/** Whether the record was created or written at `since` or later (a date that cannot be read: no). */
function writtenSince(user: LocalUser, since: number): boolean {
  return [user.createdAt, user.updatedAt].some(
    (date) => new Date(date as Date | string | number).getTime() >= since,
  );
}
