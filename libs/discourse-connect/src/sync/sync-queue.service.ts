import { EntityManager, EntityMetadata, In, Repository } from 'typeorm';
import { DiscourseConnectForumLinkEntity } from '../users/forum-link.entity';
import type { ForumLink } from '../users/forum-links';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectSyncJobEntity, SyncJobKind } from './sync-job.entity';
import {
  DiscourseConnectSyncQueue,
  type SyncJobRecord,
  type SyncQueueCounts,
} from './discourse-connect-sync-queue';

export type { SyncJobRecord, SyncQueueCounts };

/**
 * A job row written already claimed by this process (`SyncQueue.enqueueClaimed`), with the
 * member's link to the job's forum as the writing transaction read it: null when none is recorded.
 */
export interface ClaimedSyncJob extends DiscourseConnectSyncJobEntity {
  link?: ForumLink | null;
}

/** The link columns read with a job written already claimed, each as `link_<property>`. */
const LINK_PROPERTIES = [
  'status',
  'forumUserId',
  'forumUsername',
  'checkedAt',
  'suspendedByModule',
  'suspendedUntil',
  'anonymizedAt',
] as const;

/**
 * The RETURNING list of a job insert: the row's id and forum, and the member's link to that forum
 * (one primary-key lookup per column, read in the same statement).
 */
function returnedWithLink(repo: Repository<DiscourseConnectSyncJobEntity>): string {
  const connection = repo.manager.connection;
  const escape = (name: string) => connection.driver.escape(name);
  const jobs = repo.metadata;
  const column = (meta: EntityMetadata, property: string) =>
    escape(meta.findColumnWithPropertyName(property)!.databaseName);
  const returned = [
    `${column(jobs, 'id')} AS ${escape('id')}`,
    `${column(jobs, 'forum')} AS ${escape('forum')}`,
  ];
  if (!connection.hasMetadata(DiscourseConnectForumLinkEntity)) return returned.join(', ');
  const links = connection.getMetadata(DiscourseConnectForumLinkEntity);
  const linkTable = tableOf(links, escape);
  const jobTable = escape(jobs.tableName);
  const match =
    `l.${column(links, 'forum')} = ${jobTable}.${column(jobs, 'forum')} AND ` +
    `l.${column(links, 'discordId')} = ${jobTable}.${column(jobs, 'discordId')}`;
  return [
    ...returned,
    ...LINK_PROPERTIES.map(
      (p) =>
        `(SELECT l.${column(links, p)} FROM ${linkTable} l WHERE ${match}) AS ${escape(`link_${p}`)}`,
    ),
  ].join(', ');
}

/** A table's name for SQL, with its schema when it has one. */
function tableOf(meta: EntityMetadata, escape: (name: string) => string): string {
  return meta.schema ? `${escape(meta.schema)}.${escape(meta.tableName)}` : escape(meta.tableName);
}

/**
 * The link read with a job (see `returnedWithLink`): null when none is recorded, undefined when
 * it was not read.
 */
