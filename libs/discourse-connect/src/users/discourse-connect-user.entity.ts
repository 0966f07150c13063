import { Column, CreateDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import type { DiscordMetadata } from './discord-profile';

/** The module's default users table, keyed on the Discord id. */
@Entity({ name: 'discourse_connect_users' })
export class DiscourseConnectUserEntity {
  @PrimaryColumn({ name: 'discord_id', type: 'varchar', length: 20 })
  discordId!: string;

  @Column({ type: 'varchar', length: 64 })
  username!: string;

  @Column({ name: 'display_name', type: 'varchar', length: 128 })
  displayName!: string;

  @Column({ type: 'varchar', length: 320, nullable: true })
  email!: string | null;

  @Column({ name: 'email_verified', type: 'boolean', default: false })
  emailVerified!: boolean;

  @Column({ name: 'avatar_hash', type: 'varchar', length: 64, nullable: true })
  avatarHash!: string | null;

  @Column({ type: 'simple-json' })
  metadata!: DiscordMetadata;

  @Column({ name: 'metadata_hash', type: 'varchar', length: 64 })
  metadataHash!: string;

  /** Discord's `mfa_enabled` at the last sign-in (outside `metadata`, so not in its hash); null before the first. */
  @Column({ name: 'mfa_enabled', type: 'boolean', nullable: true })
  mfaEnabled!: boolean | null;

  @Column({ name: 'forum_user_id', type: 'integer', nullable: true })
  forumUserId!: number | null;

  @Column({ name: 'forum_username', type: 'varchar', length: 64, nullable: true })
  forumUsername!: string | null;

  @CreateDateColumn({ name: 'created_at' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at' })
  updatedAt!: Date;
}
