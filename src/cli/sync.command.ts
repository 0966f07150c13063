import { Command, CommandRunner, Option } from 'nest-commander';
import { SingleBar, Presets } from 'cli-progress';
import { DiscourseConnectSyncQueue, DiscourseConnectUsersService } from 'nestjs-discourse-connect';
import { waitForQueue } from './wait-for-queue';

interface SyncOptions {
  all?: boolean;
  create?: boolean;
}

/**
 * `sync --all` | `sync <discordId>`: push users' current profiles and groups to the forums where
 * they have an account. `--create` also pushes them to the forums where they have none, which
 * creates the account there (and Discourse may send a welcome email).
 */
@Command({
  name: 'sync',
  arguments: '[discordId]',
  description:
    'Push users to the forums where they have an account, through sync_sso: one Discord id, or --all (streamed in pages); --create also creates their accounts on the other forums',
})
export class SyncCommand extends CommandRunner {
  constructor(
    private readonly users: DiscourseConnectUsersService,
    private readonly queue: DiscourseConnectSyncQueue,
  ) {
    super();
  }

  @Option({ flags: '--all', description: 'every local user' })
  parseAll(): boolean {
    return true;
  }

  @Option({
    flags: '--create',
    description:
      'also sync to forums where the user has no account yet, creating it (welcome emails included)',
  })
  parseCreate(): boolean {
    return true;
  }

  async run(params: string[], options: SyncOptions): Promise<void> {
    const kind = options.create ? 'create' : 'sync';
    const [discordId] = params;
    if (!options.all && !discordId) throw new Error('Give a Discord id, or --all for every user.');
    if (options.all && discordId) throw new Error('Give either a Discord id or --all, not both.');
    if (discordId) {
      if (!(await this.users.findByDiscordId(discordId)))
        throw new Error(`No local user has the Discord id ${discordId}.`);
      await this.queue.enqueue(kind, discordId);
      await waitForQueue(this.queue);
      console.log(`Synced ${discordId}.`);
      return;
    }
    let queued = 0;
    for await (const page of this.users.allDiscordIds()) {
      for (const id of page) await this.queue.enqueue(kind, id);
      queued += page.length;
    }
    const bar = new SingleBar(
      {
        format: 'sync --all [{bar}] {value}/{total} users | {eta_formatted} left',
        stream: process.stderr,
        // Progress shows in logs and CI too, not only on a terminal.
        noTTYOutput: true,
        notTTYSchedule: 1000,
      },
      Presets.shades_classic,
    );
    bar.start(queued, 0);
    const result = await waitForQueue(this.queue, (remaining) =>
      bar.update(Math.max(0, queued - remaining)),
    );
    bar.update(queued);
    bar.stop();
    console.log(
      `Queued ${queued} users; ${result.failed} failed job(s) kept (see: npm run cli -- failed).`,
    );
  }
}
