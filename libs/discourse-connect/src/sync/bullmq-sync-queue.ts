import { Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import type { Job, Queue, Worker } from 'bullmq';
import type { EntityManager, Repository } from 'typeorm';
import { loadOptionalDependency } from '../config/optional-dependency';
import type { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import type { DiscourseConnectRedis } from '../redis/discourse-connect-redis';
import type { SyncDeliveryCore, SyncDeliveryJob } from './sync-delivery.core';
import type { DiscourseConnectSyncJobEntity, SyncJobKind } from './sync-job.entity';
import {
  OPPOSITE_KIND,
  SYNC_JOB_KINDS,
  SyncQueue,
  type SyncJobRecord,
  type SyncQueueCounts,
} from './sync-queue.service';

/** What a BullMQ job carries: the user and the work, never profile data (read at delivery time). */
export interface BullSyncJobData {
  kind: SyncJobKind;
  discordId: string;
  forum: string;
}

export const BULL_QUEUE_NAME = 'discourse-connect-sync';
const BACKOFF_TYPE = 'discourse-connect';
/** How long shutdown waits for current deliveries (Redis up) before closing the worker without waiting. */
const CLOSE_TIMEOUT_MS = 5000;

/** Whether `promise` settles (either way) within `ms`; it is never left to reject unhandled. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = promise.then(
    () => true,
    () => true,
  );
  try {
    return await Promise.race([
      settled,
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The sync queue for several instances, on BullMQ in Redis.
 *
 * Durability (transactional outbox): `enqueue` still writes the job as a database row in the
 * caller's transaction, exactly like the embedded queue. {@link SyncOutboxRelay} (in every instance)
 * then claims committed rows, hands each one to BullMQ through {@link handOver}, and deletes the
 * row only after Redis accepted the job. A process that dies between the commit and the hand-over
 * leaves the row behind; its lease runs out and another instance hands it over. Writing to Redis
 * straight after the commit instead would lose the job in that window, and writing to Redis inside
 * the transaction would deliver changes that were rolled back.
 *
 * Coalescing: BullMQ deduplication on `<kind>:<forum>:<discordId>` with `keepLastIfActive`: while a
 * job for the user waits, another change adds nothing (the waiting job reads the latest profile
 * when it runs); while one is being delivered, one more job is kept to run after it, so a change
 * made during a delivery is never lost and one user's jobs never run in parallel.
 *
 * Rate limit: ONE BullMQ limiter for the queue (stored in Redis, so shared by every worker of
 * every instance) lets one job start per `60 s / sync.ratePerMinute`; the admin API client also
 * reserves each call in the same Redis budget (RedisAdminApiRateLimiter), since a log-out may cost
 * two calls. A 429 from the forum rate-limits the whole queue for the forum's wait
 * (`worker.rateLimit` + `Worker.RateLimitError`, which costs the job no attempt).
 *
 * Retries: other retryable failures (5xx, timeouts, forum down) are retried with the module's
 * exponential backoff up to `sync.maxAttempts`; a refusal (4xx) fails at once. Failed jobs are kept
 * in BullMQ's failed set (`failed`, `retryFailed`, the CLI's `failed --retry`).
 */
export class BullMqSyncQueue extends SyncQueue implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('DiscourseConnect');
  readonly queue: Queue<BullSyncJobData>;
  private worker?: Worker<BullSyncJobData>;
  private readonly bullmq = loadOptionalDependency<typeof import('bullmq')>(
    'bullmq',
    'The Redis sync queue (the redis option or REDIS_URL)',
  );

  constructor(
    jobs: Repository<DiscourseConnectSyncJobEntity>,
    settings: DiscourseConnectSettings,
    private readonly redis: DiscourseConnectRedis,
    private readonly delivery: SyncDeliveryCore,
  ) {
    super(jobs, settings);
    this.queue = new this.bullmq.Queue<BullSyncJobData>(BULL_QUEUE_NAME, {
      connection: redis.client,
      prefix: this.bullPrefix,
      defaultJobOptions: {
        attempts: settings.sync.maxAttempts,
        backoff: { type: BACKOFF_TYPE },
        removeOnComplete: { count: 1000 },
        removeOnFail: false,
      },
    });
    this.queue.on('error', (error) => this.redis.logError('sync queue (Redis)', error));
  }

  private get bullPrefix(): string {
    return `${this.redis.prefix}bull`;
  }

  /** Starts this instance's BullMQ worker (unless `sync.worker` is false or no forum has an API key). */
  onApplicationBootstrap(): void {
    if (!this.settings.sync.worker || this.settings.apiForums.length === 0) return;
    const { ratePerMinute } = this.settings.sync;
    this.worker = new this.bullmq.Worker<BullSyncJobData>(
      BULL_QUEUE_NAME,
      (job) => this.process(job),
      {
        // Workers block on their connection: their own, with no per-command retry limit (BullMQ needs that).
        connection: this.redis.duplicate({ maxRetriesPerRequest: null }),
        prefix: this.bullPrefix,
        concurrency: 4,
        limiter: { max: 1, duration: Math.max(1, Math.ceil(60_000 / ratePerMinute)) },
        // A worker that died mid-delivery (its lock not renewed) loses the job to another after the lease.
        lockDuration: this.settings.sync.leaseMs,
        stalledInterval: Math.max(1000, Math.round(this.settings.sync.leaseMs / 2)),
        settings: {
          backoffStrategy: (attemptsMade: number) => this.delivery.backoff(attemptsMade),
        },
      },
    );
    this.worker.on('error', (error) => this.redis.logError('sync worker (Redis)', error));
  }

  /**
   * Stops the worker and the queue without ever hanging shutdown, so that
   * {@link DiscourseConnectRedis.onApplicationShutdown} still runs when Redis is down: BullMQ's
   * graceful `worker.close()` waits for its blocking connection to end, which never happens while
   * ioredis is reconnecting. With Redis up, current deliveries may finish for up to
   * {@link CLOSE_TIMEOUT_MS}; with Redis down (or past that bound) the worker is closed without
   * waiting. A delivery cut short keeps its job in Redis, taken over by another worker once its lock
   * runs out.
   */
  async onModuleDestroy(): Promise<void> {
    const worker = this.worker;
    if (worker) {
      const graceful =
        this.redis.client.status === 'ready' &&
        (await settlesWithin(worker.close(), CLOSE_TIMEOUT_MS));
      if (!graceful && !(await settlesWithin(worker.close(true), 1000))) {
        // The graceful close started and hung (Redis went away during it): `close(true)` only returned
        // that pending close. Stop the worker's timers (stalled-job check, lock renewal) and connections.
        this.logger.warn(
          `sync worker: not closed after ${CLOSE_TIMEOUT_MS / 1000} s (Redis not answering); stopping it`,
        );
        const locks = (worker as unknown as { lockManager?: { close(): Promise<void> } })
          .lockManager;
        await settlesWithin(
          Promise.allSettled([worker.pause(true), locks?.close(), worker.disconnect()]),
          1000,
        );
      }
    }
    if (!(await settlesWithin(this.queue.close(), 1000)))
      await settlesWithin(this.queue.disconnect(), 1000);
  }

  /** Idempotent per outbox row: deduplication makes a second hand-over of the same change a no-op or one extra (idempotent) delivery. */
  override async handOver(row: DiscourseConnectSyncJobEntity): Promise<void> {
    await this.add({ kind: row.kind, discordId: row.discordId, forum: row.forum });
  }

  /**
   * Member lifecycle: the member's waiting outbox rows, and their jobs waiting in BullMQ (found by
   * their deduplication ids), are removed. A job being delivered finishes.
   */
  override async cancelPending(
    discordId: string,
    options: { manager?: EntityManager; forum?: string; kinds?: SyncJobKind[] } = {},
  ): Promise<void> {
    await super.cancelPending(discordId, options);
    const forums = options.forum ? [options.forum] : this.settings.apiForums.map((f) => f.name);
    for (const kind of options.kinds ?? SYNC_JOB_KINDS) {
      for (const forum of forums) {
        const id = await this.queue.getDeduplicationJobId(
          SyncQueue.dedupeKey(kind, forum, discordId),
        );
        const job = id ? await this.queue.getJob(id) : undefined;
        if (job && ((await job.isWaiting()) || (await job.isDelayed())))
          await job.remove().catch(() => undefined);
      }
    }
  }

  /** Queues work for a user, coalesced with the user's waiting job (see the class comment). */
  private async add(data: BullSyncJobData): Promise<void> {
    const opposite = OPPOSITE_KIND[data.kind];
    if (opposite) {
      // Member lifecycle: a waiting (or retry-delayed) suspension and its lifting cancel each other
      // (the latest decides). A job being delivered cannot be removed; this one runs after it.
      const id = await this.queue.getDeduplicationJobId(
        SyncQueue.dedupeKey(opposite, data.forum, data.discordId),
      );
      const waiting = id ? await this.queue.getJob(id) : undefined;
      if (waiting && ((await waiting.isWaiting()) || (await waiting.isDelayed())))
        await waiting.remove().catch(() => undefined);
    }
    await this.queue.add(
      data.kind,
      { kind: data.kind, discordId: data.discordId, forum: data.forum },
      {
        deduplication: {
          id: SyncQueue.dedupeKey(data.kind, data.forum, data.discordId),
          keepLastIfActive: true,
        },
      },
    );
  }

  async counts(): Promise<SyncQueueCounts> {
    // The outbox first, then BullMQ: the relay adds a job to BullMQ before it deletes its outbox
    // row, so read in this order a job being handed over is counted at least once, never missed
    // (read together, both reads could fall between the add and the delete and report an idle queue).
    const outbox = await this.outboxCounts();
    const bull = await this.queue.getJobCounts(
      'waiting',
      'delayed',
      'prioritized',
      'waiting-children',
      'active',
      'failed',
    );
    return combinedCounts(outbox, bull);
  }

  async failed(limit = 100): Promise<SyncJobRecord[]> {
    const jobs = await this.queue.getFailed(0, limit - 1);
    return jobs.filter(Boolean).map(failedJobRecord);
  }

  async retryFailed(ids?: (number | string)[]): Promise<number> {
    const wanted = ids ? new Set(ids.map(String)) : undefined;
    let retried = 0;
    for (;;) {
      const page = (await this.queue.getFailed(0, 499)).filter(
        (job) => job && (!wanted || wanted.has(String(job.id))),
      );
      if (page.length === 0) break;
      for (const job of page) {
        // Not `job.retry()`: it does not restore the deduplication key, so the retried job could run
        // beside a newer one for the same user. The work is queued again like any change (coalesced
        // with a job already waiting for the user, fresh attempts), then the failed job removed.
        await this.add(job.data);
        await job.remove();
        retried++;
      }
      if (wanted) break;
    }
    return retried;
  }

  /**
   * One delivery attempt through {@link SyncDeliveryCore}, its outcome told to BullMQ: a 429 pauses
   * the whole queue (on every instance) and puts the job back unchanged; a retryable failure is
   * thrown for BullMQ's backoff (the core's formula); a failure for good ends the job at once.
   */
  private async process(job: Job<BullSyncJobData>): Promise<void> {
    const outcome = await this.delivery.run(bullJob(job), async (outcome) => {
      if (outcome.status === 'rate-limited') await this.worker!.rateLimit(outcome.waitMs);
    });
    switch (outcome.status) {
      case 'delivered':
        return;
      case 'rate-limited':
        throw this.bullmq.Worker.RateLimitError();
      case 'retry':
        throw new Error(outcome.error, { cause: outcome.cause });
      case 'failed':
        throw new this.bullmq.UnrecoverableError(outcome.error);
    }
  }
}

/** A BullMQ job as the delivery core sees it. */
export function bullJob(
  job: Pick<Job<BullSyncJobData>, 'id' | 'data' | 'attemptsMade'>,
): SyncDeliveryJob {
  return {
    id: String(job.id ?? ''),
    kind: job.data.kind,
    discordId: job.data.discordId,
    forum: job.data.forum,
    attemptsMade: job.attemptsMade,
  };
}

/** A job of BullMQ's failed set as the queue reports it. */
export function failedJobRecord(
  job: Pick<Job<BullSyncJobData>, 'id' | 'data' | 'attemptsMade' | 'failedReason'>,
): SyncJobRecord {
  return {
    id: job.id ?? '',
    kind: job.data.kind,
    discordId: job.data.discordId,
    forum: job.data.forum,
    attempts: job.attemptsMade,
    lastError: job.failedReason ?? null,
  };
}

/** The queue's counts: outbox rows not yet handed over to BullMQ are waiting too. */
export function combinedCounts(
  outbox: SyncQueueCounts,
  bull: Record<string, number | undefined>,
): SyncQueueCounts {
  const n = (key: string) => Number(bull[key] ?? 0);
  return {
    pending:
      outbox.pending +
      outbox.running +
      n('waiting') +
      n('delayed') +
      n('prioritized') +
      n('waiting-children'),
    running: n('active'),
    failed: outbox.failed + n('failed'),
  };
}
