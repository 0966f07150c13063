import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from 'typeorm';
import { epochMsTransformer as epochMs } from '../common/epoch-ms.transformer';

/**
 * What a job does on the forum: `sync` pushes the member's profile to a forum where they have an
 * account, `create` pushes it even where they have none (creating the account: `sync --all
 * --create`), `logout` ends their forum sessions, `suspend` suspends their forum account (reason
 * and length from the `lifecycle` options; recorded as made by the module), `unsuspend` lifts a
 * suspension the module made (never one the forum's staff made), `anonymize` and `delete` finish
 * forgetting a member on a forum that failed at the time.
 */
export type SyncJobKind =
  'sync' | 'create' | 'logout' | 'suspend' | 'unsuspend' | 'anonymize' | 'delete';

/** `pending` waits for its turn, `running` is being delivered, `failed` ran out of retries (kept). */
export type SyncJobStatus = 'pending' | 'running' | 'failed';

/**
 * One piece of work for the forum, recorded durably. While pending, `dedupeKey` is
 * `<kind>:<forum>:<discordId>` and unique, which coalesces repeated changes of one user into one job.
 */
@Entity({ name: 'discourse_connect_sync_jobs' })
@Index('IDX_discourse_connect_sync_jobs_status_run_at', ['status', 'runAt'])
export class DiscourseConnectSyncJobEntity {
  @PrimaryGeneratedColumn('increment')
  id!: number;

  @Column({ name: 'discord_id', type: 'varchar', length: 20 })
  discordId!: string;

  @Column({ type: 'varchar', length: 128 })
  forum!: string;

  @Column({ type: 'varchar', length: 16 })
  kind!: SyncJobKind;

  @Column({ type: 'varchar', length: 16 })
  status!: SyncJobStatus;

  @Index('UQ_discourse_connect_sync_jobs_dedupe_key', { unique: true })
  @Column({ name: 'dedupe_key', type: 'varchar', length: 200, nullable: true })
  dedupeKey!: string | null;

  @Column({ type: 'integer', default: 0 })
  attempts!: number;

  @Column({ name: 'run_at', type: 'bigint', transformer: epochMs })
  runAt!: number;

  @Column({ name: 'locked_until', type: 'bigint', nullable: true, transformer: epochMs })
  lockedUntil!: number | null;

  @Column({ name: 'last_error', type: 'varchar', length: 500, nullable: true })
  lastError!: string | null;

  @CreateDateColumn({ name: 'created_at' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at' })
  updatedAt!: Date;
}
