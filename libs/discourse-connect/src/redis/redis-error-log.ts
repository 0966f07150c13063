import { Logger } from '@nestjs/common';

/** How often at most a Redis error is logged by one {@link RedisErrorLog}. */
export const REDIS_ERROR_LOG_INTERVAL_MS = 30_000;

/**
 * Logs Redis errors at most once every 30 s, so an outage is one line, not one per retry; by
 * message only, with any credentials in it (`//user:pass@`) masked and the Redis URL, when known,
 * replaced by `<REDIS_URL>`.
 */
export class RedisErrorLog {
  private last = 0;

  constructor(
    private readonly logger: Pick<Logger, 'error'> = new Logger('DiscourseConnect'),
    private readonly url?: string,
  ) {}

  log(context: string, error: unknown): void {
    if (Date.now() - this.last < REDIS_ERROR_LOG_INTERVAL_MS) return;
    this.last = Date.now();
    this.logger.error(`${context}: ${this.mask((error as Error)?.message ?? String(error))}`);
  }

  private mask(message: string): string {
    const masked = message.replace(/\/\/[^@\s]*@/g, '//***@');
    return this.url ? masked.split(this.url).join('<REDIS_URL>') : masked;
  }
}
