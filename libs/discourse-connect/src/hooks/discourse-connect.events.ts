import type { DiscordMetadata } from '../users/discord-profile';
import type { LocalUser } from '../users/local-user.interface';

/**
 * Action events, emitted through `@nestjs/event-emitter` when the host imports
 * `EventEmitterModule.forRoot()`. Listen with `@OnEvent(DiscourseConnectEvents.UserCreated)`.
 * A listener's error is logged and never breaks the sign-in.
 */
export const DiscourseConnectEvents = {
  UserCreated: 'discourse-connect.user.created',
  ProfileChanged: 'discourse-connect.user.profile-changed',
  SignedIn: 'discourse-connect.user.signed-in',
  SignedOut: 'discourse-connect.user.signed-out',
  SyncSucceeded: 'discourse-connect.sync.succeeded',
  SyncFailed: 'discourse-connect.sync.failed',
  ForumUserChanged: 'discourse-connect.forum.user-changed',
  StaffChanged: 'discourse-connect.staff.changed',
  VanillaSignedIn: 'discourse-connect.vanilla.signed-in',
  // Member lifecycle.
  ForumUserSuspended: 'discourse-connect.forum.user-suspended',
  ForumUserUnsuspended: 'discourse-connect.forum.user-unsuspended',
  ForumUserAnonymized: 'discourse-connect.forum.user-anonymized',
  ForumUserDeleted: 'discourse-connect.forum.user-deleted',
  MemberForgotten: 'discourse-connect.user.forgotten',
  // The Discord bot connection.
  DiscordMemberUpdated: 'discourse-connect.discord.member-updated',
  DiscordMemberLeft: 'discourse-connect.discord.member-left',
  DiscordMemberBanned: 'discourse-connect.discord.member-banned',
  DiscordMemberReturned: 'discourse-connect.discord.member-returned',
  DiscordReconcileFinished: 'discourse-connect.discord.reconcile-finished',
} as const;

/**
 * The bot saw a change of a local member in the Discord server (`DiscordMemberUpdated`: roles
 * changed; `DiscordMemberLeft`: left or kicked; `DiscordMemberBanned`; `DiscordMemberReturned`:
 * joined again or unbanned). Fired after the change and its sync jobs are recorded.
 */
export interface DiscordMemberEvent {
  discordId: string;
  /** Role ids in the server now, sorted; null when no longer a member. */
  roles: string[] | null;
  /** Role ids the module had before (null: not a member; undefined: never read). */
  previousRoles: string[] | null | undefined;
  /** What noticed it: a live gateway event, or the periodic reconcile. */
  source: 'gateway' | 'reconcile';
  /** Left and banned: what was done on the forum besides removing the managed groups. */
  action?: 'groups' | 'logout' | 'suspend';
}

/** A reconcile of every member's roles with Discord finished. */
export interface DiscordReconcileEvent {
  /** Members Discord listed. */
  listed: number;
  /** Local members whose roles changed (updated and synced). */
  updated: number;
  /** Local members no longer in the server (a complete listing only). */
  left: number;
  /** Local members who came back to the server. */
  returned: number;
  /** Whether Discord listed every member (only then are absent members treated as gone). */
  complete: boolean;
  /** Calls made to Discord's member listing. */
  discordCalls: number;
  durationMs: number;
}

/**
 * The module granted a member a staff flag on a forum, or took back one it had granted (staff
 * flags from Discord roles). `via`: in the sign-in payload (`handshake`, sent as the browser goes
 * back to the forum) or by `sync_sso` (`sync`, once the forum accepted it).
 */
export interface StaffChangedEvent {
  forum: string;
  discordId: string;
  flag: 'admin' | 'moderator';
  /** true: granted; false: taken back. */
  granted: boolean;
  via: 'handshake' | 'sync';
}

/** A member was answered signed in to a Vanilla forum (jsConnect). */
export interface VanillaSignedInEvent {
  user: LocalUser;
  /** The Vanilla forum's name. */
  forum: string;
  /** The roles sent, when the forum has a role map. */
  roles?: (string | number)[];
}

/** The forum reported a user created or updated, or (member lifecycle) suspended, unsuspended or deleted (webhook). */
export interface ForumUserChangedEvent {
  event: 'user_created' | 'user_updated' | 'user_suspended' | 'user_unsuspended' | 'user_destroyed';
  forum: string;
  forumUserId: number;
  forumUsername: string;
  /** The Discord id, when the forum user is linked to one. */
  discordId: string | null;
}

/** A job of the sync queue was delivered, or ran out of retries (it is kept and can be retried). */
export interface SyncJobEvent {
  /** The job's id in its queue: a BullMQ job id, or the database row id as a string. */
  jobId: string;
  kind: 'sync' | 'create' | 'logout' | 'suspend' | 'unsuspend' | 'anonymize' | 'delete';
  discordId: string;
  forum: string;
  attempts: number;
  /** Why it failed (SyncFailed only); never contains the API key. */
  error?: string;
}

export interface UserCreatedEvent {
  user: LocalUser;
}

export interface ProfileChangedEvent {
  user: LocalUser;
  previous: DiscordMetadata;
}

export interface SignedInEvent {
  user: LocalUser;
  created: boolean;
  changed: boolean;
}

export interface SignedOutEvent {
  discordId: string;
  /** `local`: POST /auth/logout; `forum`: the forum's logout_redirect. */
  via: 'local' | 'forum';
}

// Member lifecycle events.
/**
 * A member's forum account changed state: suspended (`until`, epoch ms), unsuspended, anonymized or
 * deleted. `via`: `module` when the module did it (a job, `forget`, the CLI), `webhook` when the
 * forum reported it (a signed body, confirmed through the admin API where the body cannot tell).
 */
export interface ForumUserLifecycleEvent {
  forum: string;
  discordId: string;
  forumUserId: number | null;
  via: 'module' | 'webhook';
  /** Suspended until (epoch ms): ForumUserSuspended only. */
  until?: number;
  /** The module made the suspension (ForumUserSuspended) or lifted its own (ForumUserUnsuspended). */
  byModule?: boolean;
}

/** What forgetting a member did on each forum, and what is left to do. */
export interface MemberForgottenEvent {
  discordId: string;
  /** Per forum: the action taken (`anonymize`, `delete`, `none`) and its outcome. */
  forums: {
    forum: string;
    action: 'anonymize' | 'delete' | 'none';
    /**
     * `done`, `no-account` (nothing there), `pending` (the forum failed; a job keeps trying),
     * `no-api-key` (the member has an account on a forum without an admin API key: left as it is).
     */
    outcome: 'done' | 'no-account' | 'pending' | 'no-api-key';
    error?: string;
  }[];
}
