import { cleaned, tag } from '../payload/discourse-username';

/**
 * Vanilla usernames from Discord usernames, by Vanilla's default rule (`Garden.User.ValidationRegex`
 * and `ValidationLength`): 3 to 20 characters of `A-Z a-z 0-9 _`. Plain TypeScript: no Nest, no I/O.
 */

/** Vanilla's default username rule. */
const VANILLA_USERNAME = /^[A-Za-z0-9_]{3,20}$/;
const MAX = 20;
/** How many characters of the Discord id's tag end a changed name (after a `_`). */
const TAG_LENGTH = 4;

/** Whether Vanilla's default rule accepts the name. */
export function isVanillaUsername(name: string): boolean {
  return VANILLA_USERNAME.test(name);
}

/**
 * The Vanilla username of a Discord member: the Discord username itself when Vanilla accepts it
 * (Discord usernames are unique, so it is too); otherwise the name made acceptable (accents dropped,
 * `.` and `-` and other separators turned into `_`, cut to fit) followed by `_` and a short tag
 * derived from the Discord id, so two members whose names end up alike still differ. The same inputs
 * always give the same name: it changes only when the Discord username does.
 */
export function vanillaUsername(discordUsername: string, discordId: string): string {
  if (isVanillaUsername(discordUsername)) return discordUsername;
  const base = cleaned(discordUsername)
    .replace(/[.-]/g, '_')
    .replace(/_{2,}/g, '_')
    .replace(/^_+/, '');
  const head = base.slice(0, MAX - 1 - TAG_LENGTH).replace(/_+$/, '');
  return head ? `${head}_${tag(discordId, TAG_LENGTH)}` : tag(discordId, TAG_LENGTH);
}
