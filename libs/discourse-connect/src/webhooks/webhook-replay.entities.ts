import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMsTransformer } from '../common/epoch-ms.transformer';

/**
 * Signed webhook bodies already processed, by forum and SHA-256 of the raw body. Only the body is
 * signed, so this (not the unsigned event id) is what refuses a captured delivery sent again under
 * another id or event name. Rows are pruned by their own age (`WEBHOOK_BODY_RETENTION_MS`).
 */
@Entity({ name: 'discourse_connect_webhook_bodies' })
@Index('IDX_discourse_connect_webhook_bodies_received_at', ['receivedAt'])
export class DiscourseConnectWebhookBodyEntity {
  @PrimaryColumn({ type: 'varchar', length: 128 })
  forum!: string;

  @PrimaryColumn({ name: 'body_sha256', type: 'varchar', length: 64 })
  bodySha256!: string;

  @Column({ name: 'received_at', type: 'bigint', transformer: epochMsTransformer })
  receivedAt!: number;
}

/**
 * The newest state applied for each forum user: the ordering key of the last body applied
 * (see `WebhookUser.version`). A body with an older key is not applied. Never pruned (one row per
 * forum user), so ordering holds after the body records are gone.
 */
@Entity({ name: 'discourse_connect_webhook_users' })
export class DiscourseConnectWebhookUserEntity {
  @PrimaryColumn({ type: 'varchar', length: 128 })
  forum!: string;

  @PrimaryColumn({ name: 'forum_user_id', type: 'integer' })
  forumUserId!: number;

  /** Epoch ms of the newest body applied; null when that body carried no timestamp. */
  @Column({ type: 'bigint', nullable: true, transformer: epochMsTransformer })
  version!: number | null;

  @Column({ name: 'applied_at', type: 'bigint', transformer: epochMsTransformer })
  appliedAt!: number;
}
