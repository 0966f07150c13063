import { createHash } from 'node:crypto';

/** Discord answered `/users/@me` with an account this app cannot read (no valid id or username). */
export class InvalidDiscordProfileError extends Error {
  override readonly name = 'InvalidDiscordProfileError';
  readonly code = 'discord_invalid_user';
}

/**
 * The Discord user fields this module keeps, and hashes for change detection. Flags, premium_type
 * and cosmetic fields churn without meaning anything to the forum, so they are left out.
 */
export interface DiscordMetadata {
  id: string;
  username: string;
  global_name: string | null;
  discriminator: string;
  avatar: string | null;
  email: string | null;
  verified: boolean;
  locale: string | null;
  /**
   * Role ids in the configured guild, sorted; `null` when not a member. Absent when no guild is
   * configured (so turning role mapping on changes the hash once, and the groups get synced).
   */
  roles?: string[] | null;
}

/**
 * A snowflake in canonical decimal form: no sign, no whitespace, no leading zero, at most 2^64 - 1.
 * `0123` or `123 ` would be a second identity for the same account wherever ids are compared as
 * numbers, so they are refused rather than normalised.
 */
const SNOWFLAKE = /^(?:0|[1-9][0-9]{0,19})$/;
const MAX_SNOWFLAKE = (1n << 64n) - 1n;
const isSnowflake = (id: unknown): id is string =>
  typeof id === 'string' && SNOWFLAKE.test(id) && BigInt(id) <= MAX_SNOWFLAKE;

/**
 * Picks the whitelisted fields out of a Discord `/users/@me` answer. Never pass the passport profile
 * around whole: it carries the access token.
 *
 * @throws InvalidDiscordProfileError when the answer has no usable id or username.
 */
export function pickDiscordMetadata(raw: Record<string, unknown>): DiscordMetadata {
  const id = raw.id;
  if (!isSnowflake(id))
    throw new InvalidDiscordProfileError('Discord returned a user without a valid id');
  if (typeof raw.username !== 'string' || !raw.username)
    throw new InvalidDiscordProfileError('Discord returned a user without a username');
  const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
  return {
    id,
    username: raw.username,
    global_name: str(raw.global_name),
    discriminator: typeof raw.discriminator === 'string' ? raw.discriminator : '0',
    avatar: str(raw.avatar),
    email: str(raw.email),
    verified: raw.verified === true,
    locale: str(raw.locale),
  };
}

/**
 * Whether a Discord `/users/@me` answer says the account has two-factor authentication on. Kept
 * out of the metadata (and its hash): it decides staff flags only.
 */
export function mfaEnabledOf(raw: Record<string, unknown>): boolean {
  return raw.mfa_enabled === true;
}

/** SHA-256 over the whitelisted fields in a fixed order: equal data, equal hash. */
export function hashDiscordMetadata(meta: DiscordMetadata): string {
  const canonical = JSON.stringify([
    meta.id,
    meta.username,
    meta.global_name,
    meta.discriminator,
    meta.avatar,
    meta.email,
    meta.verified,
    meta.locale,
    ...(meta.roles === undefined ? [] : [meta.roles]),
  ]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

/** `global_name ?? username`: what Discord itself shows. */
export const displayNameOf = (meta: Pick<DiscordMetadata, 'global_name' | 'username'>): string =>
  meta.global_name ?? meta.username;

/**
 * The avatar's CDN URL: the uploaded avatar (`.gif` when animated) or Discord's default one,
 * computed from the id with BigInt for migrated users and from the discriminator for legacy ones.
 * It changes exactly when the avatar changes, which is what lets updates reach the forum.
 */
export function discordAvatarUrl(
  meta: Pick<DiscordMetadata, 'id' | 'avatar' | 'discriminator'>,
): string {
  if (meta.avatar) {
    const ext = meta.avatar.startsWith('a_') ? 'gif' : 'png';
    return `https://cdn.discordapp.com/avatars/${meta.id}/${encodeURIComponent(meta.avatar)}.${ext}?size=512`;
  }
  const legacy = meta.discriminator && meta.discriminator !== '0';
  const index = legacy ? Number(meta.discriminator) % 5 : Number((BigInt(meta.id) >> 22n) % 6n);
  return `https://cdn.discordapp.com/embed/avatars/${Number.isFinite(index) ? index : 0}.png`;
}
