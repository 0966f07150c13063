import { Command, CommandRunner, Option } from 'nest-commander';
import { DiscourseMemberLifecycle, type MemberSuspensionOutcome } from 'nestjs-discourse-connect';

interface SuspendOptions {
  until?: Date;
  reason?: string;
}

/** One line per forum; exit code 1 when a forum failed. */
function report(verb: string, discordId: string, outcomes: MemberSuspensionOutcome[]): void {
  for (const o of outcomes) {
    const what =
      o.outcome === 'done'
        ? verb
        : o.outcome === 'no-account'
          ? 'no account there'
          : o.outcome === 'skipped'
            ? 'left alone (not a suspension this site made)'
            : `FAILED: ${o.error ?? 'unknown error'}`;
    console.log(`${o.forum}: ${discordId} ${what}`);
  }
  if (outcomes.length === 0) console.log('No forum has an admin API key: nothing to do.');
  if (outcomes.some((o) => o.outcome === 'failed')) process.exitCode = 1;
}

/** `suspend <discordId> [--until <date>] [--reason <text>]`: suspend a member on the forums now. */
@Command({
  name: 'suspend',
  arguments: '<discordId>',
  description:
    'Suspend a member on every forum where they have an account (default: DISCOURSE_SUSPEND_DAYS, DISCOURSE_SUSPEND_REASON)',
})
export class SuspendCommand extends CommandRunner {
  constructor(private readonly lifecycle: DiscourseMemberLifecycle) {
    super();
  }

  @Option({
    flags: '--until <date>',
    description: 'end of the suspension (ISO date, e.g. 2030-01-01)',
  })
  parseUntil(value: string): Date {
    const at = new Date(value);
    if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(at.getTime()))
      throw new Error(`--until must be a date such as 2030-01-01 (got "${value}").`);
    return at;
  }

  @Option({ flags: '--reason <text>', description: 'the reason the forum shows' })
  parseReason(value: string): string {
    return value;
  }

  async run([discordId]: string[], options: SuspendOptions): Promise<void> {
    const outcomes = await this.lifecycle.suspend(discordId ?? '', {
      ...(options.until ? { until: options.until } : {}),
      ...(options.reason ? { reason: options.reason } : {}),
    });
    report('suspended', discordId!, outcomes);
  }
}

/** `unsuspend <discordId>`: lift a suspension this site made. */
@Command({
  name: 'unsuspend',
  arguments: '<discordId>',
  description:
    'Lift the suspension this site made of a member (a suspension made by the forum staff stays)',
})
export class UnsuspendCommand extends CommandRunner {
  constructor(private readonly lifecycle: DiscourseMemberLifecycle) {
    super();
  }

  async run([discordId]: string[]): Promise<void> {
    report('unsuspended', discordId ?? '', await this.lifecycle.unsuspend(discordId ?? ''));
  }
}

/** `forget <discordId>`: delete a member's data here and anonymize/delete/leave their forum accounts. */
@Command({
  name: 'forget',
  arguments: '<discordId>',
  description:
    'Forget a member: their data here goes, their forum accounts are anonymized, deleted or left (DISCOURSE_FORGET_ACTION)',
})
export class ForgetCommand extends CommandRunner {
  constructor(private readonly lifecycle: DiscourseMemberLifecycle) {
    super();
  }

  async run([discordId]: string[]): Promise<void> {
    const result = await this.lifecycle.forget(discordId ?? '');
    console.log(
      `${discordId}: local data removed (user record ${result.userRecord}, sessions, forum links, waiting jobs).`,
    );
    for (const f of result.forums) {
      const what =
        f.outcome === 'done'
          ? f.action === 'none'
            ? 'account left as it is'
            : `account ${f.action === 'delete' ? 'deleted' : 'anonymized'}`
          : f.outcome === 'no-account'
            ? 'no account there'
            : f.outcome === 'no-api-key'
              ? 'NOT DONE: the member has an account there, and this forum has no admin API key'
              : `PENDING: ${f.error ?? 'the forum failed'}; a job keeps trying (see: failed)`;
      console.log(`${f.forum}: ${what}`);
    }
    if (result.forums.some((f) => f.outcome === 'pending')) process.exitCode = 1;
  }
}