function linkOf(
  row: Record<string, unknown>,
  forum: string,
  discordId: string,
): ForumLink | null | undefined {
  if (!('link_status' in row)) return undefined;
  if (row.link_status === null || row.link_status === undefined) return null;
  const number = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    forum,
    discordId,
    status: row.link_status as ForumLink['status'],
    forumUserId: number(row.link_forumUserId),
    forumUsername: (row.link_forumUsername as string | null) ?? null,
    checkedAt: Number(row.link_checkedAt),
    // SQLite answers 0/1, PostgreSQL a boolean.
    suspendedByModule: Boolean(row.link_suspendedByModule),
    suspendedUntil: number(row.link_suspendedUntil),
    anonymizedAt: number(row.link_anonymizedAt),
  };
}

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
  /** The worker of this process that delivers the jobs written already claimed (see `enqueueClaimed`). */
  private claimer?: (rows: ClaimedSyncJob[]) => void;

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
   * Records `kind` for this member on every forum with an admin API key, like `enqueue` (in the
   * caller's transaction with `manager`), but already claimed by this process: `running` under a
   * lease from now, so no worker has to claim it again. The same statement reads the member's link
   * to each forum (`link` of each row), which the delivery uses instead of reading it again. A job
   * of that kind already waiting for the member on a forum absorbs this one there (no row for that
   * forum). Resolves to the rows, to hand to `deliverClaimed` once the transaction committed; or to
   * null when this process has no worker delivering the outbox, the kind cancels an opposite one,
   * or the database cannot return the new rows from the insert (then call `enqueue`). If the
   * process stops before delivering a row, its lease runs out and the poll delivers it, like any
   * claimed row.
   */
  async enqueueClaimed(
    kind: SyncJobKind,
    discordId: string,
    manager?: EntityManager,
  ): Promise<ClaimedSyncJob[] | null> {
    if (!this.claimer || !this.deliversFromOutbox || OPPOSITE_KIND[kind]) return null;
    const repo = manager ? manager.getRepository(DiscourseConnectSyncJobEntity) : this.jobs;
    const type = repo.manager.connection.options.type;
    // INSERT … RETURNING: SQLite 3.35+ (as bundled with better-sqlite3) and PostgreSQL.
    if (type !== 'better-sqlite3' && type !== 'postgres') return null;
    const forums = this.settings.apiForums;
    if (forums.length === 0) return [];
    const now = Date.now();
    const lockedUntil = now + this.settings.sync.leaseMs;
    const connection = repo.manager.connection;
    const escape = (name: string) => connection.driver.escape(name);
    const meta = repo.metadata;
    const column = (property: string) =>
      escape(meta.findColumnWithPropertyName(property)!.databaseName);
    const table = tableOf(meta, escape);
    // One SELECT per forum, each only when no job of that kind waits for the member there (that
    // one absorbs this one, as in `enqueue`). Without a dedupe key: a change made while this one
    // is delivered gets its own job.
    const selects = forums.map(
      (_, i) =>
        `SELECT :discordId, :forum${i}, :kind, 'running', 0, CAST(:runAt AS bigint), ` +
        `CAST(:lockedUntil AS bigint) WHERE NOT EXISTS ` +
        `(SELECT 1 FROM ${table} WHERE ${column('dedupeKey')} = :key${i})`,
    );
    const parameters: Record<string, unknown> = { discordId, kind, runAt: now, lockedUntil };
    forums.forEach((forum, i) => {
      parameters[`forum${i}`] = forum.name;
      parameters[`key${i}`] = SyncQueue.dedupeKey(kind, forum.name, discordId);
    });
    const columns = ['discordId', 'forum', 'kind', 'status', 'attempts', 'runAt', 'lockedUntil'];
    const [sql, bound] = connection.driver.escapeQueryWithParameters(
      `INSERT INTO ${table} (${columns.map(column).join(', ')}) ${selects.join(' UNION ALL ')} ` +
        `RETURNING ${returnedWithLink(repo)}`,
      parameters,
    );
    const inserted: Record<string, unknown>[] = await repo.manager.query(sql, bound);
    const at = new Date(now);
    return inserted.map((returned) => {
      const forum = String(returned.forum);
      return {
        id: Number(returned.id),
        discordId,
        forum,
        kind,
        status: 'running' as const,
        dedupeKey: null,
        attempts: 0,
        runAt: now,
        lockedUntil,
        lastError: null,
        createdAt: at,
        updatedAt: at,
        link: linkOf(returned, forum, discordId),
      };
    });
  }

  /**
   * After the commit: hands rows written by `enqueueClaimed` to this process's worker, which
   * delivers them next. Nothing happens without one (the rows are delivered once their lease runs
   * out).
   */
  deliverClaimed(rows: ClaimedSyncJob[]): void {
    if (rows.length > 0) this.claimer?.(rows);
    // The forums where a waiting job absorbed this one: the workers look for it.
    const absorbed = this.settings.apiForums.length - rows.length;
    if (absorbed > 0) this.notify(absorbed);
  }

  /** Registers the worker of this process that delivers rows written already claimed. */
  onClaimed(claimer: (rows: ClaimedSyncJob[]) => void): void {
    this.claimer = claimer;
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
