import { Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { LessThan, LessThanOrEqual, type Repository } from 'typeorm';
import type { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import type { DiscourseConnectSyncJobEntity } from './sync-job.entity';
import { isUniqueViolation } from '../common/database-errors';
import { OPPOSITE_KIND, SyncQueue, type ClaimedSyncJob } from './sync-queue.service';

/**
 * Works through the database outbox of sync jobs, oldest first: claims each due row under a lease
 * (a crash mid-way leaves the row locked until the lease runs out, then it is processed again),
 * polls every `sync.pollIntervalMs`, and starts a pass at once when a job is enqueued in this
 * process. What is done with a claimed row is the subclass's: {@link DatabaseSyncWorker} delivers
 * it to the forum, {@link SyncOutboxRelay} hands it over to BullMQ.
 */
export abstract class OutboxWorker implements OnApplicationBootstrap, OnModuleDestroy {
  protected readonly logger = new Logger('DiscourseConnect');
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;
  /** A full pass (expired leases, then every due row) was asked for: at boot, by the poll. */
  private full = false;
  /** Rows announced by enqueues in this process since the last pass started. */
  private announced = 0;
  /** Rows this process wrote already claimed (`SyncQueue.enqueueClaimed`), delivered first. */
  private claimed: ClaimedSyncJob[] = [];

  constructor(
    protected readonly jobs: Repository<DiscourseConnectSyncJobEntity>,
    protected readonly queue: SyncQueue,
    protected readonly settings: DiscourseConnectSettings,
  ) {}

  /** Whether this worker is the one for the module's queue (the other one stays idle). */
  protected abstract get handlesQueue(): boolean;

  /** Whether it starts on its own at boot (polling, woken by enqueues); `drain()` works regardless. */
  protected get startsOnBoot(): boolean {
    return true;
  }

  /**
   * Does the work of a claimed row (status `running`), and deletes or requeues it. `claimedOnWrite`:
   * this process wrote the row already claimed, right after writing the change that caused it.
   */
  protected abstract process(row: ClaimedSyncJob, claimedOnWrite?: boolean): Promise<void>;

  onApplicationBootstrap(): void {
    if (!this.handlesQueue || !this.startsOnBoot) return;
    if (this.settings.apiForums.length === 0) {
      this.logger.log(
        'No DISCOURSE_API_KEY: syncing profiles, groups and sign-outs to the forum through its admin API is off.',
      );
      return;
    }
    this.queue.onEnqueued((rows) => this.kick(rows));
    this.queue.onClaimed((rows) => this.take(rows));
    this.timer = setInterval(() => this.kick(), this.settings.sync.pollIntervalMs);
    this.timer.unref();
    this.kick();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
    // Rows written already claimed and not delivered yet: back to the queue now, for another
    // instance (else they would wait for their lease to run out).
    const left = this.claimed;
    this.claimed = [];
    for (const row of left) await this.release(row);
  }

  /**
   * Starts a pass now (or right after the current one). Without `rows`, a full pass: expired
   * leases back to the queue, then every due row. With `rows` (an enqueue in this process
   * announcing that many new rows), a short pass: that many due rows, oldest first, without the
   * lease check and without looking for one more row at the end; the poll does the full pass.
   */
  kick(rows?: number): void {
    if (this.stopped) return;
    if (rows === undefined) this.full = true;
    else this.announced += rows;
    this.start();
  }

  /** Rows written already claimed by this process (committed): delivered before anything else. */
  take(rows: ClaimedSyncJob[]): void {
    if (this.stopped) return; // their lease runs out, then the poll delivers them
    this.claimed.push(...rows);
    this.start();
  }

  private start(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    const full = this.full;
    const rows = this.announced;
    const claimed = this.claimed;
    if (!full && rows <= 0 && claimed.length === 0) return;
    this.full = false;
    this.announced = 0;
    this.claimed = [];
    this.running = this.pass(claimed, full, rows)
      .catch((error) => this.logger.error(`sync worker pass failed: ${(error as Error).message}`))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.start();
        }
      });
  }

  private async pass(claimed: ClaimedSyncJob[], full: boolean, rows: number): Promise<void> {
    await this.processClaimed(claimed);
    if (full) await this.drain();
    else if (rows > 0) await this.drainAnnounced(rows);
  }

  /**
   * Rows written already claimed by this process. One whose lease has less than half left (the
   * worker was busy) has it renewed first, only if no one took it back meanwhile.
   */
  private async processClaimed(rows: ClaimedSyncJob[]): Promise<void> {
    if (!this.handlesQueue) return;
    for (const [i, row] of rows.entries()) {
      if (this.stopped) {
        this.claimed.unshift(...rows.slice(i)); // released by onModuleDestroy
        return;
      }
      const leaseMs = this.settings.sync.leaseMs;
      if ((row.lockedUntil ?? 0) - Date.now() < leaseMs / 2) {
        const lockedUntil = Date.now() + leaseMs;
        const renewed = await this.jobs.update(
          { id: row.id, status: 'running', lockedUntil: row.lockedUntil! },
          { lockedUntil },
        );
        if (!renewed.affected) continue; // back to the queue already: the poll delivers it
        row.lockedUntil = lockedUntil;
      }
      await this.process(row, true);
    }
  }

  /** Processes up to `rows` due rows (the ones an enqueue just announced, or older due ones). */
  private async drainAnnounced(rows: number): Promise<void> {
    if (!this.handlesQueue) return;
    for (let left = rows; left > 0 && !this.stopped; left--) {
      const row = await this.claimNext();
      if (!row) return;
      await this.process(row);
    }
  }

  /** Processes every due row; resolves when none is left (used by tests and the CLI). */
  async drain(): Promise<void> {
    if (!this.handlesQueue) return;
    await this.reclaimExpired();
    while (!this.stopped) {
      const row = await this.claimNext();
      if (!row) return;
      await this.process(row);
    }
  }

  private async claimNext(): Promise<DiscourseConnectSyncJobEntity | null> {
    for (let tries = 0; tries < 5; tries++) {
      const row = await this.jobs.findOne({
        where: { status: 'pending', runAt: LessThanOrEqual(Date.now()) },
        order: { id: 'ASC' },
      });
      if (!row) return null;
      const lockedUntil = Date.now() + this.settings.sync.leaseMs;
      const result = await this.jobs.update(
        { id: row.id, status: 'pending' },
        { status: 'running', lockedUntil, dedupeKey: null },
      );
      if (result.affected) return { ...row, status: 'running', lockedUntil, dedupeKey: null };
    }
    return null;
  }

  /** Back to pending; if a newer job for the same user is already waiting, that one covers this. */
  protected async requeue(
    row: DiscourseConnectSyncJobEntity,
    attempts: number,
    runAt: number,
    lastError: string | null,
  ): Promise<void> {
    const dedupeKey = SyncQueue.dedupeKey(row.kind, row.forum, row.discordId);
    const opposite = OPPOSITE_KIND[row.kind];
    if (
      opposite &&
      (await this.jobs.exists({
        where: { dedupeKey: SyncQueue.dedupeKey(opposite, row.forum, row.discordId) },
      }))
    ) {
      // Member lifecycle: a suspension (or its lifting) asked for since this one started decides.
      await this.jobs.delete({ id: row.id });
      return;
    }
    try {
      await this.jobs.update(
        { id: row.id },
        { status: 'pending', attempts, runAt, lockedUntil: null, dedupeKey, lastError },
      );
    } catch {
      await this.jobs.delete({ id: row.id });
    }
  }

  /** A row this process claimed and did not process: back to the queue, if its lease is still ours. */
  private async release(row: ClaimedSyncJob): Promise<void> {
    const ours = { id: row.id, status: 'running' as const, lockedUntil: row.lockedUntil! };
    try {
      try {
        await this.jobs.update(ours, {
          status: 'pending',
          lockedUntil: null,
          dedupeKey: SyncQueue.dedupeKey(row.kind, row.forum, row.discordId),
        });
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        // A job of its kind already waits for the member there: that one covers this one.
        await this.jobs.delete(ours);
      }
    } catch (error) {
      this.logger.warn(
        `sync job ${row.id} stays claimed until its lease runs out: ${(error as Error).message}`,
      );
    }
  }

  /** Rows whose worker died mid-way go back to the queue once their lease ran out. */
  private async reclaimExpired(): Promise<void> {
    const stale = await this.jobs.find({
      where: { status: 'running', lockedUntil: LessThan(Date.now()) },
    });
    for (const row of stale) await this.requeue(row, row.attempts, Date.now(), row.lastError);
  }
}
