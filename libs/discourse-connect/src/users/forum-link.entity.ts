import { Column, Entity, PrimaryColumn } from 'typeorm';
import { epochMsTransformer as epochMs } from '../common/epoch-ms.transformer';

/**
 * What is known of a member's account on one forum: `linked` (the member has an account there) or
 * `not_found` (the forum said it has none, at `checkedAt`).
 */
export type ForumLinkStatus = 'linked' | 'not_found';

/**
 * A member's account on one forum, learnt from a completed handshake for that forum, a signed
 * webhook from it naming the member, or the forum's `GET /u/by-external/<id>.json`. Background
 * work (profile syncs, log-outs) goes only to forums where the member is `linked`, so it never
 * creates accounts on forums the member never visited.
 */
@Entity({ name: 'discourse_connect_forum_links' })
export class DiscourseConnectForumLinkEntity {
  @PrimaryColumn({ type: 'varchar', length: 128 })
  forum!: string;

  @PrimaryColumn({ name: 'discord_id', type: 'varchar', length: 20 })
  discordId!: string;

  /** The forum's user id, once known (a handshake does not tell it). */
  @Column({ name: 'forum_user_id', type: 'integer', nullable: true })
  forumUserId!: number | null;

  @Column({ name: 'forum_username', type: 'varchar', length: 64, nullable: true })
  forumUsername!: string | null;

  @Column({ type: 'varchar', length: 16 })
  status!: ForumLinkStatus;

  /** When this was last learnt (epoch ms). */
  @Column({ name: 'checked_at', type: 'bigint', transformer: epochMs })
  checkedAt!: number;

  // Staff flags: what this module granted on that forum, so it takes back only its own.
  /** The module sent `admin=true` to this forum for the member, and has not taken it back. */
  @Column({ name: 'admin_granted', type: 'boolean', default: false })
  adminGranted!: boolean;

  /** The module sent `moderator=true` to this forum for the member, and has not taken it back. */
  @Column({ name: 'moderator_granted', type: 'boolean', default: false })
  moderatorGranted!: boolean;

  // Member lifecycle: suspension and anonymization of the forum account.
  /** The forum account is suspended by a suspension the module made (only such a one is lifted by it). */
  @Column({ name: 'suspended_by_module', type: 'boolean', default: false })
  suspendedByModule!: boolean;

  /** Until when the forum account is suspended (epoch ms), as last learnt; null when not suspended. */
  @Column({ name: 'suspended_until', type: 'bigint', nullable: true, transformer: epochMs })
  suspendedUntil!: number | null;

  /** When the forum was learnt to have anonymized the member's account (epoch ms), else null. */
  @Column({ name: 'anonymized_at', type: 'bigint', nullable: true, transformer: epochMs })
  anonymizedAt!: number | null;
  // End of member lifecycle.
}
