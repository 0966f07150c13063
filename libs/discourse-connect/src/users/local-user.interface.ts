import type { DiscordMetadata } from './discord-profile';

/** A person who has signed in with Discord, as this app keeps them. */
export interface LocalUser {
  /** The immutable Discord id (a snowflake, kept as a string). */
  discordId: string;
  username: string;
  /** `global_name ?? username`. */
  displayName: string;
  email: string | null;
  /** Whether Discord marks the email as verified. */
  emailVerified: boolean;
  avatarHash: string | null;
  /** The whitelisted copy of the Discord user. */
  metadata: DiscordMetadata;
  /** SHA-256 of `metadata`; decides whether a sign-in changed anything. */
  metadataHash: string;
  /**
   * Whether the Discord account had two-factor authentication on at the last sign-in (Discord's
   * `mfa_enabled`); kept outside `metadata`. Optional for host user stores: absent counts as false.
   */
  mfaEnabled?: boolean | null;
  /** The forum's id and username for this user, once the forum told us (webhooks). */
  forumUserId?: number | null;
  forumUsername?: string | null;
  createdAt: Date;
  updatedAt: Date;
}
