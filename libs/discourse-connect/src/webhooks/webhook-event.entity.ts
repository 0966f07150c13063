import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { epochMsTransformer } from '../common/epoch-ms.transformer';

/** Webhook deliveries already processed, by forum and Discourse's event id: a replay is refused. */
@Entity({ name: 'discourse_connect_webhook_events' })
@Index('UQ_discourse_connect_webhook_events_forum_event', ['forum', 'eventId'], { unique: true })
export class DiscourseConnectWebhookEventEntity {
  @PrimaryGeneratedColumn('increment')
  id!: number;

  @Column({ type: 'varchar', length: 128 })
  forum!: string;

  @Column({ name: 'event_id', type: 'varchar', length: 64 })
  eventId!: string;

  @Column({ name: 'event', type: 'varchar', length: 64 })
  event!: string;

  @Column({ name: 'received_at', type: 'bigint', transformer: epochMsTransformer })
  receivedAt!: number;
}
