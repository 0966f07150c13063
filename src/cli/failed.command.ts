import { Command, CommandRunner, Option } from 'nest-commander';
import { DiscourseConnectSyncQueue } from 'nestjs-discourse-connect';
import { waitForQueue } from './wait-for-queue';

/** `failed [--retry]`: list jobs that ran out of retries, or put them back in the queue. */
@Command({
  name: 'failed',
  description: 'List sync jobs that ran out of retries; --retry puts them back',
})
export class FailedCommand extends CommandRunner {
  constructor(private readonly queue: DiscourseConnectSyncQueue) {
    super();
  }

  @Option({ flags: '--retry', description: 'retry every failed job now' })
  parseRetry(): boolean {
    return true;
  }

  async run(_params: string[], options: { retry?: boolean }): Promise<void> {
    if (options.retry) {
      const retried = await this.queue.retryFailed();
      const { failed } = await waitForQueue(this.queue);
      console.log(`Retried ${retried} job(s); ${failed} still failed.`);
      return;
    }
    const jobs = await this.queue.failed();
    if (jobs.length === 0) return console.log('No failed jobs.');
    for (const job of jobs) {
      console.log(
        `#${job.id} ${job.kind} ${job.discordId} on ${job.forum} after ${job.attempts} attempt(s): ${job.lastError}`,
      );
    }
  }
}
