/** Types of seed-local-users.js (plain JavaScript so that the bench can load it). */
export declare function seededDiscordId(n: number): string;
/**
 * `linkForum`: also record each user as having an account on the forum of that name. `roles`: the
 * role ids stored for every user in the configured Discord server (sorted by the helper).
 */
export declare function seedLocalUsers(
  databaseFile: string,
  ids: readonly string[],
  options?: { linkForum?: string; roles?: readonly string[] },
): void;
