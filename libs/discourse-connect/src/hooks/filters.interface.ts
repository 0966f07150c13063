import type { DiscourseConnectPayload } from '../protocol';
import type { DiscordMetadata } from '../users/discord-profile';
import type { LocalUser } from '../users/local-user.interface';
import type { ResolvedForum } from '../config/discourse-connect.settings';
import type { JsConnectUser } from '../jsconnect';

/** Context of the `sso.payload` filter. */
export interface SsoPayloadContext {
  user: LocalUser;
  forum: { name: string; url: string };
}

/** Context of the `user.canSignIn` filter. */
export interface CanSignInContext {
  /** The Discord user, whitelisted fields only. */
  discord: DiscordMetadata;
  /** The local user when they signed in before. */
  existing: LocalUser | null;
}

/** Context of the `discourse.groups` filter. */
export interface GroupsContext {
  user: LocalUser;
  forum: { name: string; url: string };
  /** The user's role ids in the configured guild; null when not a member. */
  roles: string[] | null;
  /** Every group the module manages (the values of the role map). */
  managed: string[];
}

/** Context of the `vanilla.user` filter. */
export interface VanillaUserContext {
  user: LocalUser;
  /** The Vanilla forum the member is signing in to. */
  forum: { name: string; url: string };
  /** The user's role ids in the configured guild; null when not a member or roles are not read. */
  roles: string[] | null;
}

/**
 * Every filter the module applies: its name, the value it transforms and the context it gets.
 * A filter returns the new value (or a promise of it).
 */
export interface DiscourseConnectFilters {
  /** The DiscourseConnect payload just before it is signed and sent to the forum. */
  'sso.payload': { value: DiscourseConnectPayload; context: SsoPayloadContext };
  /** Whether this Discord user may sign in at all. Return `false`, or a string saying why. */
  'user.canSignIn': { value: boolean | string; context: CanSignInContext };
  /** The forum groups this user should be in, among the managed ones (from the role map by default). */
  'discourse.groups': { value: string[]; context: GroupsContext };
  /**
   * The jsConnect user sent to a Vanilla forum, just before it is signed (`id` stays the Discord
   * id, whatever the filter returns).
   */
  'vanilla.user': { value: JsConnectUser; context: VanillaUserContext };
}

export type DiscourseConnectFilterName = keyof DiscourseConnectFilters;

export type { ResolvedForum };
