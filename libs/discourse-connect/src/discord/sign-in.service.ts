import { Injectable } from '@nestjs/common';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscordApiClient } from './discord-api.client';
import { DiscordApiError } from './discord-api.error';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import { DiscourseConnectEvents } from '../hooks/discourse-connect.events';
import { DiscourseConnectFiltersService } from '../hooks/filters.service';
import { SyncQueue, type ClaimedSyncJob } from '../sync/sync-queue.service';
import { mfaEnabledOf, pickDiscordMetadata, type DiscordMetadata } from '../users/discord-profile';
import type { LocalUser } from '../users/local-user.interface';
import { SignInRefusedError } from './sign-in.errors';
import { UsersService, type SignInOutcome } from '../users/users.service';

/**
 * The sign-in use case, once Discord has answered with the user's profile: reads the guild roles,
 * applies the membership requirement and the `user.canSignIn` filter, and writes the local user
 * with the sync job it causes in one transaction. Reads the user once (the filter's `existing` is
 * the one the write decision uses). Events and the queue's wake-up come only after the commit.
 * Knows nothing of HTTP: a refusal is a {@link SignInRefusedError}.
 */
@Injectable()
export class DiscourseConnectSignIn {
  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly api: DiscordApiClient,
    private readonly users: UsersService,
    private readonly filters: DiscourseConnectFiltersService,
    private readonly actions: DiscourseConnectActionsService,
    private readonly queue: SyncQueue,
  ) {}

  /**
   * Signs in the Discord user of `profile` (the raw `/users/@me` answer).
   *
   * @throws InvalidDiscordProfileError when the profile has no usable id or username.
   * @throws SignInRefusedError when the membership requirement or the filter refuses.
   * @throws DiscordApiError when Discord fails while the roles are read.
   */
  async signIn(profile: Record<string, unknown>, accessToken: string): Promise<LocalUser> {
    const discord = pickDiscordMetadata(profile);
    await this.readRoles(discord, accessToken);
    const existing = await this.users.findByDiscordId(discord.id);
    await this.checkAllowed(discord, existing);
    const claimed: { rows?: ClaimedSyncJob[] } = {};
    const outcome = await this.write(discord, existing, mfaEnabledOf(profile), claimed);
    this.announce(outcome, claimed);
    return outcome.user;
  }

  private async readRoles(discord: DiscordMetadata, accessToken: string): Promise<void> {
    const groups = this.settings.groups;
    if (!groups) return;
    discord.roles = await this.guildRoles(accessToken, groups.guildId);
    if (discord.roles === null && groups.requireMembership) {
      throw new SignInRefusedError(
        'not_a_guild_member',
        'Only members of our Discord server can sign in. Join the server, then sign in again.',
      );
    }
  }

  /** Role ids in the guild (sorted), or null when the user is not a member. Once per sign-in. */
  private async guildRoles(accessToken: string, guildId: string): Promise<string[] | null> {
    try {
      const member = await this.api.get<{ roles?: unknown }>(
        `/users/@me/guilds/${guildId}/member`,
        accessToken,
      );
      return Array.isArray(member.roles)
        ? member.roles.filter((r): r is string => typeof r === 'string').sort()
        : [];
    } catch (error) {
      // Unknown Guild / Unknown Member: not a member. Anything else fails the sign-in (never guess).
      if (error instanceof DiscordApiError && error.status === 404) return null;
      throw error;
    }
  }

  private async checkAllowed(discord: DiscordMetadata, existing: LocalUser | null): Promise<void> {
    const verdict = await this.filters.apply('user.canSignIn', true, { discord, existing });
    if (verdict === true) return;
    throw new SignInRefusedError(
      'sign_in_refused_by_filter',
      typeof verdict === 'string' && verdict
        ? verdict
        : 'This Discord account is not allowed to sign in here.',
    );
  }

  /**
   * Creates or updates the user. A changed profile reaches the forum without a browser round trip:
   * the sync job is written in the same transaction as the change, already claimed by this
   * process's worker when it has one (kept in `claimed`), and delivered by the worker.
   */
  private write(
    discord: DiscordMetadata,
    existing: LocalUser | null,
    mfaEnabled: boolean,
    claimed: { rows?: ClaimedSyncJob[] },
  ): Promise<SignInOutcome> {
    const { onFirstSignIn } = this.settings.sync;
    return this.users.signInFromDiscord(
      discord,
      async (o, manager) => {
        // A changed profile goes to the forums where the member has an account; with
        // `sync.onFirstSignIn` a first sign-in creates the account on every forum (`create`).
        // Two-factor authentication turned on or off changes staff flags, when roles grant any.
        let kind: 'sync' | 'create' | undefined;
        if (o.changed || (o.mfaChanged && this.staffRolesConfigured())) kind = 'sync';
        else if (o.created && onFirstSignIn) kind = 'create';
        if (!kind) return;
        const rows = await this.queue.enqueueClaimed(kind, o.user.discordId, manager);
        if (rows) claimed.rows = rows;
        else await this.queue.enqueue(kind, o.user.discordId, { manager });
      },
      { existing },
      mfaEnabled,
    );
  }

  /** Whether any forum grants staff flags from roles. */
  private staffRolesConfigured(): boolean {
    return this.settings.forums.some(
      (f) => f.staffRoles.admin.length > 0 || f.staffRoles.moderator.length > 0,
    );
  }

  /** After the commit: hands the claimed jobs over or wakes the queue's workers, and emits the events. */
  private announce(outcome: SignInOutcome, claimed: { rows?: ClaimedSyncJob[] }): void {
    // Only when the write queued a job (see `write`): otherwise the workers would look for nothing.
    const queued =
      outcome.changed ||
      outcome.mfaChanged ||
      (outcome.created && this.settings.sync.onFirstSignIn);
    // One job per forum with an admin API key (see `SyncQueue.enqueue`).
    const forums = this.settings.apiForums.length;
    if (claimed.rows) this.queue.deliverClaimed(claimed.rows);
    else if (queued && forums > 0) this.queue.notify(forums);
    if (outcome.created)
      this.actions.emit(DiscourseConnectEvents.UserCreated, { user: outcome.user });
    if (outcome.changed && outcome.previous) {
      this.actions.emit(DiscourseConnectEvents.ProfileChanged, {
        user: outcome.user,
        previous: outcome.previous,
      });
    }
    this.actions.emit(DiscourseConnectEvents.SignedIn, {
      user: outcome.user,
      created: outcome.created,
      changed: outcome.changed,
    });
  }
}
