import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMsTransformer as epochMs } from '../common/epoch-ms.transformer';

/** Server-side sessions, in the same database as the users: they survive restarts. */
@Entity({ name: 'discourse_connect_sessions' })
export class DiscourseConnectSessionEntity {
  @PrimaryColumn({ type: 'varchar', length: 128 })
  sid!: string;

  @Column({ type: 'text' })
  data!: string;

  @Index('IDX_discourse_connect_sessions_expires_at')
  @Column({ name: 'expires_at', type: 'bigint', transformer: epochMs })
  expiresAt!: number;
}
