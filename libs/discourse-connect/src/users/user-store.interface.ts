import type { EntityManager } from 'typeorm';
import type { LocalUser } from './local-user.interface';

/** Fields written when a user is created or their Discord data changed. */
export type LocalUserData = Omit<LocalUser, 'createdAt' | 'updatedAt' | 'forumUserId' | 'forumUsername'>;

/**
 * Where local users live. The default keeps them in the module's TypeORM table; a host app that
 * has its own users table provides its own implementation under this token:
 *
 * @example
 * DiscourseConnectModule.forRoot({ ... }) // then, in the host module:
 * providers: [{ provide: UserStore, useClass: MyUserStore }]
 */
export interface UserStore {
  findByDiscordId(discordId: string): Promise<LocalUser | null>;
  /** Inserts a new user; resolves to `null` when a user with that id already exists. */
  create(data: LocalUserData): Promise<LocalUser | null>;
  /** Replaces the Discord-derived fields of an existing user. */
  update(data: LocalUserData): Promise<LocalUser>;
  /**
   * Optional: Discord ids in ascending order after `after` (exclusive), at most `limit`: lets the
   * bulk resync stream every user in pages instead of loading them all.
   */
  listDiscordIds?(after: string | null, limit: number): Promise<string[]>;
  /** Optional: remembers the forum account of a user (from webhooks). */
  linkForumAccount?(discordId: string, forum: { id: number; username: string }): Promise<boolean>;
  /**
   * Optional: runs `work` in one database transaction, with a store bound to it and the TypeORM
   * entity manager, so a user change and the sync job it causes are written together. Without it,
   * the job is written right after the change.
   */
  transaction?<T>(work: (store: UserStore, manager: EntityManager) => Promise<T>): Promise<T>;
}

/** Injection token of the user store. */
export const UserStore = Symbol('UserStore');
