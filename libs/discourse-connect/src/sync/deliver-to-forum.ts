import type { DiscourseAdminService } from '../admin/discourse-admin.service';
import type { UsersService } from '../users/users.service';
import type { SyncJobKind } from './sync-job.entity';

/**
 * Does one job on the forum: pushes the user's current profile (read now, so a coalesced job
 * carries the latest change) or logs them out. Idempotent on the forum.
 */
export async function deliverToForum(
  job: { kind: SyncJobKind; discordId: string; forum: string },
  users: UsersService,
  admin: DiscourseAdminService,
): Promise<void> {
  if (job.kind === 'sync') {
    const user = await users.findByDiscordId(job.discordId);
    if (user) await admin.syncSso(user, job.forum);
  } else {
    await admin.logOutByExternalId(job.discordId, job.forum);
  }
}
