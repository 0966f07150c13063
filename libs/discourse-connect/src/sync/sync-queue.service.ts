import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { EntityManager, In, Repository } from 'typeorm';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectSyncJobEntity, SyncJobKind } from './sync-job.entity';

export interface SyncQueueCounts {
  pending: number;
  running: number;
  failed: number;
}

/**
 * The durable record of work for the forum. `enqueue` writes a job (in the caller's transaction
 * when given one); repeated changes of one user while a job waits are coalesced into that job.
 * A worker delivers them (see SyncWorker).
 */
@Injectable()
export class SyncQueue {
  private listeners: (() => void)[] = [];

  constructor(
    @InjectRepository(DiscourseConnectSyncJobEntity)
    protected readonly jobs: Repository<DiscourseConnectSyncJobEntity>,
    protected readonly settings: DiscourseConnectSettings,
  ) {}

  static dedupeKey(kind: SyncJobKind, forum: string, discordId: string): string {
    return `${kind}:${forum}:${discordId}`;
  }

  /**
   * Records `kind` for this user on every forum with an admin API key (or the one named).
   * Resolves once the job is durable; a job already waiting for the same user absorbs this one.
   */
  async enqueue(kind: SyncJobKind, discordId: string, options: { forum?: string; manager?: EntityManager } = {}): Promise<void> {
    const forums = options.forum ? this.settings.apiForums.filter((f) => f.name === options.forum) : this.settings.apiForums;
    if (forums.length === 0) return;
    const repo = options.manager ? options.manager.getRepository(DiscourseConnectSyncJobEntity) : this.jobs;
    const now = Date.now();
    await repo
      .createQueryBuilder()
      .insert()
      .into(DiscourseConnectSyncJobEntity)
      .values(
        forums.map((forum) => ({
          discordId,
          forum: forum.name,
          kind,
          status: 'pending' as const,
          dedupeKey: SyncQueue.dedupeKey(kind, forum.name, discordId),
          attempts: 0,
          runAt: now,
          lockedUntil: null,
          lastError: null,
        })),
      )
      .orIgnore()
      .execute();
    if (!options.manager) this.notify();
  }

  /** Tells workers in this process that work arrived (they also poll). */
  notify(): void {
    for (const listener of this.listeners) listener();
  }

  onEnqueued(listener: () => void): void {
    this.listeners.push(listener);
  }

  async counts(): Promise<SyncQueueCounts> {
    const rows: { status: string; count: string | number }[] = await this.jobs
      .createQueryBuilder('job')
      .select('job.status', 'status')
      .addSelect('COUNT(*)', 'count')
      .groupBy('job.status')
      .getRawMany();
    const counts: SyncQueueCounts = { pending: 0, running: 0, failed: 0 };
    for (const row of rows) {
      if (row.status in counts) counts[row.status as keyof SyncQueueCounts] = Number(row.count);
    }
    return counts;
  }

  /** Jobs kept after running out of retries. */
  failed(limit = 100): Promise<DiscourseConnectSyncJobEntity[]> {
    return this.jobs.find({ where: { status: 'failed' }, order: { id: 'ASC' }, take: limit });
  }

  /**
   * Puts failed jobs back in the queue (all, or those ids). A failed job whose user already has a
   * waiting job of the same kind is absorbed by it.
   */
  async retryFailed(ids?: number[]): Promise<number> {
    const failed = await this.jobs.find({ where: { status: 'failed', ...(ids ? { id: In(ids) } : {}) } });
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
