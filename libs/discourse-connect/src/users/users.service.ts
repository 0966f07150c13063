import { Inject, Injectable } from '@nestjs/common';
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

  async signInFromDiscord(meta: DiscordMetadata): Promise<SignInOutcome> {
    const data = toUserData(meta);
    const existing = await this.store.findByDiscordId(meta.id);
    if (!existing) {
      const created = await this.store.create(data);
      if (created) return { user: created, created: true, changed: false };
      // Lost a race with a parallel first sign-in: continue as a returning user.
      return this.applyIfChanged((await this.store.findByDiscordId(meta.id))!, data);
    }
    return this.applyIfChanged(existing, data);
  }

  private async applyIfChanged(existing: LocalUser, data: LocalUserData): Promise<SignInOutcome> {
    if (existing.metadataHash === data.metadataHash) return { user: existing, created: false, changed: false };
    const user = await this.store.update(data);
    return { user, created: false, changed: true, previous: existing.metadata };
  }
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
