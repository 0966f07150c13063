import { Injectable, Logger, Optional } from '@nestjs/common';
import { DiscourseAdminService } from '../admin/discourse-admin.service';
import { DiscourseApiError, DiscourseRateLimitError } from '../admin/discourse-api.errors';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents, type SyncJobEvent } from '../hooks/discourse-connect.events';
import { ForumLinks, type ForumLink } from '../users/forum-links';
import { DiscourseConnectStaffFlags } from '../payload/staff-flags';
import type { LocalUser } from '../users/local-user.interface';
import { UsersService } from '../users/users.service';
import { deliverToForum, type ForumDelivery } from './deliver-to-forum';
import type { SyncJobKind } from './sync-job.entity';

/** The work of one job: what to do for which member on which forum. */
export interface SyncWork {
  kind: SyncJobKind;
  discordId: string;
  forum: string;
  /**
   * The member as this process last wrote (or read) them, when the job was written by this
   * process with the change: pushed without reading the user store again.
   */
  user?: LocalUser;
  /**
   * The member's link to the forum (null: none recorded), read with the job by this process just
   * before: used instead of reading it again. Undefined: read it.
   */
  link?: ForumLink | null;
}

/** One job as a queue holds it: its id (a database row id stringified, or BullMQ's id) and attempts so far. */
export interface SyncDeliveryJob extends SyncWork {
  id: string;
  /** Delivery attempts already made before this one. */
  attemptsMade: number;
}

/**
 * What came of one delivery attempt, and what the queue does next:
 * - `delivered`: the forum accepted it, or (`skipped`) there was nothing to write: the member has
 *   no account on that forum; the job is done.
 * - `rate-limited`: the forum answered 429; the whole queue waits `waitMs`, and the job goes back
 *   without costing an attempt (`attempts` is the count before this one).
 * - `retry`: the forum is down, slow or overloaded; the job runs again after `delayMs`.
 * - `failed`: refused (4xx), or out of attempts; the job is kept as failed.
 */
export type SyncDeliveryOutcome =
  | { status: 'delivered'; attempts: number; skipped?: true }
  | { status: 'rate-limited'; attempts: number; waitMs: number; error: string; cause: unknown }
  | { status: 'retry'; attempts: number; delayMs: number; error: string; cause: unknown }
  | { status: 'failed'; attempts: number; error: string; cause: unknown };

/** The longest error kept with a job (the database column) or put in an event. */
export const SYNC_ERROR_MAX_LENGTH = 500;

/** An error's message as a job keeps it: bounded to {@link SYNC_ERROR_MAX_LENGTH}. */
export function syncErrorText(error: unknown): string {
  return ((error as Error)?.message ?? String(error)).slice(0, SYNC_ERROR_MAX_LENGTH);
}

/**
 * The delay before the next try after `attempts` failed ones: exponential from `backoffBaseMs`
 * (the first retry), capped at `backoffMaxMs`, with ±20 % jitter so that retries spread out.
 */
