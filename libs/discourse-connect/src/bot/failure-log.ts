import type { Logger } from '@nestjs/common';

/** How often at most a failure of the bot connection is logged by one {@link FailureLog}. */
export const BOT_FAILURE_LOG_INTERVAL_MS = 10 * 60_000;

/**
 * Logs a repeated failure (Discord unreachable, the gateway refused) at most once every
 * 10 minutes, with how many were left out since the last line; the bot token, should a message
 * carry it, is masked.
 */
export class FailureLog {
  private last = -Infinity;
  private skipped = 0;

  constructor(
    private readonly logger: Pick<Logger, 'warn'>,
    private readonly secret: string,
    private readonly intervalMs = BOT_FAILURE_LOG_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  report(message: string): void {
    if (this.now() - this.last < this.intervalMs) {
      this.skipped++;
      return;
    }
    const more = this.skipped ? ` (${this.skipped} more such failures since the last line)` : '';
    this.last = this.now();
    this.skipped = 0;
    this.logger.warn(`${this.mask(message)}${more}`);
  }

  private mask(message: string): string {
    return this.secret ? message.split(this.secret).join('<DISCORD_BOT_TOKEN>') : message;
  }
}
