import { Logger, OnApplicationShutdown } from '@nestjs/common';
import type { Redis, RedisOptions } from 'ioredis';
import { loadOptionalDependency } from '../config/optional-dependency';
import { RedisErrorLog } from './redis-error-log';

/**
 * The module's one Redis connection setup (sessions, the admin API rate limit, the BullMQ queue).
 * Created only when `redis` is configured; every connection it opened is closed when the app shuts
 * down (after the queue's worker stopped: `onApplicationShutdown` runs after `onModuleDestroy`).
 * The URL can carry a password: it is never logged, and errors are logged by message only.
 */
export class DiscourseConnectRedis implements OnApplicationShutdown {
  private readonly logger = new Logger('DiscourseConnect');
  /**
   * For commands (sessions, limiter, queue producer): a command fails after a few reconnection
   * attempts, or after 2 s without an answer, instead of hanging a request.
   * @internal (left out of the package's declarations: `ioredis` is an optional peer)
   */
  readonly client: Redis;
  private readonly extra: Redis[] = [];
  private readonly errors: RedisErrorLog;

  constructor(
    private readonly url: string,
    /** Prefix of every key the module writes, e.g. `dc:`. */
    readonly prefix: string,
  ) {
    this.errors = new RedisErrorLog(this.logger, url);
    this.client = this.open({ maxRetriesPerRequest: 2, commandTimeout: 2000 }, 'discourse-connect');
  }

  /**
   * Another connection on the same server (BullMQ workers need their own, blocking-capable one).
   * @internal (left out of the package's declarations: `ioredis` is an optional peer)
   */
  duplicate(options: RedisOptions = {}, name = 'discourse-connect-worker'): Redis {
    const connection = this.open(options, name);
    this.extra.push(connection);
    return connection;
  }

  /** Whether Redis answers PING within a second. */
  async ping(): Promise<boolean> {
    try {
      const answer = await Promise.race([
        this.client.ping(),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('timeout')), 1000).unref(),
        ),
      ]);
      return answer === 'PONG';
    } catch {
      return false;
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([this.client, ...this.extra].map((c) => quit(c)));
  }

  private open(options: RedisOptions, connectionName: string): Redis {
    const { Redis } = loadOptionalDependency<typeof import('ioredis')>(
      'ioredis',
      'Redis (the redis option or REDIS_URL)',
    );
    const connection = new Redis(this.url, {
      connectionName,
      enableAutoPipelining: false,
      ...options,
    });
    // ioredis retries on its own.
    connection.on('error', (error: Error) =>
      this.logError('Redis connection error (retrying)', error),
    );
    return connection;
  }

  /**
   * Logs a Redis error of the module (its connections, the BullMQ queue and worker) at most once
   * every 30 s for all of them together, so an outage is one line, not one per retry; by message
   * only, with any credentials in it masked, never with the URL.
   */
  logError(context: string, error: unknown): void {
    this.errors.log(context, error);
  }
}

async function quit(connection: Redis): Promise<void> {
  if (connection.status === 'end') return;
  try {
    await Promise.race([
      connection.quit(),
      new Promise((resolve) => setTimeout(resolve, 2000).unref()),
    ]);
  } catch {
    /* closing anyway */
  }
  connection.disconnect();
}
