import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { OutboxWorker } from './outbox-worker';
import { syncBackoffMs, syncErrorText } from './sync-delivery.core';
import { DiscourseConnectSyncJobEntity } from './sync-job.entity';
import { SyncQueue } from './sync-queue.service';

/** Attempts past which a failed hand-over waits no longer (the backoff stops growing). */
const MAX_HAND_OVER_BACKOFF_ATTEMPTS = 8;

/**
 * With Redis (the queue has `handOver`): relays each committed outbox row to BullMQ, and deletes
 * the row once Redis has the job; the leases make a relay cut short by a crash happen again. A
 * row is never failed because Redis is unreachable: it stays in the outbox and is relayed later.
 * Every instance relays, whether or not it runs a BullMQ worker.
 */
@Injectable()
export class SyncOutboxRelay extends OutboxWorker {
  constructor(
    @InjectRepository(DiscourseConnectSyncJobEntity)
    jobs: Repository<DiscourseConnectSyncJobEntity>,
    queue: SyncQueue,
    settings: DiscourseConnectSettings,
  ) {
    super(jobs, queue, settings);
  }

  protected get handlesQueue(): boolean {
    return this.queue.deliversFromOutbox && Boolean(this.queue.handOver);
  }

  protected async process(row: DiscourseConnectSyncJobEntity): Promise<void> {
    const attempts = row.attempts + 1;
    try {
      await this.queue.handOver!(row);
    } catch (error) {
      const message = syncErrorText(error);
      this.logger.warn(
        `could not hand sync job ${row.id} over to the Redis queue, retrying: ${message}`,
      );
      const delay = syncBackoffMs(
        Math.min(attempts, MAX_HAND_OVER_BACKOFF_ATTEMPTS),
        this.settings.sync,
      );
      await this.requeue(row, attempts, Date.now() + delay, message);
      return;
    }
    await this.jobs.delete({ id: row.id });
  }
}
