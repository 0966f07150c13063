import { Inject, Injectable, Optional } from '@nestjs/common';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import type { EntityManager } from 'typeorm';
import { DiscordMetadata, displayNameOf, hashDiscordMetadata } from './discord-profile';
import { ForumLinks } from './forum-links';
import type { LocalUser } from './local-user.interface';
import { isTransactional, LocalUserData, UserStore } from './user-store.interface';

/** What a sign-in did to the local user. */
export interface SignInOutcome {
  user: LocalUser;
  /** First sign-in: the user was created. */
  created: boolean;
  /** The Discord data changed since the last sign-in (false when created). */
  changed: boolean;
  /** The metadata before this sign-in, when it changed. */
  previous?: DiscordMetadata;
  /** Two-factor authentication was turned on or off since the last sign-in that recorded it. */
  mfaChanged?: boolean;
}

/** Creates and updates local users from Discord, writing only when the metadata hash changed. */
@Injectable()
export class UsersService {
  /** Users recently loaded for a signed-in request (see `findSignedIn`). */
  private readonly recent = new Map<string, { user: LocalUser; freshUntil: number }>();
  /** Counts writes through this service, so a read that raced one does not cache what it read. */
  private writes = 0;
  private readonly readCacheMs: number;

  constructor(
    @Inject(UserStore) protected readonly store: UserStore,
    @Optional() @Inject(DiscourseConnectSettings) settings?: DiscourseConnectSettings,
    @Optional() @Inject(ForumLinks) protected readonly links?: ForumLinks,
  ) {
    this.readCacheMs = settings?.session.readCacheMs ?? 1000;
  }

  findByDiscordId(discordId: string): Promise<LocalUser | null> {
    return this.store.findByDiscordId(discordId);
  }

  /**
   * The user of a signed-in request. A user read or written by this process in the last
   * `session.readCacheMs` (default 1 s) is answered without the store, so a user's quick
   * succession of requests (the forum link, then the handshake it leads to) reads the store once.
   * Changes made through this service are seen at once; a change made elsewhere (another
   * instance, the host writing its own users table) within that window is seen when it ends.
   */
  async findSignedIn(discordId: string): Promise<LocalUser | null> {
    const hit = this.recentCopy(discordId);
    if (hit) return hit;
    const writesBefore = this.writes;
    const user = await this.store.findByDiscordId(discordId);
    if (user && this.writes === writesBefore) this.remember(user);
    else if (!user) this.recent.delete(discordId);
    return user;
  }

  /**
   * This process's copy of a member it wrote or read within `session.readCacheMs`, or null (then
   * read the store). A change made through this service drops it until its commit puts the new
   * row there; a change made elsewhere within that window is not seen.
   */
  recentCopy(discordId: string): LocalUser | null {
    const hit = this.recent.get(discordId);
    return hit && hit.freshUntil > Date.now() ? copyOf(hit.user) : null;
  }

  /** Whether the user store can list its users (`listDiscordIds`), for bulk work. */
  get canListUsers(): boolean {
    return typeof this.store.listDiscordIds === 'function';
  }

  /**
   * Every Discord id, in pages of `pageSize`, without loading all users at once.
   *
   * @throws Error when the user store cannot list users.
   */
  async *allDiscordIds(pageSize = 500): AsyncGenerator<string[]> {
    if (!this.store.listDiscordIds)
      throw new Error('The configured user store cannot list users (listDiscordIds).');
    let after: string | null = null;
    for (;;) {
      const page = await this.store.listDiscordIds(after, pageSize);
      if (page.length === 0) return;
      yield page;
      after = page[page.length - 1];
    }
  }

  /**
   * The users among these Discord ids (unknown ids left out), through the store's batch read when
   * it has one, else one read per id.
   */
  async findManyByDiscordIds(discordIds: string[]): Promise<LocalUser[]> {
    if (discordIds.length === 0) return [];
    if (this.store.findByDiscordIds) return this.store.findByDiscordIds(discordIds);
    const users = await Promise.all(discordIds.map((id) => this.store.findByDiscordId(id)));
    return users.filter((u): u is LocalUser => u !== null);
  }

  /**
   * Records the member's roles in the Discord server as Discord reports them outside a sign-in (the
   * bot connection): `null` when no longer a member. Writes (and calls `afterWrite`, in the same
   * transaction when the store has one) only when they differ from the stored ones. The stored
   * two-factor authentication flag is kept: only a sign-in reports it.
   */
  updateDiscordRoles(
    existing: LocalUser,
    roles: string[] | null,
    afterWrite?: (outcome: SignInOutcome, manager?: EntityManager) => Promise<void>,
  ): Promise<SignInOutcome> {
    const metadata: DiscordMetadata = {
      ...existing.metadata,
      roles: roles === null ? null : [...roles].sort(),
    };
    return this.signInFromDiscord(metadata, afterWrite, { existing });
  }

  /**
   * Remembers the forum account of a user: on the user (when the store can) and, given the forum's
   * name, as the member's link to that forum, so that syncs reach it. Resolves to whether the user
   * store recorded it (false when the store cannot or the user is unknown).
   */
  async linkForumAccount(
    discordId: string,
    forum: { id: number; username: string; name?: string },
    manager?: EntityManager,
  ): Promise<boolean> {
    this.forget(discordId);
    try {
      if (forum.name && this.links) {
        await this.links.record(
          forum.name,
          discordId,
          { status: 'linked', account: { id: forum.id, username: forum.username } },
          { manager },
        );
      }
      return this.store.linkForumAccount
        ? await this.store.linkForumAccount(discordId, { id: forum.id, username: forum.username })
        : false;
    } finally {
      this.forget(discordId);
    }
  }

