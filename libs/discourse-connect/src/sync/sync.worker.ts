import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { LessThan, LessThanOrEqual, Repository } from 'typeorm';
import { DiscourseAdminService } from '../admin/discourse-admin.service';
import { DiscourseApiError, DiscourseRateLimitError } from '../admin/discourse-api.errors';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents, SyncJobEvent } from '../hooks/discourse-connect.events';
import { UsersService } from '../users/users.service';
import { DiscourseConnectSyncJobEntity } from './sync-job.entity';
import { deliverToForum } from './deliver';
import { SyncQueue } from './sync-queue.service';

/**
 * Works through the database outbox of sync jobs, oldest first.
 *
 * Embedded queue: delivers each job to the forum under the admin API rate limit, with exponential
 * backoff on failures and the forum's 429 waits applied to the whole queue. A job is deleted only
 * after the forum accepted it; a crash mid-delivery leaves it locked until its lease runs out, and
 * then it is delivered again (every job is idempotent on the forum).
 *
 * With Redis (the queue has `handOver`): relays each committed row to BullMQ instead, and deletes
 * the row once Redis has the job; the same leases make a relay cut short by a crash happen again.
 * Every instance relays, whether or not it runs a BullMQ worker.
 */
@Injectable()
export class SyncWorker implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('DiscourseConnect');
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(
    @InjectRepository(DiscourseConnectSyncJobEntity)
    protected readonly jobs: Repository<DiscourseConnectSyncJobEntity>,
    protected readonly queue: SyncQueue,
    protected readonly admin: DiscourseAdminService,
    protected readonly users: UsersService,
    protected readonly settings: DiscourseConnectSettings,
    protected readonly actions: DiscourseConnectActionsService,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.queue.deliversFromOutbox) return; // the host's own queue delivers its jobs
    if (!this.settings.sync.worker && !this.queue.handOver) return;
    if (this.settings.apiForums.length === 0) {
      this.logger.log(
        'No DISCOURSE_API_KEY: syncing profiles, groups and sign-outs to the forum through its admin API is off.',
      );
      return;
    }
    this.queue.onEnqueued(() => this.kick());
    this.timer = setInterval(() => this.kick(), this.settings.sync.pollIntervalMs);
    this.timer.unref();
    this.kick();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** Starts a delivery pass now (or right after the current one). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain()
      .catch((error) => this.logger.error(`sync worker pass failed: ${(error as Error).message}`))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Delivers every due job; resolves when none is left (used by tests and the CLI). */
  async drain(): Promise<void> {
    await this.reclaimExpired();
    while (!this.stopped) {
      const job = await this.claimNext();
      if (!job) return;
      await this.deliver(job);
    }
  }

  private async claimNext(): Promise<DiscourseConnectSyncJobEntity | null> {
    for (let tries = 0; tries < 5; tries++) {
      const job = await this.jobs.findOne({
        where: { status: 'pending', runAt: LessThanOrEqual(Date.now()) },
        order: { id: 'ASC' },
      });
      if (!job) return null;
      const lockedUntil = Date.now() + this.settings.sync.leaseMs;
      const result = await this.jobs.update(
        { id: job.id, status: 'pending' },
        { status: 'running', lockedUntil, dedupeKey: null },
      );
      if (result.affected) return { ...job, status: 'running', lockedUntil, dedupeKey: null };
    }
    return null;
  }

  private async deliver(job: DiscourseConnectSyncJobEntity): Promise<void> {
    const attempts = job.attempts + 1;
    if (this.queue.handOver) {
      try {
        await this.queue.handOver(job);
      } catch (error) {
        // Redis unreachable: the row stays in the outbox and is relayed later (never failed for that).
        const message = ((error as Error)?.message ?? String(error)).slice(0, 500);
        this.logger.warn(
          `could not hand sync job ${job.id} over to the Redis queue, retrying: ${message}`,
        );
        await this.requeue(
          job,
          attempts,
          Date.now() + this.backoff(Math.min(attempts, 8)),
          message,
        );
        return;
      }
      await this.jobs.delete({ id: job.id });
      return;
    }
    try {
      await deliverToForum(job, this.users, this.admin);
    } catch (error) {
      await this.handleFailure(job, attempts, error);
      return;
    }
    await this.jobs.delete({ id: job.id });
    this.emit(DiscourseConnectEvents.SyncSucceeded, job, attempts);
  }

  private async handleFailure(
    job: DiscourseConnectSyncJobEntity,
    attempts: number,
    error: unknown,
  ): Promise<void> {
    const message = ((error as Error)?.message ?? String(error)).slice(0, 500);
    if (error instanceof DiscourseRateLimitError) {
      // The wait applies to the whole queue (the limiter paused every call); it costs no attempt.
      await this.requeue(job, job.attempts, Date.now() + error.waitSeconds * 1000, message);
      return;
    }
    const retryable = error instanceof DiscourseApiError && error.retryable;
    if (retryable && attempts < this.settings.sync.maxAttempts) {
      await this.requeue(job, attempts, Date.now() + this.backoff(attempts), message);
      return;
    }
    await this.jobs.update(
      { id: job.id },
      { status: 'failed', attempts, lockedUntil: null, lastError: message },
    );
    this.logger.warn(
      `sync job ${job.id} (${job.kind} for ${job.discordId}) failed for good: ${message}`,
    );
    this.emit(DiscourseConnectEvents.SyncFailed, job, attempts, message);
  }

  /** Back to pending; if a newer job for the same user is already waiting, that one covers this. */
  private async requeue(
    job: DiscourseConnectSyncJobEntity,
    attempts: number,
    runAt: number,
    lastError: string | null,
  ) {
    const dedupeKey = SyncQueue.dedupeKey(job.kind, job.forum, job.discordId);
    try {
      await this.jobs.update(
        { id: job.id },
        { status: 'pending', attempts, runAt, lockedUntil: null, dedupeKey, lastError },
      );
    } catch {
      await this.jobs.delete({ id: job.id });
    }
  }

  /** Jobs whose worker died mid-delivery go back to the queue once their lease ran out. */
  private async reclaimExpired(): Promise<void> {
    const stale = await this.jobs.find({
      where: { status: 'running', lockedUntil: LessThan(Date.now()) },
    });
    for (const job of stale) await this.requeue(job, job.attempts, Date.now(), job.lastError);
  }

  private backoff(attempts: number): number {
    const { backoffBaseMs, backoffMaxMs } = this.settings.sync;
    const delay = Math.min(backoffMaxMs, backoffBaseMs * 2 ** (attempts - 1));
    return Math.round(delay * (0.8 + Math.random() * 0.4));
  }

  private emit(
    event: string,
    job: DiscourseConnectSyncJobEntity,
    attempts: number,
    error?: string,
  ): void {
    const payload: SyncJobEvent = {
      jobId: job.id,
      kind: job.kind,
      discordId: job.discordId,
      forum: job.forum,
      attempts,
      ...(error ? { error } : {}),
    };
    this.actions.emit(event, payload);
  }
}
