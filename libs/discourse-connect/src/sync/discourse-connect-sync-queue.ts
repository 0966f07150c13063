import { Injectable } from '@nestjs/common';
import { SyncDeliveryCore } from './sync-delivery.core';
import type { SyncJobKind } from './sync-job.entity';

export interface SyncQueueCounts {
  pending: number;
  running: number;
  failed: number;
}

/** A job kept after running out of retries (`failed`), whichever queue holds it. */
export interface SyncJobRecord {
  /** The database row id (embedded queue), the BullMQ job id (Redis), or a host queue's id. */
  id: number | string;
  kind: SyncJobKind;
  discordId: string;
  forum: string;
  attempts: number;
  lastError: string | null;
}

/**
 * The sync queue: work for the forum (profile syncs, log-outs), durable and coalesced per member.
 * This abstract class is the injection token. The module's own queues (the database outbox, or
 * BullMQ with `redis`) write a job in the same transaction as the member change that causes it; a
 * host can give its own queue in the `syncQueue` option (a class or an instance extending this
 * one), whose worker delivers each job with {@link DiscourseConnectSyncDelivery}.
 */
export abstract class DiscourseConnectSyncQueue {
  /**
   * Records `kind` for this member on every forum with an admin API key (or the one named).
   * Resolves once the job is durable; a job already waiting for the same member absorbs this one.
   */
  abstract enqueue(
    kind: SyncJobKind,
    discordId: string,
    options?: { forum?: string },
  ): Promise<void>;

  /** Jobs waiting (`pending`), being delivered (`running`) and kept after their last retry (`failed`). */
  abstract counts(): Promise<SyncQueueCounts>;

  /** Jobs kept after running out of retries. */
  abstract failed(limit?: number): Promise<SyncJobRecord[]>;

  /** Puts failed jobs back in the queue (all, or those ids); resolves to how many. */
  abstract retryFailed(ids?: (number | string)[]): Promise<number>;
}

/**
 * Does one sync job on the forum, for a host's own queue worker: pushes the member's current
 * profile (read now, so a coalesced job carries the latest change) or logs them out. Idempotent on
 * the forum; throws `DiscourseApiError` (with `retryable`) or `DiscourseRateLimitError` when the
 * forum refuses or is unavailable, so the queue can retry.
 */
@Injectable()
export class DiscourseConnectSyncDelivery {
  constructor(private readonly core: SyncDeliveryCore) {}

  deliver(job: { kind: SyncJobKind; discordId: string; forum: string }): Promise<void> {
    return this.core.deliver(job);
  }
}
