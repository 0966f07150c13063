import type { Repository } from 'typeorm';
import type { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import type {
  DiscourseConnectSyncQueue,
  SyncJobRecord,
  SyncQueueCounts,
} from './discourse-connect-sync-queue';
import type { DiscourseConnectSyncJobEntity, SyncJobKind } from './sync-job.entity';
import { SyncQueue } from './sync-queue.service';

type Hook =
  | 'onModuleInit'
  | 'onApplicationBootstrap'
  | 'onModuleDestroy'
  | 'beforeApplicationShutdown'
  | 'onApplicationShutdown';

/**
 * The host's own queue (`syncQueue` option) seen through the module's internal queue type: jobs
 * go to the host's queue (not to the database outbox, so not in the member change's transaction),
 * and the module's worker stays idle: the host's worker delivers them. When the module created the
 * host's queue from a class, Nest's lifecycle hooks reach it through this wrapper.
 */
export class HostSyncQueue extends SyncQueue {
  /** The module's worker never delivers from the outbox for a host queue. */
  override readonly deliversFromOutbox = false;

  constructor(
    readonly host: DiscourseConnectSyncQueue,
    private readonly createdByModule: boolean,
    jobs: Repository<DiscourseConnectSyncJobEntity>,
    settings: DiscourseConnectSettings,
  ) {
    super(jobs, settings);
  }

  override enqueue(
    kind: SyncJobKind,
    discordId: string,
    options: { forum?: string } = {},
  ): Promise<void> {
    return this.host.enqueue(kind, discordId, options.forum ? { forum: options.forum } : undefined);
  }

  counts(): Promise<SyncQueueCounts> {
    return this.host.counts();
  }

  failed(limit?: number): Promise<SyncJobRecord[]> {
    return this.host.failed(limit);
  }

  retryFailed(ids?: (number | string)[]): Promise<number> {
    return this.host.retryFailed(ids);
  }

  onModuleInit(): unknown {
    return this.forward('onModuleInit');
  }
  onApplicationBootstrap(): unknown {
    return this.forward('onApplicationBootstrap');
  }
  onModuleDestroy(): unknown {
    return this.forward('onModuleDestroy');
  }
  beforeApplicationShutdown(signal?: string): unknown {
    return this.forward('beforeApplicationShutdown', signal);
  }
  onApplicationShutdown(signal?: string): unknown {
    return this.forward('onApplicationShutdown', signal);
  }

  private forward(hook: Hook, signal?: string): unknown {
    if (!this.createdByModule) return undefined; // a host provider: Nest calls its hooks itself
    const method = (this.host as Partial<Record<Hook, (signal?: string) => unknown>>)[hook];
    return typeof method === 'function' ? method.call(this.host, signal) : undefined;
  }
}
