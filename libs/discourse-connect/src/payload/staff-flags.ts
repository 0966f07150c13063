import { Injectable, Logger, Optional } from '@nestjs/common';
import { DiscourseConnectSettings, ResolvedForum } from '../config/discourse-connect.settings';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents, type StaffChangedEvent } from '../hooks/discourse-connect.events';
import { ForumLinks, type StaffGrants } from '../users/forum-links';
import type { LocalUser } from '../users/local-user.interface';

/** A DiscourseConnect staff flag. */
export type StaffFlag = 'admin' | 'moderator';

const FLAGS: readonly StaffFlag[] = ['admin', 'moderator'];

/** Nothing granted: the record of a member the module never made staff. */
export const NO_STAFF_GRANTS: Readonly<StaffGrants> = Object.freeze({
  admin: false,
  moderator: false,
});

/**
 * The staff flags of one payload: what to send, and what the record of the flags the module
 * granted becomes once it is sent.
 */
export interface StaffFlagPlan {
  forum: string;
  discordId: string;
  /** `true` while the roles grant the flag; `false` only to take back a flag the module granted; absent otherwise. */
  fields: Partial<Record<StaffFlag, boolean>>;
  /** The record after this payload: the flags the roles grant now. */
  grants: StaffGrants;
  /** Flags granted that were not recorded (`granted: true`) and recorded flags taken back (`false`). */
  changes: StaffFlagChange[];
}

/** A staff flag granted (`granted: true`) or taken back. */
export interface StaffFlagChange {
  flag: StaffFlag;
  granted: boolean;
}

/**
 * The staff-flag policy, without I/O: a flag is wanted when the member holds one of the forum's
 * roles for it (and, with `requireMfa`, has two-factor authentication on). A wanted flag is sent as
 * `true`; an unwanted one is sent as `false` only when the module granted it (`granted`), so a
 * forum-made admin or moderator is never demoted, and is otherwise left out. (The forum does not say
 * who made a flag: a forum-made admin who also holds an admin role counts as granted by the module
 * and loses the flag with the role, as the README says.)
 */
export function planStaffFlags(
  user: LocalUser,
  forum: ResolvedForum,
  requireMfa: boolean,
  granted: StaffGrants,
): StaffFlagPlan {
  const roles = new Set(user.metadata.roles ?? []);
  const mfaOk = !requireMfa || user.mfaEnabled === true;
  const plan: StaffFlagPlan = {
    forum: forum.name,
    discordId: user.discordId,
    fields: {},
    grants: { ...NO_STAFF_GRANTS },
    changes: [],
  };
  for (const flag of FLAGS) {
    const wanted = mfaOk && forum.staffRoles[flag].some((role) => roles.has(role));
    plan.grants[flag] = wanted;
    if (wanted) plan.fields[flag] = true;
    else if (granted[flag]) plan.fields[flag] = false;
    if (wanted !== granted[flag]) plan.changes.push({ flag, granted: wanted });
  }
  return plan;
}

/**
 * Staff flags from Discord roles, per forum, and the record of the flags the module granted (on the
 * member's forum link), so it only ever takes back its own. The record over-states rather than
 * forgets: a grant is recorded before the payload leaves, a `sync_sso` revocation is cleared only
 * once the forum accepted it. A handshake (the forum never answers it) records both at once.
 * Every change is logged and fires `DiscourseConnectEvents.StaffChanged`.
 */
@Injectable()
export class DiscourseConnectStaffFlags {
  private readonly logger = new Logger('DiscourseConnect');

  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly actions: DiscourseConnectActionsService,
    @Optional() private readonly links?: ForumLinks,
  ) {}

  /** Whether any forum grants staff flags from roles. */
  get enabled(): boolean {
    return this.settings.forums.some(
      (f) => f.staffRoles.admin.length > 0 || f.staffRoles.moderator.length > 0,
    );
  }

  /** The flags to send to this forum for this member, from the recorded grants. */
  async plan(user: LocalUser, forum: ResolvedForum): Promise<StaffFlagPlan> {
    const granted =
      this.links && this.enabled
        ? await this.links.staffGrants(forum.name, user.discordId)
        : NO_STAFF_GRANTS;
    return planStaffFlags(user, forum, this.settings.groups?.staffRequireMfa ?? true, granted);
  }

  /** The plan for the forum of this name; undefined when no forum grants staff flags, or no such forum. */
  async planFor(user: LocalUser, forumName: string): Promise<StaffFlagPlan | undefined> {
    const forum = this.enabled ? this.settings.forumByName(forumName) : undefined;
    return forum ? this.plan(user, forum) : undefined;
  }

  /**
   * A sign-in payload is about to leave: records its grants and take-backs now (the forum never
   * answers a handshake), logs and emits the ones this call recorded. Resolves to false when the
   * record could not be written: the payload must then carry no staff flag.
   */
  async recordHandshake(plan: StaffFlagPlan): Promise<boolean> {
    try {
      this.announce(plan, await this.record(plan, plan.changes), 'handshake');
      return true;
    } catch (error) {
      this.logger.warn(
        `could not record the staff flags of ${plan.discordId} on ${plan.forum}, none sent: ${(error as Error).message}`,
      );
      return false;
    }
  }

  /**
   * Before a `sync_sso`: records the flags it grants (the ones it takes back stay recorded until it
   * succeeds). Resolves to the grants this call recorded, for `afterSync`.
   */
  beforeSync(plan: StaffFlagPlan): Promise<StaffFlagChange[]> {
    return this.record(
      plan,
      plan.changes.filter((c) => c.granted),
    );
  }

  /** After the forum accepted a `sync_sso`: clears what it took back; logs and emits the changes. */
  async afterSync(plan: StaffFlagPlan, granted: StaffFlagChange[]): Promise<void> {
    const revoked = await this.record(
      plan,
      plan.changes.filter((c) => !c.granted),
    );
    this.announce(plan, [...granted, ...revoked], 'sync');
  }

  /** Records each change; resolves to the ones this call made (another delivery may have made the rest). */
  private async record(
    plan: StaffFlagPlan,
    changes: StaffFlagChange[],
  ): Promise<StaffFlagChange[]> {
    const made: StaffFlagChange[] = [];
    for (const change of changes) {
      if (
        await this.links?.changeStaffGrant(plan.forum, plan.discordId, change.flag, change.granted)
      ) {
        made.push(change);
      }
    }
    return made;
  }

  private announce(
    plan: StaffFlagPlan,
    changes: StaffFlagChange[],
    via: StaffChangedEvent['via'],
  ): void {
    for (const change of changes) {
      this.logger.log(
        `staff flag ${change.flag} ${change.granted ? 'granted to' : 'taken back from'} ${plan.discordId} on ${plan.forum} (${via})`,
      );
      const event: StaffChangedEvent = {
        forum: plan.forum,
        discordId: plan.discordId,
        flag: change.flag,
        granted: change.granted,
        via,
      };
      this.actions.emit(DiscourseConnectEvents.StaffChanged, event);
    }
  }
}
