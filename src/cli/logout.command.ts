import { Command, CommandRunner } from 'nest-commander';
import { DiscourseConnectSyncQueue } from 'nestjs-discourse-connect';
import { waitForQueue } from './wait-for-queue';

/** `logout <discordId>`: end the user's forum sessions. */
@Command({
  name: 'logout',
  arguments: '<discordId>',
  description: 'Log a user out of the forum by Discord id',
})
export class LogoutCommand extends CommandRunner {
  constructor(private readonly queue: DiscourseConnectSyncQueue) {
    super();
  }

  async run([discordId]: string[]): Promise<void> {
    if (!/^[0-9]{1,20}$/.test(discordId ?? ''))
      throw new Error('Give the Discord id (digits) of the user to log out.');
    await this.queue.enqueue('logout', discordId);
    const { failed } = await waitForQueue(this.queue);
    console.log(
      failed
        ? `Logged out ${discordId}; ${failed} failed job(s) are kept.`
        : `Logged out ${discordId}.`,
    );
  }
}
