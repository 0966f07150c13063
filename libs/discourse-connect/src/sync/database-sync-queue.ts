import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { In, Repository } from 'typeorm';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectSyncJobEntity } from './sync-job.entity';
import { SyncQueue, type SyncJobRecord, type SyncQueueCounts } from './sync-queue.service';

/**
 * The embedded sync queue (no Redis): jobs live in the database until {@link DatabaseSyncWorker} delivered
 * them; repeated changes of one user while a job waits are coalesced into that job.
 */
@Injectable()
export class DatabaseSyncQueue extends SyncQueue {
  constructor(
    @InjectRepository(DiscourseConnectSyncJobEntity)
    jobs: Repository<DiscourseConnectSyncJobEntity>,
    settings: DiscourseConnectSettings,
  ) {
    super(jobs, settings);
  }

  counts(): Promise<SyncQueueCounts> {
    return this.outboxCounts();
  }

  failed(limit = 100): Promise<SyncJobRecord[]> {
    return this.jobs.find({ where: { status: 'failed' }, order: { id: 'ASC' }, take: limit });
  }

  /**
   * Puts failed jobs back in the queue (all, or those ids). A failed job whose user already has a
   * waiting job of the same kind is absorbed by it.
   */
  async retryFailed(ids?: (number | string)[]): Promise<number> {
    const numeric = ids?.map(Number).filter((id) => Number.isInteger(id));
    const failed = await this.jobs.find({
      where: { status: 'failed', ...(numeric ? { id: In(numeric) } : {}) },
    });
    let retried = 0;
    for (const job of failed) {
      const key = SyncQueue.dedupeKey(job.kind, job.forum, job.discordId);
      const taken = await this.jobs.exists({ where: { dedupeKey: key } });
      if (taken) {
        await this.jobs.delete({ id: job.id });
      } else {
        await this.jobs.update(
          { id: job.id },
          { status: 'pending', attempts: 0, runAt: Date.now(), dedupeKey: key, lastError: null },
        );
      }
      retried++;
    }
    if (retried) this.notify();
    return retried;
  }
}
