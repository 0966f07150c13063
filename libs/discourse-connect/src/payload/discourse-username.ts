import { createHash } from 'node:crypto';

/**
 * Forum usernames from Discord usernames, by the rules of Discourse's username validator (with
 * unicode usernames off, its default). Plain TypeScript: no Nest, no I/O.
 */

/** The forum's `min_username_length` and `max_username_length`. */
export interface UsernameLengths {
  /** `min_username_length`; Discourse's default is 3. */
  min: number;
  /** `max_username_length`; Discourse's default is 20. */
  max: number;
}

/** Discourse's defaults. */
export const DEFAULT_USERNAME_LENGTHS: UsernameLengths = { min: 3, max: 20 };

/**
 * Endings Discourse refuses because they look like a file (`bob.json`, `logo.png`): the validator's
 * list and the usual other web file types, compared without regard to case.
 */
const FILE_LIKE_SUFFIX =
  /\.(js|json|css|htm|html|xml|jpg|jpeg|png|gif|bmp|ico|tif|tiff|svg|webp|avif|woff|woff2|ttf|otf|eot|pdf|txt|csv|zip|gz|mp3|mp4|webm|map|php|rss|atom)$/i;

/** The characters of a username, unicode usernames off. */
const ALLOWED = /^[A-Za-z0-9_.-]+$/;
const SPECIAL_RUN = /[-_.]{2,}/;

/** How many characters of the Discord id's tag end a changed name (after a `_`). */
const TAG_LENGTH = 4;

/** Why a name is not one Discourse accepts, or undefined when it is. */
export function discourseUsernameProblem(
  name: string,
  lengths: UsernameLengths = DEFAULT_USERNAME_LENGTHS,
): string | undefined {
  if (name.length < lengths.min) return `shorter than ${lengths.min} characters`;
  if (name.length > lengths.max) return `longer than ${lengths.max} characters`;
  if (!ALLOWED.test(name)) return 'has a character other than A-Z a-z 0-9 _ . -';
  if (!/^[A-Za-z0-9_]/.test(name)) return 'does not start with a letter, digit or _';
  if (!/[A-Za-z0-9]$/.test(name)) return 'does not end with a letter or digit';
  if (SPECIAL_RUN.test(name)) return 'has two of - _ . in a row';
  if (FILE_LIKE_SUFFIX.test(name)) return 'ends like a file name (.json, .png, …)';
  return undefined;
}

/** Whether Discourse accepts the name as a username. */
export function isDiscourseUsername(
  name: string,
  lengths: UsernameLengths = DEFAULT_USERNAME_LENGTHS,
): boolean {
  return discourseUsernameProblem(name, lengths) === undefined;
}

/**
 * The forum username for a Discord member: the Discord username itself when Discourse accepts it;
 * otherwise the name made acceptable (accents dropped, other characters removed or turned into `_`,
 * cut to fit) followed by `_` and a short tag derived from the Discord id, so that two members
 * whose names end up alike still get different usernames. The same inputs always give the same
 * name: it changes only when the Discord username does.
 *
 * @param lengths the forum's `min_username_length` / `max_username_length` (min ≥ 1, max ≥ min).
 */
export function discourseUsername(
  discordUsername: string,
  discordId: string,
  lengths: UsernameLengths = DEFAULT_USERNAME_LENGTHS,
): string {
  const { min, max } = checkedLengths(lengths);
  if (isDiscourseUsername(discordUsername, { min, max })) return discordUsername;
  const base = cleaned(discordUsername);
  const room = max - 1 - TAG_LENGTH;
  const head = room > 0 ? trimEnd(base.slice(0, room)) : '';
  if (!head) return tag(discordId, Math.min(max, Math.max(min, TAG_LENGTH)));
  const tagLength = Math.max(TAG_LENGTH, min - head.length - 1);
  return `${head}_${tag(discordId, tagLength)}`;
}

/** The name with only allowed characters, no runs of `-_.`, and a valid first character. */
export function cleaned(name: string): string {
  return (
    name
      .normalize('NFKD')
      // Accents and other combining marks go: "José" → "Jose".
      .replace(/\p{M}+/gu, '')
      // Spaces and punctuation that separate words become `_`; symbols (emoji) and letters of
      // other scripts go.
      .replace(/[\s\p{Z}\p{P}]+/gu, (s) => (/^[-_.]+$/.test(s) ? s : '_'))
      .replace(/[^A-Za-z0-9_.-]+/g, '')
      .replace(/[-_.]{2,}/g, '_')
      .replace(/^[-_.]+/, '')
  );
}

/** Cuts trailing characters until the name ends with a letter or digit ('' when none is left). */
function trimEnd(name: string): string {
  return name.replace(/[^A-Za-z0-9]+$/, '');
}

/** `length` lowercase base-36 characters derived from the Discord id (the same every time). */
export function tag(discordId: string, length: number): string {
  let out = '';
  for (let round = 0; out.length < length; round++) {
    const digest = createHash('sha256').update(`discourse-username:${round}:${discordId}`).digest();
    out += BigInt(`0x${digest.toString('hex')}`)
      .toString(36)
      .padStart(50, '0');
  }
  return out.slice(0, length);
}

function checkedLengths({ min, max }: UsernameLengths): UsernameLengths {
  if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max < min) {
    throw new RangeError(
      `username lengths must be whole numbers with 1 ≤ min ≤ max (got ${min}, ${max})`,
    );
  }
  return { min, max };
}
