import { Inject, Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { DiscordMetadata, displayNameOf, hashDiscordMetadata } from './discord-profile';
import type { LocalUser } from './local-user.interface';
import { LocalUserData, UserStore } from './user-store.interface';

/** What a sign-in did to the local user. */
export interface SignInOutcome {
  user: LocalUser;
  /** First sign-in: the user was created. */
  created: boolean;
  /** The Discord data changed since the last sign-in (false when created). */
  changed: boolean;
  /** The metadata before this sign-in, when it changed. */
  previous?: DiscordMetadata;
}

/** Creates and updates local users from Discord, writing only when the metadata hash changed. */
@Injectable()
export class UsersService {
  constructor(@Inject(UserStore) protected readonly store: UserStore) {}

  findByDiscordId(discordId: string): Promise<LocalUser | null> {
    return this.store.findByDiscordId(discordId);
  }

  /**
   * Every Discord id, in pages of `pageSize`, without loading all users at once.
   *
   * @throws Error when the user store cannot list users.
   */
  async *allDiscordIds(pageSize = 500): AsyncGenerator<string[]> {
    if (!this.store.listDiscordIds) throw new Error('The configured user store cannot list users (listDiscordIds).');
    let after: string | null = null;
    for (;;) {
      const page = await this.store.listDiscordIds(after, pageSize);
      if (page.length === 0) return;
      yield page;
      after = page[page.length - 1];
    }
  }

  /** Remembers the forum account of a user; false when the store cannot or the user is unknown. */
  async linkForumAccount(discordId: string, forum: { id: number; username: string }): Promise<boolean> {
    return this.store.linkForumAccount ? this.store.linkForumAccount(discordId, forum) : false;
  }

  /**
   * Creates or updates the local user from Discord. Reads first; writes (and calls `afterWrite`,
   * in the same transaction when the store supports one) only when the user is new or the
   * metadata hash changed.
   */
  async signInFromDiscord(
    meta: DiscordMetadata,
    afterWrite?: (outcome: SignInOutcome, manager?: EntityManager) => Promise<void>,
  ): Promise<SignInOutcome> {
    const data = toUserData(meta);
    const existing = await this.store.findByDiscordId(meta.id);
    if (existing && existing.metadataHash === data.metadataHash) {
      return { user: existing, created: false, changed: false };
    }
    const write = async (store: UserStore, manager?: EntityManager): Promise<SignInOutcome> => {
      const outcome = await writeUser(store, data);
      if (afterWrite && (outcome.created || outcome.changed)) await afterWrite(outcome, manager);
      return outcome;
    };
    return this.store.transaction ? this.store.transaction(write) : write(this.store);
  }
}

async function writeUser(store: UserStore, data: LocalUserData, retried = false): Promise<SignInOutcome> {
  const existing = await store.findByDiscordId(data.discordId);
  if (!existing) {
    if (retried) {
      // create() said "exists" but the row is not there: re-trying would loop forever.
      throw new Error(`The local user ${data.discordId} could not be created: the user store refused the insert.`);
    }
    const created = await store.create(data);
    if (created) return { user: created, created: true, changed: false };
    // Lost a race with a parallel first sign-in: continue as a returning user.
    return writeUser(store, data, true);
  }
  if (existing.metadataHash === data.metadataHash) return { user: existing, created: false, changed: false };
  const user = await store.update(data);
  return { user, created: false, changed: true, previous: existing.metadata };
}

function toUserData(meta: DiscordMetadata): LocalUserData {
  return {
    discordId: meta.id,
    username: meta.username,
    displayName: displayNameOf(meta),
    email: meta.email,
    emailVerified: meta.verified,
    avatarHash: meta.avatar,
    metadata: meta,
    metadataHash: hashDiscordMetadata(meta),
  };
}
