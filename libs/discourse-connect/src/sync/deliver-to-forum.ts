import type { DiscourseAdminService, DiscourseUser } from '../admin/discourse-admin.service';
import type { DiscourseConnectStaffFlags } from '../payload/staff-flags';
import { ForumLinks, type ForumLink } from '../users/forum-links';
import type { LocalUser } from '../users/local-user.interface';
import type { UsersService } from '../users/users.service';
import type { SyncJobKind } from './sync-job.entity';

/** How the module suspends: the reason the forum shows and the length in days. */
export interface SuspensionSettings {
  suspendReason: string;
  suspendDays: number;
  /** With `refuse`, a `create` job makes no new account where the forum anonymized the member's. */
  anonymizedSignIn?: 'new-account' | 'refuse';
}

const DEFAULT_SUSPENSION: SuspensionSettings = {
  suspendReason: 'Suspended by the site.',
  suspendDays: 365_000,
};

/** What one delivery did: wrote to the forum, or completed without a write (`reason`). */
export type ForumDelivery = { done: true } | { skipped: true; reason: string };

/**
 * Does one job on the forum: pushes the user's current profile (read now, so a coalesced job
 * carries the latest change) or logs them out. Idempotent on the forum.
 *
 * `sync_sso` creates the forum account of a member who has none, so with `links` a `sync` or
 * `logout` job goes only to a forum where the member is known to have an account: a member whose
 * link is not known yet is looked up once (`GET /u/by-external/<id>.json`, inside the forum's admin
 * API budget) and the answer recorded; a "not found" is trusted for a day. A job for a member with
 * no account there completes without a write. A `create` job skips the check.
 *
 * With `staff`, the payload carries the member's staff flags: a grant is recorded before the call,
 * a revocation cleared once the forum accepted it (so a role removed while the member is away is
 * taken back by the next `sync`).
 */
export async function deliverToForum(
  job: {
    kind: SyncJobKind;
    discordId: string;
    forum: string;
    user?: LocalUser;
    link?: ForumLink | null;
  },
  users: UsersService,
  admin: DiscourseAdminService,
  links?: ForumLinks,
  lifecycle: SuspensionSettings = DEFAULT_SUSPENSION,
  staff?: DiscourseConnectStaffFlags,
): Promise<ForumDelivery> {
  if (job.kind === 'anonymize' || job.kind === 'delete') {
    // Member lifecycle: finishing `forget`; the member's links are gone, so no check and no record.
    const result =
      job.kind === 'delete'
        ? await admin.deleteUser(job.discordId, job.forum)
        : await admin.anonymize(job.discordId, job.forum);
    return result.found ? { done: true } : { skipped: true, reason: 'no account on that forum' };
  }
  if (links && job.kind === 'create' && lifecycle.anonymizedSignIn === 'refuse') {
    const link = await recordedLink(job, links);
    if (link?.anonymizedAt) return { skipped: true, reason: 'the forum anonymized the account' };
  }
  let known: ForumLink | null = null;
  if (links && job.kind !== 'create') {
    const linked = await hasForumAccount(job, admin, links);
    if (!linked) return { skipped: true, reason: 'no account on that forum' };
    if (linked !== true) known = linked;
  }
  if (job.kind === 'logout') {
    await admin.logOutByExternalId(job.discordId, job.forum);
    return { done: true };
  }
  if (job.kind === 'suspend' || job.kind === 'unsuspend') {
    return deliverSuspension({ ...job, kind: job.kind }, admin, links, lifecycle);
  }
  // A job this process wrote with the change carries the member as written: no second read.
  const user = job.user ?? (await users.findByDiscordId(job.discordId));
  if (!user) return { done: true }; // nothing to push: the member is gone
  const plan = await staff?.planFor(user, job.forum);
  const granted = plan ? await staff!.beforeSync(plan) : [];
  const synced: DiscourseUser = await admin.syncSso(user, job.forum, { staff: plan });
  if (plan) await staff!.afterSync(plan, granted);
  if (
    links &&
    typeof synced?.id === 'number' &&
    typeof synced.username === 'string' &&
    !sameAccount(known, synced)
  ) {
    await links.record(job.forum, job.discordId, {
      status: 'linked',
      account: { id: synced.id, username: synced.username },
    });
  }
  return { done: true };
}

/** A recorded link that already says what the forum just answered: nothing to write. */
function sameAccount(link: ForumLink | null, synced: { id: number; username: string }): boolean {
  return (
    link !== null &&
    link.status === 'linked' &&
    link.forumUserId === synced.id &&
    link.forumUsername === synced.username &&
    !link.anonymizedAt
  );
}

/**
 * Whether the member has an account on the forum: the recorded link (returned) when it says so,
 * else (nothing recorded, or a "not found" older than a day) the forum's answer, recorded with
 * the time.
 */
async function hasForumAccount(
  job: { discordId: string; forum: string; link?: ForumLink | null },
  admin: DiscourseAdminService,
  links: ForumLinks,
): Promise<ForumLink | boolean> {
  const link = await recordedLink(job, links);
  if (link?.status === 'linked') return link;
  if (link && ForumLinks.notFoundIsFresh(link)) return false;
  const askedAt = Date.now();
  const found = await admin.getUserByExternalId(job.discordId, job.forum);
  await links.record(
    job.forum,
    job.discordId,
    found
      ? { status: 'linked', account: { id: found.id, username: found.username } }
      : { status: 'not_found' },
    { askedAt },
  );
  return Boolean(found);
}

/** The member's link to the job's forum: the one the job carries (read with it), else read now. */
function recordedLink(
  job: { discordId: string; forum: string; link?: ForumLink | null },
  links: ForumLinks,
): Promise<ForumLink | null> | ForumLink | null {
  return job.link !== undefined ? job.link : links.find(job.forum, job.discordId);
}

// Member lifecycle: suspend / unsuspend jobs.
/**
 * A `suspend` job suspends the forum account for `suspendDays` with `suspendReason` and records
 * the suspension as the module's; an `unsuspend` job lifts a suspension only when the link records
 * it as the module's (a suspension made by the forum's staff stays). Without links (no record), an
 * `unsuspend` does nothing: the module cannot tell whose suspension it is.
 */
async function deliverSuspension(
  job: { kind: 'suspend' | 'unsuspend'; discordId: string; forum: string },
  admin: DiscourseAdminService,
  links: ForumLinks | undefined,
  lifecycle: SuspensionSettings,
): Promise<ForumDelivery> {
  if (job.kind === 'unsuspend') {
    const link = await links?.find(job.forum, job.discordId);
    if (!link?.suspendedByModule) {
      return { skipped: true, reason: 'no suspension made by the module' };
    }
    const result = await admin.unsuspend(job.discordId, job.forum);
    await links!.recordSuspension(job.forum, job.discordId, { until: null });
    return result.found ? { done: true } : { skipped: true, reason: 'no account on that forum' };
  }
  const link = await links?.find(job.forum, job.discordId);
  if (link && !link.suspendedByModule && (link.suspendedUntil ?? 0) > Date.now()) {
    // The forum's staff suspended the account: that suspension stays theirs (the module would
    // otherwise lift it later).
    return { skipped: true, reason: 'suspended by the forum already' };
  }
  const until = Date.now() + lifecycle.suspendDays * 24 * 60 * 60 * 1000;
  const result = await admin.suspend(
    job.discordId,
    new Date(until),
    lifecycle.suspendReason,
    job.forum,
  );
  if (!result.found) return { skipped: true, reason: 'no account on that forum' };
  await links?.recordSuspension(job.forum, job.discordId, { until, byModule: true });
  return { done: true };
}