  /**
   * Runs `work` in one transaction of the user store with its entity manager, when the store has
   * transactions (the default one does); otherwise runs it with the plain store and no manager.
   * Drops the cached copy of `discordId` (when given) before and after.
   */
  async inStoreTransaction<T>(
    discordId: string | null,
    work: (store: UserStore, manager?: EntityManager) => Promise<T>,
  ): Promise<T> {
    if (discordId) this.forget(discordId);
    try {
      return await (isTransactional(this.store) ? this.store.transaction(work) : work(this.store));
    } finally {
      if (discordId) this.forget(discordId);
    }
  }

  /** Drops this process's cached copy of a user; call it after writing the user store directly. */
  forget(discordId: string): void {
    this.writes++;
    this.recent.delete(discordId);
  }

  private remember(user: LocalUser): void {
    if (this.readCacheMs <= 0) return;
    this.recent.delete(user.discordId);
    this.recent.set(user.discordId, {
      user: copyOf(user),
      freshUntil: Date.now() + this.readCacheMs,
    });
    if (this.recent.size > 10_000) {
      const oldest = this.recent.keys().next().value;
      if (oldest !== undefined) this.recent.delete(oldest);
    }
  }

  /**
   * Creates or updates the local user from Discord. Reads first (unless the caller already read the
   * user and passes it as `known.existing`); writes (and calls `afterWrite`, in the same transaction
   * when the store supports one) only when the user is new or the metadata hash changed. The read
   * is not repeated inside the transaction: a parallel first sign-in that wins the insert is
   * detected by `create` answering null, and only then is the user read again.
   *
   * `mfaEnabled` (Discord's `mfa_enabled`) is stored beside the metadata, outside its hash: a
   * different value is written, and counts as `mfaChanged` (never `changed`) when one was recorded.
   * Left out (a change Discord reported outside a sign-in, which does not tell it), the stored
   * value is kept; a new user is then recorded without two-factor authentication.
   */
  async signInFromDiscord(
    meta: DiscordMetadata,
    afterWrite?: (outcome: SignInOutcome, manager?: EntityManager) => Promise<void>,
    known?: { existing: LocalUser | null },
    mfaEnabled?: boolean,
  ): Promise<SignInOutcome> {
    const existing = known ? known.existing : await this.store.findByDiscordId(meta.id);
    const keepMfa = mfaEnabled === undefined && existing !== null;
    const data: LocalUserData = keepMfa
      ? { ...toUserData(meta), mfaEnabled: existing?.mfaEnabled }
      : { ...toUserData(meta), mfaEnabled: mfaEnabled ?? false };
    if (data.mfaEnabled === undefined) delete data.mfaEnabled;
    const mfaDiffers =
      !keepMfa && existing !== null && (existing.mfaEnabled ?? false) !== data.mfaEnabled;
    if (existing && existing.metadataHash === data.metadataHash && !mfaDiffers) {
      // Just read for this sign-in: it answers the handshake that follows without another read.
      this.remember(existing);
      return { user: existing, created: false, changed: false };
    }
    const write = async (store: UserStore, manager?: EntityManager): Promise<SignInOutcome> => {
      const outcome = await writeUser(store, data, existing);
      if (outcome.changed === false && !outcome.created && mfaDiffers) {
        // Only two-factor authentication differs: written, and not a profile change.
        outcome.user = await store.update(data, existing ?? undefined);
      }
      // A first value recorded (an upgrade's first sign-in) is not a change.
      if (mfaDiffers && existing?.mfaEnabled !== undefined && existing.mfaEnabled !== null) {
        outcome.mfaChanged = true;
      }
      if (afterWrite && (outcome.created || outcome.changed || outcome.mfaChanged))
        await afterWrite(outcome, manager);
      return outcome;
    };
    this.forget(meta.id);
    let outcome: SignInOutcome;
    try {
      outcome = await (isTransactional(this.store)
        ? this.store.transaction(write)
        : write(this.store));
    } finally {
      this.forget(meta.id);
    }
    // Committed: the member as just written answers the signed-in requests that follow (the SSO
    // handshake right after the callback) without another read.
    this.remember(outcome.user);
    return outcome;
  }
}

/** Writes the user given what was read before (`existing`); re-reads only after a lost insert race. */
async function writeUser(
  store: UserStore,
  data: LocalUserData,
  existing: LocalUser | null,
  retried = false,
): Promise<SignInOutcome> {
  if (!existing) {
    if (retried) {
      // create() said "exists" but the row is not there: re-trying would loop forever.
      throw new Error(
        `The local user ${data.discordId} could not be created: the user store refused the insert.`,
      );
    }
    const created = await store.create(data);
    if (created) return { user: created, created: true, changed: false };
    // Lost a race with a parallel first sign-in: continue as a returning user.
    return writeUser(store, data, await store.findByDiscordId(data.discordId), true);
  }
  if (existing.metadataHash === data.metadataHash)
    return { user: existing, created: false, changed: false };
  const user = await store.update(data, existing);
  return { user, created: false, changed: true, previous: existing.metadata };
}

/**
 * A deep copy of a user (plain objects, arrays, dates and primitives, which is all a user holds), so
 * a caller changing its copy never changes the next request's. Several times cheaper than
 * `structuredClone` for this shape, and this runs on every signed-in request.
 */
function copyOf<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Date) return new Date(value.getTime()) as T;
  if (Array.isArray(value)) return value.map(copyOf) as T;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) copy[key] = copyOf((value as Record<string, unknown>)[key]);
  return copy as T;
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
