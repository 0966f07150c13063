import type { EntityManager } from 'typeorm';
import type { LocalUser } from './local-user.interface';

/** Fields written when a user is created or their Discord data changed. */
export type LocalUserData = Omit<
  LocalUser,
  'createdAt' | 'updatedAt' | 'forumUserId' | 'forumUsername'
>;

/**
 * Where local users live. The default keeps them in the module's TypeORM table; a host app that
 * has its own users table gives its own implementation in the module's `userStore` option (a class,
 * which the module instantiates with its dependencies injected, or an instance).
 *
 * @example
 * DiscourseConnectModule.forRoot({ ..., userStore: MyUserStore })
 */
export interface UserStore {
  findByDiscordId(discordId: string): Promise<LocalUser | null>;
  /** Inserts a new user; resolves to `null` when a user with that id already exists. */
  create(data: LocalUserData): Promise<LocalUser | null>;
  /** Replaces the Discord-derived fields of an existing user. */
  /**
   * `current` is the member as read just before this change, when the caller has it: a store may
   * build its answer from it instead of reading the row again.
   */
  update(data: LocalUserData, current?: LocalUser): Promise<LocalUser>;
  /**
   * Optional: Discord ids in ascending order after `after` (exclusive), at most `limit`: lets the
   * bulk resync stream every user in pages instead of loading them all.
   */
  listDiscordIds?(after: string | null, limit: number): Promise<string[]>;
  /** Optional: remembers the forum account of a user (from webhooks). */
  linkForumAccount?(discordId: string, forum: { id: number; username: string }): Promise<boolean>;
  /**
   * Optional (member lifecycle): removes the user's record, for `forget`; resolves to whether
   * there was one. A store without it keeps its record (forget says so).
   */
  delete?(discordId: string): Promise<boolean>;
}

/**
 * The module's own stores (on its TypeORM table) also run work in one database transaction, with
 * a store bound to it and the entity manager, so a user change and the sync job it causes are
 * written together. A host's store has no such method: its job is written right after the change.
 */
export interface TransactionalUserStore extends UserStore {
  transaction<T>(work: (store: UserStore, manager: EntityManager) => Promise<T>): Promise<T>;
}

export function isTransactional(store: UserStore): store is TransactionalUserStore {
  return typeof (store as Partial<TransactionalUserStore>).transaction === 'function';
}

/** Injection token of the user store. */
export const UserStore = Symbol('DiscourseConnectUserStore');