export function syncBackoffMs(
  attempts: number,
  sync: { backoffBaseMs: number; backoffMaxMs: number },
  random: () => number = Math.random,
): number {
  const delay = Math.min(sync.backoffMaxMs, sync.backoffBaseMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(delay * (0.8 + random() * 0.4));
}

/** What a failed attempt leads to; `attemptsMade` counts the attempts before this one. */
export function classifySyncFailure(
  error: unknown,
  attemptsMade: number,
  sync: { maxAttempts: number; backoffBaseMs: number; backoffMaxMs: number },
  random: () => number = Math.random,
): Exclude<SyncDeliveryOutcome, { status: 'delivered' }> {
  const attempts = attemptsMade + 1;
  const message = syncErrorText(error);
  if (error instanceof DiscourseRateLimitError) {
    // The wait applies to the whole queue (the limiter paused every call); it costs no attempt.
    return {
      status: 'rate-limited',
      attempts: attemptsMade,
      waitMs: error.waitSeconds * 1000,
      error: message,
      cause: error,
    };
  }
  const retryable = error instanceof DiscourseApiError && error.retryable;
  if (retryable && attempts < sync.maxAttempts) {
    return {
      status: 'retry',
      attempts,
      delayMs: syncBackoffMs(attempts, sync, random),
      error: message,
      cause: error,
    };
  }
  return { status: 'failed', attempts, error: message, cause: error };
}

/**
 * Delivers sync jobs for every queue of the module (the database outbox, BullMQ) and for a host's
 * own queue ({@link DiscourseConnectSyncDelivery}): does the job on the forum, classifies a failure
 * (rate limited, worth retrying, failed for good), computes the retry delay, and reports the
 * outcome (the "failed for good" log, the `SyncSucceeded`/`SyncFailed` events). The queue only
 * records the outcome its own way.
 */
@Injectable()
export class SyncDeliveryCore {
  private readonly logger = new Logger('DiscourseConnect');

  constructor(
    private readonly users: UsersService,
    private readonly admin: DiscourseAdminService,
    private readonly settings: DiscourseConnectSettings,
    private readonly actions: DiscourseConnectActionsService,
    @Optional() private readonly links?: ForumLinks,
    @Optional() private readonly staff?: DiscourseConnectStaffFlags,
  ) {}

  /**
   * Does the work on the forum, and nothing else: throws `DiscourseApiError` (with `retryable`) or
   * `DiscourseRateLimitError` when the forum refuses or is unavailable. A `sync` or `logout` for a
   * member without an account on that forum completes without a write (see `deliverToForum`).
   */
  async deliver(work: SyncWork): Promise<void> {
    await this.attempt(work);
  }

  private async attempt(work: SyncWork): Promise<ForumDelivery> {
    const result = await deliverToForum(
      work,
      this.users,
      this.admin,
      this.links,
      this.settings.lifecycle,
      this.staff,
    );
    if ('skipped' in result) {
      this.logger.debug(
        `${work.kind} for ${work.discordId} on ${work.forum} completed without a forum write: ${result.reason}`,
      );
    }
    return result;
  }

  /**
   * This process's copy of the member, for a job it wrote right after the change that caused it
   * (see {@link UsersService.recentCopy}); undefined when it has none.
   */
  recentUser(discordId: string): LocalUser | undefined {
    return this.users.recentCopy(discordId) ?? undefined;
  }

  /** The delay before the next try after `attempts` failed ones (the one backoff of every queue). */
  backoff(attempts: number): number {
    return syncBackoffMs(attempts, this.settings.sync);
  }

  /**
   * One delivery attempt: delivers, classifies the outcome, lets the queue `record` it (delete the
   * row, requeue it, mark it failed, pause the queue), then logs and emits the events. An error of
   * `record` propagates and nothing is emitted.
   */
  async run(
    job: SyncDeliveryJob,
    record: (outcome: SyncDeliveryOutcome) => Promise<void> | void = () => undefined,
  ): Promise<SyncDeliveryOutcome> {
    let outcome: SyncDeliveryOutcome;
    try {
      const result = await this.attempt(job);
      outcome = {
        status: 'delivered',
        attempts: job.attemptsMade + 1,
        ...('skipped' in result ? { skipped: true as const } : {}),
      };
    } catch (error) {
      outcome = classifySyncFailure(error, job.attemptsMade, this.settings.sync);
    }
    await record(outcome);
    if (outcome.status === 'delivered') {
      // A job completed without a forum write synced nothing: no "succeeded" event.
      if (!outcome.skipped) this.emit(DiscourseConnectEvents.SyncSucceeded, job, outcome.attempts);
    } else if (outcome.status === 'failed') {
      this.logger.warn(
        `sync job ${job.id} (${job.kind} for ${job.discordId}) failed for good: ${outcome.error}`,
      );
      this.emit(DiscourseConnectEvents.SyncFailed, job, outcome.attempts, outcome.error);
    }
    return outcome;
  }

  private emit(event: string, job: SyncDeliveryJob, attempts: number, error?: string): void {
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
