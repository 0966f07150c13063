import { EntityManager, In, Repository } from 'typeorm';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectSyncJobEntity, SyncJobKind } from './sync-job.entity';
import {
  DiscourseConnectSyncQueue,
  type SyncJobRecord,
  type SyncQueueCounts,
} from './discourse-connect-sync-queue';

export type { SyncJobRecord, SyncQueueCounts };

/** Every kind of sync job. */
export const SYNC_JOB_KINDS: readonly SyncJobKind[] = [
  'sync',
  'create',
  'logout',
  'suspend',
  'unsuspend',
  'anonymize',
  'delete',
];

/** Member lifecycle: the job kind a waiting job of this kind cancels (and is cancelled by). */
export const OPPOSITE_KIND: Partial<Record<SyncJobKind, SyncJobKind>> = {
  suspend: 'unsuspend',
  unsuspend: 'suspend',
};

/**
 * The sync queue: work for the forum (profile syncs, log-outs), durable and coalesced per user.
 * This abstract class is the injection token; the module provides one of two implementations and
 * the rest of the code never knows which:
 *
 * - {@link DatabaseSyncQueue} (default): the jobs live in the database and {@link DatabaseSyncWorker}
 *   delivers them from there, rate-limited per process.
 * - {@link BullMqSyncQueue} (with `redis`): several instances share one BullMQ queue in Redis,
 *   with one rate limit for all of them.
 *
 * Both record a job the same way, as a row of `discourse_connect_sync_jobs` written in the
 * caller's transaction (a transactional outbox): a user change and the job it causes commit
 * together or not at all, whatever happens to the process right after.
 */
export abstract class SyncQueue extends DiscourseConnectSyncQueue {
  /** Whether the module's worker delivers (or relays) this queue's jobs from the database outbox. */
  readonly deliversFromOutbox: boolean = true;
  private listeners: ((rows?: number) => void)[] = [];

  constructor(
    protected readonly jobs: Repository<DiscourseConnectSyncJobEntity>,
    protected readonly settings: DiscourseConnectSettings,
  ) {
    super();
  }

  static dedupeKey(kind: SyncJobKind, forum: string, discordId: string): string {
    return `${kind}:${forum}:${discordId}`;
  }

  /**
   * Hands an outbox row over to a distributed queue (BullMQ), or undefined when the rows are
   * delivered straight from the database. Called by {@link SyncOutboxRelay}; must be idempotent for
   * one row (a row may be handed over twice if a process dies in between).
   */
  handOver?(job: DiscourseConnectSyncJobEntity): Promise<void>;

  /**
   * Records `kind` for this user on every forum with an admin API key (or the one named).
   * Resolves once the job is durable; a job already waiting for the same user absorbs this one.
   */
  async enqueue(
    kind: SyncJobKind,
    discordId: string,
    options: { forum?: string; manager?: EntityManager } = {},
  ): Promise<void> {
    const forums = options.forum
      ? this.settings.apiForums.filter((f) => f.name === options.forum)
      : this.settings.apiForums;
    if (forums.length === 0) return;
    const repo = options.manager
      ? options.manager.getRepository(DiscourseConnectSyncJobEntity)
      : this.jobs;
    const now = Date.now();
    const opposite = OPPOSITE_KIND[kind];
    if (opposite) {
      // Member lifecycle: a suspension and its lifting cancel each other while waiting, so the
      // latest one decides.
      await repo.delete({
        status: 'pending',
        dedupeKey: In(forums.map((forum) => SyncQueue.dedupeKey(opposite, forum.name, discordId))),
      });
    }
    // ON CONFLICT DO NOTHING / INSERT OR IGNORE: never aborts the caller's transaction (PostgreSQL
    // would abort it on a unique violation).
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
      // The generated ids are not needed: no read-back of the inserted rows.
      .updateEntity(false)
      .execute();
    if (!options.manager) this.notify(forums.length);
  }

  /**
   * Member lifecycle: removes the member's jobs still waiting (all kinds, or those given; every
   * forum, or the one named), in the caller's transaction with `manager`. A job being delivered
   * finishes; a failed job is kept.
   */
  async cancelPending(
    discordId: string,
    options: { manager?: EntityManager; forum?: string; kinds?: SyncJobKind[] } = {},
  ): Promise<void> {
    const repo = options.manager
      ? options.manager.getRepository(DiscourseConnectSyncJobEntity)
      : this.jobs;
    await repo.delete({
      discordId,
      status: 'pending',
      ...(options.forum ? { forum: options.forum } : {}),
      ...(options.kinds ? { kind: In(options.kinds) } : {}),
    });
  }

  /**
   * Tells workers in this process that work arrived (they also poll): `rows` new rows of the
   * outbox (at most that many: some may have been absorbed by a waiting job), or, without it,
   * anything (the workers look at every due row).
   */
  notify(rows?: number): void {
    for (const listener of this.listeners) listener(rows);
  }

  onEnqueued(listener: (rows?: number) => void): void {
    this.listeners.push(listener);
  }

  /** Rows of the outbox by status (shared by both implementations). */
  protected async outboxCounts(): Promise<SyncQueueCounts> {
    const rows: { status: string; count: string | number }[] = await this.jobs
      .createQueryBuilder('job')
      .select('job.status', 'status')
      .addSelect('COUNT(*)', 'count')
      .groupBy('job.status')
      .getRawMany();
    const counts: SyncQueueCounts = { pending: 0, running: 0, failed: 0 };
    for (const row of rows) {
      // PostgreSQL returns COUNT(*) as a string (bigint).
      if (row.status in counts) counts[row.status as keyof SyncQueueCounts] = Number(row.count);
    }
    return counts;
  }
}
