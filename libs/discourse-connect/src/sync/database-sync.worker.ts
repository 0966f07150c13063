import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { OutboxWorker } from './outbox-worker';
import { SyncDeliveryCore, type SyncDeliveryOutcome } from './sync-delivery.core';
import { DiscourseConnectSyncJobEntity } from './sync-job.entity';
import { SyncQueue, type ClaimedSyncJob } from './sync-queue.service';

/**
 * The embedded queue's worker: delivers each outbox row to the forum (through
 * {@link SyncDeliveryCore}) under the admin API rate limit, with exponential backoff on failures and
 * the forum's 429 waits applied to the whole queue. A row is deleted only after the forum accepted
 * it; a crash mid-delivery leaves it locked until its lease runs out, and then it is delivered again
 * (every job is idempotent on the forum). Runs when `sync.worker` is on and no Redis queue takes
 * the rows.
 */
@Injectable()
export class DatabaseSyncWorker extends OutboxWorker {
  constructor(
    @InjectRepository(DiscourseConnectSyncJobEntity)
    jobs: Repository<DiscourseConnectSyncJobEntity>,
    queue: SyncQueue,
    settings: DiscourseConnectSettings,
    private readonly delivery: SyncDeliveryCore,
  ) {
    super(jobs, queue, settings);
  }

  protected get handlesQueue(): boolean {
    // A host's own queue delivers its jobs; with Redis, the relay hands the rows to BullMQ.
    return this.queue.deliversFromOutbox && !this.queue.handOver;
  }

  protected override get startsOnBoot(): boolean {
    return this.settings.sync.worker;
  }

  protected async process(row: ClaimedSyncJob, claimedOnWrite = false): Promise<void> {
    // Written by this process right after the change, and delivered within the read cache's window
    // (`session.readCacheMs`): the member and their forum link as this process knows them stand.
    const known =
      claimedOnWrite && Date.now() - row.runAt <= this.settings.session.readCacheMs
        ? { user: this.delivery.recentUser(row.discordId), link: row.link }
        : {};
    await this.delivery.run(
      {
        id: String(row.id),
        kind: row.kind,
        discordId: row.discordId,
        forum: row.forum,
        attemptsMade: row.attempts,
        ...known,
      },
      (outcome) => this.record(row, outcome),
    );
  }

  private async record(
    row: DiscourseConnectSyncJobEntity,
    outcome: SyncDeliveryOutcome,
  ): Promise<void> {
    switch (outcome.status) {
      case 'delivered':
        await this.jobs.delete({ id: row.id });
        return;
      case 'rate-limited':
      case 'retry': {
        const delay = outcome.status === 'retry' ? outcome.delayMs : outcome.waitMs;
        await this.requeue(row, outcome.attempts, Date.now() + delay, outcome.error);
        return;
      }
      case 'failed':
        await this.jobs.update(
          { id: row.id },
          {
            status: 'failed',
            attempts: outcome.attempts,
            lockedUntil: null,
            lastError: outcome.error,
          },
        );
        return;
    }
  }
}
